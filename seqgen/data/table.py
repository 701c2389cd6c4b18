"""Time series from CSV exports: a header, an optional time column and value columns, with one series
per value column (wide) or per id and value column (long, `id_column`).

`read_table` gives each series as float64 values in time order, gaps filled on request, with its times
and their step; `looks_like_table` tells such a file from the one-column series that series.py reads.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, UsageError
from .reading import iter_lines
from .times import (
    Frequency,
    format_time,
    infer_frequency,
    next_times,
    parse_time,
    timeline,
)

__all__ = ["FILLS", "Frequency", "Table", "format_time", "looks_like_table", "next_times", "parse_time", "read_table"]

FILLS = ("error", "previous", "linear", "zero")
MISSING = {"", "na", "n/a", "nan", "null"}
# A bare four-digit number is a year only under a header with one of these words; elsewhere it is a value.
TIME_NAMES = {
    "year",
    "years",
    "date",
    "datetime",
    "time",
    "timestamp",
    "period",
    "month",
    "quarter",
    "week",
    "day",
    "ds",
}
# Besides the time names, the names of a column that counts rows rather than holding a series.
COUNTER_NAMES = {"t", "step", "index", "idx", "n", "row", "#", "rownames"}  # rownames: R's exports
# How many leading lines of a file, or present cells of a column, decide what it holds.
SNIFF = 20
# How a table read with a checkpoint's options names the column each option chose.
STORED_NAMES = {"columns": "a series", "time_column": "its time column", "id_column": "its id column"}
FILL_HINT = "fill the gaps (`fill` previous, linear or zero)"
# The same, for a table read with a checkpoint's options: nobody named `fill`, so no parameter is named.
STORED_FILL_HINT = "fill the gaps in the file (the model reads data as it was trained, without filling gaps)"


@dataclass
class Table:
    """The series of a CSV file in time order, missing cells and time steps filled (`filled` counts them).
    A long file's series are named by id, or "id:column" with several value columns; `times` holds one
    datetime64[s] array per series (the series of a wide file share one)."""

    names: list[str]
    series: list[np.ndarray]
    times: list[np.ndarray] | None
    time_column: str | None
    value_columns: list[str]
    id_column: str | None
    frequency: Frequency | None
    filled: int
    # Columns not read as series when none were named, each with why (text, a row counter).
    left_out: dict[str, str] = field(default_factory=dict)


def looks_like_table(text: str) -> bool:
    """Whether `text` starts with a header of two or more names over rows as wide, a column of numbers among them."""
    lines = [line for line in itertools.islice(iter_lines(text.lstrip("\ufeff")), SNIFF * 4) if line.strip()][:SNIFF]
    delimiter = _delimiter(lines)
    try:
        header, *rows = list(csv.reader(lines, delimiter=delimiter, skipinitialspace=True))
    except (csv.Error, ValueError):
        return False
    if len(header) < 2 or not rows or any(len(row) != len(header) for row in rows):
        return False
    if any(_number(cell) is not None for cell in header):
        return False  # a number in the first line: data without a header
    return any(_mostly_numbers(column, delimiter) for column in zip(*rows))


def read_table(
    text: str,
    label: str,
    *,
    time_column: str | None = None,
    columns: list[str] | None = None,
    id_column: str | None = None,
    fill: str = "error",
    stored: bool = False,
) -> Table:
    """The series of a CSV export. Without `time_column` the first column of dates is the time; without
    `columns` every other column of numbers is a series (with `id_column`, one per id and column).
    `fill` (previous, linear or zero) fills missing cells and missing time steps, which the default
    "error" refuses: "previous" gives cells before the first value that value, "linear" interpolates
    by position and carries the nearest value to the ends. `stored`: the options are a checkpoint's,
    not the caller's, so errors say what the model reads rather than name parameters to change."""
    if fill not in FILLS:
        raise UsageError(f"`fill` must be one of {', '.join(FILLS)} (got {fill!r})")
    sheet = _read_sheet(text, label)
    sheet.stored = stored
    id_index = None if id_column is None else sheet.column(id_column, "id_column")
    time_index, years = _time_column(sheet, time_column, id_index)
    value_indexes = _value_columns(sheet, columns, {time_index, id_index})
    left_out = {} if columns is not None else _left_out(sheet, {time_index, id_index, *value_indexes})
    values = np.stack([sheet.values(i) for i in value_indexes], axis=1)
    groups = sheet.groups(id_index)
    whose = {key: "" if id_index is None else f" for {sheet.header[id_index]} {key!r}" for key in groups}
    times = None if time_index is None else sheet.times(time_index, years)
    if times is not None:
        groups = {key: _sort(sheet, index, times, time_index, whose[key]) for key, index in groups.items()}
    _check_present(sheet, values, groups, value_indexes, whose, fill)
    frequency = None if times is None else infer_frequency([times[index] for index in groups.values()])
    table = Table(
        [],
        [],
        None if times is None else [],
        None if time_index is None else sheet.header[time_index],
        [sheet.header[i] for i in value_indexes],
        id_column,
        frequency,
        0,
        left_out,
    )
    for key, index in groups.items():
        t, v = (
            (None, values[index])
            if times is None
            else _expand(sheet, index, times, values, frequency, fill, whose[key])
        )
        for k, column in enumerate(table.value_columns):
            table.names.append(column if id_index is None else key if len(value_indexes) == 1 else f"{key}:{column}")
            table.filled += int(np.isnan(v[:, k]).sum())
            table.series.append(_fill(v[:, k], fill))
            if table.times is not None:
                table.times.append(t)
    return table


@dataclass
class _Sheet:
    """The cells of a CSV file under its header, each row with the line it ends on."""

    label: str
    header: list[str]
    rows: list[tuple[int, list[str]]]
    delimiter: str = ","
    stored: bool = False  # read with a checkpoint's options (see read_table)

    def column(self, name: str, option: str) -> int:
        if name not in self.header:
            what = f", which the model reads as {STORED_NAMES[option]}" if self.stored else f" (`{option}`)"
            raise DataError(f"{self.label} has no column {name!r}{what}; its columns are {self.names()}")
        if self.header.count(name) > 1:
            raise DataError(f"{self.label}: the header names column {name!r} twice; rename one of them")
        return self.header.index(name)

    def names(self) -> str:
        return ", ".join(map(repr, self.header))

    def present(self, index: int) -> list[str]:
        """The first cells of a column that are not missing, enough to tell what the column holds."""
        return list(itertools.islice((cells[index] for _, cells in self.rows if not _missing(cells[index])), SNIFF))

    def values(self, index: int) -> np.ndarray:
        """A column's numbers, NaN where a cell is missing, read in the column's style (see `_number_style`)."""
        style = _number_style([cells[index] for _, cells in self.rows if not _missing(cells[index])], self.delimiter)
        out = np.empty(len(self.rows))
        for k, (line, cells) in enumerate(self.rows):
            value = math.nan if _missing(cells[index]) else _number(cells[index], style)
            if value is None or math.isinf(value):
                way_out = "" if self.stored else ", leave the cell empty, or choose other columns (`columns`)"
                raise DataError(
                    f"{self.label}, line {line}: {cells[index][:40]!r} in column {self.header[index]!r} is not "
                    f"{'a' if value is None else 'a finite'} number; give one{way_out}"
                )
            out[k] = value
        return out

    def times(self, index: int, years: bool) -> np.ndarray:
        out = np.empty(len(self.rows), dtype="datetime64[s]")
        for k, (line, cells) in enumerate(self.rows):
            out[k] = parse_time(cells[index], years)
            if np.isnat(out[k]):
                name, cell = self.header[index], cells[index]
                problem = (
                    f"the time in column {name!r} is missing"
                    if _missing(cell)
                    else f"{cell[:40]!r} in column {name!r} is not a date"
                )
                raise DataError(
                    f"{self.label}, line {line}: {problem}; give a date such as 2021-03-01 or remove the row"
                )
        return out

    def groups(self, id_index: int | None) -> dict[str, np.ndarray]:
        """Row indexes per id, ids in the order they first appear."""
        if id_index is None:
            return {"": np.arange(len(self.rows))}
        groups: dict[str, list[int]] = {}
        for k, (line, cells) in enumerate(self.rows):
            if _missing(cells[id_index]):
                raise DataError(
                    f"{self.label}, line {line}: the id in column {self.header[id_index]!r} is missing; "
                    "give it or remove the row"
                )
            groups.setdefault(cells[id_index], []).append(k)
        return {key: np.array(index) for key, index in groups.items()}


def _read_sheet(text: str, label: str) -> _Sheet:
    text = text.lstrip("\ufeff")  # spreadsheets start their UTF-8 exports with a byte-order mark
    head = [line for line in itertools.islice(iter_lines(text), SNIFF * 4) if line.strip()][:SNIFF]
    delimiter = _delimiter(head)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
    header, header_line, rows = None, 0, []
    try:
        for cells in reader:
            cells = [cell.strip() for cell in cells]
            if not any(cells):
                continue
            if header is None:
                header, header_line = cells, reader.line_num
            elif len(cells) != len(header):
                raise DataError(
                    f"{label}, line {reader.line_num}: {len(cells)} cells where the header has {len(header)}; "
                    "give every row the same columns"
                )
            else:
                rows.append((reader.line_num, cells))
    except csv.Error as e:
        raise DataError(f"{label}, line {reader.line_num}: not readable as CSV ({e})") from None
    if header is None or not rows:
        raise DataError(f"{label} has no rows under a header line; give the column names, then one row per time")
    if all(_number(cell) is not None or parse_time(cell) is not None for cell in header):
        raise DataError(
            f"{label}, line {header_line} holds values, not column names; put a header line first (such as 'date,value')"
        )
    return _Sheet(label, header, rows, delimiter)


def _time_column(sheet: _Sheet, name: str | None, id_index: int | None) -> tuple[int | None, bool]:
    """The time column and whether four-digit numbers in it are years: the one named, or the first
    column of mostly dates (so that a bad date among them is named rather than the column ignored)."""
    if name is not None:
        index = sheet.column(name, "time_column")
        if index == id_index:
            raise UsageError(f"`time_column` and `id_column` both name {name!r}")
        return index, True
    for index, column in enumerate(sheet.header):
        if index != id_index and _mostly_times(sheet.present(index), _is_time_name(column)):
            return index, _is_time_name(column)
    for index, column in enumerate(sheet.header):
        cells = sheet.present(index)
        if index != id_index and _is_time_name(column) and cells and not _mostly_numbers(cells, sheet.delimiter):
            raise DataError(
                f"{sheet.label}: column {column!r} holds times such as {cells[0][:40]!r}, which seqgen does not read; "
                "write them as 2021-03-01, 2021-03, 2021 Q1, Mar 2021 or 2021-03-01 14:00"
            )
    return None, False


def _value_columns(sheet: _Sheet, columns: list[str] | None, taken: set[int | None]) -> list[int]:
    if columns is None:
        # An unnamed column is the row number pandas writes, not a series.
        chosen = [
            i
            for i, name in enumerate(sheet.header)
            if name
            and i not in taken
            and _mostly_numbers(sheet.present(i), sheet.delimiter)
            and not _is_counter(sheet, i)
        ]
    else:
        chosen = [sheet.column(name, "columns") for name in columns]
        if len(set(chosen)) < len(chosen):
            raise UsageError(f"`columns` names {next(name for name in columns if columns.count(name) > 1)!r} twice")
        if taken & set(chosen):
            raise UsageError(
                f"`columns` names {sheet.header[next(i for i in chosen if i in taken)]!r}, the time or id column"
            )
    if not chosen:
        raise DataError(
            f"{sheet.label} has no column of numbers besides the time and id; its columns are {sheet.names()}"
        )
    return chosen


def _left_out(sheet: _Sheet, taken: set[int | None]) -> dict[str, str]:
    """Why each column that is neither time, id nor series was passed over (an unnamed column that
    counts rows is the row number pandas writes, and goes without saying)."""
    reasons = {}
    for index, name in enumerate(sheet.header):
        if index in taken:
            continue
        if not name:
            if not _counts_up(sheet, index):
                reasons[f"column {index + 1}"] = "it has no name"
        elif _is_counter(sheet, index):
            reasons[name] = "it counts rows"
        else:
            cells = sheet.present(index)
            style = _number_style(cells, sheet.delimiter)
            text = next((cell for cell in cells if _number(cell, style) is None), None)
            reasons[name] = "it is empty" if text is None else f"it holds text such as {text[:40]!r}"
    return reasons


def _is_counter(sheet: _Sheet, index: int) -> bool:
    """Whether a column numbers its rows (a time-like or index name over whole numbers counting up,
    such as t = 1, 2, 3): an index like that is not a series."""
    if not (_is_time_name(sheet.header[index]) or sheet.header[index].strip().lower() in COUNTER_NAMES):
        return False
    return _counts_up(sheet, index)


def _counts_up(sheet: _Sheet, index: int) -> bool:
    """Whole numbers that rise row by row, or fall (an export written newest first, counting with time)."""
    numbers = [_number(cell) for cell in sheet.present(index)]
    if len(numbers) < 2 or any(n is None or n != int(n) for n in numbers):
        return False
    steps = np.diff(numbers)
    return bool(np.all(steps > 0) or np.all(steps < 0))


def _sort(sheet: _Sheet, index: np.ndarray, times: np.ndarray, time_index: int, whose: str) -> np.ndarray:
    """The rows in time order (exports are often newest first), refusing a time given twice."""
    index = index[np.argsort(times[index], kind="stable")]
    repeats = np.flatnonzero(times[index][1:] == times[index][:-1])
    if repeats.size:
        (first, _), (second, cells) = sorted(sheet.rows[i] for i in index[repeats[0] : repeats[0] + 2])
        raise DataError(
            f"{sheet.label}, line {second}: the time {cells[time_index]!r} in column {sheet.header[time_index]!r}"
            f"{whose} repeats line {first}; remove one of the rows"
        )
    return index


def _check_present(
    sheet: _Sheet,
    values: np.ndarray,
    groups: dict[str, np.ndarray],
    value_indexes: list[int],
    whose: dict[str, str],
    fill: str,
) -> None:
    """Refuse a series without a single value and, when `fill` is "error", the first missing cell."""
    for key, index in groups.items():
        for k, column in enumerate(value_indexes):
            if np.isnan(values[index, k]).all():
                way_out = "the model needs its values" if sheet.stored else "choose other columns (`columns`)"
                raise DataError(f"{sheet.label}: column {sheet.header[column]!r}{whose[key]} has no values; {way_out}")
    if fill == "error" and np.isnan(values).any():
        row, k = np.argwhere(np.isnan(values))[0]
        raise DataError(
            f"{sheet.label}, line {sheet.rows[row][0]}: the value in column {sheet.header[value_indexes[k]]!r} "
            f"is missing; {_fill_hint(sheet)} or remove the row"
        )


def _expand(
    sheet: _Sheet,
    index: np.ndarray,
    times: np.ndarray,
    values: np.ndarray,
    frequency: Frequency | None,
    fill: str,
    whose: str,
) -> tuple[np.ndarray, np.ndarray]:
    """One series' times and values, with a row of NaN for each missing step when the steps are regular:
    all whole steps, and no more missing than there are rows (beyond that the series is irregular, not gappy)."""
    t, v = times[index], values[index]
    line = None if frequency is None or len(t) < 2 else timeline(t, frequency)
    if line is None or len(line) == len(t) or len(line) > 2 * len(t):
        return t, v
    at = np.searchsorted(line, t)
    if fill == "error":
        gap = int(np.flatnonzero(np.diff(at) > 1)[0])
        start, stop = (format_time(x, frequency) for x in line[[at[gap] + 1, at[gap + 1] - 1]])
        what = f"no row for {start}" if start == stop else f"no rows for {start} to {stop}"
        raise DataError(
            f"{sheet.label}: {what}{whose} between line {sheet.rows[index[gap]][0]} and line "
            f"{sheet.rows[index[gap + 1]][0]} (the times step by {frequency}); {_fill_hint(sheet)} or add the rows"
        )
    full = np.full((len(line), v.shape[1]), np.nan)
    full[at] = v
    return line, full


def _fill_hint(sheet: _Sheet) -> str:
    return STORED_FILL_HINT if sheet.stored else FILL_HINT


def _fill(values: np.ndarray, rule: str) -> np.ndarray:
    missing = np.isnan(values)
    if not missing.any():
        return values.copy()
    present = np.flatnonzero(~missing)
    if rule == "zero":
        return np.where(missing, 0.0, values)
    if rule == "linear":
        return np.interp(np.arange(len(values)), present, values[present])
    # The last present value at or before each cell; cells before the first present one take that one.
    return values[np.maximum.accumulate(np.where(missing, present[0], np.arange(len(values))))]


def _delimiter(lines: list[str]) -> str:
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t").delimiter
    except csv.Error:
        return ","


# Numbers as spreadsheets write them besides 1234.5: "1,234.5" (thousands separated by commas, in
# quotes in a comma-separated file) and 1234,5 or 1.234,5 (a decimal comma, in the semicolon- or
# tab-separated exports of locales that write one).
THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
DECIMAL_COMMA = re.compile(r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d*),\d*|[+-]?\d{1,3}(?:\.\d{3})+")


def _number(cell: str, style: str = "plain") -> float | None:
    """A cell's number in `style` (plain, thousands or decimal comma; see `_number_style`), or None."""
    if style == "thousands" and THOUSANDS.fullmatch(cell):
        cell = cell.replace(",", "")
    elif style == "decimal comma" and DECIMAL_COMMA.fullmatch(cell) and any(c.isdigit() for c in cell):
        cell = cell.replace(".", "").replace(",", ".")
    try:
        return float(cell)
    except ValueError:
        return None


def _number_style(cells: Sequence[str], delimiter: str) -> str:
    """How a column writes its numbers: plain when no cell has a comma; otherwise with commas between
    thousands or as the decimal mark, whichever reads more of the cells with one. When both read
    them all ("1,234"), a comma-separated file had to quote the cell, and quoted commas separate
    thousands; in a file separated otherwise the comma is the decimal mark."""
    with_comma = [cell for cell in cells if "," in cell]
    if not with_comma:
        return "plain"
    thousands = sum(THOUSANDS.fullmatch(cell) is not None for cell in with_comma)
    decimal = sum(_number(cell, "decimal comma") is not None for cell in with_comma)
    if thousands == decimal:
        return "thousands" if delimiter == "," else "decimal comma"
    return "thousands" if thousands > decimal else "decimal comma"


def _missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING


# A column is one of numbers or times when most of its present cells are, so that a typo among
# them is reported with its line rather than taken as a sign that the column is something else.
def _mostly_numbers(cells: Sequence[str], delimiter: str = ",") -> bool:
    present = [cell for cell in cells if not _missing(cell)]
    style = _number_style(present, delimiter)
    return sum(_number(cell, style) is not None for cell in present) * 2 > len(present) > 0


def _mostly_times(cells: Sequence[str], years: bool) -> bool:
    present = [cell for cell in cells if not _missing(cell)]
    return sum(parse_time(cell, years) is not None for cell in present) * 2 > len(present) > 0


def _is_time_name(name: str) -> bool:
    return any(word in TIME_NAMES for word in re.split("[^a-z]+", name.lower()))
