"""Byte and BPE models never write malformed UTF-8: at each step the tokens that cannot continue
the current character (or cannot start one) are ruled out, whether sampling, greedy or beam
search chooses; char and word models, and byte samples that never drew such a token, are as
they were."""

from __future__ import annotations

import numpy as np
import pytest

from seqgen import Generator, ModelConfig
from seqgen.data.tokenizers import ByteTokenizer, CharTokenizer
from seqgen.data.tokenizers.utf8_prefix import BOUNDARY, REJECT, state_after
from seqgen.generate.beam import beam_search
from seqgen.generate.generator import choose_together
from seqgen.generate.sampling import SampleConfig


class FixedLogits:
    """A backend whose every output is the same logits: a model that wants what it is told to."""

    def __init__(self, logits: np.ndarray):
        self.logits = np.asarray(logits, dtype=np.float32)
        self.config = ModelConfig(vocab_size=len(self.logits))

    def init_state(self, batch_size: int):
        return [np.zeros((1, batch_size, 1), dtype=np.float32)]

    def forward(self, x, state):
        return np.broadcast_to(self.logits, (*np.shape(x), len(self.logits))).copy(), state

    def step(self, x, state):
        return np.broadcast_to(self.logits, (len(x), len(self.logits))).copy(), state


def favouring(*liked: int) -> np.ndarray:
    """Byte logits where the bytes `liked` are far likelier than the others, first most."""
    logits = np.zeros(256)
    for rank, byte in enumerate(liked):
        logits[byte] = 10.0 - rank
    return logits


def generated_bytes(gen: Generator, steps: int) -> bytes:
    return bytes(int(gen.step()[0]) for _ in range(steps))


def test_the_states_follow_rfc_3629():
    assert state_after("aé漢🙂".encode()) == BOUNDARY
    assert state_after("漢".encode()[:2]) not in (BOUNDARY, REJECT)  # inside a character
    for malformed in (b"\x80", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff", b"\xc3A"):
        assert state_after(malformed) == REJECT, malformed


def test_greedy_choice_never_starts_a_character_with_a_continuation_byte():
    # The model most wants 0x80, which can never start a character, then 'a'.
    gen = Generator(
        FixedLogits(favouring(0x80, ord("a"))), tokenizer=ByteTokenizer(), sampling=SampleConfig(greedy=True)
    )
    gen.feed("x")
    assert generated_bytes(gen, 5) == b"aaaaa"


def test_a_lead_byte_is_followed_by_its_continuation_bytes():
    # After the lead byte E2 the model still wants 'a'; a three-byte character must come first.
    gen = Generator(
        FixedLogits(favouring(0xE2, ord("a"), 0x9C)), tokenizer=ByteTokenizer(), sampling=SampleConfig(greedy=True)
    )
    gen.feed("x")
    out = generated_bytes(gen, 6)
    assert out == b"\xe2\x9c\x9c\xe2\x9c\x9c"
    assert out.decode("utf-8") == "✜✜"


def test_sampled_bytes_of_a_model_that_knows_nothing_are_well_formed_utf8():
    # Every byte equally likely: unmasked, most characters would be malformed.
    gen = Generator(FixedLogits(np.zeros(256)), tokenizer=ByteTokenizer(), seed=1)
    gen.feed("x")
    raw, texts = bytearray(), []
    for _ in range(3000):
        step = gen.step()
        raw.append(int(step[0]))
        texts.append(step.text[0])
    text = "".join(texts)
    assert len(text) > 500 and "\ufffd" not in text
    held = gen.detokenizer.pending()[0]  # the first bytes of a character still to be finished
    assert bytes(raw[: len(raw) - len(held)]).decode("utf-8") == text  # strict: raises on malformed bytes


def test_streams_stepped_together_stay_well_formed_and_match_their_own_steps():
    alone = Generator(FixedLogits(np.zeros(256)), tokenizer=ByteTokenizer(), seed=5)
    alone.feed("x")
    by_itself = generated_bytes(alone, 400)
    gens = [Generator(FixedLogits(np.zeros(256)), tokenizer=ByteTokenizer(), seed=seed) for seed in (5, 6)]
    for gen in gens:
        gen.feed("x")
    together = [bytearray(), bytearray()]
    for _ in range(400):
        for k, (items, _) in enumerate(choose_together(gens)):
            together[k].append(int(items[0]))
            gens[k].took(items, gens[k].model.step(items, gens[k].state)[0])
    assert bytes(together[0]) == by_itself
    for stream in together:
        cut = len(stream) - len(gens[together.index(stream)].detokenizer.pending()[0])
        bytes(stream[:cut]).decode("utf-8")  # raises on malformed UTF-8


def test_beam_search_finds_well_formed_text():
    gen = Generator(FixedLogits(favouring(0x80, 0xFF, ord("a"))), tokenizer=ByteTokenizer())
    gen.feed("x")
    best = beam_search(gen, length=4, beam=3)[0]
    assert bytes(best.tokens.tolist()) == b"aaaa"


def test_bpe_tokens_that_would_break_a_character_are_ruled_out():
    tokenizers = pytest.importorskip("tokenizers")
    del tokenizers
    from seqgen.data.tokenizers import learn_tokenizer

    text = "café naïve résumé 漢字漢字 " * 40
    bpe = learn_tokenizer("bpe", text, text, vocab_size=300)
    half = "漢".encode()[:1]
    allowed = bpe.allowed([b"", half])
    for token, piece in enumerate(bpe.pieces):
        assert allowed[0, token] == (state_after(piece) != REJECT)
        assert allowed[1, token] == (state_after(half + piece) != REJECT)
    assert allowed[1].any() and not allowed[1, ord("a")]


def test_char_models_are_never_masked():
    gen = Generator(FixedLogits(np.zeros(3)), tokenizer=CharTokenizer(["a", "b", "c"]))
    gen.feed("a")
    assert gen.allowed_tokens() is None


def test_a_byte_sample_that_never_drew_a_malformed_byte_is_unchanged():
    # ASCII only: the masked tokens (continuation and invalid bytes) carry almost no weight but
    # are never drawn, so the text is the same byte for byte as drawing from the unmasked weights.
    logits = np.full(256, -30.0)
    logits[ord("a") : ord("z") + 1] = np.linspace(0, 2, 26)
    gen = Generator(FixedLogits(logits), tokenizer=ByteTokenizer(), seed=9)
    gen.feed("x")
    masked = generated_bytes(gen, 300)
    rng = np.random.default_rng(9)
    logits = logits.astype(np.float32).astype(np.float64)  # as the model hands them over
    weights = np.exp(logits - logits.max())
    cdf = np.cumsum(weights)
    plain = bytes(int(np.searchsorted(cdf, u * cdf[-1], side="right")) for u in rng.random(300))
    assert masked == plain
