"""BPE tokens over bytes: the 256 bytes, then pairs of tokens merged into one, in the order
they were learnt from the training text (most frequent pair first) within its word pieces.

The merges are learnt with Hugging Face's `tokenizers` (the optional `bpe` extra: a
well-kept, fast BPE trainer), then applied and undone here, so that a checkpoint stores only
its list of merges and sampling from it never needs the library.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from itertools import chain

import numpy as np

from ...errors import MissingPackage
from ...extras import install_hint
from .base import ByteTokens, pieces, utf8

# The trainer sees byte b as the character chr(256 + b): a token's text then never holds a
# space, so merges written as "a b" (the form of tokenizers before 0.20) split without doubt.
SHIFT = 256
# A pair seen once is not worth a token (as a word piece seen once is not; see words.MIN_COUNT).
MIN_COUNT = 2
# Pieces whose tokens are remembered (a piece recurs: " the" is merged once, not each time).
CACHE_SIZE = 1 << 20
NO_MERGE = (math.inf, -1)


class BpeTokenizer(ByteTokens):
    """Byte-level BPE from its merges: pairs of token ids, in the order they were learnt. Token
    ids 0-255 are the bytes, each merge's result the next id (a result already made keeps its id)."""

    kind = "bpe"

    def __init__(self, merges: list[tuple[int, int]]):
        tokens = [bytes([b]) for b in range(256)]
        index = {token: i for i, token in enumerate(tokens)}
        self.merges = [(int(a), int(b)) for a, b in merges]
        self.ranks: dict[tuple[int, int], tuple[int, int]] = {}  # pair -> (rank, merged id)
        for rank, (a, b) in enumerate(self.merges):
            merged = tokens[a] + tokens[b]
            if merged not in index:
                index[merged] = len(tokens)
                tokens.append(merged)
            self.ranks.setdefault((a, b), (rank, index[merged]))
        super().__init__(tokens)
        self._cache: dict[str, list[int]] = {}

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        self.known(text, unknown)
        return np.fromiter(chain.from_iterable(map(self._ids, pieces(text))), dtype=np.int64)

    def _ids(self, piece: str) -> list[int]:
        ids = self._cache.get(piece)
        if ids is None:
            ids = self._merge(list(utf8(piece)))
            if len(self._cache) < CACHE_SIZE:
                self._cache[piece] = ids
        return ids

    def _merge(self, ids: list[int]) -> list[int]:
        """One piece's bytes as tokens: the earliest learnt merge that applies, everywhere in the
        piece from left to right, then the next, as the trainer merged them."""
        while len(ids) > 1:
            rank, merged = min(self.ranks.get(pair, NO_MERGE) for pair in zip(ids, ids[1:]))
            if merged < 0:
                break
            pair = self.merges[rank]
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                    out.append(merged)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        return ids

    @property
    def learnt(self) -> list[str]:
        """The merged tokens' text, in the order they were learnt."""
        return self.vocab[256:]

    def to_dict(self) -> dict:
        return {"kind": "bpe", "merges": [list(pair) for pair in self.merges]}


def require_tokenizers():
    """Hugging Face's tokenizers, or an error that says how to install it."""
    try:
        import tokenizers
    except ImportError:
        raise MissingPackage(
            "BPE tokens are learnt with Hugging Face's tokenizers, which is not installed: "
            f"{install_hint('bpe')} (or pip install tokenizers)"
        ) from None
    return tokenizers


def learn_bpe(train_text: str, vocab_size: int) -> BpeTokenizer:
    """Merges learnt from the word pieces of `train_text` until there are `vocab_size` tokens
    (bytes included), or until no pair occurs MIN_COUNT times."""
    library = require_tokenizers()
    counts = Counter(pieces(train_text))
    model = library.Tokenizer(library.models.BPE())
    trainer = library.trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=MIN_COUNT,
        show_progress=False,
        initial_alphabet=[chr(SHIFT + b) for b in range(256)],
        special_tokens=[],
    )
    # No pre-tokenizer: each piece is one "word" to the trainer, as often as the text has it.
    model.train_from_iterator(([_shifted(piece)] * count for piece, count in counts.items()), trainer=trainer)
    index = {bytes([b]): b for b in range(256)}
    merges = []
    for pair in json.loads(model.to_str())["model"]["merges"]:
        first, second = (_unshifted(part) for part in (pair if isinstance(pair, list) else pair.split(" ")))
        merges.append((index[first], index[second]))
        index.setdefault(first + second, len(index))
    return BpeTokenizer(merges)


def _shifted(piece: str) -> str:
    return "".join(chr(SHIFT + b) for b in utf8(piece))


def _unshifted(token: str) -> bytes:
    return bytes(ord(ch) - SHIFT for ch in token)
