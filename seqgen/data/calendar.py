"""Calendar inputs: where each value of a dated series falls in the day, the week and the year.

A monthly series repeats with the year; a network that has to count the months itself from the
values alone loses its place in a long free run, the way a sine slipped its period. Given the
times, each step's place in each cycle its frequency implies (the year for monthly data, the
week and the year for daily, the day and the week for hourly...) goes in beside the value as a
sine and cosine pair, so the month is read, never counted.

A place is measured in steps since 1970 (the step index, see `step_index`), so it is known for a
time the training data never reached: a forecast's first step is the training data's last plus
one. A cycle is used only when the training data spans it at least once.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..errors import DataError, UsageError
from .dataset import Dataset
from .times import DAY, Frequency

CALENDARS = ("auto", "none")
# The mean length of a Gregorian year in days; a yearly cycle in days or weeks is this long.
YEAR_DAYS = 365.2425
# Weekdays in a year, for a yearly cycle of business days.
YEAR_BUSINESS_DAYS = YEAR_DAYS * 5 / 7


def cycles_for(frequency: Frequency | None) -> list[float]:
    """The cycles (in steps of `frequency`) a series of that step may follow: the year for months
    and weeks; the week and the year for days; the day and the week for hours and shorter steps.
    None (no times) and yearly steps have none. Cycles shorter than two steps are left out."""
    if frequency is None:
        return []
    n = frequency.count
    if frequency.unit in ("Y", "M"):
        lengths = [12 / frequency.months] if frequency.months else []
    elif frequency.unit == "W":
        lengths = [YEAR_DAYS / 7 / n]
    elif frequency.unit == "D":
        lengths = [7 / n, YEAR_DAYS / n]
    elif frequency.unit == "B":
        lengths = [5 / n, YEAR_BUSINESS_DAYS / n]
    else:
        seconds = n * {"h": 3600, "m": 60, "s": 1}[frequency.unit]
        lengths = [DAY / seconds, 7 * DAY / seconds]
    return [float(p) for p in lengths if p >= 2]


def step_index(time: np.datetime64 | str, frequency: Frequency) -> float:
    """How many steps of `frequency` `time` lies after the start of 1970 (a Thursday): calendar
    steps count months (any day of a month is that month), business days count weekdays, fixed
    steps are fractional for a time between steps."""
    time = np.datetime64(time, "s")
    if frequency.months:
        return float(time.astype("datetime64[M]").astype(np.int64)) / frequency.months
    if frequency.unit == "B":
        day = time.astype("datetime64[D]")
        return float(np.busday_count(np.datetime64("1970-01-01", "D"), day)) / frequency.count
    seconds = np.timedelta64(frequency.count, frequency.unit).astype("timedelta64[s]").astype(np.int64)
    return float(time.astype(np.int64)) / float(seconds)


def calendar_features(positions: np.ndarray, cycles: list[float] | tuple[float, ...]) -> np.ndarray:
    """(..., 2 x cycles) float32: the sine and cosine of each position's place in each cycle."""
    positions = np.asarray(positions, dtype=np.float64)
    parts = []
    for length in cycles:
        angle = 2 * math.pi * np.mod(positions, length) / length  # the remainder first: positions run to millions
        parts += [np.sin(angle), np.cos(angle)]
    return np.stack(parts, axis=-1).astype(np.float32)


def end_positions(data: Dataset) -> list[float] | None:
    """The step index of the last value of each of a dated series' streams; None without times."""
    source = data.source
    if not source.get("frequency"):
        return None
    frequency = Frequency(*source["frequency"])
    ends = [e.get("last_time") for e in data.series] if data.series else [source.get("last_time")]
    if any(end is None for end in ends):
        return None
    return [step_index(end, frequency) for end in ends]


def with_calendar(data: Dataset, calendar: str | list[float] = "auto") -> Dataset:
    """`data` with calendar inputs: `calendar` "auto" takes the cycles of its frequency that its
    shortest training part spans, "none" none; a list gives the cycles (a resumed run's own).
    The features of each stream go in `data.features`, one row per item, aligned with `streams`."""
    if isinstance(calendar, str):
        if calendar not in CALENDARS:
            raise UsageError(f"`calendar` must be one of {', '.join(CALENDARS)}, got {calendar!r}")
        if calendar == "none" or data.kind != "series":
            return data
        source = data.source
        frequency = Frequency(*source["frequency"]) if source.get("frequency") else None
        shortest = min(data.splits)
        cycles = [p for p in cycles_for(frequency) if p <= shortest]
    else:
        cycles = [float(p) for p in calendar]
    if not cycles:
        return data
    ends = end_positions(data)
    if ends is None:
        raise DataError(
            f"{data.source.get('path', 'the data')}: calendar inputs need the times of the values "
            "(a time column at a regular step); give `calendar` none"
        )
    features = []
    for stream, end in zip(data.streams, ends):
        positions = end - (len(stream) - 1) + np.arange(len(stream))
        features.append(calendar_features(positions, cycles))
    return replace(
        data,
        features=features,
        cycles=cycles,
        description=data.description + f", with calendar inputs ({describe(cycles)})",
    )


def describe(cycles: list[float] | tuple[float, ...]) -> str:
    """ "cycles of 12 steps", "cycles of 7 and 365.2 steps"."""
    lengths = [f"{p:g}" if p == int(p) else f"{p:.1f}" for p in cycles]
    return f"cycle{'s' if len(lengths) > 1 else ''} of {' and '.join(lengths)} steps"


def model_streams(data: Dataset) -> list[np.ndarray]:
    """What the network reads: the streams themselves, or with calendar inputs (length, channels +
    features) arrays whose first columns are the stream's values."""
    if data.features is None:
        return data.streams
    columns = lambda s: np.asarray(s, dtype=np.float32).reshape(len(s), -1)
    return [np.concatenate([columns(s), f], axis=1) for s, f in zip(data.streams, data.features)]


def values_of(x, channels: int = 1):
    """The values of a series model's inputs or targets (a tensor or an array), without the
    calendar inputs beside them: (batch, time), or (batch, time, channels) for a model of several."""
    if x.ndim < 3:
        return x  # text, or one value a step
    return x[..., 0] if channels == 1 else x[..., :channels]
