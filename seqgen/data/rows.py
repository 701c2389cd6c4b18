"""Rows of numbers arriving one line at a time (`seqgen follow`'s standard input): one value a
line, or a row of channels; a header line that names the columns says where they are."""

from __future__ import annotations

import csv
import math
from typing import Iterator, TextIO

from ..errors import DataError
from .series import is_number
from .times import parse_time


def read_rows(stream: TextIO, channels: list[str] | None = None, column: str | None = None) -> Iterator:
    """Numbers from `stream` (standard input) as they arrive (readline, not a read-ahead), skipping
    blank lines and, as in a series file, a header on the first line. For a model of several channels (`channels`,
    its column names), rows of one number per channel separated by commas, semicolons, tabs or
    spaces, in the order of its columns. A header that names the columns (the channels, or a
    one-series model's training `column`) says where they are in each row, any other column (a
    date) left aside: rows copied from the training CSV can be followed."""
    names = channels or ([column] if column else [])
    width = len(channels) if channels else 1
    columns = list(range(width))  # where each value the model reads is in a row
    first, header, read = True, None, 0
    for number, line in enumerate(iter(stream.readline, ""), start=1):
        text = line.strip().lstrip("\ufeff")
        if not text:
            continue
        cells = fields(text)
        if first:
            first = False
            if is_header(cells, channels, names):
                if channels or any(f in names for f in cells):
                    columns, width = _header_columns(cells, names), len(cells)
                header = text
                continue
        if len(cells) != width:
            # Rows copied from a CSV without its header: say how to pick the column out of them.
            hint = (
                f" (for rows copied from a CSV, put its header line, naming {', '.join(map(repr, names))}, above them)"
                if names and width == len(names) and len(cells) > width
                else ""
            )
            raise DataError(
                f"standard input, line {number}: {len(cells)} value{'s' * (len(cells) != 1)}, expected "
                f"{_row_width(width, columns)}{hint}"
            )
        try:
            row = [float(cells[k]) for k in columns]
        except ValueError:
            raise DataError(
                f"standard input, line {number}: {text[:40]!r} is not "
                + ("a number" if len(columns) == 1 else f"a row of {len(columns)} numbers")
            ) from None
        if not all(math.isfinite(v) for v in row):
            raise DataError(f"standard input, line {number}: {text!r} is not a finite number")
        read += 1
        yield row if channels else row[0]
    if header is not None and not read:
        # A lone word piped in would otherwise pass for a header and end with nothing said.
        raise DataError(f"standard input held no numbers: its one line, {header[:40]!r}, was read as a header")


def fields(line: str) -> list[str]:
    """A line's cells: split at commas (or else semicolons, tabs or spaces), quotes respected."""
    delimiter = next((d for d in ",;\t" if d in line), None)
    if delimiter is None:
        return line.split()
    return [cell.strip() for cell in next(csv.reader([line], delimiter=delimiter))]


def is_header(fields: list[str], channels: list[str] | None, names: list[str]) -> bool:
    """Whether a first line is a header to skip: it names a column the model reads; for
    channels, it holds no number; for one series, it is neither a row of numbers nor a dated row."""
    if any(f in names for f in fields):
        return True
    if channels:  # a line with a number in it is a row with a mistake, said as such
        return not any(is_number(f) for f in fields)
    # One series: a header's words (even "sensor 1") are skipped, as `seqgen train` skips them; a
    # row of numbers, or a dated row ("1967-01-01,1100" copied without its header), is a row,
    # said as such when it is not the one number a line the model reads.
    return not (all(is_number(f) for f in fields) or any(parse_time(f) is not None for f in fields))


def _row_width(width: int, columns: list[int]) -> str:
    if width == 1:
        return "one a line"
    if len(columns) == width:
        return f"{width} (one per channel) separated by commas"
    return f"{width}, as the header names"


def _header_columns(header: list[str], names: list[str]) -> list[int]:
    """Where a header puts each of the columns the model reads."""
    missing = [name for name in names if name not in header]
    if missing:
        raise DataError(
            f"standard input: the header names {', '.join(map(repr, header))}; this model reads the columns "
            f"{', '.join(map(repr, names))} (name them in the header, or leave the header out and give "
            "the values in that order)"
        )
    return [header.index(name) for name in names]


def training_column(ckpt, entry: dict | None) -> str | None:
    """The CSV column a one-series model was trained on (of several series, the one followed)."""
    if ckpt.model_config.channels > 1:
        return None
    if entry is not None:
        return entry["name"] if entry["name"] in (ckpt.described.columns) else None
    columns = ckpt.described.columns
    return columns[0] if len(columns) == 1 else None
