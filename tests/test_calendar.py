"""Calendar inputs: a dated series' model reads each step's place in the year (or week, or day)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqgen import Generator, load_checkpoint
from seqgen.config import ModelConfig, from_dict
from seqgen.data import load_data
from seqgen.data.calendar import calendar_features, cycles_for, end_positions, step_index, with_calendar
from seqgen.data.times import Frequency
from seqgen.generate.forecast import forecast
from seqgen.generate.state import load_state, save_state

TINY = ["--steps", "40", "--hidden", "8", "--layers", "1", "--eval-every", "10", "--quiet", "--seed", "0"]


def seqgen(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seqgen", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )


def write_monthly(path: Path, months: int = 120, start: str = "2000-01") -> Path:
    """A yearly cycle with noise, one row per month."""
    rng = np.random.default_rng(0)
    first = np.datetime64(start, "M")
    rows = [f"{first + m},{10 + 3 * math.sin(2 * math.pi * m / 12) + rng.normal(0, 0.2):.3f}" for m in range(months)]
    path.write_text("month,sales\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def monthly_model(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("calendar")
    data = write_monthly(folder / "sales.csv")
    result = seqgen("train", str(data), "--calendar", "auto", "--out", "sales.safetensors", *TINY, cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "sales.safetensors", data


def test_each_frequency_has_the_cycles_of_its_calendar():
    assert cycles_for(Frequency("M", 1)) == [12.0]
    assert cycles_for(Frequency("M", 3)) == [4.0]  # quarters
    assert cycles_for(Frequency("Y", 1)) == []  # a year has no place in a year
    assert cycles_for(Frequency("D", 1)) == [7.0, 365.2425]
    assert cycles_for(Frequency("h", 1)) == [24.0, 168.0]
    assert cycles_for(None) == []


def test_step_indexes_count_steps_whatever_the_calendar():
    month = Frequency("M", 1)
    assert step_index("2000-02-01", month) - step_index("2000-01-01", month) == 1
    assert step_index("2001-01-31", month) - step_index("2000-01-31", month) == 12
    days = Frequency("B", 1)
    assert step_index("2020-12-07", days) - step_index("2020-12-04", days) == 1  # Friday to Monday
    hours = Frequency("h", 1)
    assert step_index("2020-01-02 00:00", hours) - step_index("2020-01-01 00:00", hours) == 24


def test_places_repeat_with_their_cycle():
    places = calendar_features(np.arange(30), [12.0])
    assert places.shape == (30, 2)
    np.testing.assert_allclose(places[:18], places[12:], atol=1e-6)
    assert not np.allclose(places[0], places[6])  # January is not July


def test_a_dated_monthly_series_gets_the_yearly_cycle(tmp_path):
    data = with_calendar(load_data(str(write_monthly(tmp_path / "m.csv"))))
    assert data.cycles == [12.0] and data.features[0].shape == (120, 2)
    # The last value (2009-12) and the one a year before it have the same place.
    np.testing.assert_allclose(data.features[0][-1], data.features[0][-13], atol=1e-6)
    assert end_positions(data) == [step_index("2009-12-01", Frequency("M", 1))]
    assert with_calendar(load_data(str(write_monthly(tmp_path / "m.csv"))), "none").cycles is None


def test_a_series_without_times_or_shorter_than_a_cycle_gets_none(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(str(math.sin(k / 3)) for k in range(100)) + "\n")
    assert with_calendar(load_data(str(plain))).cycles is None
    short = with_calendar(load_data(str(write_monthly(tmp_path / "short.csv", months=12))))
    assert short.cycles is None  # 11 training months do not span a year


def test_the_model_reads_the_calendar_and_its_checkpoint_says_so(monthly_model):
    checkpoint, _ = monthly_model
    ckpt = load_checkpoint(checkpoint)
    assert ckpt.model_config.calendar == (12.0,)
    assert ckpt.weights["rnn.weight_ih_l0"].shape[1] == 3  # the value and a sine-cosine pair


def test_a_forecast_depends_on_the_month_it_starts_from(monthly_model):
    checkpoint, _ = monthly_model
    ckpt = load_checkpoint(checkpoint)
    history = np.asarray(ckpt.data["prime"])
    end = step_index("2009-12-01", Frequency("M", 1))
    as_stored = forecast(ckpt, None, 6, samples=20, seed=3)
    given_end = forecast(ckpt, history, 6, samples=20, seed=3, end=end)
    np.testing.assert_allclose(as_stored.paths, given_end.paths)
    half_a_year_on = forecast(ckpt, history, 6, samples=20, seed=3, end=end + 6)
    assert not np.allclose(as_stored.paths, half_a_year_on.paths)


def test_both_backends_read_the_calendar_alike(monthly_model):
    checkpoint, _ = monthly_model
    numpy_paths = forecast(checkpoint, None, 8, samples=10, seed=1, backend="numpy").paths
    torch_paths = forecast(checkpoint, None, 8, samples=10, seed=1, backend="torch").paths
    np.testing.assert_allclose(numpy_paths, torch_paths, rtol=1e-4, atol=1e-4)


def test_a_saved_state_goes_on_in_the_same_month(monthly_model, tmp_path):
    checkpoint, _ = monthly_model
    whole = Generator.from_checkpoint(checkpoint, seed=5)
    whole.feed(load_checkpoint(checkpoint).data["prime"])
    expected = [whole.step()[0] for _ in range(10)]
    first = Generator.from_checkpoint(checkpoint, seed=5)
    first.feed(load_checkpoint(checkpoint).data["prime"])
    made = [first.step()[0] for _ in range(4)]
    save_state(tmp_path / "state.safetensors", first)
    second = Generator.from_checkpoint(checkpoint)
    second.restore(load_state(tmp_path / "state.safetensors", second))
    made += [second.step()[0] for _ in range(6)]
    np.testing.assert_allclose(made, expected)


def test_forecast_from_a_csv_takes_its_last_time(monthly_model, tmp_path):
    checkpoint, data = monthly_model
    lines = data.read_text().splitlines()
    (tmp_path / "to-2005-06.csv").write_text("\n".join(lines[: 1 + 66]) + "\n")  # 2000-01 to 2005-06
    result = seqgen("forecast", str(checkpoint), "to-2005-06.csv", "--horizon", "2", "--seed", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [row.split(",")[0] for row in result.stdout.splitlines()[1:]] == ["2005-07", "2005-08"]
    values = tmp_path / "values.txt"
    values.write_text("\n".join(line.split(",")[1] for line in lines[1:67]) + "\n")
    plain = seqgen("forecast", str(checkpoint), str(values), "--horizon", "2", "--seed", "0", cwd=tmp_path)
    assert plain.returncode == 0 and "has no times" in plain.stderr and "last time, 2009-12" in plain.stderr
    # The same values, taken to end where the training data did: dated from there, and another forecast.
    dated = [row.split(",") for row in plain.stdout.splitlines()[1:]]
    assert [row[0] for row in dated] == ["2010-01", "2010-02"]
    assert [row[1:] for row in dated] != [row.split(",")[1:] for row in result.stdout.splitlines()[1:]]
    one_row = tmp_path / "one-row.csv"
    one_row.write_text(lines[0] + "\n" + lines[66] + "\n")  # 2005-06 alone: no step to infer, the model's
    single = seqgen("forecast", str(checkpoint), str(one_row), "--horizon", "2", "--seed", "0", cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    assert [row.split(",")[0] for row in single.stdout.splitlines()[1:]] == ["2005-07", "2005-08"]


def test_calendar_mistakes_are_one_line_errors(monthly_model, tmp_path):
    checkpoint, data = monthly_model
    result = seqgen("train", str(data), "--calendar", "yes", "--out", "x.safetensors", *TINY, cwd=tmp_path)
    assert result.returncode == 2 and "--calendar must be one of auto, none" in result.stderr
    result = seqgen(
        "train",
        str(data),
        "--calendar",
        "auto",
        "--free-run",
        "5",
        "--head",
        "point",
        "--out",
        "x.safetensors",
        *TINY,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "calendar" in result.stderr and "Traceback" not in result.stderr
    daily = tmp_path / "daily.csv"
    days = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-03-01"))
    daily.write_text("month,sales\n" + "\n".join(f"{d},{k % 7}" for k, d in enumerate(days)) + "\n")
    result = seqgen("forecast", str(checkpoint), str(daily), "--horizon", "2", cwd=tmp_path)
    assert result.returncode == 1 and "steps every 1 day" in result.stderr and "Traceback" not in result.stderr


def test_by_default_and_in_old_checkpoints_a_model_reads_values_alone(monthly_model, tmp_path):
    _, data = monthly_model
    result = seqgen("train", str(data), "--out", "plain.safetensors", *TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(tmp_path / "plain.safetensors").model_config.calendar == ()
    # A checkpoint written before calendars stores no such field.
    assert from_dict(ModelConfig, {"cell": "lstm", "hidden": 8}).inputs == 1


def test_a_resumed_run_keeps_its_calendar(monthly_model, tmp_path):
    _, data = monthly_model
    assert (
        seqgen("train", str(data), "--calendar", "auto", "--out", "run.safetensors", *TINY, cwd=tmp_path).returncode
        == 0
    )
    result = seqgen("train", "--resume", "run.safetensors", "--steps", "60", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ckpt = load_checkpoint(tmp_path / "run.safetensors")
    assert ckpt.model_config.calendar == (12.0,) and ckpt.meta["progress"]["step"] == 60


def test_auto_says_which_cycles_it_leaves_out(tmp_path):
    days = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-04-01"))
    daily = tmp_path / "daily.csv"
    daily.write_text("day,visits\n" + "\n".join(f"{d},{k % 7}" for k, d in enumerate(days)) + "\n")
    result = seqgen(
        "train", str(daily), "--calendar", "auto", "--window", "20", "--out", "d.safetensors", *TINY, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "cycle of 365.2 steps left out" in result.stderr
    assert load_checkpoint(tmp_path / "d.safetensors").model_config.calendar == (7.0,)
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(str(math.sin(k / 3)) for k in range(100)) + "\n")
    result = seqgen("train", str(plain), "--calendar", "auto", "--out", "p.safetensors", *TINY, cwd=tmp_path)
    assert result.returncode == 0 and "no time column" in result.stderr


def test_a_calendar_run_resumes_only_on_data_of_its_step(monthly_model, tmp_path):
    checkpoint, _ = monthly_model
    days = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-12-31"))
    daily = tmp_path / "daily.csv"
    daily.write_text("month,sales\n" + "\n".join(f"{d},{k % 7}" for k, d in enumerate(days)) + "\n")
    result = seqgen(
        "train", str(daily), "--resume", str(checkpoint), "--steps", "60", "--out", "r.safetensors", cwd=tmp_path
    )
    assert result.returncode == 2 and "steps every 1 month, and this data steps every 1 day" in result.stderr
