"""Text data: a corpus as token ids (one per Unicode character), from memory or through the cache."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

from .cache import store_entry
from .dataset import Dataset, split_point
from .reading import decoded_chunks

# Every code point Unicode has: the size of the tables that map characters to token ids.
CODE_POINTS = 0x110000


def cache_text(path: str, encoding: str, folder: Path, key: str) -> tuple[np.ndarray, dict]:
    """Two passes over the file: find the alphabet, then write every character's token id."""
    seen = np.zeros(CODE_POINTS, dtype=bool)
    for text in decoded_chunks(path, encoding):
        seen[np.unique(_code_points(text))] = True
    alphabet = np.flatnonzero(seen)
    dtype = np.uint8 if len(alphabet) <= 1 << 8 else np.uint16 if len(alphabet) <= 1 << 16 else np.uint32
    table = np.zeros(CODE_POINTS, dtype=dtype)
    table[alphabet] = np.arange(len(alphabet))

    def fill(f: BinaryIO) -> dict:
        count = 0
        for text in decoded_chunks(path, encoding):
            ids = table[_code_points(text)]
            f.write(ids.tobytes())
            count += len(ids)
        return {"dtype": np.dtype(dtype).str, "count": count, "vocab": [chr(c) for c in alphabet], "source": path}

    return store_entry(folder, key, fill)


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)


def text_dataset(text: str, name: str, label: str, val_fraction: float) -> Dataset:
    """Character-level text: every Unicode code point is one token."""
    codes = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
    alphabet, ids = np.unique(codes, return_inverse=True)
    vocab = [chr(c) for c in alphabet]
    split = split_point(len(ids), val_fraction, label)
    return Dataset(
        kind="text", name=name, description=f"text from {label} ({len(ids)} characters, {len(vocab)} distinct)",
        streams=[ids.astype(np.int32)], splits=[split], vocab=vocab, source={"type": "file", "path": label},
        val_fraction=val_fraction,
    )
