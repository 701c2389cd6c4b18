"""Series as people export them: CSV files with a date column, several columns, long tables, gaps."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqgen import UsageError, load_checkpoint
from seqgen.data import load_data
from seqgen.data.load import TableOptions
from seqgen.train.trainer import make_tracks

TINY = ["--steps", "30", "--hidden", "8", "--layers", "1", "--eval-every", "10", "--quiet"]


def seqgen(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seqgen", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )


def monthly(n: int, start_year: int = 2000) -> list[str]:
    return [f"{start_year + m // 12}-{m % 12 + 1:02d}-01" for m in range(n)]


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def sales(tmp_path) -> Path:
    """Two columns of monthly values with a date column: 2000-01 to 2009-12."""
    rows = [
        f"{d},{50 + 10 * math.sin(m / 1.9):.3f},{200 + m + 5 * math.cos(m / 1.9):.3f}"
        for m, d in enumerate(monthly(120))
    ]
    return write(tmp_path / "sales.csv", "date,shop,web", rows)


def test_a_date_and_one_column_train_and_forecast_with_dates(tmp_path, sales):
    assert (
        seqgen("train", str(sales), "--columns", "shop", "--out", "shop.safetensors", *TINY, cwd=tmp_path).returncode
        == 0
    )
    result = seqgen("forecast", "shop.safetensors", "--horizon", "3", "--seed", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "time,mean,q0.1,q0.5,q0.9"
    assert [line.split(",")[0] for line in lines[1:]] == ["2010-01", "2010-02", "2010-03"]
    # History that steps otherwise than the training data: continued at its own step, with a note.
    daily = write(tmp_path / "daily.csv", "date,shop", [f"2011-01-{d:02d},{50 + d / 10}" for d in range(1, 31)])
    other = seqgen("forecast", "shop.safetensors", str(daily), "--horizon", "2", "--seed", "0", cwd=tmp_path)
    assert other.returncode == 0 and [line.split(",")[0] for line in other.stdout.splitlines()[1:]] == [
        "2011-01-31",
        "2011-02-01",
    ]
    assert "steps every 1 day" in other.stderr and "trained on data that steps every 1 month" in other.stderr


def test_business_days_are_continued_on_weekdays(tmp_path):
    days = np.arange(np.datetime64("2020-06-01"), np.datetime64("2020-12-31"))
    days = days[np.is_busday(days)]  # Monday to Friday; the last is Wednesday 2020-12-30
    rows = [f"{d},{100 + 10 * math.sin(k / 3):.3f}" for k, d in enumerate(days)]
    data = write(tmp_path / "prices.csv", "date,close", rows)
    assert seqgen("train", str(data), "--out", "prices.safetensors", *TINY, cwd=tmp_path).returncode == 0
    result = seqgen("forecast", "prices.safetensors", "--horizon", "4", "--samples", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    times = [line.split(",")[0] for line in result.stdout.splitlines()[1:]]
    assert times == ["2020-12-31", "2021-01-01", "2021-01-04", "2021-01-05"]  # no Saturday 2 or Sunday 3


def test_several_columns_are_several_series_of_one_model(tmp_path, sales):
    data = load_data(str(sales))
    assert [s["name"] for s in data.series] == ["shop", "web"] and len(data.streams) == 2
    # Each is scaled by its own training part: both streams are near zero mean and unit std.
    for stream, split in zip(data.streams, data.splits):
        assert abs(stream[:split].mean()) < 1e-5 and stream[:split].std() == pytest.approx(1, abs=1e-4)
    assert (
        seqgen("train", str(sales), "--out", "both.safetensors", "--target", "level", *TINY, cwd=tmp_path).returncode
        == 0
    )
    result = seqgen("forecast", "both.safetensors", str(sales), "--horizon", "2", "--format", "jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["series"], r["time"]) for r in rows] == [
        ("shop", "2010-01"),
        ("shop", "2010-02"),
        ("web", "2010-01"),
        ("web", "2010-02"),
    ]
    shop, web = rows[0]["mean"], rows[2]["mean"]
    assert 20 < shop < 80 and 150 < web < 450  # each in its own series' range


def test_a_long_table_trains_one_model_over_its_ids(tmp_path):
    rows = [f"{d},north,{100 + 10 * math.sin(m / 2):.2f}" for m, d in enumerate(monthly(60))]
    rows += [f"{d},south,{5 + math.sin(m / 2):.2f}" for m, d in enumerate(monthly(40, 2003))]
    data = write(tmp_path / "long.csv", "month,store,sales", rows)
    loaded = load_data(str(data), table=TableOptions(id_column="store"))
    assert [s["name"] for s in loaded.series] == ["north", "south"]
    assert [len(s) for s in loaded.streams] == [60, 40]
    result = seqgen("train", str(data), "--id-column", "store", "--out", "long.safetensors", *TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = seqgen("forecast", "long.safetensors", "--horizon", "1", "--series", "south", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    time, mean = result.stdout.splitlines()[1].split(",")[:2]
    assert time == "2006-05-01" or time == "2006-05"
    assert 2 < float(mean) < 8  # south's scale, not north's
    wrong = seqgen("forecast", "long.safetensors", "--series", "west", cwd=tmp_path)
    assert wrong.returncode == 2 and "'north', 'south'" in wrong.stderr


def test_streams_of_different_lengths_all_give_tracks():
    tracks = make_tracks([np.arange(30.0), np.arange(95.0)], batch_size=8, window=9)
    assert tracks.shape == (1 + 3, 30)  # the longer stream gives three tracks of the shorter's length
    assert tracks[-1, -1] == 94 and tracks[1, 0] == 5  # its 5 oldest values are left over, not its newest


def test_one_stream_keeps_its_newest_values_in_the_tracks():
    tracks = make_tracks([np.arange(103.0)], batch_size=4, window=9)
    assert tracks.shape == (4, 25) and tracks[-1, -1] == 102 and tracks[0, 0] == 3


def test_a_missing_value_is_named_and_fill_fills_it(tmp_path):
    rows = [f"{d},{'' if m == 7 else m % 12}" for m, d in enumerate(monthly(60))]
    data = write(tmp_path / "gaps.csv", "date,value", rows)
    refused = seqgen("train", str(data), *TINY, cwd=tmp_path)
    assert refused.returncode == 1 and "line 9" in refused.stderr and "--fill" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    filled = seqgen("train", str(data), "--fill", "linear", "--out", "gaps.safetensors", *TINY, cwd=tmp_path)
    assert filled.returncode == 0, filled.stderr
    values = load_data(str(data), table=TableOptions(fill="linear")).unscale(
        load_data(str(data), table=TableOptions(fill="linear")).streams[0].astype(float)
    )
    assert values[7] == pytest.approx(7, abs=1e-3)  # between 6 and 8


def test_a_bad_date_names_its_line(tmp_path):
    rows = monthly(30)
    rows[12] = "2001-13-01"
    data = write(tmp_path / "bad.csv", "date,value", [f"{d},{i}" for i, d in enumerate(rows)])
    result = seqgen("train", str(data), *TINY, cwd=tmp_path)
    assert result.returncode == 1 and "line 14" in result.stderr and "2001-13-01" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_header_without_rows_says_there_is_nothing_to_train_on(tmp_path):
    data = write(tmp_path / "empty.csv", "date,value", [])
    result = seqgen("train", str(data), *TINY, cwd=tmp_path)
    assert result.returncode == 1 and "holds nothing to train on" in result.stderr
    assert "Traceback" not in result.stderr


def test_forecast_and_eval_errors_name_only_their_own_options(tmp_path, sales):
    assert (
        seqgen("train", str(sales), "--columns", "shop", "--out", "shop.safetensors", *TINY, cwd=tmp_path).returncode
        == 0
    )
    lines = sales.read_text().splitlines()
    gap = write(tmp_path / "gap.csv", lines[0], lines[1:9] + lines[10:])  # no row for 2000-09
    renamed = write(tmp_path / "renamed.csv", "date,shap,web", lines[1:])
    for command in ("forecast", "eval"):
        result = seqgen(command, "shop.safetensors", str(gap), cwd=tmp_path)
        assert result.returncode == 1 and "no row for 2000-09" in result.stderr
        assert "fill the gaps in the file" in result.stderr and "--fill" not in result.stderr
        result = seqgen(command, "shop.safetensors", str(renamed), cwd=tmp_path)
        assert result.returncode == 1 and "has no column 'shop', which the model reads as a series" in result.stderr
        assert "--columns" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = seqgen("eval", "shop.safetensors", "--origins", "0", cwd=tmp_path)
    assert result.returncode == 2 and "error: --origins must be >= 1, got 0" in result.stderr
    # seqgen train has the options, and its errors name them.
    result = seqgen("train", str(gap), "--columns", "shop", *TINY, cwd=tmp_path)
    assert result.returncode == 1 and "(--fill previous, linear or zero)" in result.stderr


def test_training_says_which_columns_it_left_out(tmp_path):
    rows = [
        f'{d},{m % 12},"{1000 + 37 * m + 90 * (m % 5):,}",{"ok" if m % 2 else "late"}'
        for m, d in enumerate(monthly(48))
    ]
    data = write(tmp_path / "orders.csv", "date,count,revenue,status", rows)
    result = seqgen("train", str(data), "--out", "orders.safetensors", *TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        "note: not read as series: 'status' (it holds text such as 'late'); --columns names the series" in result.stderr
    )
    stored = load_checkpoint(tmp_path / "orders.safetensors").data["series"]
    assert [s["name"] for s in stored] == ["count", "revenue"]  # "1,037" and on are numbers
    assert stored[1]["prime"][-1] == 1000 + 37 * 47 + 90 * 2


def test_each_series_of_a_model_of_several_is_generated_in_its_own_scale(tmp_path, sales):
    from typer.testing import CliRunner

    from seqgen import ModelConfig, TrainConfig, Trainer
    from seqgen.cli import app

    model = tmp_path / "both.safetensors"
    Trainer(
        load_data(str(sales)),
        ModelConfig(hidden=16, layers=1, head="gaussian"),
        TrainConfig(batch_size=4, window=24, steps=150, eval_every=50, lr=1e-2),
        model,
    ).run()
    web = [line.split(",")[2] for line in sales.read_text().splitlines()[1:]]  # 200 + m: 200 to 330
    runner = CliRunner()

    def values(*args, input=None):
        result = runner.invoke(app, [*map(str, args)], input=input)
        assert result.exit_code == 0, result.output
        return np.array(result.stdout.split(), dtype=float), result.stderr

    named, _ = values("sample", model, "-n", "3", "--greedy", "--series", "web")
    assert np.all((150 < named) & (named < 450))
    first, note = values("sample", model, "-n", "3", "--greedy")
    assert np.all((20 < first) & (first < 80)) and "continuing the first, 'shop' (--series chooses another)" in note
    # A prime that is a stretch of web's data is continued as web, without being told.
    primed, note = values("sample", model, "-n", "3", "--greedy", "--prime", " ".join(web[-100:]))
    np.testing.assert_allclose(primed, named, rtol=1e-6)
    assert "note" not in note
    # A state goes on in the series it was generated in.
    state = tmp_path / "s.safetensors"
    values("sample", model, "-n", "3", "--series", "web", "--seed", "1", "--save-state", state)
    going_on, _ = values("sample", model, "-n", "3", "--load-state", state)
    assert np.all((150 < going_on) & (going_on < 450))

    refused = runner.invoke(app, ["follow", str(model)], input="\n".join(web[-5:]))
    assert isinstance(
        refused.exception, UsageError
    ) and "name the one stdin continues with --series ('shop', 'web')" in str(refused.exception)
    followed, _ = values("follow", model, "--series", "web", input="\n".join(web[-20:]))
    assert np.all((150 < followed) & (followed < 450))

    plain = tmp_path / "web.txt"
    plain.write_text("\n".join(web) + "\n")  # web's numbers, without their name
    result = runner.invoke(app, ["eval", str(model), str(plain), "--json", "--samples", "20"])
    figures = json.loads(result.stdout)
    assert figures["source"]["series"] == "web" and figures["rmse"]["12"] < 150  # in shop's scale: about 260
