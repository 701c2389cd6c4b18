"""The configuration dataclasses that the CLI fills and the checkpoint stores.

They live apart from the torch code so that sampling can read a checkpoint without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from .errors import UsageError

CELL_NAMES = ("lstm", "gru", "rnn")
# Output heads of continuous models (see model/heads.py).
HEAD_NAMES = ("point", "oscillator", "gaussian", "studentt")


@dataclass
class ModelConfig:
    """Shape of the network. `vocab_size` > 0 makes a text model, 0 a continuous one: it reads
    tokens and outputs logits (model/inputs.py and heads.py decide, from it, which sides it has)."""

    cell: str = "lstm"
    layers: int = 2
    hidden: int = 256
    embed: int = 64
    dropout: float = 0.0
    vocab_size: int = 0
    head: str = "point"  # continuous models: what the output means (model/heads.py)
    # Continuous models of dated series: the calendar cycles (in steps) whose places are read in
    # beside each value (data/calendar.py); none for a model that reads values alone.
    calendar: tuple[float, ...] = ()
    # Continuous models: how many values a step reads and predicts (a table's columns modelled
    # jointly, `joint`); 1 for a model of one value per step.
    channels: int = 1

    def __post_init__(self) -> None:
        self.calendar = tuple(float(p) for p in self.calendar)  # a list once stored as JSON

    @property
    def inputs(self) -> int:
        """How many numbers a continuous model reads per step: its channels' values, then two per calendar cycle."""
        return self.channels + 2 * len(self.calendar)

    def check(self) -> None:
        if self.cell not in CELL_NAMES:
            raise UsageError(f"`cell` must be one of {', '.join(CELL_NAMES)}, got {self.cell!r}")
        if self.head not in HEAD_NAMES:
            raise UsageError(f"`head` must be one of {', '.join(HEAD_NAMES)}, got {self.head!r}")
        for name in ("layers", "hidden", "embed", "channels"):
            if getattr(self, name) < 1:
                raise UsageError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.channels > 1 and self.head not in ("gaussian", "studentt"):
            raise UsageError(
                f"channels modelled jointly need a likelihood head (`head` gaussian or studentt), whose "
                f"spread is each channel's own; got {self.head}"
            )
        if not 0 <= self.dropout < 1:
            raise UsageError(f"`dropout` must be in [0, 1), got {self.dropout}")


@dataclass
class TrainConfig:
    """How to train. A limit of None means no limit of that kind; with none at all, `max_time` applies."""

    batch_size: int = 64
    window: int = 128
    lr: float = 3e-3
    lr_min_ratio: float = 0.1
    warmup: int = 50
    clip: float = 1.0
    # Decoupled weight decay (AdamW) on the weight matrices and embeddings, never on biases; 0 is
    # plain Adam.
    weight_decay: float = 0.0
    steps: int | None = None
    epochs: float | None = None
    max_time: float | None = None
    eval_every: int = 200
    # Stop once the validation loss has stayed clearly above its best for this many evaluations
    # in a row (0: never stop early). See Trainer._overfitting.
    patience: int = 5
    input_noise: float = 0.0
    free_run: int = 0
    free_run_start: float = 0.3
    free_run_full: float = 0.8
    seed: int = 0
    device: str = "auto"
    # The training step's arithmetic: auto, fp32, bf16 or fp16 (train/precision.py).
    precision: str = "auto"
    # Torch threads for the training step, fixed for the run; None: OMP_NUM_THREADS if set, a
    # resumed run's own, else measured when the run starts (train/threads.py).
    threads: int | None = None

    def check(self) -> None:
        for name in ("batch_size", "window", "eval_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        for name in ("steps", "epochs", "max_time"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UsageError(f"`{name}` must be > 0, got {value}")
        # Each check names the one parameter that is wrong, with the value given.
        for name in ("lr", "clip"):
            if getattr(self, name) <= 0:
                raise UsageError(f"`{name}` must be > 0, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"`threads` must be >= 1, got {self.threads}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise UsageError(f"`precision` must be one of auto, fp32, bf16, fp16, got {self.precision!r}")
        for name in ("lr", "clip", "input_noise", "weight_decay"):
            if not math.isfinite(getattr(self, name)):
                raise UsageError(f"`{name}` must be a finite number, got {getattr(self, name)}")
        for name in ("input_noise", "warmup", "free_run", "patience", "weight_decay"):
            if getattr(self, name) < 0:
                raise UsageError(f"`{name}` must be >= 0, got {getattr(self, name)}")


# Texts shorter than these (in characters) get a smaller model, validation that comes sooner and
# a shorter time limit. Measured on 5 KB and 50 KB cut from tinyshakespeare (docs/experiments.md):
# at 5 KB the full-size model reached 2.36 nats/char in a minute, one GRU layer of 128 2.09 in
# 13 s (stopped early once validation kept rising); at 50 KB two layers of 128 reached 1.64 in
# 90 s, the full size 1.93. The limits sit between the sizes measured and the full corpus.
SMALL_TEXT, MEDIUM_TEXT = 20_000, 200_000


# Series shorter than this (values) are validated more often (see defaults_for).
SHORT_SERIES = 2_000
# Series shorter than this get one small layer. Measured with `benchmarks/forecast.py --origins 6`
# (docs/results.md): on the Nile's yearly flow (40-90 values) one LSTM layer of 16 units had a
# mean MASE of 0.77 / 0.93 / 0.87 over seeds 0-2 against 1.08 / 1.19 for the two layers of 64
# (seasonal naive 0.91): the larger model learnt the level of its first years by heart and went
# back to it after the river's fall. On real GDP (155-195 values) the two sizes were level (0.94,
# 0.96); on sunspots (177-287) the small one was worse (1.31 against 1.21).
SMALL_SERIES = 150


def defaults_for(
    kind: str, size: int | None = None, sine: bool = False, bf16: bool = False
) -> tuple[ModelConfig, TrainConfig]:
    """The default model and training settings for "text" or "series" data, or for the built-in
    `sine` waves (chosen by measurement; see docs/experiments.md). For text, `size` (its length in
    characters, if known) scales a small text's defaults down; a short series' (in values) is
    validated more often. `bf16`: the training device has bfloat16 units, which make an LSTM
    step twice as fast (train/precision.py), so a full-size text gets an LSTM there."""
    if kind == "text":
        if size is not None and size < SMALL_TEXT:
            return (
                ModelConfig(cell="gru", layers=1, hidden=128, embed=64, dropout=0.0),
                TrainConfig(batch_size=16, window=64, lr=5e-3, lr_min_ratio=0.02, max_time=60.0, eval_every=20),
            )
        if size is not None and size < MEDIUM_TEXT:
            return (
                ModelConfig(cell="gru", layers=2, hidden=128, embed=64, dropout=0.0),
                TrainConfig(batch_size=32, window=128, lr=5e-3, lr_min_ratio=0.02, max_time=120.0, eval_every=50),
            )
        full = TrainConfig(batch_size=32, window=128, lr=5e-3, lr_min_ratio=0.02, max_time=300.0)
        if bf16:
            # In bfloat16 an LSTM 2x384 takes 2.4x the GRU's float32 steps in 5 minutes and
            # overfits tinyshakespeare without dropout (1.464 nats/char); with 0.2 it reached
            # 1.432 against the GRU's 1.447 (docs/experiments.md).
            return ModelConfig(cell="lstm", layers=2, hidden=384, embed=64, dropout=0.2), full
        return ModelConfig(cell="gru", layers=2, hidden=384, embed=64, dropout=0.0), full
    # 2500 steps take about 40 s here; the time limit keeps a slower machine within a minute.
    train = TrainConfig(batch_size=32, window=100, lr=3e-3, steps=2500, max_time=50.0, eval_every=100, input_noise=0.15)
    if sine:
        # The oscillator head holds a sine's period from its prime (model/heads.py). Its recurrence
        # reads the fed-back values themselves, so no input noise: noise would bias the fit.
        return ModelConfig(cell="lstm", layers=2, hidden=64, head="oscillator"), replace(train, input_noise=0.0)
    if size is not None and size < SHORT_SERIES:
        # A short series is learnt by heart within a few hundred steps (each step is about an
        # epoch); validating every 20 lets early stopping catch the best of them.
        train = replace(train, eval_every=20)
    if size is not None and size < SMALL_SERIES:
        return ModelConfig(cell="lstm", layers=1, hidden=16, head="gaussian"), train
    # A Gaussian head: forecasts with intervals, and on the benchmark's real series a lower mean
    # MASE than the point head (docs/results.md).
    return ModelConfig(cell="lstm", layers=2, hidden=64, head="gaussian"), train


def from_dict(cls, values: dict):
    """Build a config dataclass from a dict, ignoring keys this version does not know."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})


# The shortest window a series is trained with: a series whose training part cannot hold one such
# window plus one value is too short for any model here.
MIN_WINDOW = 8


def fitted_window(window: int, train_length: int, several: bool = False) -> int:
    """The default window, shortened for a short series so that its training part still holds two
    tracks of one window each (yearly series of about 100 values are common), or, for `several`
    series each giving tracks of its own, one window of the shortest; never below MIN_WINDOW."""
    longest = train_length - 1 if several else train_length // 2 - 1
    return max(MIN_WINDOW, min(window, longest))
