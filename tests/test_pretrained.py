"""The pretrained forecaster: synthetic series, the log transform, pretraining and zero-shot forecasts."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from seqgen import load_checkpoint
from seqgen.cli import app
from seqgen.data.synthetic import synthetic_series
from seqgen.data.times import Frequency
from seqgen.data.transforms import log_helps
from seqgen.errors import DataError, UsageError
from seqgen.generate.zero_shot import season_for, zero_shot
from seqgen.model.forecaster import (
    ForecasterConfig,
    NumpyForecaster,
    baselines,
    build_network,
    encode,
    running_scale,
    targets,
)
from seqgen.train.pretrain import PretrainConfig, pretrain

runner = CliRunner()


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seqgen", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory):
    """A forecaster pretrained for a few steps: untrained in skill, complete in form."""
    out = tmp_path_factory.mktemp("forecaster") / "forecaster.safetensors"
    pretrain(
        out,
        ForecasterConfig(hidden=16, layers=1, horizon=12),
        PretrainConfig(steps=3, batch=8, warmup=1, save_every=3),
        log=lambda line: None,
    )
    return out


def monthly_csv(path, values, start_year=2000):
    lines = ["date,sales"] + [f"{start_year + i // 12}-{i % 12 + 1:02d}-01,{v:.4f}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_same_seed_draws_the_same_synthetic_series():
    a, seasons_a = synthetic_series(64, 50, np.random.default_rng(3))
    b, seasons_b = synthetic_series(64, 50, np.random.default_rng(3))
    assert np.array_equal(a, b) and np.array_equal(seasons_a, seasons_b)
    assert a.shape == (64, 50) and np.isfinite(a).all()
    assert set(np.unique(seasons_a)) <= {1, 4, 7, 12, 24, 52}


def test_logs_are_taken_where_the_swings_grow_with_the_level():
    t = np.arange(120)
    season = np.sin(2 * math.pi * t / 12)
    multiplicative = 100 * 1.02**t * (1 + 0.3 * season)
    additive = 100 + 5 * t + 20 * season
    with_zero = np.concatenate([[0.0], multiplicative[1:]])
    chosen = log_helps(np.stack([multiplicative, additive, with_zero]), np.array([12, 12, 12]))
    assert chosen.tolist() == [True, False, False]


def test_numpy_inference_matches_the_torch_network(forecaster):
    ckpt = load_checkpoint(forecaster)
    config = ForecasterConfig.from_dict(ckpt.meta["model"])
    net = build_network(config)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in ckpt.weights.items()})
    y = np.cumsum(np.random.default_rng(0).normal(size=(2, 40)), axis=1)
    seasons = np.array([1, 12])
    x, scale = encode(y, seasons, np.array([False, False]))
    base = baselines(y, scale, seasons, np.arange(2), np.array([39, 39]), config.horizon)
    with torch.no_grad():
        hidden, _ = net.lstm(torch.from_numpy(x))
        read = torch.cat([hidden[:, -1], torch.from_numpy(x[:, -1])], dim=-1)
        expected = net.quantiles(read, torch.from_numpy(base)).numpy()
    assert np.allclose(NumpyForecaster(config, ckpt.weights).last_output(x, base), expected, atol=1e-5)


def test_the_seasonal_baselines_are_the_future_of_a_series_that_only_repeats():
    t = np.arange(100)
    y = (10 + np.sin(2 * math.pi * t / 12) + 0.3 * np.cos(2 * math.pi * t / 4))[None]
    scale = running_scale(y)
    rows, origins = np.array([0, 0]), np.array([50, 79])
    future, _ = targets(y, scale, rows, origins, 18)
    base = baselines(y, scale, np.array([12]), rows, origins, 18)
    assert np.allclose(base[..., 0], future, atol=1e-5)
    assert np.allclose(base[..., 1], future, atol=1e-5)
    assert not baselines(y, scale, np.array([1]), rows, origins, 18)[..., :2].any()  # no season: no seasonal baseline


def test_the_trend_baseline_continues_a_season_that_climbs_and_a_steady_drift():
    t = np.arange(100)
    climbing = (10 + 0.5 * t + np.sin(2 * math.pi * t / 12))[None]
    rows, origins = np.array([0]), np.array([70])
    future, _ = targets(climbing, running_scale(climbing), rows, origins, 18)
    base = baselines(climbing, running_scale(climbing), np.array([12]), rows, origins, 18)
    assert np.allclose(base[..., 2], future, atol=1e-5)
    drifting = (3.0 + 0.2 * t)[None]
    future, _ = targets(drifting, running_scale(drifting), rows, origins, 6)
    assert np.allclose(
        baselines(drifting, running_scale(drifting), np.array([1]), rows, origins, 6)[..., 2], future, atol=1e-5
    )


def test_a_zero_shot_forecast_is_the_same_every_time_and_its_quantiles_are_ordered(forecaster):
    ckpt = load_checkpoint(forecaster)
    history = 50 + 10 * np.sin(2 * math.pi * np.arange(60) / 12)
    first = zero_shot(ckpt, history, 6, 12, quantiles=(0.1, 0.5, 0.9))
    second = zero_shot(ckpt, history, 6, 12, quantiles=(0.1, 0.5, 0.9))
    assert first.paths.shape == (200, 6)
    assert np.array_equal(first.paths, second.paths)
    q = first.quantiles
    assert (q[0] <= q[1]).all() and (q[1] <= q[2]).all()


def test_a_series_that_never_went_below_zero_is_not_forecast_below_it(forecaster):
    history = np.array([0, 0, 3, 0, 0, 5, 0, 1, 0, 0, 0, 2, 0, 0], dtype=float)
    made = zero_shot(load_checkpoint(forecaster), history, 5, 1)
    assert made.paths.min() >= 0


def test_a_series_above_zero_is_read_both_in_logs_and_in_its_own_units(forecaster):
    ckpt = load_checkpoint(forecaster)
    months = np.arange(60)
    growing = (20 + months) * (1 + 0.3 * np.sin(2 * math.pi * months / 12))  # swings grow with the level
    one_scale = zero_shot(ckpt, growing, 6, 12, both_scales=False)
    both = zero_shot(ckpt, growing, 6, 12)
    assert one_scale.extra["log"] and both.extra["log"]
    assert not np.allclose(one_scale.paths, both.paths)
    # A series that goes below zero has no logs: one reading, with or without the option.
    crossing = growing - 40
    assert np.array_equal(
        zero_shot(ckpt, crossing, 6, 12).paths, zero_shot(ckpt, crossing, 6, 12, both_scales=False).paths
    )


def test_zero_shot_refuses_what_it_cannot_do(forecaster):
    ckpt = load_checkpoint(forecaster)
    with pytest.raises(UsageError, match="at most 12 steps"):
        zero_shot(ckpt, np.arange(30.0), 13, 1)
    with pytest.raises(DataError, match="at least 3"):
        zero_shot(ckpt, [1.0, 2.0], 3, 1)
    with pytest.raises(DataError, match="NaN"):
        zero_shot(ckpt, [1.0, np.nan, 2.0, 3.0], 3, 1)


def test_the_season_follows_the_step_of_the_dates():
    assert season_for(Frequency("M", 1)) == 12
    assert season_for(Frequency("M", 3)) == 4
    assert season_for(Frequency("Y", 1)) == 1
    assert season_for(Frequency("D", 1)) == 7
    assert season_for(None) == 1


def test_seqgen_forecast_continues_a_csv_with_the_forecaster(forecaster, tmp_path):
    data = monthly_csv(tmp_path / "sales.csv", 100 + 10 * np.sin(2 * math.pi * np.arange(48) / 12))
    result = runner.invoke(app, ["forecast", str(forecaster), str(data), "-H", "3"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "time,mean,q0.1,q0.5,q0.9"
    assert [line.split(",")[0] for line in lines[1:]] == ["2004-01", "2004-02", "2004-03"]


def test_the_forecaster_says_clearly_what_it_does_not_do(forecaster):
    no_data = run("forecast", str(forecaster))
    assert no_data.returncode == 2 and "continues a series you give" in no_data.stderr
    sampled = run("sample", str(forecaster))
    assert sampled.returncode == 1 and "only forecasts" in sampled.stderr
    assert len(sampled.stderr.strip().splitlines()) == 1


def test_fine_tuning_keeps_the_pretrained_weights_beside_the_new_ones(forecaster, tmp_path):
    from seqgen.model.forecaster import BASE_PREFIX
    from seqgen.train.pretrain import FinetuneConfig, finetune

    base = load_checkpoint(forecaster)
    history = 20 + 5 * np.sin(2 * math.pi * np.arange(60) / 12) + np.arange(60) * 0.1
    finetune(base, [(history, 12)], tmp_path / "tuned.safetensors", FinetuneConfig(steps=5, lr=1e-3))
    tuned = load_checkpoint(tmp_path / "tuned.safetensors")
    for name, weights in base.weights.items():
        assert np.array_equal(tuned.weights[BASE_PREFIX + name], weights)
    assert any(not np.array_equal(tuned.weights[name], weights) for name, weights in base.weights.items())
    assert zero_shot(tuned, history, 6, 12).paths.shape == (200, 6)


def test_seqgen_train_init_fine_tunes_the_forecaster_on_a_csv(forecaster, tmp_path):
    data = monthly_csv(tmp_path / "sales.csv", 100 + 10 * np.sin(2 * math.pi * np.arange(48) / 12))
    out = tmp_path / "sales.safetensors"
    tuned = run("train", str(data), "--init", str(forecaster), "--steps", "3", "-o", str(out))
    assert tuned.returncode == 0, tuned.stderr
    made = run("forecast", str(out), str(data), "-H", "2")
    assert made.returncode == 0 and made.stdout.splitlines()[1].startswith("2004-01,")
    refused = run("train", str(data), "--init", str(forecaster), "--hidden", "8", "-o", str(tmp_path / "x.safetensors"))
    assert refused.returncode == 2 and "--hidden" in refused.stderr


def test_the_same_seed_pretrains_the_same_weights(tmp_path):
    runs = []
    for name in ("a", "b"):
        pretrain(
            tmp_path / f"{name}.safetensors",
            ForecasterConfig(hidden=8, layers=1, horizon=4),
            PretrainConfig(steps=2, batch=4, warmup=1, save_every=2, seed=7),
            log=lambda line: None,
        )
        runs.append(load_checkpoint(tmp_path / f"{name}.safetensors").weights)
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_follow_with_the_forecaster_writes_one_forecast_per_value(forecaster):
    values = "\n".join(str(20 + (i % 4)) for i in range(10)) + "\n"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqgen",
            "follow",
            str(forecaster),
            "--horizon",
            "3",
            "--season",
            "4",
            "--quantiles",
            "0.1,0.9",
        ],
        input=values,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    lines = [json.loads(line) for line in made.stdout.splitlines()]
    assert len(lines) == 10 and all(len(line["mean"]) == 3 for line in lines)
    assert lines[0]["mean"] == [20.0, 20.0, 20.0]  # too little history yet: the last value
    assert all(a <= b for line in lines[2:] for a, b in zip(line["q0.1"], line["q0.9"]))


def test_seqgen_eval_backtests_the_forecaster_beside_the_seasonal_naive(forecaster, tmp_path):
    noise = np.random.default_rng(0).normal(0, 1, 72)
    data = monthly_csv(tmp_path / "sales.csv", 100 + 10 * np.sin(2 * math.pi * np.arange(72) / 12) + noise)
    made = run("eval", str(forecaster), str(data), "--horizon", "6", "--origins", "3", "--json")
    assert made.returncode == 0, made.stderr
    tested = json.loads(made.stdout)["backtest"]
    assert tested["origins"] == 3 and tested["horizon"] == 6 and tested["season"] == 12
    assert 0 < tested["seasonal_naive"]["mase"] < 3 and tested["seqgen"]["mase"] > 0
    assert "seasonal naive" in made.stderr


def test_fine_tuning_refuses_series_too_short_to_learn_from(forecaster, tmp_path):
    from seqgen.train.pretrain import finetune

    with pytest.raises(DataError, match="too short to fine-tune"):
        finetune(load_checkpoint(forecaster), [(np.array([1.0, 2.0]), 1)], tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_a_season_as_long_as_the_history_is_refused(forecaster, tmp_path):
    data = monthly_csv(tmp_path / "sales.csv", 100 + np.arange(30.0))
    made = run("forecast", str(forecaster), str(data), "--season", "30")
    assert made.returncode == 2 and "--season 30" in made.stderr


@pytest.mark.parametrize("command", [["forecast", "pretrained"], ["eval", "pretrained"]])
def test_the_shipped_forecaster_is_named_as_the_user_named_it(command):
    from seqgen.errors import CheckpointError
    from seqgen.generate.zero_shot import shipped_forecaster

    try:
        shipped_forecaster()
    except CheckpointError:
        pytest.skip("no shipped forecaster")
    result = run(*command)
    assert result.returncode == 2 and result.stderr.startswith("seqgen: error: pretrained is a forecaster")
    assert "checkpoints/" not in result.stderr  # not the path it resolves to inside the project


def test_readings_that_disagree_widen_the_forecast_but_keep_its_median():
    from seqgen.generate.zero_shot import combined

    levels = [0.1, 0.5, 0.9]
    low = np.array([[[9.0, 10.0, 11.0]]])  # one step; a reading centred on 10
    high = low + 4.0  # another, centred on 14
    middle = low + 2.0
    alike = combined(np.concatenate([middle, middle, middle]), levels)
    np.testing.assert_allclose(alike, middle[0])  # readings that agree are that reading
    both = combined(np.concatenate([low, middle, high]), levels)
    assert both[0, 1] == 12.0  # the median of the medians
    assert both[0, 0] < 11.0 and both[0, 2] > 13.0  # wider than the median of each quantile (11, 13)
