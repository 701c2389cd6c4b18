"""What `seqgen train` says of a text model beyond its numbers: a sample at validations, and at
the end what the loss means and whether more time would help (seqgen/train/meaning.py); and
what `seqgen sample` says when greedy or beam output goes round in a loop (generate/loops.py)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .app import say

# Without --sample-every, a sample at a validation at most this often (training seconds): a
# five-minute run shows ten, a small text validated every few seconds does not bury its lines.
DEFAULT_SAMPLE_SECONDS = 30.0


def sample_schedule(sample_every: Optional[int], quiet: bool) -> tuple[int, float]:
    """(every how many validations, at least how many seconds apart) for `with_samples`."""
    if quiet:
        return 0, 0.0
    if sample_every is None:
        return 1, DEFAULT_SAMPLE_SECONDS
    return sample_every, 0.0


def show_sample(event: dict) -> None:
    say(f"sample at step {event['step']}:", style="bold")
    text = event["text"].rstrip("\n")
    say("\n".join("  " + line for line in text.split("\n")), style="dim")


def meaning_rows(summary, config, result) -> list[tuple[str, str]]:
    """The rows of a text run's training summary that say what its loss means and what more
    time would do (none without a summary)."""
    from ..train.meaning import BANDS, bits

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
    from ..train.meaning import LOOKS, MIN_POINTS, band, bits

    outlook = summary.outlook
    verdict = outlook.verdict
    if verdict == "unknown":
        return (
            f"too few validations to tell ({outlook.points}); --eval-every validates more often"
            if outlook.points < MIN_POINTS
            else "no validation in the first half of the run to measure from"
        )
    if verdict == "overfitting":
        return (
            f"would not help: the validation loss has risen since its best (step {result.best_step}), which the "
            "checkpoint holds; more text, --dropout or a smaller model would"
        )
    gained = f"{bits(outlook.gain):.3f} bits/char gained over the second half of the run"
    if verdict == "levelled":
        return f"would change little: only {gained}; a larger model (--hidden, --layers) or more text would"
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
        return f" (--max-time {2 * config.max_time:g}s)"
    if config.steps:
        return f" (--steps {2 * config.steps})"
    if config.epochs:
        return f" (--epochs {2 * config.epochs:g})"
    return ""


def recording_text(steps, gen, texts: list[list[str]]):
    """Pass the steps on, keeping each live stream's text (`texts`: a list of pieces per stream)."""
    for items, live in steps:
        if not texts:
            texts.extend([] for _ in range(gen.batch_size))
        for k in np.flatnonzero(live):
            texts[k].append(items.text[k])
        yield items, live


def warn_of_loops(texts: list[list[str]], how: str) -> None:
    """After --greedy or --beam output: say so when a sample ends in a loop, and what to try."""
    from ..generate.loops import find_loop

    found = [(k, loop) for k, loop in enumerate(find_loop("".join(pieces)) for pieces in texts) if loop]
    if not found:
        return
    k, loop = found[0]
    which = f"sample {k + 1}" if len(texts) > 1 else "the output"
    also = f" (and {len(found) - 1} more of the samples)" if len(found) > 1 else ""
    choice = "takes the likeliest token every time" if how == "--greedy" else "keeps the likeliest continuations"
    say(
        f"warning: {which}{also} falls into a loop: {loop.cycle!r} repeats {loop.repeats:.0f} times from character "
        f"{loop.start + 1} to the end. {how} {choice}, and a model's likeliest path often leads back where it was; "
        f"penalise what it has just written, with {how}: --frequency-penalty 0.5 (or --repetition-penalty 1.5; "
        f"--penalty-window sets how far back), or sample instead: leave out {how} and give --temperature 0.8 "
        "(--top-p 0.9 keeps out unlikely tokens)",
        style="yellow",
    )
