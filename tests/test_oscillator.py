"""The oscillator head: a sine's period held by a recurrence fitted to everything the stream has shown."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqgen import Generator, ModelConfig, SineConfig, TrainConfig, Trainer, load_checkpoint, load_data
from seqgen.evaluate import evaluate_series
from seqgen.model.heads import OscillatorHead


def wave(length: int, period: float = 37.0, phase: float = 0.4) -> np.ndarray:
    return np.sin(2 * math.pi * np.arange(length) / period + phase)


def test_the_recurrence_continues_a_clean_sine_exactly_once_it_has_seen_a_few_values():
    head = OscillatorHead()
    values = wave(60)[None, :]
    prediction, state, _ = head.forward_numpy(values[:, :-1], np.zeros((1, 59)), head.init_state(1))
    np.testing.assert_allclose(prediction[0, 5:], values[0, 6:], atol=1e-12)  # predicts each next value
    assert state["seen"][0] == 59


def test_numpy_and_torch_agree_and_a_state_carried_across_chunks_changes_nothing():
    rng = np.random.default_rng(0)
    x, out = rng.normal(size=(3, 40)), rng.normal(size=(3, 40)).astype(np.float32)
    head = OscillatorHead()
    whole, _, _ = head.forward_numpy(x, out, head.init_state(3))
    first, state, _ = head.forward_numpy(x[:, :25], out[:, :25], head.init_state(3))
    second, _, _ = head.forward_numpy(x[:, 25:], out[:, 25:], state)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, rtol=1e-12)
    stepped, state = [], head.init_state(3)
    for t in range(40):
        prediction, state = head.step_numpy(x[:, t], out[:, t], state)
        stepped.append(prediction)
    np.testing.assert_array_equal(np.stack(stepped, axis=1), whole)  # the hot path is the same arithmetic
    in_torch, _, mask = head.forward(torch.from_numpy(x).float(), torch.from_numpy(out), head.init_state(3))
    np.testing.assert_allclose(in_torch.numpy(), whole, rtol=1e-4, atol=1e-5)  # torch trains in float32
    assert mask[:, :10].sum() == 0 and mask[:, 10:].all()  # the first values of a stream are not scored


@pytest.fixture(scope="module")
def oscillator_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("osc") / "osc.safetensors"
    data = load_data(None, sine=SineConfig(waves=32, length=300))
    Trainer(
        data,
        ModelConfig(hidden=16, layers=1, head="oscillator"),
        TrainConfig(batch_size=16, window=50, steps=60, eval_every=30),
        out,
    ).run()
    return out


def test_a_model_with_the_oscillator_head_free_runs_on_the_wave_for_a_thousand_steps(oscillator_checkpoint):
    assert load_checkpoint(oscillator_checkpoint).model_config.head == "oscillator"
    result = evaluate_series(oscillator_checkpoint, horizons=(100, 1000), waves=8, seed=5)
    assert result.rmse[100] < 0.01 and result.rmse[1000] < 0.1  # a point head: about 0.07 and 0.6
    assert 0.9 < result.amplitude_ratio_min <= result.amplitude_ratio_max < 1.1


def test_stepping_equals_feeding_on_both_backends_and_a_snapshot_continues_exactly(oscillator_checkpoint):
    prime, more = 0.8 * wave(100), 0.8 * wave(120)[100:]
    numpy_gen = Generator.from_checkpoint(oscillator_checkpoint, seed=1)
    torch_gen = Generator.from_checkpoint(oscillator_checkpoint, backend="torch", seed=1)
    for gen in (numpy_gen, torch_gen):
        gen.feed(prime)
        gen.feed(more)  # a block of true values after the prime
    steps = np.array([numpy_gen.step()[0] for _ in range(20)])
    np.testing.assert_allclose([torch_gen.step()[0] for _ in range(20)], steps, atol=1e-5)
    numpy_gen.reset()
    numpy_gen.feed(prime)
    for value in more:
        numpy_gen.feed([value])  # one value at a time, as follow feeds them
    snap = numpy_gen.snapshot()
    first = [numpy_gen.step()[0] for _ in range(10)]
    numpy_gen.restore(snap)
    np.testing.assert_array_equal([numpy_gen.step()[0] for _ in range(10)], first)
    np.testing.assert_allclose(first, steps[:10], atol=1e-6)  # float32 network: a step vs a whole window


def test_a_resumed_oscillator_run_ends_with_the_weights_of_an_unbroken_one(tmp_path):
    data = load_data(None, sine=SineConfig(waves=8, length=200))
    config = TrainConfig(batch_size=8, window=40, steps=12, eval_every=4)
    model = ModelConfig(hidden=8, layers=1, head="oscillator")
    Trainer(data, model, config, tmp_path / "whole.safetensors").run()
    first = Trainer(
        data, model, TrainConfig(batch_size=8, window=40, steps=6, eval_every=4), tmp_path / "half.safetensors"
    )
    first.run()
    assert any(k.startswith("head.") for k in load_checkpoint(tmp_path / "half.safetensors").training)
    Trainer(
        data, model, config, tmp_path / "half.safetensors", resume=load_checkpoint(tmp_path / "half.safetensors")
    ).run()
    whole, resumed = load_checkpoint(tmp_path / "whole.safetensors"), load_checkpoint(tmp_path / "half.safetensors")
    for name in whole.weights:
        np.testing.assert_array_equal(whole.weights[name], resumed.weights[name])


def test_the_default_sine_model_hands_its_state_over_between_calls(tmp_path):
    import os
    import subprocess
    import sys

    def seqgen(*args):
        return subprocess.run(
            [sys.executable, "-m", "seqgen", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "NO_COLOR": "1"},
            timeout=120,
        )

    trained = seqgen("train", "--steps", "20", "--sine-waves", "16", "--sine-length", "200", "--hidden", "8")
    assert trained.returncode == 0, trained.stderr
    assert load_checkpoint(tmp_path / "checkpoints" / "sine.safetensors").model_config.head == "oscillator"
    whole = seqgen("sample", "checkpoints/sine.safetensors", "--length", "6", "--seed", "3").stdout
    part = seqgen(
        "sample", "checkpoints/sine.safetensors", "--length", "4", "--seed", "3", "--save-state", "s.safetensors"
    )
    rest = seqgen("sample", "checkpoints/sine.safetensors", "--length", "2", "--load-state", "s.safetensors")
    assert part.stdout + rest.stdout == whole
