"""The checkpoints a server holds: each loaded once, with one NumPy model that every request's
generator shares and the batching engine that steps them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checkpoint import Checkpoint, load_checkpoint
from ..device import usable_cores
from ..errors import DataError, UsageError
from ..generate.api import is_probabilistic, start, text_prime
from ..generate.generator import Generator
from ..generate.request import Request, generator_for
from ..generate.sampling import TEXT_CHOICES, sampling_weights
from ..info import checkpoint_info
from ..kinds import Kind
from ..model.numpy_backend import NumpyModel
from .engine import top_tokens
from .remote import ProcessEngine
from .protocol import RequestError, numbers


FLOAT32_MAX = float(np.finfo(np.float32).max)
# A text prompt up to this many tokens is fed by the engine, a token per batched step beside the
# other streams' tokens (see engine.Stream.prefill), not here through the network alone. Fed
# here, 64 requests arriving together waited for each other's prompts (one at a time, on the core
# the event loop needs) while the engine stepped the few streams already in: 33-48% more steps
# than tokens in a round of 64 streaming clients (AVX2 EPYC). Fed by the engine, the server's own
# CPU in such a round fell by a tenth to a quarter (the throughput stayed, bounded by the engine's one core:
# docs/results.md, "With the official openai SDK"). A longer prompt is fed here as
# before: in the engine each of its tokens waits a whole batched step (9 ms at 64 rows there), so
# 32 tokens hold its first token back by 0.3 s at most, while hundreds would by seconds.
PREFILL_TOKENS = 32


class Served:
    """One checkpoint being served under `name` (its file name without the extension)."""

    def __init__(self, path: str | Path, name: str, max_rows: int):
        self.ckpt: Checkpoint = load_checkpoint(path)
        if self.ckpt.model_config.channels > 1:
            raise UsageError(
                f"{path} models {self.ckpt.model_config.channels} channels jointly; the server continues "
                "one value a step (forecast it with `seqgen forecast`)"
            )
        self.name = name
        # The server's own steps (long prompts, sessions) leave a core to the event loop, which
        # writes every client's events: on two cores, 64 streaming clients got 14.5k characters/s
        # this way against 12.9k with the batch split over both (benchmarks/serve.py, three runs
        # each, Intel Xeon). The engine may use every core: it times which count is faster under
        # the load of the moment (engine.ThreadTuner).
        threads = max(1, min(usable_cores() - 1, 4))
        self.model = NumpyModel(self.ckpt.weights, self.ckpt.model_config, threads=threads)
        # The batch is stepped in a process of its own (see remote.py).
        self.tokenizer = self.make_generator({}).tokenizer  # None for a series model
        self.engine = ProcessEngine(
            self.model, self.ckpt.weights, self.tokenizer, max_rows=max_rows, name=name, threads=min(usable_cores(), 4)
        )
        self.prompt_tokens = 0  # fed before generating, for /metrics (counted on the event loop)
        self.preparing = 0  # requests whose prompt is being fed (likewise)
        self.streaming = 0  # answers being streamed as events (likewise; see streaming.event_interval)
        # OpenAI's `created` is when the model was made: here, when its checkpoint was last written.
        self.info = {
            "id": name,
            "object": "model",
            "created": int(Path(path).stat().st_mtime),
            "owned_by": "seqgen",
            "kind": self.ckpt.kind,
            **_jsonable(checkpoint_info(self.ckpt)),
        }

    @property
    def data_kind(self) -> Kind:
        return self.ckpt.data_kind

    def generator(self, fields: dict, rows: int = 1, prompt=None) -> tuple[Generator, int, str | np.ndarray]:
        """A generator with the request's sampling settings and seed, fed its prompt (or, with
        none, what `seqgen sample` primes with) for `rows` streams; how many items were fed, and
        what. Runs the prompt through the network: call it off the event loop."""
        gen, count, fed, _ = self.admit(fields, rows, prompt, prefill=0)
        return gen, count, fed

    def admit(
        self, fields: dict, rows: int = 1, prompt=None, prefill: int = PREFILL_TOKENS
    ) -> tuple[Generator, int, str | np.ndarray, np.ndarray | None]:
        """As `generator`, except that a text prompt of up to `prefill` tokens is left for the
        engine to feed: it comes back as (rows, tokens) ids to go with the stream as its
        `prefill`, the generator reset for `rows` streams with nothing fed (None: all was fed here)."""
        prime = self.prime(prompt)
        gen = self.make_generator(fields, prime)
        if prefill and self.data_kind.allows("prefill"):
            text = text_prime(gen, self.ckpt, prime, unknown=fields.get("unknown", "error"))
            ids = gen.encode(text)
            if 0 < len(ids) <= prefill:
                gen.reset(rows)
                return gen, len(ids), text, np.tile(np.asarray(ids, dtype=np.int64), (rows, 1))
        fed = start(
            gen, self.ckpt, prime, num_samples=rows, seed=fields.get("seed"), unknown=fields.get("unknown", "error")
        )
        return gen, int(np.shape(fed)[-1]) if np.ndim(fed) else len(gen.encode(fed)), fed, None  # tokens, for text

    def prompt_logprobs(self, fields: dict, text: str, top: int) -> list[tuple[float | None, list | None]]:
        """Each token of `text` with its log-probability given the tokens before it (the first has
        none), under the request's sampling distribution without penalties, and the `top` most
        likely tokens there: what `echo` with `logprobs` reports of the prompt, which is how
        evaluation harnesses score a text. None where the sampling settings rule the token out.
        Runs the text through the network: call it off the event loop."""
        ids = self.tokenizer.encode(text)
        if len(ids) < 2:
            return [(None, None)] * len(ids)
        outputs, _ = self.model.forward(np.asarray(ids[:-1])[None, :])
        weights = sampling_weights(outputs[0], self.make_generator(fields).sampling)
        probs = weights / weights.sum(axis=1, keepdims=True)
        chosen = probs[np.arange(len(ids) - 1), ids[1:]]
        logprobs = [float(np.log(p)) if p > 0 else None for p in chosen]
        tops = top_tokens(probs, top) if top else [None] * len(logprobs)
        return [(None, None), *zip(logprobs, tops)]

    def prompt_text(self, prompt):
        """A prompt of token ids (OpenAI's API takes them) as the text they spell; any other as it is."""
        if self.data_kind.allows("token ids") and isinstance(prompt, list) and prompt:
            if not all(0 <= t < len(self.tokenizer) for t in prompt):
                raise RequestError(f"`prompt`: token ids of this model are 0 to {len(self.tokenizer) - 1}")
            return self.tokenizer.decode(prompt)
        return prompt

    def token_texts(self, text: str) -> list[str]:
        """The text each token of `text` completes (\"\" for the first bytes of a character)."""
        if not text:
            return []
        reader = self.tokenizer.detokenizer(1)
        pieces = [reader.add(np.array([token]))[0] for token in self.tokenizer.encode(text)]
        pieces[-1] += reader.end()[0]
        return pieces

    def make_generator(self, fields: dict, prime=None) -> Generator:
        """A generator with the request's sampling settings and seed, nothing fed yet. A model of
        several series works in the scale of the one `prime` (numbers) belongs to, as `seqgen
        sample` does (see `scaling_to_sample`)."""
        fields = self.greedy_at_zero(fields)
        request = Request(
            seed=fields.get("seed"),
            temperature=fields.get("temperature"),
            top_k=fields.get("top_k"),
            top_p=fields.get("top_p"),
            greedy=bool(fields.get("greedy")),
            noise=fields.get("noise"),
            series=fields.get("series"),
            choices={k: fields.get(k) for k in TEXT_CHOICES},
        )
        return generator_for(self.ckpt, request, prime, model=self.model, running=self.ckpt)

    def greedy_at_zero(self, fields: dict) -> dict:
        """`temperature` 0 as OpenAI means it: the most likely token every time (for a series
        model that draws from a distribution, its mean), whatever `top_k`, `top_p` or `min_p`
        say, since they would change nothing. A point series model takes it as no noise."""
        if fields.get("temperature") != 0 or not self.data_kind.greedy_at_zero(is_probabilistic(self.ckpt)):
            return fields
        return {**fields, "temperature": None, "top_k": None, "top_p": None, "min_p": None, "greedy": True}

    def prime(self, prompt) -> str | np.ndarray | None:
        """A request's `prompt` for this model: text, or numbers (a list, or a string of them)."""
        if prompt is None or (isinstance(prompt, (str, list)) and len(prompt) == 0):
            return None
        if isinstance(prompt, str):
            try:
                prime = self.data_kind.as_prime(prompt, "`prompt`")
            except DataError as e:
                raise RequestError(str(e)) from None
            if isinstance(prime, str):
                return prime
            values = np.asarray(prime)
        else:
            self.data_kind.check("prompt of numbers", RequestError, name=self.name)
            values = np.asarray(numbers(prompt, "prompt"))
        if not np.all(np.abs(values) <= FLOAT32_MAX):  # the network computes in float32
            raise RequestError(f"`prompt`: values must lie within +-{FLOAT32_MAX:.3g}")
        return values

    def close(self) -> None:
        self.engine.close(timeout=5)


def load_models(paths: list[str | Path], max_rows: int) -> dict[str, Served]:
    """The checkpoints by name; two files of one name are told apart by a number."""
    models: dict[str, Served] = {}
    for path in paths:
        stem, name, k = Path(path).stem, Path(path).stem, 2
        while name in models:
            name, k = f"{stem}-{k}", k + 1
        models[name] = Served(path, name, max_rows)
    return models


def _jsonable(value):
    """`checkpoint_info` as JSON takes it (NaN and infinities become null)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
