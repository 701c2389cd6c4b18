"""Beam search (`seqgen sample --beam N`): the most likely continuations, checked against an
exhaustive search on a model small enough to try every continuation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from seqgen import Generator, ModelConfig, SampleConfig, SeqModel, UsageError
from seqgen.generate import TorchRunner, sample
from seqgen.generate.beam import beam_search
from seqgen.model.numpy_backend import NumpyModel

VOCAB = list("abcde")


def tiny_generator(backend: str = "numpy", **sampling) -> Generator:
    torch.manual_seed(3)
    model = SeqModel(ModelConfig(cell="gru", layers=1, hidden=12, embed=4, vocab_size=len(VOCAB))).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)  # peaked distributions, so that the best continuation is not a near tie
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    runner = NumpyModel(weights, model.config) if backend == "numpy" else TorchRunner(model)
    gen = Generator(runner, vocab=VOCAB, sampling=SampleConfig(**sampling))
    gen.feed("ab")
    return gen


def log_probability(gen: Generator, tokens) -> float:
    """The log-probability of a continuation, step by step, from a copy of the state."""
    saved = gen.snapshot()
    total = 0.0
    for token in tokens:
        logits = gen.last_output[0].astype(np.float64)
        total += logits[token] - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
        gen.advance(np.array([token]))
    gen.restore(saved)
    return total


def test_a_wide_enough_beam_finds_the_most_likely_continuation():
    gen = tiny_generator()
    every = {seq: log_probability(gen, seq) for seq in itertools.product(range(5), repeat=3)}
    ranked = sorted(every, key=every.get, reverse=True)
    found = beam_search(gen, length=3, beam=25, results=4)
    assert [tuple(h.tokens) for h in found] == ranked[:4]
    np.testing.assert_allclose([h.score for h in found], [every[s] for s in ranked[:4]], rtol=1e-9)


def test_a_beam_of_one_is_greedy_choice():
    greedy = tiny_generator(greedy=True)
    expected = [int(greedy.step()[0]) for _ in range(12)]
    found = beam_search(tiny_generator(), length=12, beam=1)
    assert list(found[0].tokens) == expected


def test_a_wider_beam_never_finds_a_less_likely_continuation():
    scores = [beam_search(tiny_generator(), length=10, beam=b)[0].score for b in (1, 2, 4, 8)]
    assert all(later >= earlier - 1e-12 for earlier, later in zip(scores, scores[1:]))


def test_both_backends_find_the_same_continuations():
    on_numpy = beam_search(tiny_generator("numpy"), length=15, beam=4, results=3)
    on_torch = beam_search(tiny_generator("torch"), length=15, beam=4, results=3)
    assert [list(h.tokens) for h in on_numpy] == [list(h.tokens) for h in on_torch]


def test_a_stopped_continuation_is_ranked_by_its_mean_log_probability():
    gen = tiny_generator()
    found = beam_search(gen, length=8, beam=6, results=6, stop="c")
    for h in found:
        stops_at = list(h.tokens).index(2) + 1 if 2 in h.tokens else None  # "c" is token 2
        assert stops_at is None or stops_at == len(h.tokens)  # nothing after the stop
        assert h.ranking == pytest.approx(h.score / len(h.tokens))
    assert [h.ranking for h in found] == sorted((h.ranking for h in found), reverse=True)


def test_the_generator_goes_on_from_the_continuations_found():
    gen = tiny_generator(greedy=True)
    found = beam_search(gen, length=6, beam=4, results=2)
    assert gen.batch_size == 2
    after = np.array([gen.step() for _ in range(5)]).T
    for row, h in enumerate(found):
        fresh = tiny_generator(greedy=True)
        fresh.feed(h.tokens[None, :])
        assert list(after[row]) == [int(fresh.step()[0]) for _ in range(5)]


def test_sample_with_beam_returns_the_best_continuations_best_first(text_checkpoint):
    texts = sample(text_checkpoint, prime="To be", length=30, beam=5, num_samples=3)
    assert len(texts) == 3 and len(set(texts)) == 3
    assert (
        sample(text_checkpoint, prime="To be", length=30, beam=1)[0]
        == sample(text_checkpoint, prime="To be", length=30, greedy=True)[0]
    )


def test_beam_refuses_settings_that_only_sampling_has(text_checkpoint, sine_checkpoint):
    with pytest.raises(UsageError, match="`top_k`"):
        sample(text_checkpoint, prime="To", length=5, beam=3, top_k=5)
    with pytest.raises(UsageError, match="generates numbers"):
        sample(sine_checkpoint, length=5, beam=3)
    with pytest.raises(UsageError, match="between 1 and `beam`"):
        sample(text_checkpoint, prime="To", length=5, beam=2, num_samples=3)
