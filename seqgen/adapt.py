"""Models that keep learning as they read: dynamic evaluation (Krause et al., 2018, "Dynamic
Evaluation of Neural Sequence Models") and adapting a copy of the weights to a prompt.

The model reads a stream of tokens window by window, the recurrent state carried across windows
as in the static stream loss: each window is first scored with the weights as they are, then the
weights take one gradient step on that window's loss, so that every token is predicted by
weights that have seen only the tokens before it. Two updates:

- `sgd`: weights -= lr * gradient;
- `rms`: the gradient is divided, element by element, by the root of its mean square measured on
  other text beforehand (`gradient_scale`: the training part of the data for `evaluate_text`, the
  prompt itself for `adapt_to_prime`), so that rarely moved weights are not starved and lr is
  a step size in the weights' own units.

Both pull the weights back toward the trained ones by `decay` of the distance each step (for
`rms`, weighted by each weight's gradient scale relative to its tensor's mean, at most 1), so a
long stream cannot drift arbitrarily far from what training found.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

import numpy as np

from .checkpoint import Checkpoint
from .errors import UsageError

METHODS = ("sgd", "rms")
# Measured with the shipped checkpoint (LSTM 2x384) on the first 20,000 characters of
# tinyshakespeare's validation tail (static 1.3574 nats/char there; `benchmarks/adapt.py --grid`,
# docs/results.md): rms at lr 4e-4 gained 0.068 nats/char, at 3e-4 and 6e-4 0.065 and 0.064, at
# 1e-4 and 1e-3 0.042 and 0.040 (1e-3 blew up before the scale had its floor); sgd at best 0.039
# (lr 0.1). Windows of 20 (at lr 1.5e-4) and of 100 (6e-4) gained 0.066 and 0.065, no more than
# 50; a decay of 1e-3 added 0.002 (0.070), one of 1e-2 nothing. On the whole tail these
# defaults gain 0.133 (1.4157 -> 1.2823).
DEFAULT_METHOD = "rms"
DEFAULT_LR = {"rms": 4e-4, "sgd": 0.1}
DEFAULT_WINDOW = 50
DEFAULT_DECAY = 1e-3
# Windows of the training part the gradient scale of the `rms` update is measured on.
SCALE_WINDOWS = 200
# A prompt is read this many times, one step a window each time (see `adapt_to_prime`). Measured
# on 8 passages of tinyshakespeare's validation tail (primes of 1,500 characters, the loss of the
# next 500; `benchmarks/adapt.py --prompts`): 1 pass gained 0.068 nats/char, 2 and 3 0.076, 5 0.069.
DEFAULT_PASSES = 3
EPSILON = 1e-8
# The least gradient scale of a weight, as a fraction of the mean over its tensor (see `gradient_scale`).
SCALE_FLOOR = 0.1


@dataclass
class AdaptConfig:
    """How weights follow what they read: the update (`method`: sgd or rms), its step size (`lr`,
    default by method), the window of tokens per step, the `decay` back toward the trained
    weights per step, and for a prompt the number of `passes` over it."""

    method: str = DEFAULT_METHOD
    lr: float | None = None
    window: int = DEFAULT_WINDOW
    decay: float = DEFAULT_DECAY
    passes: int = DEFAULT_PASSES

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"`adapt_method` must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.method]
        if not self.lr > 0:
            raise UsageError(f"`adapt_lr` must be > 0, got {self.lr}")
        if self.window < 1:
            raise UsageError(f"`adapt_window` must be >= 1, got {self.window}")
        if not 0 <= self.decay < 1:
            raise UsageError(f"`adapt_decay` must be in [0, 1), got {self.decay}")
        if self.passes < 1:
            raise UsageError(f"`adapt_passes` must be >= 1, got {self.passes}")

    def to_dict(self) -> dict:
        return asdict(self)


def adapt_config(adapt: bool | AdaptConfig | None) -> AdaptConfig | None:
    """`adapt` as given to the library's functions: True for the defaults, a config, or off."""
    if adapt is None or adapt is False:
        return None
    return AdaptConfig() if adapt is True else adapt


class Adapter:
    """A torch copy of a text model that scores a window and then learns from it."""

    def __init__(self, model, config: AdaptConfig):
        import torch

        self.torch, self.model, self.config = torch, model, config
        # Evaluation mode: no dropout, so that what is scored and what is learnt from is the
        # network generation runs, and a run is deterministic.
        self.model.eval()
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.trained = [p.detach().clone() for p in self.params]
        self.scale: list | None = None  # root mean squared gradient, per weight (rms)
        self.pull: list | None = None  # the decay's weight per weight (rms)

    def gradient_scale(self, windows: Iterable[tuple[np.ndarray, np.ndarray]]) -> int:
        """Measure the root mean square of each weight's gradient over `windows` of (inputs,
        targets), the state carried between them, without changing any weight. Returns how many
        windows were read (none: the scale stays unset and `rms` cannot step)."""
        squares = [self.torch.zeros_like(p) for p in self.params]
        state, count = None, 0
        for x, y in windows:
            _, state = self._loss(x, y, state)
            for total, p in zip(squares, self.params):
                total += p.grad * p.grad
            count += 1
        if count:
            # A weight whose gradient was (nearly) never seen, such as the embedding of a character
            # absent from the measured text, would take a step of lr / EPSILON the first time it
            # appears: such weights move as if their gradient were a fraction of their tensor's typical.
            roots = [(total / count).sqrt() for total in squares]
            self.scale = [r.clamp_min(SCALE_FLOOR * r.mean().item()) for r in roots]
            self.pull = [
                (s / s.mean().clamp_min(EPSILON)).clamp(max=1.0 / max(self.config.decay, EPSILON)) for s in self.scale
            ]
        return count

    def read(self, x: np.ndarray, y: np.ndarray, state=None) -> tuple[float, object]:
        """Score one window (inputs `x`, targets `y`, one stream) with the weights as they are,
        then step on it. Returns (summed loss in nats, the state after the window)."""
        loss, state = self._loss(x, y, state)
        self._step()
        return loss, state

    def _loss(self, x: np.ndarray, y: np.ndarray, state):
        """Forward and backward over one window; the gradient is left in the weights' `.grad`."""
        import torch.nn.functional as F

        from .model.network import detach_state

        torch = self.torch
        for p in self.params:
            p.grad = None
        inputs = torch.as_tensor(np.asarray(x, dtype=np.int64)[None])
        targets = torch.as_tensor(np.asarray(y, dtype=np.int64))
        logits, state = self.model(inputs, state)
        total = F.cross_entropy(logits[0].float(), targets, reduction="sum")
        (total / len(targets)).backward()
        return total.item(), detach_state(state)

    def _step(self) -> None:
        c = self.config
        with self.torch.no_grad():
            for i, (p, start) in enumerate(zip(self.params, self.trained)):
                if c.method == "rms":
                    if self.scale is None:
                        raise UsageError(
                            "the `rms` update needs a gradient scale: measure one first (`gradient_scale`)"
                        )
                    p -= c.lr * p.grad / (self.scale[i] + EPSILON)
                    if c.decay:
                        p += c.decay * self.pull[i] * (start - p)
                else:
                    p -= c.lr * p.grad
                    if c.decay:
                        p += c.decay * (start - p)

    def weights(self) -> dict[str, np.ndarray]:
        """The weights as they are now, as a checkpoint stores them."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}


def windows_of(ids: np.ndarray, window: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """(inputs, targets) of consecutive windows over `ids`: every id after the first is a target
    once, the last window shorter when the ids do not divide evenly."""
    for start in range(0, len(ids) - 1, window):
        stop = min(start + window, len(ids) - 1)
        yield ids[start:stop], ids[start + 1 : stop + 1]


def torch_model(ckpt: Checkpoint, weights: dict[str, np.ndarray] | None = None):
    """A trainable torch copy of a text checkpoint's network (the file's weights, or `weights`)."""
    import torch

    from .model.network import SeqModel

    ckpt.data_kind.check("adapting", path=ckpt.path, kind=ckpt.kind)
    model = SeqModel(ckpt.model_config)
    model.load_state_dict(
        {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in (weights or ckpt.weights).items()}
    )
    return model


def dynamic_loss(ckpt: Checkpoint, ids: np.ndarray, config: AdaptConfig, scale_ids: np.ndarray | None = None) -> float:
    """Mean loss per target (nats per token) over `ids` read as one stream from a zero state, each
    window scored before the weights learn from it (dynamic evaluation). The `rms` update's
    gradient scale is measured on the last `SCALE_WINDOWS` windows of `scale_ids`: text the
    stream does not contain (the training part), since the stream's own gradients would tell the
    weights about tokens before they are scored."""
    import torch

    if len(ids) < 2:
        raise UsageError("dynamic evaluation needs at least 2 tokens to predict one")
    if config.method == "rms" and (scale_ids is None or len(scale_ids) < 2):
        raise UsageError("the `rms` update measures its gradient scale on other text: give `scale_ids` (or use `sgd`)")
    with one_thread(), torch.enable_grad():
        adapter = Adapter(torch_model(ckpt), config)
        if config.method == "rms":
            tail = scale_ids[-(SCALE_WINDOWS * config.window + 1) :]
            adapter.gradient_scale(windows_of(tail, config.window))
        total, state = 0.0, None
        for x, y in windows_of(ids, config.window):
            loss, state = adapter.read(x, y, state)
            total += loss
    return total / (len(ids) - 1)


def adapt_to_prime(ckpt: Checkpoint, ids: np.ndarray, config: AdaptConfig) -> Checkpoint:
    """A copy of `ckpt` whose weights have read the prompt `ids` `config.passes` times, each pass
    from a zero state, a step of the dynamic-evaluation update after each window. The file and
    `ckpt` are untouched; the copy's metadata records how it was adapted (`adapted`)."""
    import torch

    if len(ids) < 2:
        raise UsageError("`adapt` learns from the prime: give a prime of at least 2 tokens")
    with one_thread(), torch.enable_grad():
        adapter = Adapter(torch_model(ckpt), config)
        if config.method == "rms":
            adapter.gradient_scale(windows_of(ids, config.window))
        for _ in range(config.passes):
            state = None
            for x, y in windows_of(ids, config.window):
                _, state = adapter.read(x, y, state)
    return adapted_checkpoint(ckpt, adapter.weights(), {**config.to_dict(), "prime_tokens": int(len(ids))})


@contextmanager
def one_thread() -> Iterator[None]:
    """Adapt on one torch thread, then give the caller back its own count. One stream's window is
    too little work to share: measured on a 2-core AMD EPYC beside other busy processes, a step on
    50 characters of the shipped model took 18 ms on one thread and 290 ms on two (see
    train/threads.py for why). And a fixed count keeps the adapted weights, which sums split over
    threads would change in their last bits, the same from run to run whatever the load."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def adapted_checkpoint(ckpt: Checkpoint, weights: dict[str, np.ndarray], how: dict) -> Checkpoint:
    """`ckpt` with other weights for generation, in memory only; its checksum stays the file's, so
    that a state saved from it still names the checkpoint it belongs to."""
    return Checkpoint(meta={**ckpt.meta, "adapted": how}, weights=weights, training={}, path=ckpt.path)


__all__ = ["AdaptConfig", "Adapter", "adapt_config", "adapt_to_prime", "dynamic_loss", "windows_of"]
