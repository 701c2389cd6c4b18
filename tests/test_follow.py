"""`seqgen follow`: one-step-ahead forecasts of a live stream of values."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from seqgen import Generator, ModelConfig, TrainConfig, Trainer, UsageError, load_checkpoint, load_data
from seqgen.generate import follow


@pytest.fixture(scope="module")
def wave_checkpoint(tmp_path_factory):
    """A small model that has learned one sine (period 25, around 3 +- 2)."""
    folder = tmp_path_factory.mktemp("follow")
    source = folder / "wave.txt"
    t = np.arange(600)
    source.write_text("\n".join(f"{v:.6f}" for v in 3 + 2 * np.sin(2 * math.pi * t / 25)))
    out = folder / "wave.safetensors"
    Trainer(
        load_data(str(source)),
        ModelConfig(hidden=16, layers=1),
        TrainConfig(batch_size=8, window=50, steps=100, eval_every=100, lr=1e-2, warmup=5),
        out,
    ).run()
    return out


def true_wave(start: int, count: int) -> np.ndarray:
    return 3 + 2 * np.sin(2 * math.pi * np.arange(start, start + count) / 25)


def test_one_step_predictions_track_a_sine(wave_checkpoint):
    values = true_wave(1000, 100)
    predictions = np.array([p[0] for p in follow(Generator.from_checkpoint(wave_checkpoint), values)])
    error = np.sqrt(np.mean((predictions[10:-1] - values[11:]) ** 2))
    repeat_last = np.sqrt(np.mean((values[10:-1] - values[11:]) ** 2))
    assert error < repeat_last / 4


def test_forecasts_do_not_disturb_the_real_state(wave_checkpoint):
    values = true_wave(0, 40)
    one = [p[0] for p in follow(Generator.from_checkpoint(wave_checkpoint), values)]
    five = list(follow(Generator.from_checkpoint(wave_checkpoint), values, horizon=5))
    np.testing.assert_allclose([f[0] for f in five], one, atol=1e-6)  # the first forecast step is the prediction
    gen = Generator.from_checkpoint(wave_checkpoint)
    gen.feed(values[:20])
    np.testing.assert_allclose(five[19], [v[0] for v in gen.generate(5)], atol=1e-5)  # the rest is a free run
    with pytest.raises(UsageError, match="`horizon`"):
        next(follow(gen, values, horizon=0))


def test_follow_in_a_pipe_writes_a_line_per_input(wave_checkpoint):
    values = true_wave(0, 30)
    stdin = "\n".join(f"{v:.6f}" for v in values[:15]) + "\n\n" + "\n".join(f"{v:.6f}" for v in values[15:]) + "\n"
    result = subprocess.run(
        [sys.executable, "-m", "seqgen", "follow", str(wave_checkpoint), "--horizon", "3"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [[float(v) for v in line.split()] for line in result.stdout.splitlines()]
    assert len(lines) == 30 and all(len(line) == 3 for line in lines)
    bad = subprocess.run(
        [sys.executable, "-m", "seqgen", "follow", str(wave_checkpoint)],
        input="1\nabc\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "line 2: 'abc' is not a number" in bad.stderr


def test_a_model_of_scaled_waves_measures_the_live_stream_as_it_would_a_prime(sine_checkpoint):
    # Such a model divides each stream by the size of its first 100 values. Fed one value at a
    # time, follow measures that size as the values come; from the 100th value on, its
    # forecasts are those of a generator primed with the first 100 and then fed the rest.
    wave = 0.7 * np.sin(2 * math.pi * np.arange(160) / 31)
    live = np.array([f[0] for f in follow(Generator.from_checkpoint(str(sine_checkpoint)), wave)])
    primed = Generator.from_checkpoint(str(sine_checkpoint))
    primed.feed(wave[:100])
    expected = [primed.to_values(primed.last_output)[0]]
    for value in wave[100:]:
        primed.feed([value])
        expected.append(primed.to_values(primed.last_output)[0])
    np.testing.assert_allclose(live[99:], expected, rtol=1e-5, atol=1e-6)


def test_follow_answers_a_stream_three_times_larger_with_forecasts_three_times_larger(sine_checkpoint):
    wave = 0.3 * np.sin(2 * math.pi * np.arange(140) / 27)
    small = [f[0] for f in follow(Generator.from_checkpoint(str(sine_checkpoint)), wave)]
    large = [f[0] for f in follow(Generator.from_checkpoint(str(sine_checkpoint)), 3 * wave)]
    np.testing.assert_allclose(large[20:], 3 * np.array(small[20:]), rtol=1e-4, atol=1e-6)


def test_follow_after_a_prime_keeps_the_primed_state(sine_checkpoint):
    wave = 0.6 * np.sin(2 * math.pi * np.arange(130) / 30)
    followed = Generator.from_checkpoint(str(sine_checkpoint))
    followed.feed(wave[:100])
    live = [f[0] for f in follow(followed, wave[100:])]
    fed = Generator.from_checkpoint(str(sine_checkpoint))
    fed.feed(wave[:100])
    expected = []
    for value in wave[100:]:
        fed.feed([value])
        expected.append(fed.to_values(fed.last_output)[0])
    np.testing.assert_allclose(live, expected, rtol=1e-6)


def test_follow_skips_a_header_and_reads_rows_of_the_training_csv(tmp_path, wave_checkpoint):
    def follow_lines(checkpoint, lines: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "seqgen", "follow", str(checkpoint)],
            input=lines,
            capture_output=True,
            text=True,
            timeout=120,
        )

    values = [f"{v:.6f}" for v in true_wave(0, 6)]
    plain = follow_lines(wave_checkpoint, "\n".join(values) + "\n")
    assert plain.returncode == 0 and len(plain.stdout.splitlines()) == 6
    # A header, even one with a number in its name, as `seqgen train` skips it.
    assert follow_lines(wave_checkpoint, "sensor 1\n" + "\n".join(values) + "\n").stdout == plain.stdout
    # A model trained on a CSV column reads rows of that CSV, its date column left aside.
    t = np.arange(120)
    days = np.datetime64("2020-01-01") + t
    (tmp_path / "temps.csv").write_text(
        "day,temp\n" + "".join(f"{d},{20 + 5 * math.sin(x / 4):.3f}\n" for d, x in zip(days, t))
    )
    out = tmp_path / "temps.safetensors"
    Trainer(
        load_data(str(tmp_path / "temps.csv")),
        ModelConfig(hidden=8, layers=1),
        TrainConfig(batch_size=4, window=20, steps=5, eval_every=5),
        out,
    ).run()
    rows = (tmp_path / "temps.csv").read_text().splitlines()[:8]
    as_rows = follow_lines(out, "\n".join(rows) + "\n")
    as_values = follow_lines(out, "\n".join(row.split(",")[1] for row in rows[1:]) + "\n")
    assert as_rows.returncode == 0, as_rows.stderr
    assert as_rows.stdout == as_values.stdout and len(as_rows.stdout.splitlines()) == 7
    # Rows without their header are rows, not a header to skip silently: the mistake is named.
    for headless in ("1,2\n", "\n".join(rows[1:4]) + "\n"):
        result = follow_lines(out, headless)
        assert result.returncode == 1 and result.stdout == ""
        assert (
            "line 1: 2 values, expected one a line (for rows copied from a CSV, put its header line, naming 'temp'"
            in result.stderr
        )


def test_a_point_model_of_several_series_bands_follow_by_that_series_error(tmp_path):
    from seqgen.generate.forecast import validation_error
    from seqgen.generate.generator import series_entry

    t = np.arange(200)
    rows = [f"{t0},{1000 + 300 * math.sin(t0 / 2):.3f},{5 + math.sin(t0 / 2):.4f}" for t0 in t]
    (tmp_path / "two.csv").write_text("t,big,small\n" + "\n".join(rows) + "\n")
    out = tmp_path / "two.safetensors"
    Trainer(
        load_data(str(tmp_path / "two.csv")),
        ModelConfig(hidden=8, layers=1, head="point"),
        TrainConfig(batch_size=4, window=30, steps=10, eval_every=10),
        out,
    ).run()
    stdin = "\n".join(f"{1000 + 300 * math.sin(t0 / 2):.3f}" for t0 in t[:20])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqgen",
            "follow",
            str(out),
            "--series",
            "big",
            "--quantiles",
            "0.1,0.9",
            "--samples",
            "400",
            "--seed",
            "0",
        ],
        input=stdin,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    last = json.loads(result.stdout.splitlines()[-1])
    ckpt = load_checkpoint(out)
    error = validation_error(ckpt, series_entry(ckpt, "big"))  # in the units of 'big', its std about 210
    assert error > 10
    assert last["q0.9"][0] - last["q0.1"][0] == pytest.approx(2 * 1.2816 * error, rel=0.25)


def test_a_lone_word_on_standard_input_is_not_taken_silently_as_a_header():
    import io

    from seqgen.data.rows import read_rows
    from seqgen.errors import DataError

    with pytest.raises(DataError, match="no numbers: its one line, 'abc', was read as a header"):
        list(read_rows(io.StringIO("abc\n")))
    assert list(read_rows(io.StringIO("value\n1.5\n"))) == [1.5]  # a header with values after it is one
