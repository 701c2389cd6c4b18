"""Likelihood heads and `forecast`: many sampled futures of a series, summarised by quantiles."""

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

from seqgen import Generator, ModelConfig, TrainConfig, Trainer, load_checkpoint
from seqgen.cli import app
from seqgen.data import series_dataset
from seqgen.generate.forecast import forecast, validation_error
from seqgen.generate.sampling import SampleConfig
from seqgen.model.heads import MIN_SPREAD, GaussianHead, StudentTHead
from seqgen.errors import UsageError


def noisy_cycle(n: int = 400, noise: float = 0.3, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    return 5 + np.sin(2 * math.pi * t / 12) + np.random.default_rng(seed).normal(0, noise, n)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """A small model of the noisy cycle for each head."""
    paths = {}
    for head in ("gaussian", "studentt", "point"):
        paths[head] = tmp_path_factory.mktemp(head) / "cycle.safetensors"
        data = series_dataset(noisy_cycle(), "cycle", "cycle", 0.1)
        Trainer(
            data,
            ModelConfig(hidden=24, head=head),
            TrainConfig(batch_size=8, window=40, steps=300, eval_every=100, lr=1e-2),
            paths[head],
        ).run()
    return paths


@pytest.fixture(params=["gaussian", "studentt", "point"])
def trained(request, models):
    return request.param, models[request.param]


def test_gaussian_loss_is_the_negative_log_likelihood():
    mean, raw = 0.5, 0.2  # the network's two outputs
    sigma = math.log1p(math.exp(raw)) + MIN_SPREAD
    target = 1.3
    expected = math.log(sigma) + 0.5 * ((target - mean) / sigma) ** 2 + 0.5 * math.log(2 * math.pi)
    loss = GaussianHead().loss(torch.tensor([[[mean, raw]]]), torch.tensor([[target]]))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_student_t_loss_is_the_negative_log_likelihood():
    loc, raw_scale, raw_df, target = -0.2, 0.0, 1.0, 0.9
    scale = math.log(2) + MIN_SPREAD
    df = 2 + math.log1p(math.e)
    z = (target - loc) / scale
    density = (
        math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2))
        / (math.sqrt(df * math.pi) * scale)
        * (1 + z * z / df) ** (-(df + 1) / 2)
    )
    loss = StudentTHead().loss(torch.tensor([[[loc, raw_scale, raw_df]]]), torch.tensor([[target]]))
    assert loss.item() == pytest.approx(-math.log(density), rel=1e-5)


def test_a_likelihood_head_draws_around_its_mean_with_its_spread():
    rng = np.random.default_rng(0)
    output = np.tile([2.0, math.log(math.e - 1)], (20000, 1))  # softplus(raw) = 1
    draws = GaussianHead().draw(output, rng)
    assert draws.mean() == pytest.approx(2.0, abs=0.03) and draws.std() == pytest.approx(1 + MIN_SPREAD, rel=0.03)
    assert np.all(GaussianHead().draw(output[:3], rng, spread=0.0) == 2.0)  # spread 0: the mean


def test_a_gaussian_head_learns_the_size_of_the_noise(models):
    gen = Generator.from_checkpoint(models["gaussian"])
    gen.feed(noisy_cycle(seed=1)[:200])
    sigma = (np.logaddexp(0, gen.last_output[0, 1]) + MIN_SPREAD) * gen.std
    assert 0.15 < sigma < 0.6  # the noise's std is 0.3


def test_the_same_seed_gives_the_same_paths_on_both_backends(trained):
    head, path = trained
    history = noisy_cycle(seed=2)[:120]
    numpy_paths = forecast(path, history, 10, samples=16, seed=7, backend="numpy").paths
    torch_paths = forecast(path, history, 10, samples=16, seed=7, backend="torch").paths
    assert numpy_paths.shape == (16, 10)
    np.testing.assert_allclose(numpy_paths, torch_paths, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(numpy_paths, forecast(path, history, 10, samples=16, seed=7, backend="numpy").paths)
    assert numpy_paths.std(axis=0).min() > 0  # the paths differ: every head's forecast has a spread


def test_intervals_cover_about_as_often_as_they_claim(trained):
    head, path = trained
    series = noisy_cycle(2000, seed=3)
    inside = []
    for origin in range(200, 2000, 60):
        result = forecast(path, series[origin - 100 : origin], 1, samples=400, quantiles=(0.1, 0.9), seed=origin)
        low, high = result.quantiles[:, 0]
        inside.append(low <= series[origin] <= high)
    assert 0.6 <= np.mean(inside) <= 0.97, (head, np.mean(inside))


def test_a_point_model_gets_its_validation_error_as_path_noise(models):
    result = forecast(models["point"], noisy_cycle()[:100], 5, samples=8, seed=0)
    ckpt = load_checkpoint(models["point"])
    # Widened by the factor its validation tail's forecasts asked for (see test_calibrate.py), if any.
    assert result.noise == pytest.approx(validation_error(ckpt) * ckpt.meta["progress"]["interval_scale"])
    assert 0.1 < result.noise < 1  # the one-step error of a cycle with noise of std 0.3
    assert forecast(models["gaussian"], noisy_cycle()[:100], 5, samples=8, seed=0).noise == 0


@pytest.mark.parametrize("head", ["gaussian", "studentt"])
def test_greedy_feeds_back_the_mean_and_is_the_same_for_every_stream(models, head):
    gen = Generator.from_checkpoint(models[head], sampling=SampleConfig(greedy=True), seed=0)
    gen.reset(3)
    gen.feed(noisy_cycle()[:100])
    steps = np.array(list(gen.generate(8)))
    assert np.all(steps == steps[:, :1])


def test_forecast_from_the_command_line(trained, tmp_path):
    head, path = trained
    history = tmp_path / "history.txt"
    history.write_text("\n".join(f"{v:.4f}" for v in noisy_cycle()[:150]))
    result = CliRunner().invoke(
        app, ["forecast", str(path), str(history), "--horizon", "6", "--seed", "1", "--quantiles", "0.05,0.5,0.95"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "step,mean,q0.05,q0.5,q0.95" and len(lines) == 7
    rows = np.array([[float(x) for x in line.split(",")] for line in lines[1:]])
    assert np.all(rows[:, 2] <= rows[:, 3]) and np.all(rows[:, 3] <= rows[:, 4])
    assert 3 < rows[:, 1].mean() < 7  # around the series' level of 5
    again = CliRunner().invoke(
        app, ["forecast", str(path), str(history), "--horizon", "6", "--seed", "1", "--quantiles", "0.05,0.5,0.95"]
    )
    assert again.stdout == result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--quantiles", "0.1,1.5"], "--quantiles must each be between 0 and 1"),
        (["--quantiles", "low"], "--quantiles takes numbers"),
        (["--horizon", "0"], "--horizon must be >= 1"),
        (["--format", "xml"], "--format must be one of csv, jsonl"),
    ],
)
def test_forecast_mistakes_are_one_line_usage_errors(models, args, message):
    result = seqgen("forecast", str(models["point"]), *args)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_too_few_samples_for_quantiles_get_a_note(models):
    few = seqgen("forecast", str(models["gaussian"]), "--horizon", "2", "--samples", "3", "--seed", "0")
    assert few.returncode == 0 and "--samples 3: the quantiles of so few paths" in few.stderr
    assert len(few.stdout.splitlines()) == 3  # the table is written all the same
    assert "so few paths" not in seqgen("forecast", str(models["gaussian"]), "--horizon", "2", "--seed", "0").stderr


def test_a_history_of_only_a_header_says_so(models, tmp_path):
    (tmp_path / "empty.csv").write_text("date,value\n")
    result = seqgen("forecast", str(models["point"]), str(tmp_path / "empty.csv"))
    assert result.returncode == 1 and "holds a header line ('date,value') and no values under it" in result.stderr


def test_a_missing_history_file_is_a_failure_as_for_every_command(models, tmp_path):
    # Exit 1, as `seqgen train missing.txt` and `seqgen eval CKPT missing.txt` (2 is for options and arguments).
    for data in (tmp_path / "missing.csv", tmp_path):
        result = seqgen("forecast", str(models["point"]), str(data))
        assert result.returncode == 1 and str(data) in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_forecast_refuses_a_text_model(text_checkpoint):
    result = seqgen("forecast", str(text_checkpoint))
    assert result.returncode == 2 and "text model" in result.stderr


def test_a_sine_model_forecasts_a_fresh_wave_without_data(sine_checkpoint):
    result = seqgen("forecast", str(sine_checkpoint), "--horizon", "5", "--seed", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "step,mean,q0.1,q0.5,q0.9" and len(lines) == 6
    assert forecast(sine_checkpoint, None, 5, samples=4, seed=2).paths.shape == (4, 5)  # the library does too


def seqgen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seqgen", *args], capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}
    )


def test_library_forecast_checks_its_arguments(models):
    with pytest.raises(UsageError, match="`samples` must be >= 1"):
        forecast(models["point"], [1.0, 2.0, 3.0], 3, samples=0)


@pytest.mark.parametrize("head", ["gaussian", "point"])
def test_a_forked_stream_goes_on_as_streams_fed_the_history_each(models, head):
    history = noisy_cycle(seed=4)[:80]
    forked = Generator.from_checkpoint(models[head], sampling=SampleConfig(greedy=head != "point"))
    forked.feed(history)
    forked.fork(3)
    batched = Generator.from_checkpoint(models[head], sampling=SampleConfig(greedy=head != "point"))
    batched.reset(3)
    batched.feed(history)
    assert forked.batch_size == 3
    np.testing.assert_allclose(np.array(list(forked.generate(5))), np.array(list(batched.generate(5))), rtol=1e-5)


def test_follow_gives_intervals_and_a_deterministic_point_forecast(models):
    from seqgen.generate import follow

    values = noisy_cycle(seed=5)[:40]
    point = [f.copy() for f in follow(Generator.from_checkpoint(models["gaussian"], seed=0), values, horizon=3)]
    again = [f.copy() for f in follow(Generator.from_checkpoint(models["gaussian"], seed=9), values, horizon=3)]
    np.testing.assert_allclose(point, again)  # the mean path: no random numbers in it
    banded = list(
        follow(
            Generator.from_checkpoint(models["gaussian"], seed=0), values, horizon=3, samples=300, quantiles=(0.1, 0.9)
        )
    )
    assert banded[-1].shape == (3, 3)  # mean, q0.1, q0.9 for each of 3 steps
    mean, low, high = banded[-1]
    assert np.all(low < mean) and np.all(mean < high)
    assert np.all(np.abs(mean - point[-1]) < (high - low))  # the paths' mean lies near the mean path


def test_follow_with_quantiles_from_the_command_line(models):
    lines = "\n".join(f"{v:.4f}" for v in noisy_cycle(seed=6)[:30])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqgen",
            "follow",
            str(models["point"]),
            "--horizon",
            "2",
            "--quantiles",
            "0.1,0.9",
            "--seed",
            "3",
        ],
        input=lines,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 30 and set(rows[-1]) == {"mean", "q0.1", "q0.9"}
    assert (
        rows[-1]["q0.1"][1] < rows[-1]["mean"][1] < rows[-1]["q0.9"][1]
    )  # a point model's paths get its error as noise


def test_a_checkpoint_from_before_heads_and_tables_still_loads_and_forecasts(models, tmp_path):
    """seqgen 0.1 wrote no `head`, no spread ratio, no per-series entries and no validation fraction."""
    from seqgen.checkpoint import save_checkpoint

    ckpt = load_checkpoint(models["point"])
    meta = {k: v for k, v in ckpt.meta.items() if k not in ("format", "format_version", "checksum", "optimizer")}
    meta["model"] = {k: v for k, v in meta["model"].items() if k != "head"}
    meta["progress"] = {
        k: v for k, v in meta["progress"].items() if k not in ("spread_ratio", "interval_scale", "calibration")
    }
    meta["data"] = {k: v for k, v in meta["data"].items() if k != "val_fraction"}
    old = tmp_path / "old.safetensors"
    save_checkpoint(old, meta, ckpt.weights)
    assert load_checkpoint(old).model_config.head == "point"
    result = forecast(old, None, 4, samples=10, seed=0)
    assert result.paths.shape == (10, 4) and np.all(np.isfinite(result.paths))
    noise = validation_error(ckpt)  # no calibration stored: the one-step error as it is
    np.testing.assert_allclose(result.paths, forecast(models["point"], None, 4, samples=10, seed=0, noise=noise).paths)
    out = seqgen("sample", str(old), "--length", "3", "--seed", "1")
    assert out.returncode == 0 and len(out.stdout.split()) == 3


def test_a_dated_forecast_chart_says_when_its_forecast_begins_and_ends():
    from seqgen.plot import fan_chart

    history = np.sin(np.arange(60) / 3)
    middle = np.sin(np.arange(60, 84) / 3)
    times = [f"{2002 + k // 12}-{k % 12 + 1:02d}" for k in range(24)]
    text = fan_chart(history, middle - 0.2, middle, middle + 0.2, [0.1, 0.5, 0.9], width=80, times=times).plain
    axis = text.splitlines()[-2]  # under the chart, above the legend
    assert "2002-01" in axis and axis.rstrip().endswith("2003-12")
    assert axis.index("2002-01") > len(axis) // 3  # under the forecast, not the history
    assert "2002-01" not in fan_chart(history, middle - 0.2, middle, middle + 0.2, [0.1, 0.5, 0.9]).plain
