"""Online learning on a live stream: a series model that keeps training on the values it follows.

A follower forecasts each next value from its live state, as `follow` does. Every `every`
values it also takes `steps` gradient steps on the last `window` values, read from the state
carried before that window, with the head's own loss (the likelihood of a Gaussian head, the
squared error of a point one) and Adam at a small `lr`; then it reads the window again with the
new weights, so that the next forecast comes from them. Memory is bounded (the last `window`
inputs and the states before them) and so is the work per value (a window's forward and
backward passes every `every` values), however long the stream runs.
"""

from __future__ import annotations

from collections import deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .checkpoint import Checkpoint, save_checkpoint
from .errors import UsageError
from .adapt import one_thread
from .generate.generator import Generator, TorchRunner
from .data.calendar import values_of

# Measured with `benchmarks/learn.py --grid` (docs/results.md) on the default series model (LSTM
# 2x64, Gaussian head) trained 300 steps on a noisy sine, followed across a level shift, a period
# change, an amplitude change and all three, seeds 0 and 1: the mean one-step error over the 200
# values after the shift fell (against the frozen model's) by 5-59% with 1 step at lr 1e-3 every
# 10 values on 50, by 8-63% at 3e-3, by 17-66% at 1e-2, and by 50-81% with 3 steps at 3e-3
# (1.1-3.9 ms a value on 2 busy cores); a step every 5 values gained less (43-75%) than 3 every
# 10; windows of 25 and 100 gained less than 50 (4-69%).
DEFAULT_EVERY = 10
DEFAULT_WINDOW = 50
DEFAULT_STEPS = 3
DEFAULT_LR = 3e-3
# A step's gradient norm is clipped to this: one wild value must not throw the weights away.
CLIP = 1.0


@dataclass
class LearnConfig:
    """How a follower keeps learning: every `every` values, `steps` Adam steps at `lr` on the last
    `window` values."""

    every: int = DEFAULT_EVERY
    window: int = DEFAULT_WINDOW
    steps: int = DEFAULT_STEPS
    lr: float = DEFAULT_LR

    def __post_init__(self) -> None:
        for name in ("every", "steps"):
            if getattr(self, name) < 1:
                raise UsageError(f"`learn_{name}` must be >= 1, got {getattr(self, name)}")
        if self.window < 2:
            raise UsageError(f"`learn_window` must be >= 2 (a value and the next to predict), got {self.window}")
        if not self.lr > 0:
            raise UsageError(f"`learn_lr` must be > 0, got {self.lr}")

    def to_dict(self) -> dict:
        return asdict(self)


class _Recording(TorchRunner):
    """A TorchRunner that keeps the last inputs a `feed` ran (scaled, calendar inputs beside them):
    what the learner trains on is exactly what the network read."""

    fed: np.ndarray | None = None

    def forward(self, x: np.ndarray, state):
        self.fed = np.array(x)
        return super().forward(x, state)


class OnlineLearner:
    """The weights of `gen` (made from `ckpt`) put on a trainable torch copy that learns from the
    values `feed` gives it. `gen` is reset: give it values from the start of the stream."""

    def __init__(self, ckpt: Checkpoint, gen: Generator, config: LearnConfig | None = None):
        import torch

        from .model.network import SeqModel

        ckpt.data_kind.check("learn", path=ckpt.path)
        if ckpt.kind == "forecaster":
            raise UsageError(
                f"{ckpt.path} is the pretrained forecaster, which reads a history without a state to train from; "
                "`learn` works with models trained by seqgen train"
            )
        self.torch, self.ckpt, self.gen = torch, ckpt, gen
        self.config = config or LearnConfig()
        model = SeqModel(ckpt.model_config)
        model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in ckpt.weights.items()})
        self.runner = _Recording(model)
        self.model = self.runner.model  # in eval mode: no dropout, so a run is deterministic
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.lr)
        gen.model = self.runner
        gen.reset(1)
        # (recurrent state before the value, the head's state before it, the value as the network read it)
        self.recent: deque = deque(maxlen=self.config.window)
        self.seen = 0
        self.updates = 0

    def feed(self, value) -> None:
        """Feed one value (a row of one per channel for a model of several) to the generator, as
        `follow` does, and learn from the recent ones when it is time."""
        gen = self.gen
        before = (gen.state, None if gen.head_state is None else dict(gen.head_state))
        gen.feed([value])
        self.recent.append((*before, self.runner.fed[:, -1:]))
        self.seen += 1
        if self.seen % self.config.every == 0 and len(self.recent) >= 2:
            with one_thread():
                self._learn()

    def forget(self) -> None:
        """The generator was run again from the start (its scale measured anew): the values kept
        were read in another state."""
        self.recent.clear()

    def _learn(self) -> None:
        """`steps` steps on the recent window, then the window read again with the new weights."""
        torch = self.torch
        state, head_state, x = self._window()
        for _ in range(self.config.steps):
            self.optimizer.zero_grad(set_to_none=True)
            with torch.enable_grad():
                prediction, mask = self._predict(x, state, head_state)
                loss = self._loss(prediction, x, mask)
                loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
            self.optimizer.step()
        self.updates += 1
        self._refresh(state, head_state, x)

    def _window(self):
        first_state, first_head, _ = self.recent[0]
        x = np.concatenate([fed for _, _, fed in self.recent], axis=1)
        return first_state, first_head, x

    def _predict(self, x: np.ndarray, state, head_state):
        """The head's predictions of each next value over the window (and which count)."""
        out, _ = self.model(self.runner._tensor(x), state)
        out, mask = out.float(), None
        if self.gen.head_state is not None:
            out, _, mask = self.gen.head.forward(self.runner._tensor(values_of(x, self.gen.channels)), out, head_state)
        return out, mask

    def _loss(self, prediction, x: np.ndarray, mask):
        """The head's loss of each prediction but the last against the value that followed it."""
        target = self.runner._tensor(values_of(x, self.gen.channels)[:, 1:])
        if mask is not None:
            return self.gen.head.loss(prediction[:, :-1], target, mask[:, :-1])
        return self.gen.head.loss(prediction[:, :-1], target)

    def _refresh(self, state, head_state, x: np.ndarray) -> None:
        """The live state as the new weights leave it: the window read again from before it."""
        gen = self.gen
        outputs, gen.state = self.runner.forward(x, state)
        if head_state is not None:
            outputs, gen.head_state, _ = gen.head.forward_numpy(values_of(x, gen.channels), outputs, head_state)
        gen.last_output = outputs[:, -1]

    def weights(self) -> dict[str, np.ndarray]:
        """The weights as they are now, as a checkpoint stores them."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def save(self, path: str | Path) -> Path:
        """Write the checkpoint with what was learnt (atomically); its metadata says how (`learnt`)."""
        dropped = {"optimizer", "format", "format_version", "checksum"}
        meta = {k: v for k, v in self.ckpt.meta.items() if k not in dropped}
        meta["learnt"] = {**self.config.to_dict(), "values": self.seen, "updates": self.updates}
        save_checkpoint(path, meta, self.weights())
        return Path(path)


__all__ = ["LearnConfig", "OnlineLearner"]


@contextmanager
def saved_at_the_end(learner: OnlineLearner | None, path: str | Path | None, note=print) -> Iterator[None]:
    """Write what `learner` learnt to `path` once the stream ends, or is interrupted (Ctrl-C) or
    fails; `note` hears where it went. Nothing without a learner or a path."""
    try:
        yield
    finally:
        if learner is not None and path is not None:
            learner.save(path)
            note(f"saved what was learnt from {learner.seen} values ({learner.updates} steps) to {path}")
