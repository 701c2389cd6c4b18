"""Tokenizers: text to token ids and back, the one interface the rest of seqgen uses for text.

Four tokenizations (`TOKENIZATIONS`):
- `char` (the default, and every checkpoint's before the others): one token per Unicode
  character of the training text (chars.py);
- `byte`: one token per UTF-8 byte, 256 in all, any text (chars.py);
- `word`: the most frequent word pieces of the training part and every character (words.py);
- `bpe`: byte-level BPE merges learnt from the training part (bpe.py).
`learn_tokenizer` makes one from a training text, `tokenizer_for` rebuilds the one a
checkpoint's data section describes; base.py says what they all have.
"""

from __future__ import annotations

from ...errors import UsageError
from .base import PIECES, UNKNOWN_POLICIES, Detokenizer, Tokenizer, pieces
from .bpe import BpeTokenizer, learn_bpe, require_tokenizers
from .chars import ByteTokenizer, CharTokenizer
from .words import WordTokenizer, learn_words

TOKENIZATIONS = ("char", "byte", "word", "bpe")
# Vocabulary sizes when none is given (see docs/reference.md for the reasoning): on
# tinyshakespeare word pieces average 3.2 characters per token at 8000 (2.3 at 2048), BPE 2.4 at
# 1024; either way the output layer's work per character stays near a char model's.
DEFAULT_VOCAB_SIZE = {"word": 8000, "bpe": 1024}
MIN_BPE_VOCAB = 257  # the 256 bytes and at least one merge


def check_tokens(tokens: str, vocab_size: int | None) -> None:
    """Fail on a tokenization or vocabulary size that cannot be, before any data is read."""
    if tokens not in TOKENIZATIONS:
        raise UsageError(f"`tokens` must be one of {', '.join(TOKENIZATIONS)}, got {tokens!r}")
    if vocab_size is None:
        return
    if tokens not in DEFAULT_VOCAB_SIZE:
        raise UsageError(
            f"`vocab_size` applies to word and bpe tokens; {tokens} tokens have a vocabulary of "
            f"{'256 bytes' if tokens == 'byte' else 'the characters of the text'}"
        )
    least = MIN_BPE_VOCAB if tokens == "bpe" else 1
    if vocab_size < least:
        reason = " (the 256 bytes and at least one merge)" if tokens == "bpe" else ""
        raise UsageError(f"`vocab_size` must be >= {least} for {tokens} tokens{reason}, got {vocab_size}")


def learn_tokenizer(tokens: str, train_text: str, alphabet_text: str, vocab_size: int | None = None) -> Tokenizer:
    """A tokenizer of kind `tokens` for a corpus: word pieces and BPE merges are learnt from
    `train_text` (the training part), while the characters a char or word model knows come from
    `alphabet_text` (the whole text, as a char model's always have)."""
    check_tokens(tokens, vocab_size)
    size = vocab_size or DEFAULT_VOCAB_SIZE.get(tokens)
    if tokens == "byte":
        return ByteTokenizer()
    if tokens == "word":
        return learn_words(train_text, alphabet_text, size)
    if tokens == "bpe":
        return learn_bpe(train_text, size)
    return CharTokenizer(sorted(set(alphabet_text)))


def stored_tokenizer(data: dict) -> Tokenizer | None:
    """`tokenizer_for` a checkpoint's `data` section that holds tokens; None for one of values."""
    return None if data.get("vocab") is None and data.get("tokenizer") is None else tokenizer_for(data)


def tokenizer_for(data: dict) -> Tokenizer:
    """The tokenizer a checkpoint's `data` section describes: its `tokenizer`, or for a checkpoint
    without one (every checkpoint before there were other tokenizations) the characters of `vocab`."""
    stored = data.get("tokenizer")
    if stored is None:
        return CharTokenizer(data["vocab"])
    kind = stored.get("kind")
    if kind == "byte":
        return ByteTokenizer()
    if kind == "word":
        return WordTokenizer(stored["vocab"])
    if kind == "bpe":
        return BpeTokenizer(stored["merges"])
    raise UsageError(f"unknown tokenization {kind!r}: a newer seqgen wrote this; upgrade seqgen")


def tokenization(data: dict) -> str:
    """The kind of tokens a checkpoint's `data` section describes (char when it names none)."""
    return (data.get("tokenizer") or {}).get("kind", "char")


__all__ = [
    "BpeTokenizer",
    "ByteTokenizer",
    "CharTokenizer",
    "DEFAULT_VOCAB_SIZE",
    "Detokenizer",
    "PIECES",
    "TOKENIZATIONS",
    "Tokenizer",
    "UNKNOWN_POLICIES",
    "WordTokenizer",
    "check_tokens",
    "learn_tokenizer",
    "pieces",
    "require_tokenizers",
    "tokenization",
    "tokenizer_for",
    "stored_tokenizer",
]
