"""One token per Unicode character (`char`, seqgen's first and default tokenization), or per
UTF-8 byte (`byte`: 256 tokens that read any text, at about one token per character in English
and two to four in most other scripts)."""

from __future__ import annotations

import numpy as np

from .base import ByteTokens, TextTokens, utf8


class CharTokenizer(TextTokens):
    """One token per Unicode character, over the characters the training text holds; its
    vocabulary is what a checkpoint stores as `data.vocab`."""

    kind = "char"

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        return np.array([self.index[ch] for ch in self.known(text, unknown)], dtype=np.int64)

    def to_dict(self) -> None:
        return None  # a checkpoint keeps the characters in `data.vocab`, as it always has


class ByteTokenizer(ByteTokens):
    """One token per byte of the text's UTF-8: token id = byte value."""

    kind = "byte"

    def __init__(self):
        super().__init__([bytes([b]) for b in range(256)])

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        self.known(text, unknown)
        return np.frombuffer(utf8(text), dtype=np.uint8).astype(np.int64)

    def to_dict(self) -> dict:
        return {"kind": "byte"}
