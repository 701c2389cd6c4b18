"""Word tokens: the most frequent word pieces of the training text (a word with its leading
space, a number, a run of punctuation or of whitespace; see base.PIECES), and every character of
the text besides. A piece outside the vocabulary is spelt with its characters, so any text over
the training alphabet reads back exactly."""

from __future__ import annotations

from collections import Counter
from itertools import chain
from typing import Iterable

import numpy as np

from .base import TextTokens, pieces

# A piece seen once in the training text would get an embedding trained on one example; it is
# spelt with its characters instead.
MIN_COUNT = 2


class WordTokenizer(TextTokens):
    """Characters first (ids in code point order, as a char model's), then pieces by frequency."""

    kind = "word"

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        return np.fromiter(chain.from_iterable(map(self._ids, pieces(self.known(text, unknown)))), dtype=np.int64)

    def _ids(self, piece: str) -> Iterable[int]:
        found = self.index.get(piece)
        return (found,) if found is not None else [self.index[ch] for ch in piece]

    @property
    def learnt(self) -> list[str]:
        """The pieces beyond single characters, most frequent first."""
        return [piece for piece in self.vocab if len(piece) > 1]

    def to_dict(self) -> dict:
        return {"kind": "word", "vocab": self.vocab}


def learn_words(train_text: str, alphabet: Iterable[str], vocab_size: int) -> WordTokenizer:
    """The characters of `alphabet` (all of them, whatever `vocab_size` says) and the most
    frequent pieces of `train_text` seen at least MIN_COUNT times, `vocab_size` tokens in all."""
    characters = sorted(set(alphabet))
    room = max(0, vocab_size - len(characters))
    counts = Counter(pieces(train_text))
    # most_common keeps first-seen order among equal counts: the same text gives the same vocabulary.
    frequent = [piece for piece, count in counts.most_common() if len(piece) > 1 and count >= MIN_COUNT]
    return WordTokenizer(characters + frequent[:room])
