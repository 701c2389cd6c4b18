"""What a series model predicts: the values themselves ("level") or their steps ("diff").

A network trained on values scaled by one global mean and standard deviation cannot leave the
range it was trained on, so a series that trends is forecast badly (monthly CO2 at Mauna Loa:
MASE 7.7, twice the last value repeated). Modelled by its first differences, scaled the same
way, the trend is a mean step the network continues, and generation adds each predicted step
to the last value (`Generator` keeps that value per stream). A series without a trend is better
modelled by its values: differencing doubles white noise and lets errors accumulate.

`auto` decides by the share of the training part's variance that a straight line explains: above
TREND_SHARE the series is modelled by its differences (CO2 0.96; yearly sunspots 0.02, Nile flow
0.32, any whole number of sine periods about 0).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import DataError, UsageError
from .dataset import Dataset

TARGETS = ("auto", "level", "diff")
TREND_SHARE = 0.5


def trend_share(values: np.ndarray) -> float:
    """The share of the variance of `values` that a least-squares straight line explains (R^2)."""
    values = np.asarray(values, dtype=np.float64)
    t = np.arange(len(values), dtype=np.float64)
    t -= t.mean()
    centred = values - values.mean()
    total = float(centred @ centred)
    if total == 0:
        return 0.0
    slope = float(t @ centred) / float(t @ t)
    explained = slope * slope * float(t @ t)
    return explained / total


def with_target(data: Dataset, target: str = "auto") -> Dataset:
    """`data` as the model will see it: unchanged for "level", its scaled first differences for
    "diff"; "auto" picks by `trend_share`. Built-in sine waves are always modelled by level."""
    if target not in TARGETS:
        raise UsageError(f"`target` must be one of {', '.join(TARGETS)}, got {target!r}")
    if data.kind != "series" or data.target != "level":
        if target == "diff" and data.kind != "series":
            raise UsageError("`target` diff applies to numeric series; this data is text")
        return data
    if data.source.get("type") == "sine":
        if target == "diff":
            raise UsageError("`target` diff is for a series that trends; the built-in sine waves do not")
        return data
    if data.channels is not None:
        # Channels of one series are modelled one way: "auto" goes by the typical channel.
        levels = data.unscale(np.asarray(data.streams[0], dtype=np.float64))
        shares = [trend_share(levels[: data.splits[0], k]) for k in range(levels.shape[1])]
        if target == "level" or (target == "auto" and float(np.median(shares)) <= TREND_SHARE):
            return data
        return differenced(data)
    if data.series is not None:
        # Several series share one model, so one target for all: "auto" goes by the typical one.
        shares = [trend_share(s["values"][:split]) for s, split in zip(data.series, data.splits)]
        if target == "level" or (target == "auto" and float(np.median(shares)) <= TREND_SHARE):
            return data
        return differenced_each(data)
    if target == "level" or (target == "auto" and trend_share(_levels(data)[: data.splits[0]]) <= TREND_SHARE):
        return data
    return differenced(data)


def differenced(data: Dataset) -> Dataset:
    """A one-stream series as its first differences, scaled by their own mean and std over the
    training part; `levels` keeps the values, for the default prime and the description."""
    levels = _levels(data)
    if len(levels) < 4:
        raise DataError(f"{data.source.get('path', 'the series')}: too short to model by its differences")
    steps = np.diff(levels, axis=0)
    split = data.splits[0] - 1  # the first difference is the second value's
    mean, std = steps[:split].mean(axis=0), steps[:split].std(axis=0)
    if data.channels is None:
        mean, std = float(mean), float(std)
    if np.any(std == 0):
        raise DataError(
            f"{data.source.get('path', 'the series')}: the series changes by the same step everywhere; "
            "there is nothing to learn beyond a straight line"
        )
    how = (
        ", modelled by their differences (they trend)" if data.channels else ", modelled by its differences (it trends)"
    )
    return replace(
        data,
        streams=[((steps - mean) / std).astype(np.float32)],
        splits=[split],
        mean=mean,
        std=std,
        target="diff",
        levels=levels,
        description=data.description + how,
    )


def differenced_each(data: Dataset) -> Dataset:
    """Several series as their first differences, each scaled by its own steps' mean and std."""
    streams, splits, series = [], [], []
    for entry, split in zip(data.series, data.splits):
        steps = np.diff(entry["values"])
        if len(steps) < 3 or steps[: split - 1].std() == 0:
            raise DataError(
                f"{data.source.get('path', 'the data')}, series {entry['name']!r}: too short or too "
                "regular to model by its differences (give `target` level)"
            )
        mean, std = float(steps[: split - 1].mean()), float(steps[: split - 1].std())
        streams.append(((steps - mean) / std).astype(np.float32))
        splits.append(split - 1)
        series.append({**entry, "mean": mean, "std": std})
    return replace(
        data,
        streams=streams,
        splits=splits,
        series=series,
        target="diff",
        description=data.description + ", modelled by their differences (they trend)",
    )


def _levels(data: Dataset) -> np.ndarray:
    if len(data.streams) != 1:
        raise UsageError("`target` diff models one series; this data has several streams")
    if data.levels is not None:  # the values as read, not float32's rounding of them
        return np.asarray(data.levels, dtype=np.float64)
    return data.unscale(np.asarray(data.streams[0], dtype=np.float64))


# A log transform is considered only where the level moves this much (largest chunk mean over
# smallest): on a series that stays near one level, logs change nothing worth the risk.
LOG_MIN_RANGE = 1.3


def log_helps(values: np.ndarray, seasons: np.ndarray) -> np.ndarray:
    """For each row of `values` (N, T) with season length `seasons` (N,): whether to model it in
    logs. Guerrero's idea with two candidates: cut the series into chunks of one season (or 5
    values without a season), and take logs when the chunks' spread divided by their level
    varies less than the spread itself, that is when the swings grow with the level. Only for
    series above zero everywhere whose level moves (LOG_MIN_RANGE)."""
    values = np.asarray(values, dtype=np.float64)
    seasons = np.asarray(seasons)
    out = np.zeros(len(values), dtype=bool)
    for m in np.unique(seasons):
        rows = np.flatnonzero(seasons == m)
        k = int(m) if m > 1 else 5
        chunks = values.shape[1] // k
        if chunks < 3:
            continue
        block = values[rows, values.shape[1] - chunks * k :].reshape(len(rows), chunks, k)
        level = block.mean(axis=2)
        spread = block.std(axis=2, ddof=1)
        positive = (values[rows] > 0).all(axis=1)
        safe = np.where(level > 0, level, 1.0)
        moves = level.max(axis=1) > LOG_MIN_RANGE * np.where(positive, level.min(axis=1), np.inf)
        relative = spread / safe
        out[rows] = positive & moves & (_variation(relative) < _variation(spread))
    return out


def _variation(x: np.ndarray) -> np.ndarray:
    """Coefficient of variation of each row."""
    return x.std(axis=1) / (np.abs(x.mean(axis=1)) + 1e-12)
