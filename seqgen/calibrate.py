"""Interval calibration: how much to widen or narrow a series model's sampled spread so that its
80% intervals, several steps ahead, cover 80% of the validation tail.

A likelihood head learns the spread of the next value given the true history. A forecast feeds
its own draws back, so its intervals several steps ahead depend on how errors compound through
the network, which training never scores; measured on benchmarks/forecast.py's series, the
one-step spread gave 80% intervals covering 50% of one series' held-out values and 100% of
another's. So after training, forecasts are made from many origins in the validation tail (the
values training did not fit) with the spread scaled by a factor, and the factor whose 80%
intervals cover 80% of what followed is found by bisection.

The factor applied (`progress.interval_scale` in the checkpoint) only ever widens: it is the
largest of 1, that fitted factor and the one-step `spread_ratio` (see train/trainer.py's
validation_pass). On benchmarks/forecast.py's five series and four seeds (its spread rules),
intervals narrowed to the fitted factor covered 62% of the held-out values, the largest of the
three 69% (the one-step ratio alone 64%; docs/results.md, "Interval calibration"): a validation
tail of a few dozen values measures coverage roughly, and the values after it were harder to
forecast than it, as is common. A point head's forecast noise is scaled the same way.

One pass over each series feeds the history up to every origin (the state is copied at each),
and all origins' sample paths are stepped together as one batch, so a trial scale costs
`horizon` batched steps. Every trial starts from the same random state, so the coverage moves
(almost: a Student-t draw takes a varying count of numbers) only with the scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .checkpoint import Checkpoint
from .data import Dataset
from .generate.forecast import end_before, validation_error
from .generate.generator import Generator, backend_for, joined_snapshots, series_entry
from .generate.sampling import SampleConfig
from .metrics import default_horizon

LEVEL = 0.8
SAMPLES = 100
# At most this many origins per series: enough values to measure a coverage near 80% to a few points.
MAX_ORIGINS = 50
MAX_SERIES = 32
# At most this many sample paths in all series' batches together (memory and time: a reviewer
# measured 87 s and 1.2 GB for 40 series of 600 values before this cap).
MAX_ROWS = 20_000
# The scale searched, as powers of two: a quarter of the one-step spread to eight times it.
LOWEST, HIGHEST = -2.0, 3.0
BISECTIONS = 8


@dataclass
class Calibration:
    """The spread factor applied (`scale`), the one the validation tail asked for (`fitted`) and
    the one-step ratio (`ratio`): `scale` is the largest of them and 1;
    the coverage of the tail's 80% intervals with the spread as trained (`coverage_before`) and
    with the factor applied (`coverage`), over `origins` forecasts of `horizon` steps."""

    scale: float
    fitted: float
    ratio: float  # the one-step ratio the checkpoint held (1 without one)
    coverage_before: float
    coverage: float
    horizon: int
    origins: int

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate(
    ckpt: Checkpoint, data: Dataset, *, seed: int = 0, samples: int = SAMPLES, should_stop=lambda: False
) -> Calibration | None:
    """Find the spread factor for `ckpt`'s model on `data` (the dataset it trained on, as the
    Trainer holds it). None where there is nothing to calibrate: text, the built-in sine waves,
    a model with no spread to scale, or a validation tail too short for two forecasts; and when
    `should_stop()` turns true (a Ctrl-C) between trials."""
    if data.kind != "series" or data.source.get("type") == "sine" or ckpt.model_config.head == "oscillator":
        return None
    tracks = user_series(data)
    if len(tracks) > MAX_SERIES:  # a long table's many series: an even choice of them tells the same
        tracks = [tracks[round(i * (len(tracks) - 1) / (MAX_SERIES - 1))] for i in range(MAX_SERIES)]
    tail = min(len(values) - split for _, _, values, split in tracks)
    _, _, first, split = tracks[0]
    horizon = default_horizon(first[:split], tail)
    if tail < horizon + 1:
        return None
    trials = []
    # One model for every series' generator (its work buffers are sized for the batch), and at most
    # MAX_ROWS paths stepped in all: a table of many series costs no more than a few.
    model = backend_for(ckpt, "numpy", "cpu")
    per_series = max(2, MAX_ROWS // (samples * len(tracks)))
    for index, name, values, split in tracks:
        if should_stop():
            return None
        origins = origins_in(len(values), horizon, split, min(MAX_ORIGINS, per_series))
        trial = _Trial(ckpt, data, index, name, values, origins, horizon, samples, seed + index, model)
        if ckpt.model_config.head == "point" and trial.noise == 0:
            return None
        trials.append(trial)

    def coverage(scale: float) -> float:
        hits = np.concatenate([t.hits(scale) for t in trials])
        return float(hits.mean())

    before = coverage(1.0)
    low, high = LOWEST, HIGHEST
    for _ in range(BISECTIONS):
        if should_stop():
            return None
        middle = (low + high) / 2
        if coverage(2.0**middle) < LEVEL:
            low = middle
        else:
            high = middle
    fitted = 2.0**high  # the smallest factor found that covers at least 80%
    ratio = (ckpt.meta.get("progress") or {}).get("spread_ratio") or 1.0
    scale = max(1.0, ratio, fitted)
    return Calibration(
        round(scale, 4),
        round(fitted, 4),
        round(ratio, 4),
        before,
        coverage(scale),
        horizon,
        sum(len(t.origins) for t in trials),
    )


def origins_in(length: int, horizon: int, split: int, most: int = MAX_ORIGINS) -> list[int]:
    """Every forecast origin of the validation tail from `split` whose horizon fits, thinned
    evenly to `most` (at least 2)."""
    last = length - horizon
    count = last - split + 1
    most = max(2, most)
    if count <= most:
        return list(range(split, last + 1))
    return sorted({split + round(i * (last - split) / (most - 1)) for i in range(most)})


def user_series(data: Dataset) -> list[tuple[int, str | None, np.ndarray, int]]:
    """Each series of a (possibly differenced) training dataset in the data's units: (its index,
    name, values, index of its first validation value). Values are (length,) or (length, channels)."""
    shift = 1 if data.target == "diff" else 0  # a difference's index is one less than its value's
    if data.series is not None:
        return [
            (i, e["name"], np.asarray(e["values"], dtype=np.float64), split + shift)
            for i, (e, split) in enumerate(zip(data.series, data.splits))
        ]
    if data.levels is not None:
        values = np.asarray(data.levels, dtype=np.float64)
    else:
        values = data.unscale(np.asarray(data.streams[0], dtype=np.float64))
    return [(0, None, values, data.splits[0] + shift)]


class _Trial:
    """One series' forecasts from all its origins, ready to be drawn at any spread factor."""

    def __init__(
        self,
        ckpt: Checkpoint,
        data: Dataset,
        index: int,
        name: str | None,
        values: np.ndarray,
        origins: list[int],
        horizon: int,
        samples: int,
        seed: int,
        model,
    ):
        self.point = ckpt.model_config.head == "point"
        self.gen = Generator.from_checkpoint(ckpt, model=model, seed=seed, series=series_entry(ckpt, name))
        self.noise = validation_error(ckpt, self.gen.series) if self.point else 0.0
        self.origins, self.samples = origins, samples
        # Fed in pieces, one pass: the state at each origin is the state after the values before it.
        snapshots, fed = [], 0
        self.gen.reset(1)
        for origin in origins:
            end = end_before(ckpt, data, index, len(values) - origin) if fed == 0 else None
            self.gen.feed_values(values[None, fed:origin], end)
            snapshots.append(self.gen.snapshot())
            fed = origin
        self.start = joined_snapshots(snapshots)
        self.truth = np.stack([values[o : o + horizon] for o in origins])  # (origins, horizon[, channels])
        self.horizon = horizon

    def hits(self, scale: float) -> np.ndarray:
        """Whether each true value of each origin's horizon fell in the central 80% of its paths."""
        gen = self.gen
        gen.restore(self.start)
        gen.select(np.repeat(np.arange(len(self.origins)), self.samples))
        if self.point:
            gen.sampling, gen.spread_scale = SampleConfig(noise=scale * self.noise), 1.0
        else:
            gen.spread_scale = scale
        paths = np.stack([gen.step() for _ in range(self.horizon)], axis=1)  # (origins x samples, horizon[, ch])
        paths = paths.reshape(len(self.origins), self.samples, *paths.shape[1:])
        tail = (1 - LEVEL) / 2
        low, high = np.quantile(paths, [tail, 1 - tail], axis=1)
        return ((self.truth >= low) & (self.truth <= high)).reshape(-1)
