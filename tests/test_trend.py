"""Series that trend: modelled by their steps, forecast beyond the range they were trained on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqgen import Generator, ModelConfig, TrainConfig, Trainer, load_checkpoint
from seqgen.data import series_dataset
from seqgen.data.transforms import trend_share, with_target
from seqgen.errors import UsageError


def rising(n: int = 300, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    return 10 + 0.5 * t + 3 * np.sin(2 * math.pi * t / 12) + np.random.default_rng(seed).normal(0, 0.3, n)


def test_auto_models_a_trending_series_by_its_steps_and_a_cycle_by_its_values():
    trend = series_dataset(rising(), "up", "up", 0.1)
    cycle = series_dataset(np.sin(np.arange(300) / 5.0), "cycle", "cycle", 0.1)
    assert trend_share(rising()) > 0.9 and trend_share(np.sin(np.arange(300) / 5.0)) < 0.1
    stepped = with_target(trend, "auto")
    assert stepped.target == "diff" and len(stepped.streams[0]) == 299 and stepped.splits[0] == trend.splits[0] - 1
    np.testing.assert_allclose(stepped.levels, rising(), rtol=1e-5)  # through the float32 store
    assert with_target(cycle, "auto").target == "level"
    assert with_target(trend, "level").target == "level"
    with pytest.raises(UsageError, match="`target` must be one of"):
        with_target(trend, "logs")


@pytest.fixture(scope="module")
def trend_checkpoint(tmp_path_factory):
    data = with_target(series_dataset(rising(), "up", "up", 0.1), "auto")
    out = tmp_path_factory.mktemp("trend") / "up.safetensors"
    Trainer(
        data, ModelConfig(hidden=32), TrainConfig(batch_size=4, window=40, steps=300, eval_every=100, lr=1e-2), out
    ).run()
    return out


def test_a_model_of_steps_forecasts_past_the_highest_value_it_was_trained_on(trend_checkpoint):
    ckpt = load_checkpoint(trend_checkpoint)
    assert ckpt.data["target"] == "diff" and ckpt.data["prime"][-1] == pytest.approx(rising()[-1])
    gen = Generator.from_checkpoint(ckpt, seed=0)
    gen.feed(rising()[-100:])
    forecast = np.array([gen.step()[0] for _ in range(24)])
    truth = rising(324)[300:] - np.random.default_rng(0).normal(0, 0.3, 324)[300:]  # the noiseless continuation
    assert forecast.max() > rising().max() + 5  # a model of values cannot leave its training range
    assert np.sqrt(np.mean((forecast - truth) ** 2)) < 3.0  # on the line, give or take its cycle's amplitude


def test_a_model_of_steps_continues_exactly_across_a_snapshot_and_feeds_one_value_at_a_time(trend_checkpoint):
    gen = Generator.from_checkpoint(trend_checkpoint, seed=3)
    gen.feed(rising()[-50:])
    whole = [gen.step()[0] for _ in range(10)]
    gen.reset()
    gen.feed(rising()[-50:-20])
    for value in rising()[-20:]:
        gen.feed([value])  # as follow does: each new value is a step from the one before
    snap = gen.snapshot()
    first = [gen.step()[0] for _ in range(5)]
    gen.restore(snap)
    again = [gen.step()[0] for _ in range(5)]
    np.testing.assert_allclose(first, again)
    np.testing.assert_allclose(first, whole[:5], rtol=1e-5)


def test_per_stream_values_give_each_stream_its_own_level(trend_checkpoint):
    gen = Generator.from_checkpoint(trend_checkpoint, seed=0)
    gen.reset(2)
    low, high = rising()[-60:], rising()[-60:] + 1000.0
    gen.feed_values(np.stack([low, high]))
    step = gen.step()
    assert step[1] - step[0] == pytest.approx(1000.0, abs=1e-3)
    with pytest.raises(UsageError, match="one row of values per stream"):
        gen.feed_values(low[None, :])


def test_from_the_command_line_a_trending_csv_is_modelled_by_its_steps_and_hands_off_its_state(tmp_path):
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

    (tmp_path / "up.csv").write_text("VALUE\n" + "".join(f"{v:.4f}\n" for v in rising()))
    trained = seqgen("train", "up.csv", "--steps", "30", "--hidden", "16", "--window", "40")
    assert trained.returncode == 0, trained.stderr
    assert "modelled by its differences (it trends)" in trained.stderr
    whole = seqgen("sample", "checkpoints/up.safetensors", "--length", "6", "--seed", "2").stdout.split()
    part = seqgen(
        "sample", "checkpoints/up.safetensors", "--length", "4", "--seed", "2", "--save-state", "s.safetensors"
    )
    rest = seqgen("sample", "checkpoints/up.safetensors", "--length", "2", "--load-state", "s.safetensors")
    assert part.stdout.split() + rest.stdout.split() == whole
    assert float(whole[0]) > 100  # it starts from the end of the data (about 160), not from the series' mean
    text = seqgen("train", "up.csv", "--kind", "text", "--target", "diff", "--steps", "1")
    assert text.returncode == 2 and "--target applies to numeric series" in text.stderr


def test_a_yearly_series_of_a_hundred_values_trains_with_a_shorter_window(tmp_path):
    import os
    import subprocess
    import sys

    values = 1000 + 100 * np.sin(np.arange(100) / 4.0)
    (tmp_path / "yearly.csv").write_text("FLOW\n" + "".join(f"{v:.2f}\n" for v in values))
    env = {**os.environ, "NO_COLOR": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "seqgen", "train", "yearly.csv", "--steps", "20"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr  # the default window of 100 would need 101 values to train on
    assert load_checkpoint(tmp_path / "checkpoints" / "yearly.safetensors").meta["train"]["window"] == 44
    (tmp_path / "nine.csv").write_text("".join(f"{v}\n" for v in range(1, 10)))
    short = subprocess.run(
        [sys.executable, "-m", "seqgen", "train", "nine.csv"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert short.returncode == 1 and "give at least 9 values to train on" in short.stderr


def test_follow_forecasts_a_model_of_steps_from_its_second_value_on(trend_checkpoint):
    from seqgen import follow

    gen = Generator.from_checkpoint(trend_checkpoint)
    values = rising()[-30:]
    forecasts = [f[0] for f in follow(gen, values)]
    assert len(forecasts) == 30 and forecasts[0] == values[0]  # one value holds no step yet
    primed = Generator.from_checkpoint(trend_checkpoint)
    primed.feed(values)
    assert forecasts[-1] == pytest.approx(primed.to_values(primed.last_output)[0], rel=1e-6)
    assert abs(forecasts[-1] - (values[-1] + 0.5)) < 3  # the next value, on the rising line
