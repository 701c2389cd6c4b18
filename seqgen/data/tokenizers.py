"""Tokenizers: text to token ids and back, the one interface the rest of seqgen uses for text.

A tokenizer has `vocab` (the text of each token id, in order), `encode(text) -> ids` and
`decode(ids) -> text`. Today's is `CharTokenizer`, one token per Unicode character of the
training text; its vocabulary is what a checkpoint stores as `data.vocab`. A new kind (bytes,
words, subwords) is another class here with the same three members, chosen by `tokenizer_for`.
"""

from __future__ import annotations

from typing import Iterable, Protocol

import numpy as np

from ..errors import DataError, UsageError
from .series import looks_like_numbers

# What to do with characters a text model has never seen (in a prime): stop with an error naming
# them, leave them out, or put a stand-in the model knows in their place (see CharTokenizer.filler).
UNKNOWN_POLICIES = ("error", "skip", "replace")


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

    @property
    def filler(self) -> str:
        """What `unknown` "replace" puts for an unseen character: a space, the most common
        character of nearly any text, else a newline, else the vocabulary's first character."""
        return next((ch for ch in (" ", "\n") if ch in self.index), self.vocab[0])

    def known(self, text: str, unknown: str = "error") -> str:
        """`text` as the model can read it: unchanged when every character is in the vocabulary;
        else by `unknown`: "error" (raise, naming them), "skip" (leave them out) or "replace" (`filler`)."""
        if unknown not in UNKNOWN_POLICIES:
            raise UsageError(f"`unknown` must be one of {', '.join(UNKNOWN_POLICIES)}, got {unknown!r}")
        missing = self.unknown(text)
        if not missing:
            return text
        if unknown == "error":
            shown = ", ".join(repr(ch) for ch in missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
            hint = ("this model continues text, not numbers" if looks_like_numbers(text)
                    else f"`unknown` skip leaves them out, `unknown` replace puts {self.filler!r} instead")
            raise DataError(f"the prime has characters the model has never seen: {shown}; {hint}")
        stand_in = self.filler if unknown == "replace" else ""
        return "".join(ch if ch in self.index else stand_in for ch in text)

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        return np.array([self.index[ch] for ch in self.known(text, unknown)], dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.vocab[int(t)] for t in np.atleast_1d(ids))


def tokenizer_for(data: dict) -> CharTokenizer:
    """The tokenizer a checkpoint's `data` section describes (every checkpoint so far: characters)."""
    return CharTokenizer(data["vocab"])
