"""`seqgen eval` and the library functions behind it: text loss over one unbroken stream,
free-running error for continuous models."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from seqgen import DataError, Generator, ModelConfig, TrainConfig, Trainer, UsageError, load_checkpoint, load_data
from seqgen.cli import app
from seqgen.evaluate import evaluate_series, evaluate_text, free_run_rmse

runner = CliRunner()


def test_text_eval_counts_every_validation_character_once(text_checkpoint):
    result = evaluate_text(text_checkpoint)  # DATA defaults to the file the model was trained on
    source = load_data(load_checkpoint(text_checkpoint).data["source"]["path"])
    assert result.characters == len(source.streams[0]) - source.splits[0]
    assert result.val_fraction == 0.1
    assert 0 < result.loss < math.log(len(source.vocab)) + 1
    assert result.bits_per_char == pytest.approx(result.loss / math.log(2))


def test_text_eval_equals_the_loss_of_stepping_the_generator(text_checkpoint, tmp_path):
    """One stream, state carried through: the same figure as feeding the text to a Generator."""
    text = "To be, or not to be, that is the question:\n" * 3
    path = tmp_path / "val.txt"
    path.write_text(text)
    result = evaluate_text(text_checkpoint, path, val_fraction=0.5)
    split = len(text) - round(len(text) * 0.5)
    gen = Generator.from_checkpoint(text_checkpoint)
    logits = gen.feed(text[split - 1 : -1])[0].astype(np.float64)
    logp = (
        logits
        - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
        - logits.max(1, keepdims=True)
    )
    expected = -logp[np.arange(len(logits)), gen.encode(text[split:])].mean()
    assert result.loss == pytest.approx(expected, rel=1e-4)


def test_text_eval_names_characters_the_model_never_saw(text_checkpoint, tmp_path):
    path = tmp_path / "other.txt"
    path.write_text("To be or not to be\n" * 5 + "#@#@")
    with pytest.raises(DataError, match="'#', '@'"):
        evaluate_text(text_checkpoint, path, val_fraction=0.1)


def test_sine_free_run_on_fresh_waves(sine_checkpoint):
    result = evaluate_series(sine_checkpoint, waves=4, seed=5)
    assert set(result.rmse) == {100, 1000}
    assert result.streams == 4 and result.prime == 100 and result.source["seed"] == 5
    assert evaluate_series(sine_checkpoint, waves=4, seed=5).rmse == result.rmse  # same seed, same waves


class Echo:
    """A continuous "model" that predicts its input: it continues a constant exactly."""

    from seqgen import ModelConfig

    config = ModelConfig(vocab_size=0)

    def init_state(self, batch):
        return None

    def forward(self, x, state):
        return np.asarray(x, dtype=np.float64), state

    def step(self, x, state):
        return np.asarray(x, dtype=np.float64), state


def test_free_run_rmse_is_zero_for_a_perfect_continuation():
    """A model that repeats its input forever continues a constant exactly: RMSE 0, amplitude kept."""

    gen = Generator(Echo())
    level = np.array([[0.5], [-2.0]])
    truth = np.repeat(level, 300, axis=1) + np.array([[0.0], [0.0]])
    result = free_run_rmse(gen, np.repeat(level, 100, axis=1), truth, horizons=(100, 1000))
    assert result.rmse == {100: 0.0, 300: 0.0}  # the whole run is reported when shorter than a horizon


def test_series_eval_runs_on_the_validation_tail(tmp_path, series_file):
    from seqgen import ModelConfig, TrainConfig, Trainer

    out = tmp_path / "wave.safetensors"
    Trainer(
        load_data(str(series_file)),
        ModelConfig(hidden=8, layers=1),
        TrainConfig(batch_size=4, window=20, steps=5, eval_every=5),
        out,
    ).run()
    result = evaluate_series(out)
    assert result.source == {"type": "file", "path": str(series_file), "val_fraction": 0.1}
    assert list(result.rmse) == [60]  # the 600-value series holds out its last 60 values


def test_eval_finds_the_training_file_from_another_folder(tmp_path, series_file, monkeypatch):
    from seqgen import ModelConfig, TrainConfig, Trainer

    monkeypatch.chdir(series_file.parent)
    out = tmp_path / "wave.safetensors"
    Trainer(
        load_data(series_file.name),
        ModelConfig(hidden=8, layers=1),  # a relative path, as a user types it
        TrainConfig(batch_size=4, window=20, steps=5, eval_every=5),
        out,
    ).run()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert list(evaluate_series(out).rmse) == [60]
    series_file.rename(tmp_path / "moved.txt")
    with pytest.raises(UsageError, match="give the DATA to evaluate on"):
        evaluate_series(out)


def test_eval_command_prints_a_summary_and_json(text_checkpoint, sine_checkpoint):
    text = runner.invoke(app, ["eval", str(text_checkpoint), "--json"])
    assert text.exit_code == 0, text.output
    figures = json.loads(text.stdout)
    assert figures["kind"] == "text" and figures["bits_per_char"] > 0
    assert "bits/char" in text.stderr
    sine = runner.invoke(app, ["eval", str(sine_checkpoint), "--json", "--waves", "3", "--seed", "1", "--long"])
    assert sine.exit_code == 0, sine.output
    assert set(json.loads(sine.stdout)["rmse"]) == {"100", "1000", "10000"}
    assert "RMSE over 10,000 steps" in sine.stderr


def test_a_sine_model_is_measured_on_a_file_without_a_backtest(sine_checkpoint, series_file):
    result = runner.invoke(app, ["eval", str(sine_checkpoint), str(series_file), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["source"]["type"] == "file" and "backtest" not in figures
    assert "RMSE over" in result.stderr


def test_eval_without_data_asks_for_it(sine_checkpoint, tmp_path, series_file):
    from seqgen import ModelConfig, TrainConfig, Trainer

    out = tmp_path / "gone.safetensors"
    Trainer(
        load_data(str(series_file)),
        ModelConfig(hidden=8, layers=1),
        TrainConfig(batch_size=4, window=20, steps=2, eval_every=2),
        out,
    ).run()
    series_file.unlink()
    with pytest.raises(UsageError, match="give the DATA"):
        evaluate_series(out)


def test_the_worst_stream_is_reported_beside_the_mean():
    level = np.array([[0.5], [-2.0]])
    truth = np.repeat(level, 100, axis=1) + np.array([[0.0], [0.3]])  # the second stream is off by 0.3
    result = free_run_rmse(Generator(Echo()), np.repeat(level, 100, axis=1), truth, horizons=(100,))
    assert result.rmse_worst[100] == pytest.approx(0.3)
    assert result.rmse[100] == pytest.approx(np.sqrt(0.3**2 / 2))


def test_a_series_backtest_scores_seqgen_beside_the_seasonal_naive_forecast(tmp_path):
    from seqgen.evaluate import backtest
    from seqgen.metrics import backtest_origins, mae, seasonal_naive

    values = 10 + np.sin(2 * np.pi * np.arange(240) / 12) + np.random.default_rng(0).normal(0, 0.1, 240)
    data = tmp_path / "monthly.txt"
    data.write_text("\n".join(f"{v:.5f}" for v in values))
    out = tmp_path / "m.safetensors"
    Trainer(
        load_data(str(data)),
        ModelConfig(hidden=16, layers=1, head="gaussian"),
        TrainConfig(batch_size=4, window=24, steps=150, eval_every=50, lr=1e-2),
        out,
    ).run()
    result = backtest(out, origins=4)
    assert result.season == 12 and result.horizon == 12 and result.origins == 4  # a 24-value tail: half of it
    stored = np.array([float(line) for line in data.read_text().split()])
    expected = np.mean(
        [mae(stored[o : o + 12], seasonal_naive(stored[:o], 12, 12)) for o in backtest_origins(240, 12, 4, 216)]
    )
    assert result.seasonal_naive["mae"] == pytest.approx(expected)
    assert result.seasonal_naive["crps"] == pytest.approx(expected)  # a point forecast's CRPS is its MAE
    assert 0 <= result.seqgen["coverage"] <= 1 and result.seqgen["crps"] <= result.seqgen["mae"]
    assert result.seqgen["mase"] < 2  # a cycle this clean is forecast about as well as its own last cycle


def test_eval_of_a_series_prints_the_backtest_and_puts_it_in_json(tmp_path, series_file):
    out = tmp_path / "s.safetensors"
    Trainer(
        load_data(str(series_file)),
        ModelConfig(hidden=8, layers=1),
        TrainConfig(batch_size=4, window=32, steps=20, eval_every=10),
        out,
    ).run()
    result = CliRunner().invoke(app, ["eval", str(out), "--json", "--horizon", "5", "--origins", "3", "--season", "1"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["backtest"]["horizon"] == 5 and figures["backtest"]["origins"] == 3
    assert set(figures["backtest"]["seqgen"]) == {"mae", "rmse", "mase", "crps", "coverage"}
    assert "seasonal naive" in result.stderr


def test_a_horizon_longer_than_the_validation_tail_names_the_largest_usable_one(tmp_path, series_file):
    out = tmp_path / "s.safetensors"
    Trainer(
        load_data(str(series_file)),
        ModelConfig(hidden=8, layers=1),
        TrainConfig(batch_size=4, window=32, steps=10, eval_every=10),
        out,
    ).run()
    # 600 values, a tenth of them held out: a tail of 60, so one forecast of 60 steps fits and no longer one.
    result = subprocess.run(
        [sys.executable, "-m", "seqgen", "eval", str(out), "--horizon", "61"],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        "seqgen: error: --horizon 61 is longer than the validation tail, 60 values: "
        "the largest usable --horizon is 60 (or give a larger --val-fraction)"
    )
    figures = json.loads(runner.invoke(app, ["eval", str(out), "--json", "--horizon", "60", "--samples", "5"]).stdout)
    assert figures["backtest"]["horizon"] == 60 and figures["backtest"]["origins"] == 1


def test_eval_json_is_strict_json_with_null_for_a_missing_figure(tmp_path, series_file):
    out = tmp_path / "s.safetensors"
    Trainer(
        load_data(str(series_file)),
        ModelConfig(hidden=8, layers=1),
        TrainConfig(batch_size=4, window=32, steps=10, eval_every=10),
        out,
    ).run()
    result = CliRunner().invoke(app, ["eval", str(out), "--json", "--horizon", "5", "--origins", "2"])
    assert result.exit_code == 0, result.output

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    figures = json.loads(result.stdout, parse_constant=refuse)
    assert figures["backtest"]["seasonal_naive"]["coverage"] is None  # a point forecast has no interval


def test_a_model_of_a_table_is_measured_on_a_plain_file_of_numbers(tmp_path):
    values = 10 + np.sin(2 * np.pi * np.arange(120) / 12)
    months = np.datetime64("2000-01") + np.arange(120)
    table = tmp_path / "monthly.csv"
    table.write_text("month,sales\n" + "".join(f"{m},{v:.4f}\n" for m, v in zip(months, values)))
    out = tmp_path / "m.safetensors"
    Trainer(
        load_data(str(table)),
        ModelConfig(hidden=8, layers=1),
        TrainConfig(batch_size=4, window=24, steps=5, eval_every=5),
        out,
    ).run()
    plain = tmp_path / "sales.txt"
    plain.write_text("\n".join(f"{v:.4f}" for v in values))  # the same numbers, one per line
    result = runner.invoke(app, ["eval", str(out), str(plain), "--json", "--season", "12"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["source"]["path"] == str(plain) and figures["backtest"]["data"] == str(plain)


def test_the_windows_protocol_scores_each_window_from_a_zero_state(text_checkpoint, text_file):
    result = evaluate_text(text_checkpoint, text_file, protocol="windows", window=8)
    assert result.loss == result.windows_loss and result.stream_loss is not None
    # By hand: every window of 8 characters of the tail, each fed to a fresh generator.
    ckpt = load_checkpoint(text_checkpoint)
    text = text_file.read_text()
    tail = text[len(text) - result.characters :]
    gen = Generator.from_checkpoint(ckpt)
    total, count = 0.0, 0
    for start in range(0, (len(tail) - 1) // 8 * 8, 8):
        gen.reset(1)
        logits = gen.feed(tail[start : start + 8])[0].astype(np.float64)
        logp = (
            logits
            - np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True))
            - logits.max(axis=1, keepdims=True)
        )
        targets = gen.encode(tail[start + 1 : start + 9])
        total -= logp[np.arange(8), targets].sum()
        count += 8
    assert result.windows_loss == pytest.approx(total / count, rel=1e-4)
    assert evaluate_text(text_checkpoint, text_file).loss == result.stream_loss  # the default protocol: stream
