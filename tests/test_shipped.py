"""The checkpoints shipped in checkpoints/ load and generate on a fresh clone, without training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqgen import Generator, SampleConfig, load_checkpoint

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"


def test_shipped_shakespeare_writes_speaker_names_and_words():
    ckpt = load_checkpoint(SHIPPED / "tinyshakespeare.safetensors")
    assert ckpt.kind == "text" and ckpt.model_config.cell == "lstm" and len(ckpt.vocab) == 65
    gen = Generator.from_checkpoint(ckpt, sampling=SampleConfig(temperature=0.8), seed=1)
    gen.feed("ROMEO:\n")
    text = gen.decode([t[0] for t in gen.generate(400)])
    assert len(text) == 400 and text.count(" ") > 40
    assert any(line.strip().endswith(":") for line in text.splitlines())  # a speaker's name


def test_shipped_sine_continues_a_wave_without_blowing_up():
    ckpt = load_checkpoint(SHIPPED / "sine.safetensors")
    assert ckpt.kind == "series" and ckpt.data["source"]["type"] == "sine"
    gen = Generator.from_checkpoint(ckpt)
    t = np.arange(100)
    gen.feed(0.8 * np.sin(2 * np.pi * t / 40))
    values = np.array([v[0] for v in gen.generate(500)])
    assert np.all(np.abs(values) < 1.5)
    assert values.std() > 0.2  # still oscillating, not flat


def test_the_shipped_forecaster_continues_a_climbing_season_better_than_repeating_the_last_one():
    from seqgen.generate.zero_shot import resolve, zero_shot

    ckpt = load_checkpoint(resolve("pretrained"))
    t = np.arange(132)
    series = 100 + 10 * np.sin(2 * np.pi * t / 12) + 0.5 * t + np.random.default_rng(0).normal(0, 0.5, len(t))
    history, future = series[:120], series[120:]
    made = zero_shot(ckpt, history, 12, 12)
    naive_error = np.abs(history[-12:] - future).mean()  # the last season repeated misses a year of trend
    assert np.abs(np.median(made.paths, axis=0) - future).mean() < naive_error / 2
