"""What every tokenizer has, and the two kinds of token: pieces of text (char, word) and byte
strings (byte, bpe).

A tokenizer has `kind`, `vocab` (the text of each token id, in order), `encode(text) -> ids`,
`decode(ids) -> text`, `unknown(text)` / `known(text, unknown)` (the characters it cannot read,
and what to do with them), `characters(ids)` (how many characters the ids spell: what a loss is
divided by to be per character), `detokenizer(batch)` (ids to text as they are generated) and
`to_dict()` (what a checkpoint stores). The rest of seqgen goes through these alone.
"""

from __future__ import annotations

import codecs
import re
from typing import Iterable, Iterator, Protocol

import numpy as np

from ...errors import DataError, UsageError
from ..series import looks_like_numbers

# What to do with characters a text model has never seen (in a prime): stop with an error naming
# them, leave them out, or put a stand-in the model knows in their place (see TextTokens.filler).
UNKNOWN_POLICIES = ("error", "skip", "replace")


class Detokenizer(Protocol):
    def add(self, ids: np.ndarray) -> list[str]: ...

    def end(self) -> list[str]: ...

    def pending(self) -> list[bytes]: ...

    def set_pending(self, pending: list[bytes]) -> None: ...


class Tokenizer(Protocol):
    kind: str
    vocab: list[str]

    def __len__(self) -> int: ...

    def encode(self, text: str, unknown: str = "error") -> np.ndarray: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def unknown(self, text: str) -> list[str]: ...

    def known(self, text: str, unknown: str = "error") -> str: ...

    def characters(self, ids: np.ndarray) -> int: ...

    def detokenizer(self, batch_size: int) -> Detokenizer: ...

    def to_dict(self) -> dict | None: ...


def check_unknown(unknown: str) -> None:
    if unknown not in UNKNOWN_POLICIES:
        raise UsageError(f"`unknown` must be one of {', '.join(UNKNOWN_POLICIES)}, got {unknown!r}")


class TextTokens:
    """Tokens that are pieces of text, every character of the training text among them (char,
    word): a text can be read when each of its characters is one of those."""

    def __init__(self, vocab: list[str]):
        self.vocab = list(vocab)
        self.index = {piece: i for i, piece in enumerate(self.vocab)}
        self.alphabet = {piece for piece in self.vocab if len(piece) == 1}
        self._lengths = np.array([len(piece) for piece in self.vocab], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.vocab)

    def unknown(self, text: str) -> list[str]:
        """The characters of `text` this vocabulary lacks, sorted."""
        return sorted(set(text) - self.alphabet)

    @property
    def filler(self) -> str:
        """What `unknown` "replace" puts for an unseen character: a space, the most common
        character of nearly any text, else a newline, else the vocabulary's first character."""
        return next((ch for ch in (" ", "\n") if ch in self.alphabet), self.vocab[0])

    def known(self, text: str, unknown: str = "error") -> str:
        """`text` as the model can read it: unchanged when every character is in the vocabulary;
        else by `unknown`: "error" (raise, naming them), "skip" (leave them out) or "replace" (`filler`)."""
        check_unknown(unknown)
        missing = self.unknown(text)
        if not missing:
            return text
        if unknown == "error":
            shown = ", ".join(repr(ch) for ch in missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
            hint = ("this model continues text, not numbers" if looks_like_numbers(text)
                    else f"`unknown` skip leaves them out, `unknown` replace puts {self.filler!r} instead")
            raise DataError(f"the prime has characters the model has never seen: {shown}; {hint}")
        stand_in = self.filler if unknown == "replace" else ""
        return "".join(ch if ch in self.alphabet else stand_in for ch in text)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.vocab[int(t)] for t in np.atleast_1d(ids))

    def characters(self, ids: np.ndarray) -> int:
        return int(self._lengths[np.asarray(ids, dtype=np.int64)].sum())

    def detokenizer(self, batch_size: int) -> Detokenizer:
        return PieceText(self.vocab, batch_size)


class ByteTokens:
    """Tokens that are byte strings, every byte among them (byte, bpe): any text can be read, and
    a token may end inside a character (its text comes with the token that completes it)."""

    def __init__(self, pieces: list[bytes]):
        self.pieces = pieces
        # For show (seqgen info, a library user's `vocab`): a token that is part of a character is U+FFFD.
        self.vocab = [piece.decode("utf-8", errors="replace") for piece in pieces]
        # The characters that start in each token: its bytes that are not continuation bytes.
        self._starts = np.array([sum((b & 0xC0) != 0x80 for b in piece) for piece in pieces], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.pieces)

    def unknown(self, text: str) -> list[str]:
        return []

    def known(self, text: str, unknown: str = "error") -> str:
        check_unknown(unknown)
        return text

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(self.pieces[int(t)] for t in np.atleast_1d(ids)).decode("utf-8", errors="replace")

    def characters(self, ids: np.ndarray) -> int:
        return int(self._starts[np.asarray(ids, dtype=np.int64)].sum())

    def detokenizer(self, batch_size: int) -> Detokenizer:
        return ByteText(self.pieces, batch_size)


def utf8(text: str) -> bytes:
    # A lone surrogate (possible in a Python string, never in a decoded file) must not crash
    # encoding; its bytes decode back as U+FFFD.
    return text.encode("utf-8", errors="surrogatepass")


class PieceText:
    """The text of each stream's tokens as they come, when every token is whole text."""

    def __init__(self, vocab: list[str], batch_size: int):
        self.vocab, self.batch_size = vocab, batch_size

    def add(self, ids: np.ndarray) -> list[str]:
        """The text each stream's new token adds."""
        return [self.vocab[t] for t in ids.tolist()]

    def end(self) -> list[str]:
        """What is left at the end of each stream: nothing, every token being whole."""
        return [""] * self.batch_size

    def pending(self) -> list[bytes]:
        return [b""] * self.batch_size

    def set_pending(self, pending: list[bytes]) -> None:
        pass


class ByteText:
    """The text of each stream's byte tokens as they come: a character's first bytes are held
    back until its last one arrives, and bytes that are not UTF-8 become U+FFFD, never an error."""

    def __init__(self, pieces: list[bytes], batch_size: int):
        self.pieces = pieces
        self.decoders = [codecs.getincrementaldecoder("utf-8")(errors="replace") for _ in range(batch_size)]

    def add(self, ids: np.ndarray) -> list[str]:
        return [d.decode(self.pieces[t]) for d, t in zip(self.decoders, ids.tolist())]

    def end(self) -> list[str]:
        """A character left incomplete at the end of a stream, as U+FFFD ("" where there is none)."""
        return [d.decode(b"", final=True) for d in self.decoders]

    def pending(self) -> list[bytes]:
        """Each stream's bytes of a character not yet complete (a state file carries them on)."""
        return [d.getstate()[0] for d in self.decoders]

    def set_pending(self, pending: list[bytes]) -> None:
        for decoder, held in zip(self.decoders, pending):
            decoder.setstate((bytes(held), 0))


# How word and BPE tokens split a text before anything else: a word with the space before it,
# a number, a run of punctuation (with its space), or a run of whitespace (leaving the last space
# of a run to the word after it). Concatenated, the pieces are the text again, character for
# character; the leading space makes " the" one piece, where a piece per space would spend half
# the tokens of English on spaces.
PIECES = re.compile(r" ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+?(?= \S)|\s+")


def pieces(text: str) -> Iterator[str]:
    """`text` as word pieces (see PIECES)."""
    return (m.group() for m in PIECES.finditer(text))
