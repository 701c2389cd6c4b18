"""Spotting generated text that has fallen into a loop: "the the the", "the of the of".

Greedy choice and beam search take the likeliest continuation, and a recurrent model's likeliest
continuation often leads back to a state it has been in: from there the text repeats the same
cycle to the end. A loop is a stretch at the end of the text that repeats one cycle of
characters: the end of the text is periodic with that period for at least MIN_REPEATS cycles and
MIN_CHARS characters. Sampled text almost never does this for long; text meant to repeat (a row
of dashes under a heading) rarely lasts MIN_CHARS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A cycle repeated at least this many times, over at least this many characters, at the end.
MIN_REPEATS = 3
MIN_CHARS = 40
# Cycles up to this many characters are looked for (a line or two of text).
MAX_PERIOD = 200


@dataclass
class Loop:
    cycle: str  # one turn of the loop, as it first appears
    start: int  # the character where the loop begins
    repeats: float  # how many times the cycle comes, to the end of the text


def find_loop(
    text: str, min_repeats: int = MIN_REPEATS, min_chars: int = MIN_CHARS, max_period: int = MAX_PERIOD
) -> Loop | None:
    """The loop `text` ends in (the shortest cycle that makes one), or None."""
    codes = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
    n = len(codes)
    for period in range(1, min(max_period, n // min_repeats) + 1):
        differs = np.flatnonzero(codes[:-period] != codes[period:])
        # The text from `start` on repeats with this period: each character equals the one `period` after it.
        start = int(differs[-1]) + 1 if len(differs) else 0
        span = n - start
        if span >= max(min_repeats * period, min_chars):
            return Loop(text[start : start + period], start, span / period)
    return None


def recording_text(steps, batch_size: int, texts: list[list[str]]):
    """Pass the steps on, keeping each live stream's text (`texts`: a list of pieces per stream)."""
    for items, live in steps:
        if not texts:
            texts.extend([] for _ in range(batch_size))
        for k in np.flatnonzero(live):
            texts[k].append(items.text[k])
        yield items, live


def loop_warning(texts: list[list[str]], how: str, word=str) -> str | None:
    """After greedy or beam output (`how`: "greedy" or "beam"): what to say when a sample ends in a
    loop, and what to try (None when none does); `word` says the advice's `parameters` as flags."""
    found = [(k, loop) for k, loop in enumerate(find_loop("".join(pieces)) for pieces in texts) if loop]
    if not found:
        return None
    k, loop = found[0]
    which = f"sample {k + 1}" if len(texts) > 1 else "the output"
    also = f" (and {len(found) - 1} more of the samples)" if len(found) > 1 else ""
    choice = "takes the likeliest token every time" if how == "greedy" else "keeps the likeliest continuations"
    advice = word(
        f"`{how}` {choice}, and a model's likeliest path often leads back where it was; penalise what it has just "
        f"written, with `{how}`: `frequency_penalty` 0.5 (or `repetition_penalty` 1.5; `penalty_window` sets how "
        f"far back), or sample instead: leave out `{how}` and give `temperature` 0.8 (`top_p` 0.9 keeps out "
        "unlikely tokens)"
    )
    return (
        f"warning: {which}{also} falls into a loop: {loop.cycle!r} repeats {loop.repeats:.0f} times from character "
        f"{loop.start + 1} to the end. {advice}"
    )
