"""`forecast`: many sampled futures of a series at once, summarised as a mean and quantiles.

Every sample path is one stream of one batched Generator: the history is fed once, to one
stream, whose state is then copied to every path (`Generator.fork`); each step draws one value
per stream and feeds it back, so 200 paths of length H cost one pass over the history and H
batched steps. A likelihood head's paths come from the distribution it predicts at each step. A
point model predicts no spread of its own, so its paths get Gaussian noise the size of its
one-step validation error (the square root of its validation MSE), widening as the fed-back
errors compound. Either spread is scaled by the factor training found for the model's intervals
(see calibrate.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..checkpoint import Checkpoint, load_checkpoint
from ..data import Dataset
from ..data.calendar import end_positions
from ..errors import DataError, UsageError
from .api import default_prime, is_probabilistic
from .generator import Generator, scaling_for, series_entry, stored_scale
from .sampling import SampleConfig

DEFAULT_QUANTILES = (0.1, 0.5, 0.9)


@dataclass
class Forecast:
    """Sample paths (samples, horizon), or (samples, horizon, channels) for a model of several
    channels, in the data's units, with their summaries per step."""

    paths: np.ndarray
    levels: tuple[float, ...]
    noise: float = 0.0  # the noise a point model's paths were given (0 for a likelihood head)
    extra: dict = field(default_factory=dict)

    @property
    def mean(self) -> np.ndarray:
        return self.paths.mean(axis=0)

    @property
    def quantiles(self) -> np.ndarray:
        """(len(levels), horizon[, channels])."""
        return np.quantile(self.paths, self.levels, axis=0)


def check_quantiles(levels: Sequence[float]) -> tuple[float, ...]:
    levels = tuple(float(q) for q in levels)
    bad = [q for q in levels if not 0 < q < 1]
    if bad:
        raise UsageError(f"`quantiles` must each be between 0 and 1 (exclusive), got {bad[0]:g}")
    return tuple(sorted(set(levels)))


def forecast(
    checkpoint: str | Path | Checkpoint,
    history: Sequence[float] | None,
    horizon: int,
    *,
    samples: int = 200,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    seed: int | None = None,
    backend: str = "auto",
    noise: float | None = None,
    series: str | None = None,
    end: float | None = None,
) -> Forecast:
    """Continue `history` (values in the data's units, oldest first; None: the end of the training
    data, see `stored_history`) by `horizon` steps, `samples` times. A model of several series
    works in the scale of the one named by `series`; given a history and no name, in the scale of
    the series the history is a stretch of, or else in the history's own (a series it never saw;
    see `scaling_for`). `noise` overrides a point model's path noise (see the module's docstring).
    `end`, for a model with calendar inputs: the step index of the history's last value
    (`data.calendar.step_index` of its time); by default the history ends where the training data did."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    ckpt.data_kind.check("forecast", path=ckpt.path)
    if horizon < 1:
        raise UsageError(f"`horizon` must be >= 1, got {horizon}")
    if samples < 1:
        raise UsageError(f"`samples` must be >= 1, got {samples}")
    levels = check_quantiles(quantiles)
    entry = series_entry(ckpt, series)
    if history is None:
        history = stored_history(ckpt, entry, seed)
    elif series is None:
        entry = scaling_for(ckpt, history)
    history = np.asarray(history, dtype=np.float64)
    channels = ckpt.model_config.channels
    if channels > 1 and (history.ndim != 2 or history.shape[1] != channels):
        raise DataError(
            f"{ckpt.path} models {channels} channels jointly: give the history as rows of {channels} "
            f"values (got an array of shape {history.shape})"
        )
    if history.ndim != (1 if channels == 1 else 2) or len(history) == 0:
        raise DataError("the history to forecast from is empty: give at least a few values")
    if not np.all(np.isfinite(history)):
        raise DataError("the history holds NaN or infinite values; fill or remove them first")
    if noise is None:
        # A point model's noise: its one-step error, scaled as calibration found (see calibrate.py).
        noise = (
            0.0
            if is_probabilistic(ckpt)
            else validation_error(ckpt, entry) * stored_scale(ckpt.meta.get("progress") or {})
        )
    gen = Generator.from_checkpoint(ckpt, backend=backend, sampling=SampleConfig(noise=noise), seed=seed, series=entry)
    gen.reset(1)
    gen.feed_values(history[None, :], end)
    gen.fork(samples)
    paths = np.empty((horizon, samples) + ((channels,) if channels > 1 else ()))
    for t in range(horizon):
        paths[t] = gen.step()
    return Forecast(np.swapaxes(paths, 0, 1), levels, noise)


def stored_history(ckpt: Checkpoint, entry: dict | None = None, seed: int | None = None) -> np.ndarray:
    """What a forecast continues when given no history: the end of the training data as the
    checkpoint stores it (`entry`'s, for one of several series). A model of the built-in sine
    waves stores none, so it continues a fresh wave from its training range, as `seqgen sample` does."""
    if ckpt.described.is_sine:
        return default_prime(ckpt, seed)
    return np.asarray((entry or ckpt.data)["prime"], dtype=np.float64)


def validation_error(ckpt: Checkpoint, scaling: dict | None = None) -> float:
    """A series model's one-step validation error in the data's units (0 when the checkpoint does
    not say, as in one written before validation was recorded)."""
    mse = (ckpt.meta.get("progress") or {}).get("best_val_loss")
    if mse is None or not math.isfinite(mse):
        return 0.0
    return math.sqrt(max(mse, 0.0)) * float((scaling or ckpt.data).get("std", 1.0))


def end_before(ckpt: Checkpoint, dataset: Dataset, index: int, after: int) -> float | None:
    """For a model with calendar inputs: the step index of the value `after` values before the
    end of the data's series `index` (None for other models)."""
    if not ckpt.model_config.calendar:
        return None
    ends = end_positions(dataset)
    if ends is None:
        raise DataError(
            f"{dataset.source.get('path', 'the data')} has no times, and this model reads the calendar: "
            "give the data with its time column"
        )
    return ends[index] - after


def follower(
    ckpt: Checkpoint,
    series: str | None = None,
    quantiles: Sequence[float] = (),
    *,
    seed: int | None = None,
    backend: str = "auto",
    device: str = "cpu",
) -> Generator:
    """The Generator `follow` steps for a series model: in the scale of `series` (of a model of
    several; a model of channels reads them all), and when it forecasts `quantiles` with a point
    head, paths as `forecast` draws them: noise of its validation error in the series' units."""
    entry = None if ckpt.model_config.channels > 1 else series_entry(ckpt, series)
    gen = Generator.from_checkpoint(ckpt, backend=backend, device=device, seed=seed, series=entry)
    if quantiles and not gen.head.probabilistic:
        gen.sampling.noise = validation_error(ckpt, entry) * gen.spread_scale  # widened as calibrated
    return gen
