"""Autoregressive generation: a `Generator` owns the recurrent state and feeds each choice back in.

`reset` sets the state to zero, `feed` runs a prime through the network in one call, `step`
chooses the next item from the last output and feeds it back (one step of the network, whatever
the length so far), and `generate(n)` iterates `step`. The randomness is NumPy's, seeded, so the
same seed gives the same output on either backend for the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from .checkpoint import Checkpoint, load_checkpoint
from .config import ModelConfig
from .data import MIN_SCALE_PRIME, SCALE_PRIME, SineConfig, sine_waves, stream_scale
from .errors import DataError, UsageError
from .numpy_model import NumpyModel

BACKENDS = ("auto", "numpy", "torch")


@dataclass
class SampleConfig:
    """How to choose each next item. Text: temperature, top_k, top_p, greedy. Series: noise."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False
    noise: float = 0.0

    def check(self) -> None:
        if not self.temperature > 0:
            raise UsageError(f"--temperature must be > 0, got {self.temperature} (for the most likely character every time, use --greedy)")
        if self.top_k is not None and self.top_k < 1:
            raise UsageError(f"--top-k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise UsageError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.noise < 0:
            raise UsageError(f"--noise must be >= 0, got {self.noise}")


class TorchRunner:
    """Adapts a torch `SeqModel` to the NumPy-in, NumPy-out interface the Generator uses."""

    def __init__(self, model, device: str = "cpu"):
        import torch

        self.torch, self.model, self.device = torch, model.to(device).eval(), device
        self.config: ModelConfig = model.config

    def init_state(self, batch_size: int):
        return self.model.init_state(batch_size, self.device)

    def state_from_arrays(self, arrays: list[np.ndarray]):
        tensors = [self.torch.as_tensor(a, dtype=self.torch.float32, device=self.device) for a in arrays]
        return (tensors[0], tensors[1]) if self.config.cell == "lstm" else tensors[0]

    def forward(self, x: np.ndarray, state):
        with self.torch.no_grad():
            y, state = self.model(self._tensor(x), state)
        return y.float().cpu().numpy(), state

    def step(self, x: np.ndarray, state):
        with self.torch.no_grad():
            y, state = self.model.step(self._tensor(x), state)
        return y.float().cpu().numpy(), state

    def _tensor(self, x: np.ndarray):
        dtype = self.torch.long if self.config.is_text else self.torch.float32
        return self.torch.as_tensor(np.array(x), dtype=dtype, device=self.device)


def choose_tokens(logits: np.ndarray, config: SampleConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pick one token per row of (batch, vocab) logits.

    Returns (tokens, weights): `weights` are the unnormalised sampling weights, from which
    `token_probability` gives each choice's probability when someone asks for it. This runs once
    per generated character, so it does nothing that is not needed to choose.
    """
    weights = logits.astype(np.float64)
    if config.greedy:
        return weights.argmax(axis=1), _softmax(weights)
    if config.temperature != 1.0:
        weights *= 1.0 / config.temperature
    if config.top_k is not None and config.top_k < weights.shape[1]:
        kth = np.partition(weights, -config.top_k, axis=1)[:, -config.top_k][:, None]
        weights[weights < kth] = -np.inf
    weights -= weights.max(axis=1, keepdims=True)
    np.exp(weights, out=weights)
    if config.top_p is not None and config.top_p < 1:
        weights = _nucleus(weights / weights.sum(axis=1, keepdims=True), config.top_p)
    cdf = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cdf[:, -1]
    if len(weights) == 1:  # the common case: one binary search instead of a full comparison
        tokens = np.array([min(int(np.searchsorted(cdf[0], u[0], side="right")), weights.shape[1] - 1)])
    else:
        tokens = np.minimum((cdf <= u[:, None]).sum(axis=1), weights.shape[1] - 1)
    return tokens, weights


def token_probability(tokens: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The probability each token had when it was chosen, from `choose_tokens`' weights."""
    return weights[np.arange(len(tokens)), tokens] / weights.sum(axis=1)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _nucleus(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Keep the smallest set of most likely tokens whose total probability reaches top_p."""
    order = np.argsort(-probs, axis=1)
    sorted_probs = np.take_along_axis(probs, order, axis=1)
    before = np.cumsum(sorted_probs, axis=1) - sorted_probs
    keep_sorted = before < top_p
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=1)
    return np.where(keep, probs, 0.0)


class Generator:
    """Stateful generation from a trained model; each `step()` costs one step of the network.

    For text, items are token ids (use `decode`/`encode`); for series, values in the data's units.
    `model` is a backend with `config`, `init_state(batch)`, `forward(x, state)` for whole
    (batch, time) inputs and `step(x, state)` for one (batch,) input: `NumpyModel` or `TorchRunner`.
    """

    def __init__(self, model, *, vocab: list[str] | None = None, mean: float = 0.0, std: float = 1.0,
                 sampling: SampleConfig | None = None, seed: int | None = None):
        self.model = model
        self.config: ModelConfig = model.config
        self.vocab = vocab
        self.index = {ch: i for i, ch in enumerate(vocab)} if vocab else None
        self.mean, self.std = mean, std
        self.sampling = sampling or SampleConfig()
        self.sampling.check()
        self.rng = np.random.default_rng(seed)
        self._last_choice: tuple[np.ndarray, np.ndarray] | None = None
        self.checkpoint_checksum: str | None = None  # set by from_checkpoint; ties saved states to their model
        # Series models trained with each stream divided by its own size (SineConfig.scale_each)
        # divide each stream by its prime's size the same way; `scale` holds those sizes.
        self.scale_each, self.typical_scale = False, 1.0
        self.reset()

    @property
    def is_text(self) -> bool:
        return self.config.is_text

    @property
    def last_probability(self) -> np.ndarray | None:
        """For text: the probability each stream's last chosen token had (None before a step)."""
        return None if self._last_choice is None else token_probability(*self._last_choice)

    def reset(self, batch_size: int = 1) -> None:
        """Zero the state for `batch_size` independent streams; nothing has been fed yet."""
        self.batch_size = batch_size
        self.state = self.model.init_state(batch_size)
        self._set_scale(None)
        self.last_output: np.ndarray | None = None

    def feed(self, inputs) -> np.ndarray:
        """Run inputs through the network, updating the state; returns the outputs for each input.

        `inputs`: a string (text), a sequence of values (series), or a (batch, time) array of
        token ids / scaled values. A 1-D input is given to every stream.
        """
        x = self._as_model_input(inputs)
        if x.shape[1] == 0:
            raise DataError("the prime is empty: give at least one character or value")
        if self.scale_each:
            if self.scale is None:
                # Measured on the first feed (the prime); a few values say little about a wave's
                # size, so below MIN_SCALE_PRIME the training waves' mean size stands in for it.
                self._set_scale(stream_scale(x) if x.shape[1] >= MIN_SCALE_PRIME
                                else np.full(len(x), self.typical_scale))
            x = x / self.scale[:, None]
        outputs, self.state = self.model.forward(x, self.state)
        self.last_output = outputs[:, -1]
        return outputs

    def step(self) -> np.ndarray:
        """Choose the next item for every stream from the last output, feed it back, return it."""
        if self.last_output is None:
            raise UsageError("feed a prime before stepping: the generator has no output to continue from")
        if self.is_text:
            items, weights = choose_tokens(self.last_output, self.sampling, self.rng)
            self._last_choice = (items, weights)
            x = items
        else:
            x = self.last_output.astype(np.float64)  # a copy: the backend reuses its output buffer
            if self.sampling.noise > 0:
                x += self.rng.normal(0.0, self.sampling.noise / self.unit, size=x.shape)
            items = self.to_values(x)
        self.last_output, self.state = self.model.step(x, self.state)
        return items

    def generate(self, n: int) -> Iterator[np.ndarray]:
        """Yield `n` steps; each is an array with one item per stream."""
        for _ in range(n):
            yield self.step()

    def snapshot(self) -> dict:
        """A copy of everything the next step depends on: recurrent state, last output, random state."""
        if self.last_output is None:
            raise UsageError("nothing to save yet: feed a prime first")
        parts = self.state if isinstance(self.state, (list, tuple)) else [self.state]
        arrays = [np.array(p.detach().cpu().numpy() if hasattr(p, "detach") else p, dtype=np.float32) for p in parts]
        snap = {"state": arrays, "last_output": np.array(self.last_output, dtype=np.float32),
                "rng": self.rng.bit_generator.state}
        if self.scale is not None:
            snap["scale"] = self.scale.copy()
        return snap

    def restore(self, snapshot: dict) -> None:
        """Continue exactly where `snapshot()` was taken (the batch size comes with it)."""
        arrays = [np.array(a) for a in snapshot["state"]]
        if hasattr(self.model, "state_from_arrays"):
            self.state = self.model.state_from_arrays(arrays)
        else:
            dtype = getattr(self.model, "dtype", np.float32)
            self.state = [a.astype(dtype) for a in arrays]
        self.batch_size = len(snapshot["last_output"])
        self.last_output = np.array(snapshot["last_output"])
        self.rng.bit_generator.state = snapshot["rng"]
        self._set_scale(None if snapshot.get("scale") is None else np.array(snapshot["scale"], dtype=np.float64))

    # --- text helpers -------------------------------------------------------------------
    def encode(self, text: str) -> np.ndarray:
        if not self.is_text:
            raise DataError("this model generates numbers, not text: give the prime as numbers")
        unknown = sorted({ch for ch in text if ch not in self.index})
        if unknown:
            shown = ", ".join(repr(ch) for ch in unknown[:20]) + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
            hint = "; this model continues text, not numbers" if _looks_like_numbers(text) else ""
            raise DataError(f"the prime has characters the model has never seen: {shown}{hint}")
        return np.array([self.index[ch] for ch in text], dtype=np.int64)

    def decode(self, tokens) -> str:
        return "".join(self.vocab[int(t)] for t in np.atleast_1d(tokens))

    def _as_model_input(self, inputs) -> np.ndarray:
        if isinstance(inputs, str):
            seq = self.encode(inputs)
        elif isinstance(inputs, np.ndarray) and inputs.ndim == 2:
            return inputs
        else:
            if self.is_text:
                seq = np.asarray(inputs, dtype=np.int64)
            else:
                seq = (np.asarray(inputs, dtype=np.float64) - self.mean) / self.std
        return np.broadcast_to(seq, (self.batch_size, len(seq)))

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Checkpoint, *, backend: str = "auto", device: str = "cpu",
                        sampling: SampleConfig | None = None, seed: int | None = None) -> "Generator":
        """Load a checkpoint into a generator on the NumPy backend (default on CPU) or torch."""
        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        if backend not in BACKENDS:
            raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "torch" or (backend == "auto" and device != "cpu"):
            model = torch_model_from_checkpoint(ckpt, device)
        else:
            if device != "cpu":
                raise UsageError("--backend numpy runs on the CPU; use --backend torch for another --device")
            model = NumpyModel(ckpt.weights, ckpt.model_config)
        data = ckpt.data
        gen = cls(model, vocab=data.get("vocab"), mean=data.get("mean", 0.0), std=data.get("std", 1.0),
                  sampling=sampling, seed=seed)
        gen.checkpoint_checksum = ckpt.meta.get("checksum")
        gen.scale_each = bool(data.get("source", {}).get("scale_each", False))
        gen.typical_scale = float(data.get("typical_scale", 1.0))
        return gen

    def to_values(self, outputs: np.ndarray) -> np.ndarray:
        """A continuous model's (batch,) outputs in the data's units."""
        return outputs * self.unit + self.mean

    def _set_scale(self, scale: np.ndarray | None) -> None:
        # `unit` (data units per model unit) is worked out here, once, not on every step.
        self.scale = scale
        self.unit = self.std if scale is None else self.std * scale


def torch_model_from_checkpoint(ckpt: Checkpoint, device: str = "cpu") -> TorchRunner:
    import torch

    from .model import SeqModel
    from .device import resolve_device

    model = SeqModel(ckpt.model_config)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ckpt.weights.items()})
    return TorchRunner(model, resolve_device(device))


def default_prime(ckpt: Checkpoint, seed: int | None = None, length: int = 100) -> str | np.ndarray:
    """What to prime with when the user gives nothing: a newline for text; for series a stretch of
    the training source (for sine, a fresh wave in the training range)."""
    data = ckpt.data
    if data["kind"] == "text":
        return "\n" if "\n" in data["vocab"] else data["vocab"][0]
    source = data.get("source", {})
    if source.get("type") == "sine":
        config = SineConfig(**{k: v for k, v in source.items() if k != "type"})
        return sine_waves(1, length, config, np.random.default_rng(seed))[0].astype(np.float64)
    return np.asarray(data["prime"][-length:], dtype=np.float64)


def parse_numbers(text: str, label: str = "--prime") -> np.ndarray:
    """Parse numbers separated by spaces, commas or newlines."""
    parts = text.replace(",", " ").split()
    try:
        values = np.array([float(p) for p in parts], dtype=np.float64)
    except ValueError:
        bad = next(p for p in parts if not _is_float(p))
        raise DataError(f"{label}: {bad!r} is not a number (this model continues numbers)") from None
    if not np.all(np.isfinite(values)):
        raise DataError(f"{label}: NaN or infinite values cannot be fed to the model")
    return values


def _looks_like_numbers(text: str) -> bool:
    parts = text.replace(",", " ").split()
    return bool(parts) and all(_is_float(p) for p in parts)


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def as_prime(ckpt: Checkpoint, prime: str | None, prime_values: Sequence[float] | None = None) -> str | np.ndarray | None:
    """Interpret a user prime for this checkpoint's kind of data (None when none was given)."""
    if prime_values is not None:
        return np.asarray(prime_values, dtype=np.float64)
    if prime is None:
        return None
    if ckpt.kind == "text":
        return prime
    return parse_numbers(prime)


# --- sampling from a checkpoint: the library twin of `seqgen sample` ---------------------------
def sampling_config(kind: str, *, temperature: float | None = None, top_k: int | None = None,
                    top_p: float | None = None, greedy: bool = False, noise: float | None = None) -> SampleConfig:
    """The sampling settings for a "text" or "series" model, with each option's meaning there.

    For a continuous model `temperature` is another name for `noise` (the std of the noise added
    to each fed-back value, in the data's units; default 0); top_k, top_p and greedy are text-only.
    """
    if kind == "text":
        if noise is not None:
            raise UsageError("--noise applies to continuous models; for text use --temperature")
        if greedy and any(v is not None for v in (temperature, top_k, top_p)):
            raise UsageError("--greedy always takes the most likely character: --temperature, --top-k and --top-p "
                             "would change nothing (drop one or the other)")
        config = SampleConfig(temperature=1.0 if temperature is None else temperature, top_k=top_k, top_p=top_p,
                              greedy=greedy)
    else:
        if top_k is not None or top_p is not None or greedy:
            raise UsageError("--top-k, --top-p and --greedy choose characters; this model generates numbers")
        if temperature is not None and noise is not None and temperature != noise:
            raise UsageError("for a continuous model --temperature is another name for --noise: give one of them")
        if temperature is not None and temperature < 0:
            raise UsageError(f"--temperature must be >= 0, got {temperature}")
        config = SampleConfig(noise=next((v for v in (noise, temperature) if v is not None), 0.0))
    config.check()
    return config


class StopMatcher:
    """Spots a stop string in each stream as it is generated: a string-matching automaton over
    token ids, so each step costs one table lookup for the whole batch."""

    def __init__(self, stop: np.ndarray, vocab_size: int, batch_size: int):
        m = len(stop)
        # table[j, t]: how much of `stop` is matched after token t, given j matched before (KMP).
        table = np.zeros((m + 1, vocab_size), dtype=np.int64)
        table[0, stop[0]] = 1
        fallback = 0
        for j in range(1, m + 1):
            table[j] = table[fallback]
            if j < m:
                table[j, stop[j]] = j + 1
                fallback = table[fallback, stop[j]]
        self.table, self.length = table, m
        self.matched = np.zeros(batch_size, dtype=np.int64)

    def update(self, tokens: np.ndarray) -> np.ndarray:
        """Advance with one token per stream; True where the stop string has just been completed."""
        self.matched = self.table[self.matched, tokens]
        return self.matched == self.length


def generate_steps(gen: Generator, length: int, stop: str | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Like `gen.generate(length)`, yielding (items, live): `live` marks the streams whose item
    counts. A stream ends once it has produced `stop` (that step is still live); when every
    stream has ended, so does the iteration."""
    live = np.ones(gen.batch_size, dtype=bool)
    matcher = None
    if stop is not None:
        if not gen.is_text:
            raise UsageError("--stop applies to text models")
        if stop == "":
            raise UsageError("--stop needs at least one character")
        unknown = sorted({ch for ch in stop if ch not in gen.index})
        if unknown:
            raise UsageError(f"--stop {stop!r}: the model never produces {', '.join(map(repr, unknown))}")
        matcher = StopMatcher(gen.encode(stop), len(gen.vocab), gen.batch_size)
    for _ in range(length):
        items = gen.step()
        yield items, live
        if matcher is not None:
            live = live & ~matcher.update(items)
            if not live.any():
                return


def sampling_for(kind: str, load_state: str | None = None, *, temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
                 noise: float | None = None) -> SampleConfig:
    """`sampling_config`, except that a continuation (`load_state`) keeps the settings its state
    was saved with, so that it goes on as one long call would; an option given replaces its own
    saved value (and --greedy, or a temperature, top-k or top-p, switches between greedy and
    sampled choice)."""
    config = sampling_config(kind, temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy, noise=noise)
    if load_state is None:
        return config
    from .state import saved_sampling

    saved = saved_sampling(load_state)
    if saved is None:  # a state from before sampling settings were saved
        return config
    if kind != "text":
        return config if noise is not None or temperature is not None else saved
    sampled = [v for v in (temperature, top_k, top_p) if v is not None]
    keep = lambda value, stored: stored if value is None else value
    return SampleConfig(temperature=keep(temperature, saved.temperature), top_k=keep(top_k, saved.top_k),
                        top_p=keep(top_p, saved.top_p), greedy=greedy or (saved.greedy and not sampled))


def start(gen: Generator, ckpt: Checkpoint, prime: str | np.ndarray | None = None, *, num_samples: int = 1,
          seed: int | None = None, load_state: str | None = None) -> str | np.ndarray:
    """Get `gen` ready to step: from a saved state (then the prime, if any, is fed after it) or from
    the prime (default: see `default_prime`) for `num_samples` streams. Returns what was fed."""
    if load_state is not None:
        from .state import load_state as read_state

        gen.restore(read_state(load_state, gen))
        if prime is None:
            return "" if gen.is_text else np.zeros(0)
        gen.feed(prime)
        return prime
    if num_samples < 1:
        raise UsageError(f"--num-samples must be >= 1, got {num_samples}")
    prime = prime if prime is not None else default_prime(ckpt, seed)
    gen.reset(num_samples)
    gen.feed(prime)
    return prime


def sample(checkpoint: str | Checkpoint, *, length: int = 500, prime: str | Sequence[float] | None = None,
           temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
           greedy: bool = False, noise: float | None = None, stop: str | None = None, num_samples: int = 1,
           seed: int | None = None, backend: str = "auto", device: str = "cpu",
           load_state: str | None = None, save_state: str | None = None) -> list[str] | np.ndarray:
    """Generate from a checkpoint, with the options of `seqgen sample`: a list of texts (one per
    sample, each ending with `stop` when it was produced) or a (num_samples, length) array of values."""
    if length < 0:
        raise UsageError(f"--length must be >= 0, got {length}")
    if save_state is not None:
        from .state import check_state_target

        check_state_target(save_state)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    config = sampling_for(ckpt.kind, load_state, temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy,
                          noise=noise)
    gen = Generator.from_checkpoint(ckpt, backend=backend, device=device, sampling=config, seed=seed)
    user_prime = prime if isinstance(prime, str) or prime is None else np.asarray(prime, dtype=np.float64)
    if isinstance(user_prime, str) and not gen.is_text:
        user_prime = parse_numbers(user_prime)
    start(gen, ckpt, user_prime, num_samples=num_samples, seed=seed, load_state=load_state)
    if gen.is_text:
        streams: list[list[str]] = [[] for _ in range(gen.batch_size)]
        for items, live in generate_steps(gen, length, stop):
            for k in np.flatnonzero(live):
                streams[k].append(gen.vocab[items[k]])
        result: list[str] | np.ndarray = ["".join(s) for s in streams]
    else:
        result = np.empty((length, gen.batch_size))
        for t, (items, _) in enumerate(generate_steps(gen, length)):
            result[t] = items
        result = result.T
    if save_state is not None:
        from .state import save_state as write_state

        write_state(save_state, gen)
    return result


def follow(gen: Generator, values: Iterable[float], horizon: int = 1) -> Iterator[np.ndarray]:
    """Feed true values one at a time; after each, yield the forecast of the next `horizon` values.

    The forecast beyond one step free-runs on a copy of the state, so the real state only ever
    sees true values. `gen` is a continuous-model Generator with one stream.
    """
    if gen.is_text:
        raise UsageError("follow works with continuous models; this one generates text")
    if horizon < 1:
        raise UsageError(f"--horizon must be >= 1, got {horizon}")
    if gen.batch_size != 1:
        gen.reset(1)
    # A generator already primed (or restored) keeps its state and its measured size.
    measuring = gen.scale_each and gen.last_output is None
    seen: list[float] = []
    for value in values:
        if measuring and len(seen) < SCALE_PRIME:
            # The stream's size is measured on its first SCALE_PRIME values, as on a prime; until
            # there are that many, each new value refines the measure and the state is run again
            # from the start under it (at most SCALE_PRIME short runs, once).
            seen.append(value)
            gen.reset(1)
            gen.feed(seen)
        else:
            gen.feed([value])
        if horizon == 1:
            yield gen.to_values(gen.last_output)
            continue
        saved = gen.snapshot()
        forecast = np.empty(horizon)
        for t in range(horizon):
            forecast[t] = gen.step()[0]
        gen.restore(saved)
        yield forecast
