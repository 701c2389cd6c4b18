"""What a text model's validation loss means, and whether more training would help.

A loss in nats per character says little to most people, and the same figure means different
things on different texts. So it is set against three models of the training text itself, each
measured exactly on it (maximum-likelihood counts), whose output anyone can picture:
- the unigram model, which draws each character by how common it is and ignores the text before
  it (its loss is the text's character entropy): a model no better writes a jumble of letters;
- the bigram model, which draws each character given the one before it: a model no better
  writes letters in plausible pairs but hardly any words;
- the word model, which draws whole word pieces (a word with its space, a number, punctuation:
  `pieces`) by how common they are, spelt right but in no order; its loss is the entropy of the
  pieces per character of the text. A model below it predicts more than spelling: which word
  follows which, and its samples read as fluent text (if not always sensible).
Counts taken on the training text flatter these models (words seen once are certain there), so
each line is a strict bar for a validation loss, which is measured on text the model never saw.
On tinyshakespeare they are 4.77, 3.54 and 2.36 bits per character; its five-minute models
reach about 2.05.

Whether more time would help is read off the run's own validation curve: such curves fall
roughly in proportion to the logarithm of the training time, so what the second half of a run
gained is about what doubling its length would gain, and likely less (returns shrink, and part
of that half's gain came from the learning rate decaying at the end, which a longer run also has).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..data.tokenizers import CharTokenizer, pieces

# The training text's first this many tokens are enough to measure the three models (counts of
# pairs of characters settle long before), and keep the summary instant on a large corpus.
MEASURED_TOKENS = 2_000_000
# Gains per doubling of the training time below this (nats per character) are within the
# wobble of a validation loss between evaluations: the curve has levelled off.
LEVELLED = 0.01
# A last validation loss this factor above the best: the run is past its best (overfitting).
PAST_BEST = 1.02
# At least this many validations before a curve says anything.
MIN_POINTS = 2

# The bands, from worst to best: (name, what its samples look like).
BANDS = {
    "unigram": "no better than a unigram model (characters drawn by how common they are): a jumble of letters",
    "letters": "between a unigram and a bigram model: letters in plausible pairs, hardly any words yet",
    "words": "better than a bigram model: words forming, common ones right, many made-up ones",
    "fluent": "better than a model that knows every word of the text and how common it is: words spelt right "
    "and in plausible order, fluent-looking text",
}
# Each band in a few words.
LOOKS = {
    "unigram": "a jumble of letters",
    "letters": "letters in plausible pairs",
    "words": "words forming",
    "fluent": "fluent-looking text",
}


@dataclass
class Yardsticks:
    """The losses (nats per character) of three models of the training text (see the module's doc)."""

    unigram: float
    bigram: float
    words: float


@dataclass
class Outlook:
    """What the validation curve says about training longer. `gain`: how much the loss (nats per
    character) fell over the second half of the run's time; `per_minute`: that gain per minute;
    `past_best`: the last validation is clearly above the best (overfitting)."""

    points: int
    gain: float | None = None
    per_minute: float | None = None
    past_best: bool = False

    @property
    def verdict(self) -> str:
        """ "unknown" (too few validations), "overfitting", "levelled" or "improving"."""
        if self.past_best:
            return "overfitting"
        if self.gain is None:
            return "unknown"
        return "levelled" if self.gain < LEVELLED else "improving"


@dataclass
class TextSummary:
    loss: float  # the best validation loss, nats per character
    yardsticks: Yardsticks
    outlook: Outlook

    @property
    def band(self) -> str:
        return band(self.loss, self.yardsticks)

    @property
    def likely_after_doubling(self) -> float | None:
        """The loss twice the training time would likely reach at best (nats per character)."""
        if self.outlook.verdict != "improving":
            return None
        return self.loss - self.outlook.gain


def entropy(counts: Iterable[int]) -> float:
    """The entropy in nats of the distribution that counts describe."""
    c = np.fromiter(counts, dtype=np.float64)
    p = c / c.sum()
    return float(-(p * np.log(p)).sum())


def yardsticks(text: str) -> Yardsticks:
    """The unigram, bigram and word models' losses on `text`, in nats per character."""
    codes = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32).astype(np.uint64)
    counts = lambda values: np.unique(values, return_counts=True)[1]
    unigram = entropy(counts(codes))
    # H(next | previous) = H(pairs) - H(previous); a code point fits in 21 bits.
    bigram = entropy(counts(codes[:-1] << np.uint64(21) | codes[1:])) - entropy(counts(codes[:-1]))
    words = Counter(pieces(text))
    per_piece = entropy(words.values())
    return Yardsticks(unigram, bigram, per_piece * sum(words.values()) / max(len(text), 1))


def band(loss: float, sticks: Yardsticks) -> str:
    """The key in BANDS of a validation loss (nats per character) against the yardsticks."""
    if loss >= sticks.unigram:
        return "unigram"
    if loss >= sticks.bigram:
        return "letters"
    # A text whose pieces are long and rare (no spaces between words) can make the word model
    # worse than the bigram one; then nothing is below the words line but what is below both.
    if loss >= min(sticks.words, sticks.bigram):
        return "words"
    return "fluent"


def outlook(curve: list[tuple[float, float]], best: float, start: float | None = None) -> Outlook:
    """What a validation curve, (training seconds, loss per character) in order, says about
    training longer; `best` is the run's best loss, `start` its loss before any training, for a
    run whose first validation came in its second half."""
    if len(curve) < MIN_POINTS:
        return Outlook(len(curve))
    times = np.array([t for t, _ in curve])
    losses = np.array([v for _, v in curve])
    past = losses[-1] > PAST_BEST * best and int(np.argmin(losses)) < len(losses) - 1
    end = times[-1]
    if start is not None and times[0] > 0:
        times, losses = np.concatenate([[0.0], times]), np.concatenate([[start], losses])
    if end <= 0 or times[0] > end / 2:
        return Outlook(len(curve), past_best=past)  # no validation in the first half to measure from
    halfway = float(np.interp(end / 2, times, losses))
    gain = max(halfway - best, 0.0)
    return Outlook(len(curve), gain, gain / (end / 2 / 60), past)


def read_curve(metrics: Path, per_char: float = 1.0) -> list[tuple[float, float]]:
    """(training seconds, validation loss per character) of each validation a run's metrics log
    holds; `per_char`: the run's tokens per character, which turns a loss per token into one per character."""
    curve = []
    try:
        lines = metrics.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
            curve.append((float(record["elapsed"]), float(record["val_loss"]) * per_char))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash is not a measurement
    return curve


def training_text(data, limit: int = MEASURED_TOKENS) -> str:
    """The start of a text dataset's training part, as text."""
    tokenizer = data.tokenizer or CharTokenizer(data.vocab)
    parts, left = [], limit
    for stream in data.train_streams:
        ids = np.asarray(stream[:left])
        parts.append(tokenizer.decode(ids))
        left -= len(ids)
        if left <= 0:
            break
    return "".join(parts)


def summarise(trainer) -> TextSummary | None:
    """A text run's summary: its best validation loss against the yardsticks of its training
    text, and its curve's outlook (None for a series, or before any validation)."""
    from .trainer import metrics_log_path

    if not trainer.head.in_nats or trainer.best_val is None:
        return None
    per_char = trainer.tokens_per_char
    best = trainer.best_val * per_char
    curve = read_curve(metrics_log_path(trainer.out), per_char)
    # A network starts out guessing every token about alike (small random logits): log(vocabulary)
    # nats per token is where its curve begins, before the first validation.
    start = math.log(trainer.model_config.vocab_size) * per_char
    return TextSummary(best, yardsticks(training_text(trainer.data)), outlook(curve, best, start))


def bits(nats: float) -> float:
    return nats / math.log(2)


def meaning_rows(summary, config, result) -> list[tuple[str, str]]:
    """The rows of a text run's training summary that say what its loss means and what more
    time would do (none without a summary); options are named as parameters, in backquotes."""
    if summary is None:
        return []
    sticks = summary.yardsticks
    return [
        (
            "what it means",
            f"{bits(summary.loss):.2f} bits/char is {BANDS[summary.band]} (on this text a unigram "
            f"model scores {bits(sticks.unigram):.2f}, a bigram model {bits(sticks.bigram):.2f}, a model of its "
            f"words {bits(sticks.words):.2f})",
        ),
        ("training longer", _outlook_line(summary, config, result)),
    ]


def _outlook_line(summary, config, result) -> str:
    outlook = summary.outlook
    verdict = outlook.verdict
    if verdict == "unknown":
        return (
            f"too few validations to tell ({outlook.points}); `eval_every` validates more often"
            if outlook.points < MIN_POINTS
            else "no validation in the first half of the run to measure from"
        )
    if verdict == "overfitting":
        return (
            f"would not help: the validation loss has risen since its best (step {result.best_step}), which the "
            "checkpoint holds; more text, `dropout` or a smaller model would"
        )
    gained = f"{bits(outlook.gain):.3f} bits/char gained over the second half of the run"
    if verdict == "levelled":
        return f"would change little: only {gained}; a larger model (`hidden`, `layers`) or more text would"
    likely = summary.likely_after_doubling
    where = band(likely, summary.yardsticks)
    then = "" if where == summary.band else f" ({LOOKS[where]})"
    return (
        f"would likely help: {gained} ({bits(outlook.per_minute):.3f} a minute); a run twice as long"
        f"{_doubled(config, result)} would likely reach about {bits(likely):.2f} bits/char at best{then}"
    )


def _doubled(config, result) -> str:
    """The limit that stopped the run, doubled, as an option to give."""
    if result.limit == "max_time" or (config.max_time and not config.steps and not config.epochs):
        return f" (`max_time` {2 * config.max_time:g}s)"
    if config.steps:
        return f" (`steps` {2 * config.steps})"
    if config.epochs:
        return f" (`epochs` {2 * config.epochs:g})"
    return ""
