"""`follow` that keeps learning (seqgen/learn.py, `seqgen follow --learn`)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from seqgen import Generator, ModelConfig, TrainConfig, Trainer, UsageError, load_checkpoint, load_data
from seqgen.generate import follow
from seqgen.learn import LearnConfig, OnlineLearner


@pytest.fixture(scope="module")
def wave_checkpoint(tmp_path_factory):
    """A small model that has learned one sine (period 25, around 3 +- 2)."""
    folder = tmp_path_factory.mktemp("learn")
    source = folder / "wave.txt"
    source.write_text("\n".join(f"{v:.6f}" for v in wave(0, 600)))
    out = folder / "wave.safetensors"
    Trainer(
        load_data(str(source)),
        ModelConfig(hidden=16, layers=1),
        TrainConfig(batch_size=8, window=50, steps=100, eval_every=100, lr=1e-2, warmup=5, seed=0),
        out,
    ).run()
    return out


def wave(start: int, count: int) -> np.ndarray:
    return 3 + 2 * np.sin(2 * math.pi * np.arange(start, start + count) / 25)


def a_level_jump() -> np.ndarray:
    """100 values of the wave the model knows, then the same wave 3 higher."""
    values = wave(0, 300)
    values[100:] += 3
    return values


def one_step_errors(checkpoint, values, learn: LearnConfig | None = None) -> np.ndarray:
    ckpt = load_checkpoint(checkpoint)
    gen = Generator.from_checkpoint(ckpt)
    learner = OnlineLearner(ckpt, gen, learn) if learn else None
    forecasts = np.array([f[0] for f in follow(gen, values, learn=learner)])
    return np.abs(forecasts[:-1] - values[1:])


def test_a_learning_follower_catches_up_with_a_level_jump(wave_checkpoint):
    values = a_level_jump()
    frozen = one_step_errors(wave_checkpoint, values)
    learning = one_step_errors(wave_checkpoint, values, LearnConfig())
    np.testing.assert_allclose(learning[:9], frozen[:9], atol=1e-5)  # the same model until its first step
    after = slice(150, 299)
    assert learning[after].mean() < 0.7 * frozen[after].mean()
    # The same stream, the same forecasts.
    np.testing.assert_array_equal(one_step_errors(wave_checkpoint, values, LearnConfig()), learning)


def test_learning_settings_are_checked():
    with pytest.raises(UsageError, match="`learn_window`"):
        LearnConfig(window=1)
    with pytest.raises(UsageError, match="`learn_lr`"):
        LearnConfig(lr=0)


def run_follow(checkpoint, values, *options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seqgen", "follow", str(checkpoint), *options],
        input="\n".join(f"{v:.6f}" for v in values) + "\n",
        capture_output=True,
        text=True,
    )


def test_follow_learn_saves_what_it_learnt_and_leaves_the_checkpoint_alone(tmp_path, wave_checkpoint):
    before = wave_checkpoint.read_bytes()
    values = a_level_jump()[:200]
    saved = tmp_path / "learnt.safetensors"
    result = run_follow(wave_checkpoint, values, "--learn", "--save", str(saved))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(values)
    assert wave_checkpoint.read_bytes() == before  # the checkpoint followed is untouched
    assert load_checkpoint(saved).meta["learnt"]["values"] == len(values)
    # What was learnt is kept: the saved model forecasts the raised wave better than the original.
    later = wave(200, 100) + 3
    assert one_step_errors(saved, later)[10:].mean() < one_step_errors(wave_checkpoint, later)[10:].mean()


def test_follow_learn_options_without_learn_are_a_one_line_mistake(wave_checkpoint):
    stray = run_follow(wave_checkpoint, [1.0], "--save", "x.safetensors")
    assert stray.returncode == 2 and "--save goes with --learn" in stray.stderr
