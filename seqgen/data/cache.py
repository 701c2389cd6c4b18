"""The data cache: a source file is decoded once into a flat binary array (token ids or float32
values) in the user's cache folder, and later runs map that array instead of reading the source.

Entries are keyed by the source's absolute path, size and modification time plus whatever else
changes the result (encoding, kind, validation fraction), so an edited file gets a new entry.
The array is written to a temporary file and renamed into place before its small JSON
description is; an entry without that description (a crash mid-build) is simply built again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from ..errors import DataError

# Bump when the layout of an entry changes, so old entries are ignored rather than misread.
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/seqgen, else ~/.cache/seqgen: a folder the user owns, never beside the source."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "seqgen"


def cache_key(source: Path, **params) -> str:
    """A name for the entry of `source` as it is now (path, size, mtime) under `params`."""
    stat = source.stat()
    identity = {
        "path": str(source.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "format": CACHE_FORMAT,
        **params,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def load_entry(folder: Path, key: str) -> tuple[np.memmap, dict] | None:
    """The cached array (read-only memmap) and its description, or None when absent or incomplete."""
    meta_path, array_path = folder / f"{key}.json", folder / f"{key}.bin"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        dtype, count = np.dtype(meta["dtype"]), int(meta["count"])
        if count < 1 or array_path.stat().st_size != count * dtype.itemsize:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return np.memmap(array_path, dtype=dtype, mode="r", shape=(count,)), meta


def store_entry(folder: Path, key: str, fill: Callable[[BinaryIO], dict]) -> tuple[np.memmap, dict]:
    """Build an entry: `fill(file)` writes the array's bytes and returns its description
    (which must give "dtype" and "count"). Concurrent builders of one key are harmless:
    each renames a complete file into place."""
    from ..files import write_atomic
    from ..errors import CheckpointError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise DataError(f"cannot write the data cache in {folder} ({e.strerror}); choose another `cache_dir`") from None
    try:
        with os.fdopen(fd, "wb") as f:
            meta = fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / f"{key}.bin")
        write_atomic(folder / f"{key}.json", json.dumps(meta, ensure_ascii=False).encode("utf-8"))
    except OSError as e:
        raise DataError(
            f"cannot write the data cache in {folder} ({e.strerror or e}); choose another `cache_dir`"
        ) from None
    except CheckpointError as e:
        raise DataError(f"{e}; choose another `cache_dir`") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    entry = load_entry(folder, key)
    if entry is None:
        raise DataError(f"the data cache in {folder} could not be read back; choose another `cache_dir`")
    return entry
