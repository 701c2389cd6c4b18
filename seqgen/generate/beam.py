"""Beam search: the most likely continuations of a prime, instead of sampled ones.

Sampling picks each character on its own; beam search keeps the `beam` most likely partial
texts (by the sum of their characters' log-probabilities), extends each by every character, and
keeps the best `beam` of those, one network step per character for all of them at once (the
`beam` hypotheses are the rows of one batched state). A hypothesis that makes the stop string is
finished; finished ones of different lengths are ranked by their score divided by
length ** `length_penalty` (1: the mean log-probability per character; 0: the plain sum, which
favours short texts). No random numbers are involved: the same prime gives the same text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from .generator import Generator, joined_snapshots, snapshot_rows
from .sampling import penalise, stop_matcher


@dataclass
class Hypothesis:
    tokens: np.ndarray
    score: float  # the sum of the log-probabilities of its tokens
    ranking: float  # score / len ** length_penalty
    snapshot: dict  # the generator's state after its last token, for one row

    @property
    def stopped(self) -> bool:
        return self.snapshot.get("stopped", False)


def beam_search(
    gen: Generator, length: int, beam: int, results: int = 1, stop: str | None = None, length_penalty: float = 1.0
) -> list[Hypothesis]:
    """The `results` best continuations of what `gen` (a text generator with one stream, primed)
    was fed, best first; `stop` ends a hypothesis once its text has made it. Afterwards `gen` holds
    the state after each returned continuation, one row each, so generation can go on from them."""
    gen.data_kind.check("beam search")
    if gen.batch_size != 1 or gen.last_output is None:
        raise UsageError("beam search starts from one primed stream")
    if beam < 1 or not 1 <= results <= beam:
        raise UsageError(
            f"`beam` must be >= 1 and the number of results between 1 and `beam`, got {beam} and {results}"
        )
    vocab = gen.config.vocab_size
    gen.fork(beam)
    # Only the first row is a live hypothesis at the start: the others are copies of it, and
    # would each make the same extensions.
    scores = np.full(beam, -np.inf)
    scores[0] = 0.0
    history = np.zeros((beam, 0), dtype=np.int64)
    matcher = stop_matcher(stop, gen.tokenizer, beam) if stop else None
    finished: list[Hypothesis] = []
    for t in range(1, length + 1):
        candidates = scores[:, None] + _log_probabilities(gen)
        best = _top(candidates.reshape(-1), beam)
        parents, tokens = np.divmod(best, vocab)
        scores = candidates.reshape(-1)[best]
        history = np.concatenate([history[parents], tokens[:, None]], axis=1)
        gen.select(parents)
        made = gen.advance(tokens)
        if matcher is not None:
            matcher.select(parents)
            for row in np.flatnonzero(matcher.update(tokens, made.text) & np.isfinite(scores)):
                finished.append(_finish(gen, row, history, scores, t, length_penalty, stopped=True))
                scores[row] = -np.inf  # its row is free for another hypothesis
        if not np.isfinite(scores).any() or len(finished) >= beam:
            break
    live = [
        _finish(gen, row, history, scores, history.shape[1], length_penalty, stopped=False)
        for row in np.flatnonzero(np.isfinite(scores))
    ]
    ranked = sorted(finished + live, key=lambda h: -h.ranking)[:results]
    gen.restore(joined_snapshots([h.snapshot for h in ranked]))
    return ranked


def _log_probabilities(gen: Generator) -> np.ndarray:
    """Each row's log-probability of every next token, under the temperature and penalties."""
    logits = gen.last_output.astype(np.float64)
    if gen.counts is not None and gen.sampling.penalised:
        logits = penalise(logits, gen.counts, gen.sampling)
    logits = logits / gen.sampling.temperature
    logits -= logits.max(axis=1, keepdims=True)
    logprobs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    allowed = gen.allowed_tokens()
    # Tokens that would make malformed UTF-8 are ruled out, not renormalised away: the others
    # keep the scores they had, so a search where none of them would have won finds what it did.
    return logprobs if allowed is None else np.where(allowed, logprobs, -np.inf)


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """The indices of the k largest values, largest first; ties go to the lower index, so that
    the order does not depend on how a sort breaks them."""
    k = min(k, len(values))
    part = np.argpartition(-values, k - 1)[:k]
    threshold = values[part].min()
    chosen = np.flatnonzero(values >= threshold)  # every tie with the k-th, in index order
    order = np.lexsort((chosen, -values[chosen]))
    return chosen[order][:k]


def _finish(
    gen: Generator, row: int, history: np.ndarray, scores: np.ndarray, steps: int, length_penalty: float, stopped: bool
) -> Hypothesis:
    snap = snapshot_rows(gen.snapshot(), np.array([row]))
    snap["stopped"] = stopped
    tokens = history[row, :steps].copy()
    return Hypothesis(tokens, float(scores[row]), float(scores[row]) / max(1, len(tokens)) ** length_penalty, snap)
