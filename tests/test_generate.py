"""The heart of seqgen: stepping the Generator one item at a time gives exactly what one forward
pass over the whole sequence gives, for every cell, on both backends."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from seqgen import Generator, ModelConfig, SampleConfig, SeqModel
from seqgen.generate import TorchRunner
from seqgen.model.numpy_backend import NumpyModel

CASES = [(cell, layers, hidden) for cell in ("lstm", "gru", "rnn") for layers, hidden in ((1, 8), (2, 16), (3, 5))]


def make_model(cell: str, layers: int, hidden: int, vocab: int) -> SeqModel:
    # hash() of a str changes with every process (PYTHONHASHSEED); crc32 gives the same weights every run.
    torch.manual_seed(zlib.crc32(f"{cell}-{layers}-{hidden}-{vocab}".encode()) % 1000)
    model = SeqModel(ModelConfig(cell=cell, layers=layers, hidden=hidden, embed=6, vocab_size=vocab)).eval()
    with torch.no_grad():  # larger weights than the default init, so that saturation is exercised
        for p in model.parameters():
            p.mul_(2.0)
    return model


def weights(model: SeqModel) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in model.state_dict().items()}


def inputs(vocab: int, batch: int = 3, steps: int = 40) -> torch.Tensor:
    rng = np.random.default_rng(0)
    if vocab:
        return torch.as_tensor(rng.integers(0, vocab, (batch, steps)))
    return torch.as_tensor(rng.normal(size=(batch, steps)), dtype=torch.float32)


@pytest.mark.parametrize("vocab", [0, 11], ids=["series", "text"])
@pytest.mark.parametrize("cell,layers,hidden", CASES)
def test_numpy_backend_matches_torch_over_whole_sequences(cell, layers, hidden, vocab):
    model = make_model(cell, layers, hidden, vocab)
    x = inputs(vocab)
    with torch.no_grad():
        expected, state = model(x)
    got, np_state = NumpyModel(weights(model), model.config).forward(x.numpy())
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5, rtol=1e-5)
    for ours, theirs in zip(np_state, state if isinstance(state, tuple) else (state,)):
        np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("vocab", [0, 11], ids=["series", "text"])
@pytest.mark.parametrize("cell,layers,hidden", CASES)
def test_stepping_one_at_a_time_equals_one_full_forward(cell, layers, hidden, vocab, backend):
    model = make_model(cell, layers, hidden, vocab)
    x = inputs(vocab)
    with torch.no_grad():
        expected, _ = model(x)
    runner = NumpyModel(weights(model), model.config) if backend == "numpy" else TorchRunner(model)
    gen = Generator(runner)
    gen.reset(batch_size=3)
    stepped = np.concatenate([gen.feed(x[:, t : t + 1].numpy()) for t in range(x.shape[1])], axis=1)
    np.testing.assert_allclose(stepped, expected.numpy(), atol=1e-5, rtol=1e-5)

    gen.reset(batch_size=3)  # a prime fed in one call, then the rest one step at a time
    head = gen.feed(x[:, :25].numpy())
    tail = [gen.feed(x[:, t : t + 1].numpy()) for t in range(25, x.shape[1])]
    np.testing.assert_allclose(np.concatenate([head, *tail], axis=1), expected.numpy(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("vocab", [0, 11], ids=["series", "text"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_large_batch_stepped_on_two_threads_matches_torch(cell, vocab):
    model = make_model(cell, 2, 16, vocab)
    x = inputs(vocab, batch=40, steps=12)
    with torch.no_grad():
        expected, _ = model(x)
    numpy_model = NumpyModel(weights(model), model.config, threads=2)  # 40 streams: two slices of 20
    state = numpy_model.init_state(40)
    for t in range(x.shape[1]):
        out, state = numpy_model.step(x[:, t].numpy(), state)
        np.testing.assert_allclose(out, expected[:, t].numpy(), atol=1e-5, rtol=1e-5)
    assert numpy_model._pool is not None  # the slices did run on a second thread


def test_changing_the_thread_count_between_steps_changes_no_bit():
    """A server's engine switches counts as the load changes (serve/engine.ThreadTuner): the
    outputs and states must be those of one thread throughout."""
    model = make_model("lstm", 2, 64, 11)
    x = inputs(11, batch=64, steps=10).numpy()
    one = NumpyModel(weights(model), model.config, threads=1)
    switching = NumpyModel(weights(model), model.config, threads=2)
    a, b = one.init_state(64), switching.init_state(64)
    for t in range(x.shape[1]):
        switching.use_threads(1 + t % 2)
        out_one, a = one.step(x[:, t], a)
        out_switching, b = switching.step(x[:, t], b)
        assert np.array_equal(out_one, out_switching), t
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert switching._pool is not None  # the two-thread steps did split the batch


@pytest.mark.parametrize("vocab", [0, 65], ids=["series", "text"])
@pytest.mark.parametrize("cell,hidden", [("lstm", 64), ("gru", 384), ("lstm", 384)])
def test_a_stream_gets_the_same_bits_alone_or_in_any_batch(cell, hidden, vocab):
    """What a server needs: a seed gives the same output whether its stream was stepped alone
    or beside others, so a row's numbers may not depend on the rows around it. This must hold
    on any CPU's BLAS: make test runs it again with OpenBLAS's AVX2 (Haswell) kernels."""
    model = NumpyModel(weights(make_model(cell, 2, hidden, vocab)), make_model(cell, 2, hidden, vocab).config)
    rng = np.random.default_rng(1)
    for batch in (2, 3, 4, 5, 8, 12, 17, 33, 64):
        # A state as the cells leave it: h within [-1, 1] (an LSTM's c is not, and is not multiplied).
        state = [
            rng.uniform(-1, 1, (2, batch, hidden)).astype(np.float32) * (1 + 2 * i)
            for i in range(len(model.init_state(1)))
        ]
        x = rng.integers(0, vocab, batch) if vocab else rng.normal(size=batch).astype(np.float32)
        for row in sorted({0, 1, batch // 2, batch - 1}):
            alone = [s[:, row : row + 1].copy() for s in state]
            out_alone = model.step(x[row : row + 1], alone)[0].copy()
            together = [s.copy() for s in state]
            out_batch, together = model.step(x, together)
            assert np.array_equal(out_alone[0], out_batch[row]), (batch, row)
            assert all(np.array_equal(a[:, 0], s[:, row]) for a, s in zip(alone, together)), (batch, row)


@pytest.mark.parametrize("vocab", [0, 11], ids=["series", "text"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_whole_sequence_gives_the_bits_that_stepping_it_gives(cell, vocab):
    """A prime read in one call and the same prime stepped through leave the same state, to the bit."""
    model = make_model(cell, 2, 16, vocab)
    runner = NumpyModel(weights(model), model.config)
    x = inputs(vocab, batch=5, steps=30).numpy()
    whole, whole_state = runner.forward(x)
    state = runner.init_state(5)
    stepped = [runner.step(x[:, t], state)[0].copy() for t in range(x.shape[1])]
    assert np.array_equal(np.stack(stepped, axis=1), whole)
    assert all(np.array_equal(a, b) for a, b in zip(state, whole_state))


def test_generator_keeps_state_between_steps():
    """Each step continues from the state left by the last one: stepping "7" after a prime gives
    what the whole sequence gives, not what "7" from a zero state gives (the classic bug)."""
    model = make_model("lstm", 2, 16, 11)
    gen = Generator(NumpyModel(weights(model), model.config), sampling=SampleConfig(greedy=True))
    gen.feed(np.array([1, 2, 3, 4, 5, 6]))
    after_prime = gen.feed(np.array([7]))[0, -1].copy()
    gen.reset()
    from_zero = gen.feed(np.array([7]))[0, -1]
    with torch.no_grad():
        expected, _ = model(torch.tensor([[1, 2, 3, 4, 5, 6, 7]]))
    np.testing.assert_allclose(after_prime, expected[0, -1].numpy(), atol=1e-5)
    assert np.abs(after_prime - from_zero).max() > 1e-3


def test_generated_sequence_equals_model_rerun_on_its_own_output():
    """Each step's choice was made from the model's output for the whole history."""
    model = make_model("gru", 2, 16, 0)
    gen = Generator(NumpyModel(weights(model), model.config))
    prime = np.sin(np.arange(30) / 4)
    gen.feed(prime)
    generated = np.array([v[0] for v in gen.generate(15)])
    history = np.concatenate([prime, generated])
    with torch.no_grad():
        predicted, _ = model(torch.as_tensor(history[None, :-1], dtype=torch.float32))
    np.testing.assert_allclose(generated, predicted[0, len(prime) - 1 :].numpy(), atol=1e-5)


def test_same_seed_same_text_on_both_backends(text_checkpoint):
    outputs = []
    for backend in ("numpy", "torch", "numpy"):
        gen = Generator.from_checkpoint(text_checkpoint, backend=backend, seed=7)
        gen.feed("To be")
        outputs.append(gen.decode([t[0] for t in gen.generate(80)]))
    assert outputs[0] == outputs[1] == outputs[2]
    gen = Generator.from_checkpoint(text_checkpoint, seed=8)
    gen.feed("To be")
    assert gen.decode([t[0] for t in gen.generate(80)]) != outputs[0]


def test_sampling_controls_restrict_choices(text_checkpoint):
    gen = Generator.from_checkpoint(text_checkpoint, sampling=SampleConfig(top_k=1), seed=1)
    gen.feed("To be, or")
    top1 = gen.decode([t[0] for t in gen.generate(40)])
    greedy = Generator.from_checkpoint(text_checkpoint, sampling=SampleConfig(greedy=True), seed=2)
    greedy.feed("To be, or")
    assert greedy.decode([t[0] for t in greedy.generate(40)]) == top1


def test_batched_streams_are_independent(text_checkpoint):
    gen = Generator.from_checkpoint(text_checkpoint, seed=3)
    gen.reset(batch_size=4)
    gen.feed("The ")
    columns = np.stack(list(gen.generate(50)), axis=1)
    assert columns.shape == (4, 50)
    assert len({tuple(row) for row in columns}) > 1


def test_prime_with_unknown_characters_lists_them(text_checkpoint):
    from seqgen import DataError

    gen = Generator.from_checkpoint(text_checkpoint)
    with pytest.raises(DataError, match="'#'.*'@'"):
        gen.feed("hello @ world #")


@pytest.mark.parametrize("vocab", [0, 11], ids=["series", "text"])
@pytest.mark.parametrize("cell,layers,hidden", CASES)
def test_torch_single_step_equals_forward(cell, layers, hidden, vocab):
    model = make_model(cell, layers, hidden, vocab)
    x = inputs(vocab, steps=12)
    with torch.no_grad():
        expected, expected_state = model(x)
        state = model.init_state(x.shape[0])
        outputs = []
        for t in range(x.shape[1]):
            y, state = model.step(x[:, t], state)
            outputs.append(y)
    torch.testing.assert_close(torch.stack(outputs, dim=1), expected, atol=1e-5, rtol=1e-5)
    for a, b in zip(
        state if isinstance(state, tuple) else (state,),
        expected_state if isinstance(expected_state, tuple) else (expected_state,),
    ):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_a_model_trained_on_scaled_waves_continues_each_prime_at_its_own_size(sine_checkpoint):
    # Trained with each wave divided by its own size, the generator divides each stream by its
    # prime's: a prime three times larger gets the same continuation, three times larger.
    gen = Generator.from_checkpoint(str(sine_checkpoint))
    assert gen.scale_each
    t = np.arange(100)
    prime = np.sin(2 * np.pi * t / 30)[None, :] * np.array([[0.2], [0.6]])  # two streams, one shape
    gen.reset(2)
    gen.feed(prime)
    values = np.stack([gen.step() for _ in range(200)])
    np.testing.assert_allclose(values[:, 1], 3 * values[:, 0], rtol=1e-4, atol=1e-6)
    # Unscaled, the same network would see two different inputs and answer in two different ways.
    gen.scale_each = False
    gen.reset(2)
    gen.feed(prime)
    plain = np.stack([gen.step() for _ in range(200)])
    assert not np.allclose(plain[:, 1], 3 * plain[:, 0], rtol=1e-2)


def test_checkpoints_from_before_scaling_keep_generating_unscaled(sine_checkpoint):
    from seqgen import load_checkpoint

    old = load_checkpoint(sine_checkpoint)
    del old.data["source"]["scale_each"]  # as a checkpoint written before the option existed
    assert not Generator.from_checkpoint(old).scale_each


def test_a_prime_too_short_to_measure_gets_the_training_waves_typical_size(sine_checkpoint):
    from seqgen import load_checkpoint

    typical = load_checkpoint(sine_checkpoint).data["typical_scale"]
    assert 0.35 < typical < 0.71  # amplitudes 0.5-1.0: sizes (RMS) about 0.35-0.71
    gen = Generator.from_checkpoint(str(sine_checkpoint))
    gen.feed([0.1, 0.3, 0.5])
    np.testing.assert_allclose(gen.scale, [typical])
    gen.reset(1)
    gen.feed(0.9 * np.sin(np.arange(40) / 5))  # enough values: measured
    assert abs(gen.scale[0] - 0.9 / np.sqrt(2)) < 0.1
