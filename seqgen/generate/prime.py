"""A prime as a user gives it: text or numbers inline, or a file (text, numbers one a line, or for
a model of several channels a CSV with its columns), read as the checkpoint's model reads it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..checkpoint import Checkpoint
from ..data import decode_text, read_values
from ..data.rows import fields
from ..data.series import is_number
from ..errors import DataError, UsageError
from .api import as_prime


def read_prime(ckpt: Checkpoint, prime: str | None, prime_file: Path | None) -> str | np.ndarray | None:
    """The prime given inline (`prime`) or in a file (`prime_file`), None when neither is."""
    if prime is not None and prime_file is not None:
        raise UsageError("give either `prime` or `prime_file`, not both")
    columns = ckpt.described.channels if ckpt.model_config.channels > 1 else None
    if columns and prime is not None:
        raise UsageError(
            f"`prime`: {ckpt.path} models the columns {', '.join(map(repr, columns))} jointly; give the "
            "prime as a CSV with those columns (`prime_file`)"
        )
    result = as_prime(ckpt, prime) if prime_file is None else _prime_file(ckpt, prime_file, columns)
    if result is not None and len(result) == 0:
        raise UsageError("the prime is empty: give at least one character or value")
    return result


def _prime_file(ckpt: Checkpoint, path: Path, columns: list[str] | None) -> str | np.ndarray:
    if path.is_dir():
        raise DataError(f"`prime_file` {path} is a directory: give a file")
    if not path.is_file():
        raise DataError(f"`prime_file` {path}: no such file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"`prime_file` {path}: cannot read ({e.strerror})") from None
    label = f"`prime_file` {path}"
    if ckpt.kind == "text":
        return decode_text(raw, label)
    if columns:
        return channel_rows(ckpt, decode_text(raw, label), label)
    return read_values(raw, label, path.suffix)


def channel_rows(ckpt: Checkpoint, text: str, label: str) -> np.ndarray:
    """A prime for a model of several channels: a CSV with its columns, as (time, channels)."""
    from ..data.load import TableOptions
    from ..data.table import looks_like_table

    lines = [line for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    columns = ", ".join(map(repr, ckpt.described.channels))
    if len(lines) == 1 and any(is_number(f) for f in fields(lines[0])):
        raise DataError(f"{label}: a CSV needs a header line naming its columns ({columns}) above the values")
    if len(lines) <= 1:
        raise UsageError(f"the prime is empty: {label} has no rows of values (give at least one)")
    if not looks_like_table(text):
        raise DataError(
            f"{label}: {ckpt.path} models the columns {columns} jointly; give the prime as a CSV with those columns"
        )
    options = TableOptions.from_source(ckpt.described.source)
    if options.time_column is not None and options.time_column not in fields(lines[0]):
        options = replace(options, time_column=None)  # a prime's times are not read: values alone will do
    return np.stack(options.read(text, label).series, axis=1)
