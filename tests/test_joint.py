"""Several value columns modelled jointly (`--joint`): each step reads and predicts every channel."""

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
from seqgen.evaluate import backtest
from seqgen.generate import Generator, follow, sample
from seqgen.generate.forecast import forecast

TINY = ["--steps", "60", "--hidden", "16", "--layers", "1", "--eval-every", "20", "--quiet", "--seed", "0"]


def seqgen(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seqgen", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )


def write_shop(path: Path, months: int = 150, trend: float = 0.0) -> Path:
    """Visits lead sales by a month; sales are about 3x last month's visits, in another unit."""
    rng = np.random.default_rng(0)
    visits = (
        100 + 20 * np.sin(2 * np.pi * np.arange(months) / 12) + rng.normal(0, 2, months) + trend * np.arange(months)
    )
    sales = 3 * np.concatenate([[visits[0]], visits[:-1]]) + rng.normal(0, 3, months)
    first = np.datetime64("2005-01", "M")
    rows = [f"{first + m},{v:.2f},{s:.2f}" for m, (v, s) in enumerate(zip(visits, sales))]
    path.write_text("month,visits,sales\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def joint_model(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("joint")
    data = write_shop(folder / "shop.csv")
    result = seqgen("train", str(data), "--joint", "--out", "shop.safetensors", *TINY, cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "shop.safetensors", data


def test_the_columns_become_channels_of_one_stream_each_in_its_own_scale(tmp_path):
    data = TableOptions(joint=True).dataset(write_shop(tmp_path / "shop.csv").read_text(), "shop", "shop.csv", 0.1)
    assert data.channels == ["visits", "sales"] and len(data.streams) == 1
    stream, split = data.streams[0], data.splits[0]
    assert stream.shape == (150, 2)
    np.testing.assert_allclose(stream[:split].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(stream[:split].std(axis=0), 1, atol=1e-4)
    assert data.mean[1] == pytest.approx(3 * data.mean[0], rel=0.05)  # sales are in their own units


def test_a_joint_model_reads_and_predicts_every_channel(joint_model):
    checkpoint, _ = joint_model
    ckpt = load_checkpoint(checkpoint)
    assert ckpt.model_config.channels == 2 and ckpt.data["channels"] == ["visits", "sales"]
    assert ckpt.weights["rnn.weight_ih_l0"].shape[1] == 2
    made = forecast(ckpt, None, 6, samples=50, seed=1)
    assert made.paths.shape == (50, 6, 2)
    visits, sales = made.mean[:, 0], made.mean[:, 1]
    assert np.all((50 < visits) & (visits < 150)) and np.all((150 < sales) & (sales < 450))


def test_one_channels_history_moves_the_others_forecast(joint_model):
    checkpoint, _ = joint_model
    ckpt = load_checkpoint(checkpoint)
    history = np.asarray(ckpt.data["prime"])
    changed = history.copy()
    changed[:, 0] += 30  # more visits, same sales
    plain = forecast(ckpt, history, 3, samples=20, seed=2)
    moved = forecast(ckpt, changed, 3, samples=20, seed=2)
    assert not np.allclose(plain.paths[..., 1], moved.paths[..., 1])


def test_the_same_seed_gives_the_same_paths_on_both_backends(joint_model):
    checkpoint, _ = joint_model
    first = forecast(checkpoint, None, 5, samples=10, seed=4, backend="numpy").paths
    again = forecast(checkpoint, None, 5, samples=10, seed=4, backend="numpy").paths
    on_torch = forecast(checkpoint, None, 5, samples=10, seed=4, backend="torch").paths
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, on_torch, rtol=1e-4, atol=1e-3)


def test_forecast_writes_each_channel_with_its_times(joint_model, tmp_path):
    checkpoint, data = joint_model
    result = seqgen(
        "forecast", str(checkpoint), str(data), "--horizon", "2", "--format", "jsonl", "--seed", "0", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["series"], r["time"]) for r in rows] == [
        ("visits", "2017-07"),
        ("visits", "2017-08"),
        ("sales", "2017-07"),
        ("sales", "2017-08"),
    ]
    # One channel asked for: still forecast with the other, so its numbers are the same.
    only = seqgen(
        "forecast",
        str(checkpoint),
        str(data),
        "--horizon",
        "2",
        "--format",
        "jsonl",
        "--seed",
        "0",
        "--series",
        "sales",
        cwd=tmp_path,
    )
    assert [json.loads(line) for line in only.stdout.splitlines()] == [
        {k: v for k, v in row.items() if k != "series"} for row in rows[2:]
    ]


def test_sample_generates_every_channel_together(joint_model, tmp_path):
    checkpoint, data = joint_model
    made = sample(checkpoint, length=4, num_samples=3, seed=5)
    assert made.shape == (3, 4, 2)
    np.testing.assert_array_equal(made, sample(checkpoint, length=4, num_samples=3, seed=5))
    result = seqgen(
        "sample", str(checkpoint), "-n", "4", "--num-samples", "3", "--seed", "5", "--format", "csv", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header == "step," + ",".join(f"sample_{k}_{name}" for k in (1, 2, 3) for name in ("visits", "sales"))
    table = np.array([[float(cell) for cell in row.split(",")[1:]] for row in rows])
    np.testing.assert_allclose(table, made.transpose(1, 0, 2).reshape(4, 6), rtol=1e-5)


def test_a_joint_prime_is_a_csv_of_the_columns(joint_model, tmp_path):
    checkpoint, data = joint_model
    lines = data.read_text().splitlines()
    prime = tmp_path / "prime.csv"
    prime.write_text("\n".join(lines[:1] + lines[-24:]) + "\n")
    result = seqgen(
        "sample",
        str(checkpoint),
        "--prime-file",
        str(prime),
        "-n",
        "3",
        "--seed",
        "1",
        "--format",
        "jsonl",
        "--include-prime",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["prime"]["visits"][-1] == float(lines[-1].split(",")[1])
    assert [len(record["values"][name]) for name in ("visits", "sales")] == [3, 3]
    # The same prime through the library gives the same values.
    history = np.array([[float(v) for v in line.split(",")[1:]] for line in lines[-24:]])
    made = sample(checkpoint, length=3, prime=history, seed=1)
    np.testing.assert_allclose(record["values"]["sales"], made[0, :, 1], rtol=1e-5)
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("1\n2\n3\n")
    result = seqgen("sample", str(checkpoint), "--prime-file", str(numbers), cwd=tmp_path)
    assert result.returncode == 1 and "give the prime as a CSV with those columns" in result.stderr


def test_follow_reads_a_row_of_channels_a_line(joint_model, tmp_path):
    checkpoint, data = joint_model
    rows = [line.split(",")[1:] for line in data.read_text().splitlines()[1:13]]
    lines = "visits,sales\n" + "".join(",".join(row) + "\n" for row in rows)
    result = subprocess.run(
        [sys.executable, "-m", "seqgen", "follow", str(checkpoint), "--horizon", "2"],
        input=lines,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr
    written = np.array([[float(v) for v in line.split()] for line in result.stdout.splitlines()])
    gen = Generator.from_checkpoint(checkpoint)
    expected = [made.ravel() for made in follow(gen, [[float(v) for v in row] for row in rows], horizon=2)]
    np.testing.assert_allclose(written, expected, rtol=1e-5)
    assert written.shape == (12, 4)  # each line: step 1's two channels, then step 2's
    result = subprocess.run(
        [sys.executable, "-m", "seqgen", "follow", str(checkpoint)],
        input="1,2\n3\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 1 and "line 2: 1 value, expected 2 (one per channel)" in result.stderr


def follow_lines(checkpoint: Path, lines: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seqgen", "follow", str(checkpoint), *options],
        input=lines,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_follow_finds_the_channels_by_the_header_and_refuses_a_header_without_them(joint_model):
    checkpoint, _ = joint_model
    plain = follow_lines(checkpoint, "100,300\n104,310\n")
    assert plain.returncode == 0, plain.stderr
    for header, rows in [
        ("visits,sales", "100,300\n104,310\n"),
        ("sales,visits", "300,100\n310,104\n"),
        ("month,visits,sales", "2020-01,100,300\n2020-02,104,310\n"),
    ]:
        result = follow_lines(checkpoint, f"{header}\n{rows}")
        assert result.returncode == 0 and result.stdout == plain.stdout, (header, result.stderr)
    wrong = follow_lines(checkpoint, "foo,bar\n1,2\n")
    assert wrong.returncode == 1 and "this model reads the columns 'visits', 'sales'" in wrong.stderr
    bad_first = follow_lines(checkpoint, "100,abc\n")  # a number in it: a bad row, not a header
    assert bad_first.returncode == 1 and "line 1: '100,abc' is not a row of 2 numbers" in bad_first.stderr
    for other in ("\ufeffvisits;sales\n100;300\n104;310\n", "visits\tsales\n100\t300\n104\t310\n"):
        assert follow_lines(checkpoint, other).stdout == plain.stdout, repr(other)


def test_series_picks_the_one_channel_to_write(joint_model, tmp_path):
    checkpoint, _ = joint_model
    both = seqgen("sample", str(checkpoint), "-n", "3", "--seed", "2", "--format", "csv", cwd=tmp_path)
    sales = seqgen(
        "sample", str(checkpoint), "-n", "3", "--seed", "2", "--format", "csv", "--series", "sales", cwd=tmp_path
    )
    assert sales.stdout.splitlines() == [",".join(row.split(",")[::2]) for row in both.stdout.splitlines()]
    pair = follow_lines(checkpoint, "100,300\n", "--horizon", "2").stdout.split()
    assert follow_lines(checkpoint, "100,300\n", "--horizon", "2", "--series", "sales").stdout.split() == pair[1::2]
    for command in ("sample", "follow"):
        result = subprocess.run(
            [sys.executable, "-m", "seqgen", command, str(checkpoint), "--series", "orders"],
            input="",
            capture_output=True,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        assert result.returncode == 2 and "models the channels 'visits', 'sales'" in result.stderr


def test_a_prime_needs_no_time_column_and_the_library_picks_a_channel(joint_model, tmp_path):
    checkpoint, data = joint_model
    rows = [line.split(",") for line in data.read_text().splitlines()[-24:]]
    with_times, values_only = tmp_path / "with.csv", tmp_path / "values.csv"
    with_times.write_text("month,visits,sales\n" + "".join(",".join(row) + "\n" for row in rows))
    values_only.write_text("visits,sales\n" + "".join(",".join(row[1:]) + "\n" for row in rows))
    first, second = (
        seqgen("sample", str(checkpoint), "--prime-file", str(path), "-n", "3", "--seed", "1", cwd=tmp_path)
        for path in (with_times, values_only)
    )
    assert first.returncode == 0 and first.stdout == second.stdout, second.stderr
    both = sample(checkpoint, length=3, num_samples=2, seed=4)
    np.testing.assert_array_equal(sample(checkpoint, length=3, num_samples=2, seed=4, series="sales"), both[..., 1])
    with pytest.raises(UsageError, match="models the channels 'visits', 'sales'"):
        sample(checkpoint, length=3, series="orders")


def test_a_prime_of_a_header_alone_is_empty_and_the_stored_prime_is_the_data(joint_model, tmp_path):
    checkpoint, data = joint_model
    header = tmp_path / "header.csv"
    header.write_text(data.read_text().splitlines()[0] + "\n")
    result = seqgen("sample", str(checkpoint), "--prime-file", str(header), cwd=tmp_path)
    assert result.returncode == 2 and "the prime is empty" in result.stderr
    # The default prime is the end of the data as written, not float32's rounding of it.
    last = [float(v) for v in data.read_text().splitlines()[-1].split(",")[1:]]
    assert load_checkpoint(checkpoint).data["prime"][-1] == last


def test_the_backtest_scores_each_channel(joint_model):
    checkpoint, _ = joint_model
    tested = backtest(checkpoint, horizon=4, origins=2, samples=20)
    assert tested.series == ["visits", "sales"] and tested.origins == 2 and tested.joint
    # Across channels only the unit-free figures: MAE, RMSE and CRPS would add up visits and sales.
    assert [k for k, v in tested.seqgen.items() if v is not None] == ["mase", "coverage"]
    assert all(math.isfinite(tested.seqgen[k]) for k in ("mase", "coverage"))
    # Each channel in its own units: sales (about 3x visits) have the larger errors; the mean MASE is theirs.
    visits, sales = tested.per_series["visits"]["seqgen"], tested.per_series["sales"]["seqgen"]
    assert sales["mae"] > visits["mae"]
    assert tested.seqgen["mase"] == pytest.approx((visits["mase"] + sales["mase"]) / 2)


def test_trending_channels_are_modelled_by_their_steps(tmp_path):
    data = write_shop(tmp_path / "growing.csv", trend=2.0)
    assert seqgen("train", str(data), "--joint", "--out", "g.safetensors", *TINY, cwd=tmp_path).returncode == 0
    ckpt = load_checkpoint(tmp_path / "g.safetensors")
    assert ckpt.data["target"] == "diff"
    made = forecast(ckpt, None, 24, samples=20, seed=0)
    # A trend of 2 visits a month goes on past the highest value trained on (about 420).
    assert made.mean[-1, 0] > np.asarray(ckpt.data["prime"])[:, 0].max()


def test_joint_mistakes_are_one_line_errors(joint_model, tmp_path):
    checkpoint, data = joint_model
    cases = [
        (["train", str(data), "--joint", "--columns", "sales"], "name two or more"),
        (["train", str(data), "--joint", "--head", "point"], "likelihood head"),
        (["sample", str(checkpoint), "--prime", "1 2"], "as a CSV with those columns (--prime-file)"),
        (["sample", str(checkpoint), "--plot"], "`seqgen forecast --plot` draws their forecast"),
        (["serve", str(checkpoint)], "seqgen forecast"),
        (["forecast", str(checkpoint), "--series", "orders", "-H", "2"], "its channels are 'visits', 'sales'"),
        (["eval", str(checkpoint), "--long"], "the backtest, channel by channel"),
    ]
    for args, message in cases:
        result = (
            seqgen(*args, "--out", "x.safetensors", *TINY, cwd=tmp_path)
            if args[0] == "train"
            else seqgen(*args, cwd=tmp_path)
        )
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    result = seqgen("train", "--joint", *TINY, cwd=tmp_path)
    assert result.returncode == 2 and "give DATA" in result.stderr
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("1\n2\n3\n")
    result = seqgen("forecast", str(checkpoint), str(numbers), "-H", "2", cwd=tmp_path)
    assert result.returncode == 1 and "give DATA as a CSV" in result.stderr


def test_a_resumed_joint_run_goes_on_jointly(joint_model, tmp_path):
    _, data = joint_model
    assert seqgen("train", str(data), "--joint", "--out", "run.safetensors", *TINY, cwd=tmp_path).returncode == 0
    result = seqgen("train", "--resume", "run.safetensors", "--steps", "80", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ckpt = load_checkpoint(tmp_path / "run.safetensors")
    assert ckpt.model_config.channels == 2 and ckpt.meta["progress"]["step"] == 80
    assert load_data(str(data), table=TableOptions.from_source(ckpt.data["source"])).channels == ["visits", "sales"]
