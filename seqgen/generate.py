"""Autoregressive generation: a `Generator` owns the recurrent state and feeds each choice back in.

`reset` sets the state to zero, `feed` runs a prime through the network in one call, `step`
chooses the next item from the last output and feeds it back (one step of the network, whatever
the length so far), and `generate(n)` iterates `step`. The randomness is NumPy's, seeded, so the
same seed gives the same output on either backend for the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .checkpoint import Checkpoint, load_checkpoint
from .config import ModelConfig
from .data import SineConfig, sine_waves
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
            raise UsageError(f"--temperature must be > 0, got {self.temperature}")
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
    """Pick one token per row of (batch, vocab) logits; returns (tokens, their probabilities)."""
    logits = logits.astype(np.float64)
    if config.greedy:
        tokens = logits.argmax(axis=1)
        probs = _softmax(logits)
        return tokens, probs[np.arange(len(tokens)), tokens]
    logits = logits / config.temperature
    if config.top_k is not None and config.top_k < logits.shape[1]:
        kth = np.partition(logits, -config.top_k, axis=1)[:, -config.top_k][:, None]
        logits = np.where(logits < kth, -np.inf, logits)
    probs = _softmax(logits)
    if config.top_p is not None and config.top_p < 1:
        probs = _nucleus(probs, config.top_p)
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cdf[:, -1:]
    tokens = np.minimum((cdf <= u).sum(axis=1), probs.shape[1] - 1)
    return tokens, probs[np.arange(len(tokens)), tokens] / cdf[:, -1]


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
        self.last_probability: np.ndarray | None = None
        self.reset()

    @property
    def is_text(self) -> bool:
        return self.config.is_text

    def reset(self, batch_size: int = 1) -> None:
        """Zero the state for `batch_size` independent streams; nothing has been fed yet."""
        self.batch_size = batch_size
        self.state = self.model.init_state(batch_size)
        self.last_output: np.ndarray | None = None

    def feed(self, inputs) -> np.ndarray:
        """Run inputs through the network, updating the state; returns the outputs for each input.

        `inputs`: a string (text), a sequence of values (series), or a (batch, time) array of
        token ids / scaled values. A 1-D input is given to every stream.
        """
        x = self._as_model_input(inputs)
        if x.shape[1] == 0:
            raise DataError("the prime is empty: give at least one character or value")
        outputs, self.state = self.model.forward(x, self.state)
        self.last_output = outputs[:, -1]
        return outputs

    def step(self) -> np.ndarray:
        """Choose the next item for every stream from the last output, feed it back, return it."""
        if self.last_output is None:
            raise UsageError("feed a prime before stepping: the generator has no output to continue from")
        if self.is_text:
            items, self.last_probability = choose_tokens(self.last_output, self.sampling, self.rng)
            x = items
        else:
            x = self.last_output.astype(np.float64)  # a copy: the backend reuses its output buffer
            if self.sampling.noise > 0:
                x += self.rng.normal(0.0, self.sampling.noise / self.std, size=x.shape)
            items = x * self.std + self.mean
        self.last_output, self.state = self.model.step(x, self.state)
        return items

    def generate(self, n: int) -> Iterator[np.ndarray]:
        """Yield `n` steps; each is an array with one item per stream."""
        for _ in range(n):
            yield self.step()

    # --- text helpers -------------------------------------------------------------------
    def encode(self, text: str) -> np.ndarray:
        if not self.is_text:
            raise DataError("this model generates numbers, not text: give the prime as numbers")
        unknown = sorted({ch for ch in text if ch not in self.index})
        if unknown:
            shown = ", ".join(repr(ch) for ch in unknown[:20])
            raise DataError(f"the prime has characters the model has never seen: {shown}")
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
        return cls(model, vocab=data.get("vocab"), mean=data.get("mean", 0.0), std=data.get("std", 1.0),
                   sampling=sampling, seed=seed)


def torch_model_from_checkpoint(ckpt: Checkpoint, device: str = "cpu") -> TorchRunner:
    import torch

    from .model import SeqModel
    from .train import resolve_device

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
