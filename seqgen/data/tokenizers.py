"""Tokenizers: text to token ids and back, the one interface the rest of seqgen uses for text.

A tokenizer has `vocab` (the text of each token id, in order), `encode(text) -> ids` and
`decode(ids) -> text`. Today's is `CharTokenizer`, one token per Unicode character of the
training text; its vocabulary is what a checkpoint stores as `data.vocab`. A new kind (bytes,
words, subwords) is another class here with the same three members, chosen by `tokenizer_for`.
"""

from __future__ import annotations

from typing import Iterable, Protocol

import numpy as np

from ..errors import DataError
from .series import looks_like_numbers


class Tokenizer(Protocol):
    vocab: list[str]

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids: Iterable[int]) -> str: ...


class CharTokenizer:
    """One token per Unicode character, over the characters the training text holds."""

    def __init__(self, vocab: list[str]):
        self.vocab = list(vocab)
        self.index = {ch: i for i, ch in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    def unknown(self, text: str) -> list[str]:
        """The characters of `text` this vocabulary lacks, sorted."""
        return sorted({ch for ch in text if ch not in self.index})

    def encode(self, text: str) -> np.ndarray:
        unknown = self.unknown(text)
        if unknown:
            shown = ", ".join(repr(ch) for ch in unknown[:20]) + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
            hint = "; this model continues text, not numbers" if looks_like_numbers(text) else ""
            raise DataError(f"the prime has characters the model has never seen: {shown}{hint}")
        return np.array([self.index[ch] for ch in text], dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.vocab[int(t)] for t in np.atleast_1d(ids))


def tokenizer_for(data: dict) -> CharTokenizer:
    """The tokenizer a checkpoint's `data` section describes (every checkpoint so far: characters)."""
    return CharTokenizer(data["vocab"])
