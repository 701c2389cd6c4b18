"""The command line, as a user runs it: through typer's CliRunner and a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqgen.cli import app

SEQGEN = [sys.executable, "-m", "seqgen"]


def run(
    *args: str, input: str | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [*SEQGEN, *args], input=input, capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env
    )


def test_train_then_sample_sine_from_the_command_line(tmp_path):
    result = run(
        "train",
        "--steps",
        "20",
        "--sine-waves",
        "16",
        "--sine-length",
        "200",
        "--hidden",
        "16",
        "--eval-every",
        "10",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # training writes nothing but the checkpoint
    assert (tmp_path / "checkpoints" / "sine.safetensors").exists()
    assert (tmp_path / "checkpoints" / "sine.metrics.jsonl").exists()
    sample = run("sample", "checkpoints/sine.safetensors", "--length", "50", cwd=tmp_path)
    assert sample.returncode == 0, sample.stderr
    values = [float(line) for line in sample.stdout.splitlines()]
    assert len(values) == 50 and all(abs(v) < 5 for v in values)


def test_text_from_stdin_and_sampling_with_a_prime(tmp_path, text_file):
    result = run(
        "train",
        "-",
        "--out",
        "notes.safetensors",
        "--steps",
        "10",
        "--hidden",
        "16",
        "--batch-size",
        "4",
        "--window",
        "16",
        input=text_file.read_text(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    sample = run(
        "sample",
        "notes.safetensors",
        "--prime",
        "To be",
        "--length",
        "60",
        "--seed",
        "1",
        "--include-prime",
        cwd=tmp_path,
    )
    assert sample.returncode == 0, sample.stderr
    assert sample.stdout.startswith("To be") and len(sample.stdout) == len("To be") + 60 + 1
    again = run(
        "sample",
        "notes.safetensors",
        "--prime",
        "To be",
        "--length",
        "60",
        "--seed",
        "1",
        "--include-prime",
        cwd=tmp_path,
    )
    assert again.stdout == sample.stdout


def test_sample_into_a_closed_pipe_exits_quietly(text_checkpoint):
    command = f"{sys.executable} -m seqgen sample {text_checkpoint} --length 100000 | head -c 10"
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    assert len(result.stdout) == 10  # bytes


def test_stdout_holds_only_data_and_stderr_has_no_colour(text_checkpoint):
    result = run("sample", str(text_checkpoint), "--length", "30", "--seed", "2")
    assert "\x1b[" not in result.stdout and "\x1b[" not in result.stderr
    assert len(result.stdout) == 31


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["train", "missing.txt"], 1, "missing.txt: no such file"),
        (["train", "--cell", "transformer", "--steps", "1"], 2, "--cell"),
        (["train", "--max-time", "soon"], 2, "--max-time"),
        (["train", "--val-fraction", "0"], 2, "--val-fraction"),
        (["train", "--hidden", "0", "--steps", "1"], 2, "--hidden"),
        (["sample", "nothing.safetensors"], 1, "no such checkpoint"),
        (["train", "--steps", "1", "--seed", "-1"], 2, "--seed must be"),
        (["train", "--steps", "1", "--batch-size", "7", "--nproc", "2"], 2, "does not split evenly across 2"),
        (["train", "missing.txt", "--nproc", "2"], 1, "missing.txt: no such file"),  # said once, before any rank starts
        (["train", "-", "--nproc", "2"], 2, "cannot be standard input"),
        (["train", "--encoding", "latin-1", "--steps", "1"], 2, "--encoding says how to read DATA"),
        (["eval", "m.safetensors", "missing.txt"], 1, "missing.txt: no such file (give the data to evaluate on"),
        (["sample", "nothing.safetensors", "--seed", "99999999999999999999999"], 2, "--seed must be"),
        (["train", "--lr", "-1", "--steps", "1"], 2, "error: --lr must be > 0, got -1.0"),  # --lr alone, not --clip too
        (["train", "--warmup", "-5", "--steps", "1"], 2, "error: --warmup must be >= 0, got -5"),
    ],
)
def test_mistakes_get_one_line_and_the_right_exit_status(tmp_path, args, code, message):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_library_parameter_becomes_a_flag_only_where_the_command_has_it():
    from seqgen.cli.app import as_flags, command_flags

    sample = command_flags(["seqgen", "sample", "m.safetensors"])
    assert "--length" in sample and "--fill" not in sample
    assert as_flags("`length` must be >= 1", sample) == "--length must be >= 1"
    assert as_flags("fill the gaps (`fill` linear)", sample) == "fill the gaps (fill linear)"
    assert (
        as_flags("fill the gaps (`fill` linear)", command_flags(["seqgen", "--debug", "train"]))
        == "fill the gaps (--fill linear)"
    )


def test_sample_rejects_bad_options(text_checkpoint):
    runner = CliRunner()
    for args, message in (
        (["--temperature", "0"], "--temperature"),
        (["--top-k", "0"], "--top-k"),
        (["--top-p", "1.5"], "--top-p"),
        (["--length", "-1"], "--length"),
        (["--prime", "xyz§"], "'§'"),
    ):
        result = run("sample", str(text_checkpoint), *args)
        assert result.returncode in (1, 2) and message in result.stderr, (args, result.stderr)
    assert runner.invoke(app, ["sample", str(text_checkpoint), "--length", "5", "--seed", "1"]).exit_code == 0


def test_version_and_help():
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).stdout.startswith("seqgen ")
    for command in ("train", "sample", "eval", "info", "follow"):
        assert runner.invoke(app, [command, "--help"]).exit_code == 0


def test_log_every_prints_progress_lines(tmp_path):
    result = run(
        "train",
        "--steps",
        "6",
        "--sine-waves",
        "8",
        "--sine-length",
        "120",
        "--hidden",
        "8",
        "--layers",
        "1",
        "--eval-every",
        "6",
        "--log-every",
        "2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["2", "4", "6"]  # step 6 once, with its evaluation
    assert " loss " in lines[-1] and " epoch 6.00" in lines[-1]


def test_help_shows_the_data_dependent_defaults():
    """Defaults written as '[default: ...]' in help texts must not be eaten as rich markup."""
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert "[default: series lstm; text gru, or lstm where" in result.stdout
    result = CliRunner().invoke(app, ["sample", "--help"], env={"COLUMNS": "200"})
    assert "[default: 1.0; a point model 0]" in result.stdout


def test_training_never_overwrites_a_checkpoint_by_accident(tmp_path, text_file):
    args = [
        "train",
        str(text_file),
        "--out",
        "m.safetensors",
        "--steps",
        "2",
        "--hidden",
        "8",
        "--batch-size",
        "2",
        "--window",
        "16",
    ]
    assert run(*args, cwd=tmp_path).returncode == 0
    again = run(*args, cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert "--resume m.safetensors" in again.stderr  # offered only for a checkpoint that can be resumed
    assert run(*args, "--force", cwd=tmp_path).returncode == 0
    resumed = run(
        "train", "--resume", "m.safetensors", "--steps", "4", cwd=tmp_path
    )  # the data comes from the checkpoint
    assert resumed.returncode == 0, resumed.stderr


def test_parser_mistakes_are_one_line_too():
    for args, needle in (
        (["sample", "x.safetensors", "--temprature", "0.8"], "--temperature"),
        (["sampel"], "Did you mean 'sample'"),
        (["sample"], "Missing argument"),
        (["train", "--steps"], "Option '--steps' requires an argument. (see 'seqgen train --help')"),
    ):
        result = run(*args)
        assert result.returncode == 2 and needle in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_a_limit_given_replaces_the_default_ones(tmp_path, text_file):
    from seqgen import load_checkpoint

    args = ["train", str(text_file), "--out", "m.safetensors", "--hidden", "8", "--batch-size", "2", "--window", "16"]
    assert run(*args, "--steps", "3", cwd=tmp_path).returncode == 0
    train = load_checkpoint(tmp_path / "m.safetensors").meta["train"]
    assert (train["steps"], train["max_time"]) == (3, None)  # not also the text default of 5 minutes
    assert (
        run("train", "--resume", "m.safetensors", "--max-time", "1h", "--epochs", "0.5", cwd=tmp_path).returncode == 0
    )
    train = load_checkpoint(tmp_path / "m.safetensors").meta["train"]
    assert (train["steps"], train["epochs"], train["max_time"]) == (None, 0.5, 3600.0)


def test_options_for_numeric_series_are_refused_for_text(text_file, text_checkpoint):
    for args, message in (
        (["train", str(text_file), "--steps", "1", "--free-run", "5"], "--free-run apply to numeric series"),
        (["train", str(text_file), "--steps", "1", "--input-noise", "0.1"], "--input-noise apply"),
        (["eval", str(text_checkpoint), "--long"], "measure continuous models"),
    ):
        result = run(*args, cwd=text_file.parent)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_checkpoint_given_as_training_data_points_to_resume(text_checkpoint):
    result = run("train", str(text_checkpoint), "--steps", "1")
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"seqgen: error: {text_checkpoint} is a checkpoint, not training data; "
        f"to continue its run, use --resume {text_checkpoint}"
    )


def test_a_run_that_overfits_says_it_stopped_early(tmp_path):
    import numpy as np

    walk = np.cumsum(np.random.default_rng(0).normal(size=300))
    (tmp_path / "walk.txt").write_text("".join(f"{v:.5f}\n" for v in walk))
    result = run(
        "train",
        "walk.txt",
        "--head",
        "point",
        "--batch-size",
        "8",
        "--window",
        "30",
        "--steps",
        "3000",
        "--eval-every",
        "20",
        "--lr",
        "0.01",
        "--log-every",
        "1000",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "stopped early" in result.stderr and "the checkpoint holds the best weights" in result.stderr


def test_a_batch_smaller_than_asked_says_why(tmp_path):
    import numpy as np

    values = np.sin(np.arange(287) / 3.0)
    (tmp_path / "yearly.csv").write_text("YEAR_VALUE\n" + "".join(f"{v:.5f}\n" for v in values))
    result = run("train", "yearly.csv", "--steps", "5", "--hidden", "8", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "batch 2 instead of 32: the training part has 258 values" in result.stderr
    assert "a smaller --window gives more tracks" in result.stderr


def test_a_prime_file_is_read_like_a_training_file_header_included(tmp_path, sine_checkpoint):
    values = [0.1 * k for k in range(-5, 6)]
    (tmp_path / "prime.csv").write_text("SUNACTIVITY\n" + "".join(f"{v}\n" for v in values))
    (tmp_path / "inline.txt").write_text(" ".join(str(v) for v in values) + "\n")
    import numpy as np

    np.save(tmp_path / "prime.npy", np.array(values))
    outputs = []
    for name in ("prime.csv", "inline.txt", "prime.npy"):
        result = run("sample", str(sine_checkpoint), "--prime-file", name, "--length", "5", "--seed", "1", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] == outputs[2]  # the same values, however the file holds them


def test_follow_skips_a_header_on_its_first_line(sine_checkpoint):
    values = "".join(f"{0.5 * (k % 7) / 7:.3f}\n" for k in range(12))
    plain = run("follow", str(sine_checkpoint), input=values)
    headed = run("follow", str(sine_checkpoint), input="value\n" + values)
    assert plain.returncode == 0 and headed.returncode == 0, headed.stderr
    assert headed.stdout == plain.stdout and len(plain.stdout.splitlines()) == 12
    late = run("follow", str(sine_checkpoint), input=values + "oops\n")
    assert late.returncode == 1 and "line 13: 'oops' is not a number" in late.stderr


def test_strip_replaces_a_file_only_when_asked(tmp_path, text_checkpoint):
    import shutil

    from seqgen import load_checkpoint

    model = tmp_path / "m.safetensors"
    shutil.copy(text_checkpoint, model)
    in_place = run("strip", "m.safetensors", cwd=tmp_path)
    assert in_place.returncode == 2 and len(in_place.stderr.strip().splitlines()) == 1
    assert "--force" in in_place.stderr and "--out m.small.safetensors" in in_place.stderr
    assert load_checkpoint(model).training  # the resume state is still there
    assert run("strip", "m.safetensors", "--out", "small.safetensors", cwd=tmp_path).returncode == 0
    again = run("strip", "m.safetensors", "--out", "small.safetensors", cwd=tmp_path)
    assert again.returncode == 2 and "small.safetensors already exists; pass --force" in again.stderr
    forced = run("strip", "m.safetensors", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert not load_checkpoint(model).training


def test_train_help_groups_its_options():
    help_text = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "80"}).stdout
    titles = ["Data", "Model", "Training", "Limits and validation", "Sine data (no DATA)"]
    where = {title: help_text.index(f"─ {title} ─") for title in titles}
    assert list(where.values()) == sorted(where.values())
    assert (
        where["Sine data (no DATA)"] < help_text.index("--sine-waves")
        and help_text.index("--period-min") > where["Sine data (no DATA)"]
    )
    assert where["Limits and validation"] < help_text.index("--max-time") < where["Sine data (no DATA)"]
    assert help_text.index("--hidden") < where["Training"]


def test_resuming_a_finished_run_says_so_and_how_to_go_on(tmp_path, text_file):
    args = ["train", str(text_file), "--out", "m.safetensors", "--hidden", "8", "--batch-size", "2", "--window", "16"]
    assert run(*args, "--steps", "4", cwd=tmp_path).returncode == 0
    before = (tmp_path / "m.safetensors").read_bytes()
    finished = run("train", "--resume", "m.safetensors", cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert "the run is finished (step 4, its limit --steps 4)" in finished.stderr
    assert "seqgen train --resume m.safetensors --steps 8" in finished.stderr
    assert (tmp_path / "m.safetensors").read_bytes() == before  # nothing was trained or rewritten
    elsewhere = run("train", "--resume", "m.safetensors", "--steps", "3", "--out", "other.safetensors", cwd=tmp_path)
    assert "--resume m.safetensors --steps" in elsewhere.stderr and not (tmp_path / "other.safetensors").exists()
    further = run("train", "--resume", "m.safetensors", "--steps", "6", cwd=tmp_path)
    assert further.returncode == 0 and "resuming from step 4 of 6" in further.stderr


def test_a_small_text_from_stdin_trains_a_small_model_and_says_so(tmp_path, text_file):
    from seqgen import load_checkpoint

    result = run("train", "-", "--out", "notes.safetensors", "--steps", "3", input=text_file.read_text(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "note: a small text (1,032 characters): defaults sized to it, GRU 1 x 128" in result.stderr
    ckpt = load_checkpoint(tmp_path / "notes.safetensors")
    assert (ckpt.model_config.layers, ckpt.model_config.hidden, ckpt.meta["train"]["eval_every"]) == (1, 128, 20)
    given = run(
        "train",
        "-",
        "--out",
        "given.safetensors",
        "--steps",
        "3",
        "--hidden",
        "32",
        "--eval-every",
        "3",
        input=text_file.read_text(),
        cwd=tmp_path,
    )
    assert given.returncode == 0, given.stderr
    ckpt = load_checkpoint(tmp_path / "given.safetensors")
    assert (ckpt.model_config.hidden, ckpt.meta["train"]["eval_every"]) == (32, 3)  # options given still win


def test_a_lone_line_of_text_as_a_series_prime_is_not_a_number(tmp_path, sine_checkpoint):
    (tmp_path / "prime.txt").write_text("hello there\n")
    result = run("sample", str(sine_checkpoint), "--prime-file", "prime.txt", cwd=tmp_path)
    assert result.returncode == 1 and "'hello there' is not a number" in result.stderr


def test_resuming_a_series_run_with_text_names_the_difference(tmp_path, text_file):
    import numpy as np

    (tmp_path / "up.csv").write_text("V\n" + "".join(f"{v}\n" for v in np.arange(300) * 0.5))
    trained = run("train", "up.csv", "--steps", "4", "--hidden", "8", "--out", "up.safetensors", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    again = run("train", str(text_file), "--resume", "up.safetensors", cwd=tmp_path)
    assert again.returncode == 2 and "trained on series data, not text" in again.stderr


def test_strip_says_when_a_checkpoint_held_no_resume_state(tmp_path):
    shipped = Path(__file__).resolve().parents[1] / "checkpoints" / "sine.safetensors"
    result = run("strip", str(shipped), "--out", "copy.safetensors", cwd=tmp_path)
    assert result.returncode == 0 and "held no resume state already" in result.stderr
