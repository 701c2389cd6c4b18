"""The sampling policy: how the next token is chosen from the network's output.

Temperature, top-k and top-p (nucleus) over one row of logits per stream, greedy choice, the
settings' checks, and the stop-string matcher. Pure NumPy, no state of its own: the random
numbers come from the caller's generator, so the same seed gives the same choices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError


# The text-only choices beyond temperature, top-k and top-p, with their defaults (off).
TEXT_CHOICES = {
    "min_p": None,
    "repetition_penalty": 1.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
    "penalty_window": 64,
}


@dataclass
class SampleConfig:
    """How to choose each next item. Text: temperature, top_k, top_p, min_p, greedy, and the
    penalties on tokens seen in the last `penalty_window` (prime included). Series: noise.

    `min_p` keeps the tokens at least that fraction as likely as the most likely one. The
    penalties change the logits of tokens seen in the window before anything else:
    `repetition_penalty` divides a positive logit (multiplies a negative one) by it once,
    `frequency_penalty` subtracts itself once per time the token was seen, `presence_penalty`
    once if it was seen at all."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False
    noise: float = 0.0
    min_p: float | None = None
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    penalty_window: int = 64

    @property
    def penalised(self) -> bool:
        return self.repetition_penalty != 1.0 or self.frequency_penalty != 0.0 or self.presence_penalty != 0.0

    def check(self) -> None:
        if self.min_p is not None and not 0 < self.min_p <= 1:
            raise UsageError(f"`min_p` must be in (0, 1], got {self.min_p}")
        if not self.repetition_penalty > 0:
            raise UsageError(f"`repetition_penalty` must be > 0 (1 is none), got {self.repetition_penalty}")
        if self.penalty_window < 1:
            raise UsageError(f"`penalty_window` must be >= 1, got {self.penalty_window}")
        if not self.temperature > 0:
            raise UsageError(
                f"`temperature` must be > 0, got {self.temperature} (for the most likely character every time, use `greedy`)"
            )
        if self.top_k is not None and self.top_k < 1:
            raise UsageError(f"`top_k` must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise UsageError(f"`top_p` must be in (0, 1], got {self.top_p}")
        if self.noise < 0:
            raise UsageError(f"`noise` must be >= 0, got {self.noise}")


def choose_tokens(
    logits: np.ndarray, config: SampleConfig, rng: np.random.Generator, counts: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pick one token per row of (batch, vocab) logits; `counts` (batch, vocab): how often each
    token was seen in the penalty window, when penalties are on.

    Returns (tokens, weights): `weights` are the unnormalised sampling weights, from which
    `token_probability` gives each choice's probability when someone asks for it. This runs once
    per generated character, so it does nothing that is not needed to choose.
    """
    weights = sampling_weights(logits, config, counts)
    if config.greedy:
        return weights.argmax(axis=1), weights
    return draw_tokens(weights, rng.random(len(weights))), weights


def sampling_weights(logits: np.ndarray, config: SampleConfig, counts: np.ndarray | None = None) -> np.ndarray:
    """The first half of `choose_tokens`: each row's unnormalised sampling weights (for greedy
    choice, the probabilities). Each row's weights depend on that row alone, bit for bit, so rows
    of many generators can be weighed in one call."""
    weights = logits.astype(np.float64)
    if counts is not None and config.penalised:
        weights = penalise(weights, counts, config)
    if config.greedy:
        return _softmax(weights)
    if config.temperature != 1.0:
        weights *= 1.0 / config.temperature
    if config.top_k is not None and config.top_k < weights.shape[1]:
        kth = np.partition(weights, -config.top_k, axis=1)[:, -config.top_k][:, None]
        weights[weights < kth] = -np.inf
    weights -= weights.max(axis=1, keepdims=True)
    np.exp(weights, out=weights)  # the most likely token's weight is now exactly 1
    if config.min_p is not None:
        weights[weights < config.min_p] = 0.0
    if config.top_p is not None and config.top_p < 1:
        weights = _nucleus(weights / weights.sum(axis=1, keepdims=True), config.top_p)
    return weights


def draw_tokens(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The second half: the token of each row at uniform draw `u` (in [0, 1)) of its weights."""
    cdf = np.cumsum(weights, axis=1)
    u = u * cdf[:, -1]
    if len(weights) == 1:  # the common case: one binary search instead of a full comparison
        return np.array([min(int(np.searchsorted(cdf[0], u[0], side="right")), weights.shape[1] - 1)])
    return np.minimum((cdf <= u[:, None]).sum(axis=1), weights.shape[1] - 1)


def keep_allowed(
    tokens: np.ndarray,
    weights: np.ndarray,
    allowed: np.ndarray | None,
    logits: np.ndarray,
    greedy: bool,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The tokens of `choose_tokens` kept to `allowed` (batch, vocab), with the weights they were
    chosen by (None: every token is allowed).

    A row whose token is allowed keeps it, so that samples where no disallowed token is ever
    drawn stay what they were, random numbers included. A row that drew a disallowed one draws
    again from its allowed tokens alone, with a fresh random number: drawing until an allowed
    token comes is drawing from the allowed tokens renormalised, the distribution masking
    means. Greedy choice takes the likeliest allowed token. Where the settings (top-k, top-p,
    min-p) leave no allowed token, the likeliest allowed one by the logits is taken."""
    if allowed is None:
        return tokens, weights
    weights = np.where(allowed, weights, 0.0)
    rows = np.flatnonzero(~allowed[np.arange(len(tokens)), tokens])
    if not len(rows):
        return tokens, weights
    tokens = tokens.copy()
    if greedy:
        tokens[rows] = weights[rows].argmax(axis=1)
        return tokens, weights
    tokens[rows] = draw_tokens(weights[rows], rng.random(len(rows)))
    for row in rows[weights[rows].sum(axis=1) == 0]:
        tokens[row] = np.where(allowed[row], logits[row], -np.inf).argmax()
        weights[row, tokens[row]] = 1.0  # the only token left: chosen for certain
    return tokens, weights


def penalise(logits: np.ndarray, counts: np.ndarray, config: SampleConfig) -> np.ndarray:
    """The logits with the repetition, frequency and presence penalties of `config` applied."""
    seen = counts > 0
    if config.repetition_penalty != 1.0:
        factor = np.where(logits > 0, 1.0 / config.repetition_penalty, config.repetition_penalty)
        logits = np.where(seen, logits * factor, logits)
    return logits - config.frequency_penalty * counts - config.presence_penalty * seen


def token_probability(tokens: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The probability each token had when it was chosen, from `choose_tokens`' weights."""
    return weights[np.arange(len(tokens)), tokens] / weights.sum(axis=1)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _nucleus(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Keep the smallest set of most likely tokens whose total probability reaches top_p."""
    order = np.argsort(-probs, axis=1)
    sorted_probs = np.take_along_axis(probs, order, axis=1)
    before = np.cumsum(sorted_probs, axis=1) - sorted_probs
    keep_sorted = before < top_p
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=1)
    return np.where(keep, probs, 0.0)


def stop_matcher(stop: str, tokenizer, batch_size: int) -> StopMatcher | TextStopMatcher:
    """What spots `stop` in each stream: over token ids when every token is one character,
    else over the text the tokens complete (a stop string may then end inside a token)."""
    if tokenizer.kind == "char":
        return StopMatcher(tokenizer.encode(stop), len(tokenizer), batch_size)
    return TextStopMatcher(stop, batch_size)


class StopMatcher:
    """Spots a stop string in each stream as it is generated: a string-matching automaton over
    token ids, so each step costs one table lookup for the whole batch."""

    def __init__(self, stop: np.ndarray, vocab_size: int, batch_size: int):
        m = len(stop)
        # table[j, t]: how much of `stop` is matched after token t, given j matched before (KMP).
        table = np.zeros((m + 1, vocab_size), dtype=np.int64)
        table[0, stop[0]] = 1
        fallback = 0
        for j in range(1, m + 1):
            table[j] = table[fallback]
            if j < m:
                table[j, stop[j]] = j + 1
                fallback = table[fallback, stop[j]]
        self.table, self.length = table, m
        self.matched = np.zeros(batch_size, dtype=np.int64)

    def update(self, tokens: np.ndarray, texts: list[str] | None = None) -> np.ndarray:
        """Advance with one token per stream; True where the stop string has just been completed."""
        self.matched = self.table[self.matched, tokens]
        return self.matched == self.length

    def select(self, rows: np.ndarray) -> None:
        """Keep the given streams' progress, in that order (as `Generator.select` keeps streams)."""
        self.matched = self.matched[rows]


class TextStopMatcher:
    """Spots a stop string in the text each stream's tokens complete, character by character
    (Knuth-Morris-Pratt), for tokens of several characters or of bytes: the stream ends at the
    token that completes the stop string, even where the string ends inside it."""

    def __init__(self, stop: str, batch_size: int):
        self.stop = stop
        # fallback[j]: how much of `stop` is still matched when the character after j matched ones differs.
        self.fallback = [0] * (len(stop) + 1)
        k = 0
        for j in range(1, len(stop)):
            while k and stop[j] != stop[k]:
                k = self.fallback[k]
            k += stop[j] == stop[k]
            self.fallback[j + 1] = k
        self.matched = np.zeros(batch_size, dtype=np.int64)

    def update(self, tokens: np.ndarray, texts: list[str]) -> np.ndarray:
        """Advance with the text each stream's new token completed; True where the stop string
        has just been completed."""
        hits = np.zeros(len(texts), dtype=bool)
        stop, length = self.stop, len(self.stop)
        for k, text in enumerate(texts):
            j = int(self.matched[k])
            for ch in text:
                while j and ch != stop[j]:
                    j = self.fallback[j]
                j += ch == stop[j]
                if j == length:
                    hits[k] = True
                    j = self.fallback[j]
            self.matched[k] = j
        return hits

    def select(self, rows: np.ndarray) -> None:
        """Keep the given streams' progress, in that order (as `Generator.select` keeps streams)."""
        self.matched = self.matched[rows]
