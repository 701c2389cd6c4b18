"""Times of a series: reading dates as exports write them, their step (`Frequency`), the steps that
follow, and printing a time as briefly as its step allows. Times are numpy datetime64[s] throughout.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

import numpy as np

DAY = 86400
# "B" is a business day: Monday to Friday, a weekend no step at all.
UNIT_NAMES = {
    "Y": "year",
    "M": "month",
    "W": "week",
    "D": "day",
    "B": "business day",
    "h": "hour",
    "m": "minute",
    "s": "second",
}
# The shortest printed form of each unit: "1960", "1960-03", "1960-03-01", "1960-03-01 14:00".
SHORTEST = {"Y": 4, "M": 7, "W": 10, "D": 10, "B": 10, "h": 16, "m": 16, "s": 19}

_DATE = re.compile(
    r"(?:(?P<y>[0-9]{4})[-/](?P<m>[0-9]{1,2})(?:[-/](?P<d>[0-9]{1,2}))?"
    r"|(?P<d2>[0-9]{1,2})\.(?P<m2>[0-9]{1,2})\.(?P<y2>[0-9]{4}))"
    r"(?:[ T](?P<H>[0-9]{1,2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:\.[0-9]+)?)?Z?)?"
)


@dataclass(frozen=True)
class Frequency:
    """The step between consecutive times: `count` units of Y M W D B h m s (Y and M are calendar years and
    months, B business days)."""

    unit: str
    count: int

    def __str__(self) -> str:
        return f"{self.count} {UNIT_NAMES[self.unit]}{'s' if self.count != 1 else ''}"

    @property
    def months(self) -> int:
        """The step in calendar months (0 for a fixed step)."""
        return self.count * {"Y": 12, "M": 1}.get(self.unit, 0)


# Quarters and months as statistics offices and R's tsibble/zoo write them: "2010 Q1", "2010Q1",
# "Q1 2010", "2010 Jan", "Jan 2010", "January-2010", "2010M01" (Eurostat).
MONTH_NAMES = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTH = (
    "(?P<name>"
    + "|".join(sorted({*MONTH_NAMES, *(m[:3] for m in MONTH_NAMES), "sept"}, key=len, reverse=True))
    + r")\.?"
)
_PERIOD = re.compile(
    r"(?P<y>[0-9]{4})[ -]?(?:q(?P<q>[1-4])|m(?P<m>[0-9]{2})|" + _MONTH + ")"
    r"|(?:q(?P<q2>[1-4])|" + _MONTH.replace("name", "name2") + r")[ -]?(?P<y2>[0-9]{4})"
)


def parse_time(cell: str, years: bool = False) -> np.datetime64 | None:
    """A date, or date and time, as datetime64[s]; None when `cell` is not one. A month or a quarter
    stands for its first day; a bare four-digit year (its first day too) is read only when `years`
    is true."""
    cell = cell.strip()
    if years and re.fullmatch("[0-9]{4}", cell):
        return np.datetime64(cell, "s")
    if years and _DECIMAL_YEAR.fullmatch(cell):
        return _decimal_year(cell)
    period = _PERIOD.fullmatch(cell.lower())
    if period:
        return _period_start(period)
    match = _DATE.fullmatch(cell)
    if not match or (match["H"] and not (match["d"] or match["d2"])):
        return None
    g = match.groupdict()
    try:
        stamp = datetime.datetime(
            int(g["y"] or g["y2"]),
            int(g["m"] or g["m2"]),
            int(g["d"] or g["d2"] or 1),
            int(g["H"] or 0),
            int(g["M"] or 0),
            int(g["S"] or 0),
        )
    except ValueError:  # month 13, February 30, hour 25
        return None
    return np.datetime64(stamp, "s")


def _period_start(match: re.Match) -> np.datetime64 | None:
    """The first day of a quarter or month written by name ("2010 Q3", "Mar 2010", "2010M03")."""
    year = int(match["y"] or match["y2"])
    quarter = match["q"] or match["q2"]
    name = match["name"] or match["name2"]
    if quarter:
        month = 3 * int(quarter) - 2
    elif name:
        month = [m[:3] for m in MONTH_NAMES].index(name[:3]) + 1
    else:
        month = int(match["m"])
    if not 1 <= month <= 12:
        return None
    return np.datetime64(f"{year:04d}-{month:02d}-01", "s")


# R writes the times of a monthly or quarterly series as decimal years: 1949.083333 is February 1949.
_DECIMAL_YEAR = re.compile(r"[0-9]{4}\.[0-9]+")


def _decimal_year(cell: str) -> np.datetime64 | None:
    """The month a decimal year starts (None unless its fraction is a whole number of months)."""
    year, fraction = int(cell[:4]), float("0" + cell[4:])
    month = fraction * 12
    if abs(month - round(month)) > 0.01:
        return None
    return np.datetime64(f"{year:04d}-{int(round(month)) + 1:02d}-01", "s")


def format_time(t: np.datetime64, frequency: Frequency) -> str:
    """`t` as briefly as it prints exactly, but no briefer than `frequency`'s unit: "1960", "1960-03-01 14:00"."""
    full = str(np.datetime64(t, "s")).replace("T", " ")
    for length, tail in ((4, "-01-01 00:00:00"), (7, "-01 00:00:00"), (10, " 00:00:00"), (16, ":00")):
        if length >= SHORTEST[frequency.unit] and full[length:] == tail:
            return full[:length]
    return full


def next_times(last: np.datetime64, frequency: Frequency, n: int) -> np.ndarray:
    """The `n` times after `last`, one `frequency` step apart. Calendar steps keep `last`'s day of the
    month, clipped to shorter months, or the month's end when `last` is one (Jan 31, Feb 29, Mar 31);
    business days go from Friday to Monday."""
    return shifted(last, frequency, np.arange(1, n + 1))


def shifted(anchor: np.datetime64, frequency: Frequency, k: np.ndarray) -> np.ndarray:
    """The times `k` steps of `frequency` from `anchor` (k may be negative: the times before it)."""
    last = np.datetime64(anchor, "s")
    if frequency.unit == "B":
        day = last.astype("datetime64[D]")
        # A `last` on a weekend counts from the Friday before it, so the first step is still a Monday.
        days = np.busday_offset(day, k * frequency.count, roll="backward")
        return days.astype("datetime64[s]") + (last - day)
    if not frequency.months:
        return last + k * np.timedelta64(frequency.count, frequency.unit).astype("timedelta64[s]")
    day = last.astype("datetime64[D]")
    month = day.astype("datetime64[M]")
    months = month + k * frequency.months
    starts = months.astype("datetime64[D]")
    last_days = (months + 1).astype("datetime64[D]") - starts - np.timedelta64(1, "D")
    offsets = last_days if _month_end(day) else np.minimum(day - month.astype("datetime64[D]"), last_days)
    return (starts + offsets).astype("datetime64[s]") + (last - day)


def infer_frequency(times: list[np.ndarray]) -> Frequency | None:
    """The step of sorted datetime64[s] arrays: their median step, in calendar months when every time
    falls on one day of the month (or every one on a month's end), in business days when a step of
    days never lands on a weekend although the times span one; None with fewer than two times."""
    steps = np.concatenate([np.diff(t).astype(np.int64) for t in times] + [np.zeros(0, np.int64)])
    if not steps.size:
        return None
    step = _lower_median(steps)
    if step >= 28 * DAY and _on_calendar(np.concatenate(times)):
        months = _lower_median(np.concatenate([np.diff(_month_number(t)) for t in times]))
        return Frequency("Y", months // 12) if months % 12 == 0 else Frequency("M", months)
    for unit, seconds in (("W", 7 * DAY), ("D", DAY), ("h", 3600), ("m", 60)):
        if step % seconds == 0:
            if unit == "D" and _business_days(np.concatenate(times)):
                return Frequency("B", step // seconds)
            return Frequency(unit, step // seconds)
    return Frequency("s", step)


def timeline(times: np.ndarray, frequency: Frequency) -> np.ndarray | None:
    """Every step from the first of sorted `times` to the last, or None when the times keep to no such steps."""
    if frequency.unit == "B":
        return None  # a missing weekday may be a holiday, not a gap
    if frequency.months:
        steps = int(_month_number(times[-1]) - _month_number(times[0])) // frequency.months
        line = np.concatenate([times[:1], next_times(times[0], frequency, steps)])
    else:
        step = np.timedelta64(frequency.count, frequency.unit).astype("timedelta64[s]")
        if ((times - times[0]) % step).astype(np.int64).any():
            return None  # checked first: an irregular series of seconds could span millions of steps
        line = times[0] + np.arange((times[-1] - times[0]) // step + 1) * step
    return line if np.isin(times, line).all() else None


def _lower_median(values: np.ndarray) -> int:
    return int(np.sort(values)[(values.size - 1) // 2])  # a step that occurs, where the mean of the middle two may not


def _month_number(times: np.ndarray) -> np.ndarray:
    return times.astype("datetime64[M]").astype(np.int64)


def _month_end(day: np.ndarray) -> np.ndarray:
    return (day + np.timedelta64(1, "D")).astype("datetime64[M]") != day.astype("datetime64[M]")


def _business_days(times: np.ndarray) -> bool:
    """Whether every time falls on a weekday and the times span at least one weekend."""
    day = np.sort(times.astype("datetime64[D]"))
    if not np.is_busday(day).all():
        return False
    return int(np.busday_count(day[0], day[-1])) < int((day[-1] - day[0]).astype(np.int64))


def _on_calendar(times: np.ndarray) -> bool:
    day = times.astype("datetime64[D]")
    clock, of_month = times - day, day - day.astype("datetime64[M]").astype("datetime64[D]")
    return bool((clock == clock[0]).all() and ((of_month == of_month[0]).all() or _month_end(day).all()))
