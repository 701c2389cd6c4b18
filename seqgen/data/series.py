"""Numeric series: one number per line, a one-column CSV or a .npy array, scaled by its training part."""

from __future__ import annotations

import itertools
import math
from array import array
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from ..errors import DataError, UsageError
from .cache import store_entry
from .dataset import Dataset, split_point
from .reading import decode_text, decoded_chunks, iter_lines, stream_lines

SERIES_SUFFIXES = {".npy", ".csv"}

# How many leading lines decide whether a file without a telling suffix is a numeric series.
SNIFF_LINES = 20


def looks_numeric(text: str) -> bool:
    """True when the first non-blank lines all parse as numbers (one column)."""
    lines = [ln for ln in itertools.islice(iter_lines(text), SNIFF_LINES * 4) if ln.strip()][:SNIFF_LINES]
    if not lines:
        return False
    return all(_parse_number(ln) is not None for ln in lines)


def _parse_number(line: str) -> float | None:
    try:
        return float(line.strip().rstrip(","))
    except ValueError:
        return None


def parse_series(text: str, label: str) -> np.ndarray:
    """Parse one number per line (or a one-column CSV, with an optional header line)."""
    blocks = list(parse_series_lines(iter_lines(text), label))
    return np.concatenate(blocks) if blocks else np.zeros(0)


def parse_series_lines(lines: Iterable[str], label: str, block: int = 1 << 20) -> Iterator[np.ndarray]:
    """Parse numbered lines into float64 blocks of up to `block` values, naming the line of any problem."""
    values = array("d")  # 8 bytes a value, where a list of floats takes 32
    first, seen = True, 0
    for number, line in enumerate(lines, start=1):
        cell = line.strip()
        if not cell:
            continue
        # Several cells with a number among them is a table; no number at all may be a header.
        if "," in cell.rstrip(",") and any(_parse_number(part) is not None for part in cell.split(",")):
            raise DataError(f"{label}, line {number}: more than one column ({cell[:40]!r}); give one number per line")
        value = _parse_number(cell)
        if value is None:
            if first:
                first = False
                continue  # a CSV header
            # A header and then no number at all: most likely text given where numbers were expected.
            looks = "" if seen else "; it looks like text, not one number per line"
            raise DataError(f"{label}, line {number}: {cell[:40]!r} is not a number{looks}")
        first = False
        if not math.isfinite(value):
            raise DataError(f"{label}, line {number}: {cell!r} is not a finite number (remove NaN/inf values)")
        values.append(value)
        seen += 1
        if len(values) >= block:
            yield np.frombuffer(values, dtype=np.float64).copy()
            values = array("d")
    if values:
        yield np.frombuffer(values, dtype=np.float64)


def load_npy(raw: bytes, label: str) -> np.ndarray:
    import io

    try:
        array = np.load(io.BytesIO(raw), allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{label} is not a readable .npy array ({e})") from None
    if array.ndim != 1 and not (array.ndim == 2 and 1 in array.shape):
        raise DataError(f"{label} holds an array of shape {array.shape}; give a 1-D series")
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{label} holds {array.dtype} values; give numbers")
    array = array.reshape(-1).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise DataError(f"{label}: value {bad[0]} is not finite (remove NaN/inf values)")
    return array


def series_dataset(values: np.ndarray, name: str, label: str, val_fraction: float) -> Dataset:
    """A numeric series, scaled to zero mean and unit variance over its training part."""
    split = split_point(len(values), val_fraction, label)
    mean, std = float(values[:split].mean()), float(values[:split].std())
    if std == 0 or np.ptp(values) == 0:
        raise DataError(f"{label}: the series has the same value everywhere; there is nothing to learn")
    scaled = ((values - mean) / std).astype(np.float32)
    return Dataset(
        kind="series",
        name=name,
        description=f"numeric series from {label} ({len(values)} values)",
        streams=[scaled],
        splits=[split],
        mean=mean,
        std=std,
        source={"type": "file", "path": label},
        val_fraction=val_fraction,
    )


def table_dataset(table, name: str, label: str, val_fraction: float, stored: bool = False) -> Dataset:
    """The series of a CSV table (see table.py): one series as `series_dataset` makes it, several
    each scaled by its own training part. The source records the time column, the step between
    times and where each series ends, so a forecast can go on with the right timestamps. `stored`:
    the table was read with a checkpoint's options (errors then name no parameter to change)."""
    source = {"type": "file", "path": label, "columns": table.value_columns}
    if table.time_column is not None:
        source.update(time_column=table.time_column)
        if table.frequency is not None:
            source.update(frequency=[table.frequency.unit, table.frequency.count])
    if table.id_column is not None:
        source["id_column"] = table.id_column
    last_times = (
        [None] * len(table.series)
        if table.times is None
        else [str(times[-1]) if len(times) else None for times in table.times]
    )
    if len(table.series) == 1:
        data = series_dataset(table.series[0], name, label, val_fraction)
        data.source = {**source, "series": table.names[0], "last_time": last_times[0]}
        data.left_out = table.left_out
        return data
    streams, splits, series = [], [], []
    for series_name, values, last in zip(table.names, table.series, last_times):
        where = f"{label}, series {series_name!r}"
        split = split_point(len(values), val_fraction, where)
        mean, std = float(values[:split].mean()), float(values[:split].std())
        if std == 0:
            way_out = "" if stored else " (choose the other series with `columns`)"
            raise DataError(
                f"{where}: the training part has the same value everywhere; there is nothing to learn{way_out}"
            )
        streams.append(((values - mean) / std).astype(np.float32))
        splits.append(split)
        series.append({"name": series_name, "mean": mean, "std": std, "values": values, "last_time": last})
    shortest, longest = min(map(len, streams)), max(map(len, streams))
    counts = f"{len(series)} series of {shortest}{'' if shortest == longest else f' to {longest}'} values"
    span = "" if table.frequency is None else f", every {table.frequency}"
    return Dataset(
        kind="series",
        name=name,
        description=f"{counts} from {label}{span}",
        streams=streams,
        splits=splits,
        source=source,
        val_fraction=val_fraction,
        series=series,
        left_out=table.left_out,
    )


def joint_dataset(table, name: str, label: str, val_fraction: float, stored: bool = False) -> Dataset:
    """The value columns of a wide table as the channels of one series, modelled jointly: one
    stream of (length, channels), each column scaled by its own training part's mean and std."""
    if table.id_column is not None:
        raise UsageError(
            "`joint` models the value columns of one series together; a long table (`id_column`) "
            "holds several series: leave out one of the two"
        )
    if len(table.series) < 2:
        raise UsageError(
            f"`joint` models several value columns together, and {label} gives one "
            f"({table.value_columns[0]!r}): name two or more with `columns`, or leave out `joint`"
        )
    values = np.stack(table.series, axis=1)
    split = split_point(len(values), val_fraction, label)
    mean, std = values[:split].mean(axis=0), values[:split].std(axis=0)
    if (std == 0).any():
        flat = table.names[int(np.flatnonzero(std == 0)[0])]
        way_out = "" if stored else " (choose the other columns with `columns`)"
        raise DataError(
            f"{label}, column {flat!r}: the training part has the same value everywhere; there is nothing "
            f"to learn{way_out}"
        )
    source = {"type": "file", "path": label, "columns": table.value_columns, "joint": True}
    if table.time_column is not None:
        source.update(time_column=table.time_column)
        if table.frequency is not None:
            source.update(frequency=[table.frequency.unit, table.frequency.count])
    if table.times is not None and len(table.times[0]):
        source["last_time"] = str(table.times[0][-1])
    span = "" if table.frequency is None else f", every {table.frequency}"
    return Dataset(
        kind="series",
        name=name,
        description=f"{len(table.names)} channels of {len(values)} values from {label}{span}, modelled jointly",
        streams=[((values - mean) / std).astype(np.float32)],
        splits=[split],
        mean=mean,
        std=std,
        source=source,
        val_fraction=val_fraction,
        channels=list(table.names),
        left_out=table.left_out,
        levels=values,
    )


def cache_series(path: str, encoding: str, val_fraction: float, folder: Path, key: str) -> tuple[np.ndarray, dict]:
    """Parse the numbers into a float64 scratch file, then store them scaled as float32."""
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder) as raw:
        count, low, high = 0, math.inf, -math.inf
        for block in parse_series_lines(stream_lines(decoded_chunks(path, encoding)), path):
            raw.write(block.tobytes())
            count, low, high = count + len(block), min(low, block.min()), max(high, block.max())
        split = split_point(count, val_fraction, path)
        total, squares = 0.0, 0.0
        for block in _blocks(raw, split):
            total += float(block.sum())
        mean = total / split
        for block in _blocks(raw, split):
            squares += float(((block - mean) ** 2).sum())
        std = math.sqrt(squares / split)
        if std == 0 or low == high:
            raise DataError(f"{path}: the series has the same value everywhere; there is nothing to learn")

        def fill(f: BinaryIO) -> dict:
            for block in _blocks(raw, count):
                f.write(((block - mean) / std).astype(np.float32).tobytes())
            return {
                "dtype": np.dtype(np.float32).str,
                "count": count,
                "split": split,
                "mean": mean,
                "std": std,
                "source": path,
            }

        return store_entry(folder, key, fill)


def _blocks(f: BinaryIO, count: int, size: int = 1 << 20) -> Iterator[np.ndarray]:
    """The first `count` float64 values of a scratch file, `size` at a time."""
    f.seek(0)
    while count > 0:
        block = np.fromfile(f, dtype=np.float64, count=min(size, count))
        count -= len(block)
        yield block


def parse_numbers(text: str, label: str = "`prime`") -> np.ndarray:
    """Parse numbers separated by spaces, commas or newlines."""
    parts = text.replace(",", " ").split()
    try:
        values = np.array([float(p) for p in parts], dtype=np.float64)
    except ValueError:
        bad = next(p for p in parts if not is_number(p))
        raise DataError(f"{label}: {bad!r} is not a number (this model continues numbers)") from None
    if not np.all(np.isfinite(values)):
        raise DataError(f"{label}: NaN or infinite values cannot be fed to the model")
    return values


def looks_like_numbers(text: str) -> bool:
    """Whether `text` is numbers separated by spaces, commas or newlines (a series, not prose)."""
    parts = text.replace(",", " ").split()
    return bool(parts) and all(is_number(p) for p in parts)


def is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_values(raw: bytes, label: str, suffix: str = "") -> np.ndarray:
    """The numbers of a file as a user gives them, a prime file say: a .npy array; numbers
    separated by spaces, commas or newlines; or a training file's shape, one number per line
    under an optional header line (a one-column CSV)."""
    if suffix.lower() == ".npy":
        return load_npy(raw, label)
    text = decode_text(raw, label)
    if looks_like_numbers(text):
        return parse_numbers(text, label)
    values = parse_series(text, label)
    lines = [line.strip() for line in iter_lines(text) if line.strip()]
    if not len(values) and lines:  # a lone line of text, read as a header
        if len(lines) == 1 and ("," in lines[0] or ";" in lines[0] or "\t" in lines[0]):
            raise DataError(
                f"{label} holds a header line ({lines[0][:40]!r}) and no values under it: give the "
                "history's rows below it"
            )
        raise DataError(f"{label}: {lines[0][:40]!r} is not a number (this model continues numbers)")
    return values
