"""Text data: a corpus as token ids, from memory or through the cache.

Characters (the default) stream the file in two passes and never hold it whole; the other
tokenizations (bytes, words, BPE) read the text into memory, learn their tokens from its
training part and encode it there.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import DataError
from .cache import store_entry
from .dataset import Dataset, split_point
from .reading import decode_text, decoded_chunks, read_file
from .tokenizers import Tokenizer, learn_tokenizer, tokenizer_for

# Every code point Unicode has: the size of the tables that map characters to token ids.
CODE_POINTS = 0x110000


def cache_text(path: str, encoding: str, folder: Path, key: str) -> tuple[np.ndarray, dict]:
    """Two passes over the file: find the alphabet, then write every character's token id."""
    seen = np.zeros(CODE_POINTS, dtype=bool)
    for text in decoded_chunks(path, encoding):
        seen[np.unique(_code_points(text))] = True
    alphabet = np.flatnonzero(seen)
    dtype = id_dtype(len(alphabet))
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


def id_dtype(vocab_size: int) -> type:
    """The smallest unsigned integer type that holds every token id."""
    return np.uint8 if vocab_size <= 1 << 8 else np.uint16 if vocab_size <= 1 << 16 else np.uint32


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)


def text_dataset(
    text: str,
    name: str,
    label: str,
    val_fraction: float,
    tokens: str = "char",
    vocab_size: int | None = None,
    tokenizer: Tokenizer | None = None,
) -> Dataset:
    """Text as `tokens` (see tokenizers: every Unicode code point is one token by default), or
    as an existing `tokenizer` reads it."""
    if tokens != "char" or tokenizer is not None:
        ids, split, tokenizer = tokenized(text, label, val_fraction, tokens, vocab_size, tokenizer)
        return tokens_dataset(ids, split, tokenizer, len(text), name, label, val_fraction)
    codes = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
    alphabet, ids = np.unique(codes, return_inverse=True)
    vocab = [chr(c) for c in alphabet]
    split = split_point(len(ids), val_fraction, label)
    return Dataset(
        kind="text",
        name=name,
        description=f"text from {label} ({len(ids)} characters, {len(vocab)} distinct)",
        streams=[ids.astype(np.int32)],
        splits=[split],
        vocab=vocab,
        source={"type": "file", "path": label},
        val_fraction=val_fraction,
    )


def tokenized(
    text: str, label: str, val_fraction: float, tokens: str, vocab_size: int | None, tokenizer: Tokenizer | None = None
) -> tuple[np.ndarray, int, Tokenizer]:
    """The text as token ids, where its validation part begins, and the tokenizer (learnt from
    the training part, unless one is given). The split is made in characters, where a char
    model's is, and each part is encoded on its own: the validation text is the same whatever
    the tokenization, so losses per character compare."""
    split = split_point(len(text), val_fraction, label)
    train, val = text[:split], text[split:]
    if tokenizer is None:
        tokenizer = learn_tokenizer(tokens, train, text, vocab_size)
    missing = tokenizer.unknown(text)
    if missing:
        shown = ", ".join(repr(ch) for ch in missing[:20])
        raise DataError(f"{label} has characters the model's vocabulary lacks: {shown}")
    train_ids, val_ids = tokenizer.encode(train), tokenizer.encode(val)
    if len(train_ids) < 2:
        raise DataError(f"{label} is too short ({len(train_ids)} training tokens) to train on")
    return np.concatenate([train_ids, val_ids]).astype(id_dtype(len(tokenizer))), len(train_ids), tokenizer


def cache_tokens(
    path: str,
    encoding: str,
    folder: Path,
    key: str,
    val_fraction: float,
    tokens: str,
    vocab_size: int | None,
    tokenizer: Tokenizer | None = None,
) -> tuple[np.ndarray, dict]:
    """A text file as tokens other than characters, into the cache: read and encoded in memory."""
    text = decode_text(read_file(path), path, encoding)

    def fill(f: BinaryIO) -> dict:
        ids, split, made = tokenized(text, path, val_fraction, tokens, vocab_size, tokenizer)
        f.write(ids.tobytes())
        return {
            "dtype": ids.dtype.str,
            "count": len(ids),
            "split": split,
            "characters": len(text),
            "tokenizer": made.to_dict(),
            "source": path,
        }

    return store_entry(folder, key, fill)


def cached_tokens_dataset(ids: np.ndarray, meta: dict, name: str, label: str, val_fraction: float) -> Dataset:
    return tokens_dataset(
        ids,
        meta["split"],
        tokenizer_for({"tokenizer": meta["tokenizer"]}),
        meta["characters"],
        name,
        label,
        val_fraction,
    )


def tokens_dataset(
    ids: np.ndarray, split: int, tokenizer: Tokenizer, characters: int, name: str, label: str, val_fraction: float
) -> Dataset:
    description = f"text from {label} ({characters} characters, {len(ids)} {tokenizer.kind} tokens of {len(tokenizer)})"
    return Dataset(
        kind="text",
        name=name,
        description=description,
        streams=[ids],
        splits=[split],
        vocab=tokenizer.vocab,
        tokenizer=tokenizer,
        source={"type": "file", "path": label},
        val_fraction=val_fraction,
    )


def tokenizer_key(tokens: str, vocab_size: int | None, tokenizer: Tokenizer | None) -> dict:
    """What a cache entry of tokens depends on besides the file: how its tokens are learnt, or
    (a resumed run's, an evaluated checkpoint's) which tokenizer encodes it."""
    if tokenizer is None:
        return {"tokens": tokens, "vocab_size": vocab_size}
    described = json.dumps(tokenizer.to_dict(), sort_keys=True).encode()
    return {"tokenizer": hashlib.sha256(described).hexdigest()}
