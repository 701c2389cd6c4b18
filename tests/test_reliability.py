"""Reliability: every mistake ends in one line on stderr and the right exit status, interrupts and
crashes lose nothing, pipes end quietly, and the same seed gives the same bytes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqgen import (
    CheckpointError,
    DataError,
    Generator,
    ModelConfig,
    SeqgenError,
    SineConfig,
    TrainConfig,
    Trainer,
    TrainingError,
    load_checkpoint,
    load_data,
    save_checkpoint,
)

from seqgen.data import text_dataset
from conftest import TINY_TEXT

SEQGEN = [sys.executable, "-m", "seqgen"]
# A tiny text run: about a millisecond per step, so hundreds of steps take well under a second.
TINY_TEXT_RUN = [
    "--cell",
    "lstm",
    "--hidden",
    "16",
    "--embed",
    "8",
    "--layers",
    "1",
    "--batch-size",
    "4",
    "--window",
    "16",
]
TINY_SINE = ["--sine-waves", "4", "--sine-length", "300", "--hidden", "8", "--layers", "1", "--window", "20"]


def env(**extra: str) -> dict:
    # The subprocess must import this checkout of seqgen, whatever the installed one is.
    root = str(Path(__file__).resolve().parents[1])
    base = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    base.pop("SEQGEN_DEBUG", None)
    return {**base, **extra}


def run(*args: str, cwd: Path | None = None, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SEQGEN, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env(**extra))


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `seqgen ARGS` in this process, through the same main() as the installed command.

    Starting Python and importing torch costs seconds per process on a busy machine; most cases
    only need main()'s exit status and output, so only signals, pipes and run-to-run determinism
    use real processes.
    """
    import contextlib
    import io

    from seqgen.cli import main

    stdout, stderr, here, argv = io.StringIO(), io.StringIO(), os.getcwd(), sys.argv
    os.environ.pop("SEQGEN_DEBUG", None)
    code = 0
    try:
        os.chdir(cwd or here)
        sys.argv = ["seqgen", *args]
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(here)
        sys.argv = argv
    return subprocess.CompletedProcess(list(args), code, stdout.getvalue(), stderr.getvalue())


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "╭" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("seqgen: error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    assert result.stdout == ""


# --------------------------------------------------------------------------------------------
# seqgen train: bad data
# --------------------------------------------------------------------------------------------
def numbers(values) -> str:
    return "\n".join(str(v) for v in values) + "\n"


TRAIN_DATA_CASES = {
    # name: (file bytes, expected message parts); the file is written as data.txt
    "empty": (b"", ["data.txt", "empty"]),
    "too short for a window": (b"abcdefghij" * 3, ["data.txt", "window"]),
    "too short to split": (b"a", ["data.txt", "too short"]),
    "binary": (bytes(range(256)) * 8, ["data.txt", "binary"]),
    "invalid utf-8": ("caf\u00e9 au lait\n".encode("latin-1") * 40, ["data.txt", "byte 3", "--encoding"]),
    "non-number on line 57": (
        numbers([*range(1, 57), "hello", *range(58, 101)]).encode(),
        ["data.txt", "line 57", "hello"],
    ),
    "nan": (numbers([*range(100), "nan"]).encode(), ["data.txt", "line 101", "finite"]),
    "inf": (numbers([1, 2, 3, "-inf", *range(100)]).encode(), ["data.txt", "line 4", "finite"]),
    "constant": (numbers([5] * 300).encode(), ["data.txt", "same value"]),
}


@pytest.mark.parametrize("case", TRAIN_DATA_CASES)
def test_train_rejects_unusable_data_with_one_line(tmp_path, case):
    content, needles = TRAIN_DATA_CASES[case]
    (tmp_path / "data.txt").write_bytes(content)
    result = cli("train", "data.txt", "--steps", "2", *TINY_TEXT_RUN[:6], cwd=tmp_path)
    assert_one_line_error(result, 1, *needles)
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").glob("*.safetensors"))


def test_series_too_short_for_its_window_is_a_clear_error_not_a_crash(tmp_path):
    """270 training values and a window of 20 once gave 13 tracks of 20 items each: zero windows."""
    (tmp_path / "wave.txt").write_text(numbers(np.round(np.sin(np.arange(300) / 5), 5)))
    result = cli(
        "train", "wave.txt", "--steps", "3", "--hidden", "8", "--layers", "1", "--window", "20", "-q", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(tmp_path / "checkpoints" / "wave.safetensors").meta["progress"]["step"] == 3


def test_missing_path_and_directory(tmp_path):
    assert_one_line_error(run("train", "nope.txt", cwd=tmp_path), 1, "nope.txt", "no such file")
    (tmp_path / "folder").mkdir()
    assert_one_line_error(run("train", "folder", cwd=tmp_path), 1, "folder", "directory")


def test_unreadable_file(tmp_path):
    # /proc/self/mem exists but read() fails (EIO), even for root, whom chmod 000 does not stop.
    if not Path("/proc/self/mem").exists():
        pytest.skip("needs Linux /proc")
    assert_one_line_error(cli("train", "/proc/self/mem", "--kind", "text"), 1, "/proc/self/mem", "cannot read")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_file_without_read_permission(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text(TINY_TEXT)
    path.chmod(0)
    assert_one_line_error(cli("train", str(path)), 1, "secret.txt", "permission denied")


def test_permission_error_from_the_library(tmp_path, monkeypatch):
    path = tmp_path / "secret.txt"
    path.write_text(TINY_TEXT)

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(DataError, match="secret.txt: permission denied"):
        load_data(str(path))


def test_latin1_file_trains_with_the_encoding_hint_followed(tmp_path):
    (tmp_path / "l.txt").write_bytes("caf\u00e9 au lait, cr\u00e8me br\u00fbl\u00e9e\n".encode("latin-1") * 20)
    result = cli("train", "l.txt", "--encoding", "latin-1", "--steps", "2", *TINY_TEXT_RUN, "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\u00e9" in load_checkpoint(tmp_path / "checkpoints" / "l.safetensors").vocab
    assert_one_line_error(cli("train", "l.txt", "--encoding", "klingon", cwd=tmp_path), 2, "--encoding 'klingon'")


# --------------------------------------------------------------------------------------------
# seqgen train: bad options
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args,option",
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--window", "-1"], "--window"),
        (["--hidden", "0"], "--hidden"),
        (["--layers", "-2"], "--layers"),
        (["--embed", "0"], "--embed"),
        (["--steps", "0"], "--steps"),
        (["--epochs", "-1"], "--epochs"),
        (["--eval-every", "0"], "--eval-every"),
        (["--lr", "0"], "--lr"),
        (["--val-fraction", "0"], "--val-fraction"),
        (["--val-fraction", "1"], "--val-fraction"),
        (["--val-fraction", "-0.5"], "--val-fraction"),
        (["--cell", "transformer"], "--cell"),
        (["--max-time", "soon"], "--max-time"),
        (["--max-time", "5x"], "--max-time"),
        (["--max-time", "0"], "--max-time"),
        (["--dropout", "1"], "--dropout"),
        (["--kind", "image"], "--kind"),
        (["--device", "tpu"], "--device"),
        (["--sine-waves", "0"], "--sine-waves"),
    ],
)
def test_invalid_train_options_are_usage_errors(tmp_path, args, option):
    assert_one_line_error(cli("train", *TINY_SINE, "--steps", "1", *args, cwd=tmp_path), 2, option)


def test_cuda_where_there_is_none(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert_one_line_error(
        cli("train", *TINY_SINE, "--steps", "1", "--device", "cuda", cwd=tmp_path), 2, "--device cuda"
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A tiny text checkpoint and a tiny sine checkpoint made by the CLI, in one folder."""
    folder = tmp_path_factory.mktemp("runs")
    (folder / "poem.txt").write_text(TINY_TEXT, encoding="utf-8")
    for args in (["poem.txt", "--out", "text.safetensors", *TINY_TEXT_RUN], ["--out", "sine.safetensors", *TINY_SINE]):
        result = cli("train", *args, "--steps", "4", "--eval-every", "2", "-q", cwd=folder)
        assert result.returncode == 0, result.stderr
    return folder


@pytest.mark.parametrize(
    "args,needles",
    [
        (["poem.txt", "--resume", "sine.safetensors"], ["--resume sine.safetensors", "series data, not text"]),
        (
            ["sine", "--resume", "text.safetensors", *TINY_SINE[:4]],
            ["--resume text.safetensors", "text data, not series"],
        ),
        (
            ["poem.txt", "--resume", "text.safetensors", "--hidden", "32"],
            ["--resume text.safetensors", "hidden 16 vs 32"],
        ),
        (["poem.txt", "--resume", "text.safetensors", "--cell", "gru"], ["cell lstm vs gru"]),
    ],
)
def test_resume_with_another_kind_or_shape(runs, args, needles):
    assert_one_line_error(cli("train", *args, "--steps", "8", cwd=runs), 2, *needles)


def test_resume_from_a_missing_or_damaged_checkpoint(runs):
    assert_one_line_error(cli("train", "poem.txt", "--resume", "gone.safetensors", cwd=runs), 1, "gone.safetensors")
    (runs / "junk.safetensors").write_text("not a checkpoint at all\n" * 10)
    assert_one_line_error(
        cli("train", "poem.txt", "--resume", "junk.safetensors", cwd=runs), 1, "junk.safetensors", "not a seqgen"
    )


# --------------------------------------------------------------------------------------------
# seqgen sample: bad checkpoints, primes and options
# --------------------------------------------------------------------------------------------
def test_sample_eval_and_info_refuse_unusable_checkpoints(runs, tmp_path):
    import json

    from safetensors.numpy import save_file

    raw = (runs / "text.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[: len(raw) // 2])
    flipped = bytearray(raw)
    flipped[-10] ^= 0x01
    (tmp_path / "flip.safetensors").write_bytes(bytes(flipped))
    (tmp_path / "poem.safetensors").write_text(TINY_TEXT)
    save_file({"w": np.zeros(3, np.float32)}, tmp_path / "other.safetensors")  # safetensors, but not ours
    meta = json.dumps({"format": "seqgen-checkpoint", "format_version": 3})
    save_file({"model.w": np.zeros(3, np.float32)}, tmp_path / "future.safetensors", metadata={"seqgen": meta})
    (tmp_path / "folder").mkdir()
    for name, needle in (
        ("missing.safetensors", "no such checkpoint"),
        ("cut.safetensors", "truncated or corrupted"),
        ("flip.safetensors", "checksum"),
        ("poem.safetensors", "not a seqgen checkpoint"),
        ("other.safetensors", "not a seqgen checkpoint"),
        ("future.safetensors", "version 3"),
        ("folder", "directory"),
    ):
        for command in (["sample", "--length", "5"], ["eval"], ["info"]):
            assert_one_line_error(cli(command[0], name, *command[1:], cwd=tmp_path), 1, name, needle)


@pytest.mark.parametrize(
    "model,args,code,needles",
    [
        ("text", ["--prime", "To be #@"], 1, ["never seen", "'#', '@'"]),
        ("text", ["--prime", "0.1 0.2 0.3"], 1, ["never seen", "continues text, not numbers"]),
        ("sine", ["--prime", "To be"], 1, ["--prime", "'To' is not a number"]),
        ("sine", ["--prime", "0.1 nan"], 1, ["--prime", "NaN"]),
        ("text", ["--prime", ""], 2, ["prime is empty"]),
        ("sine", ["--prime", " "], 2, ["prime is empty"]),
        ("text", ["--prime-file", "nowhere.txt"], 1, ["--prime-file nowhere.txt"]),
        ("text", ["--prime-file", "."], 1, ["--prime-file .", "directory"]),
        ("text", ["--temperature", "0"], 2, ["--temperature", "--greedy"]),
        ("text", ["--greedy", "--temperature", "2"], 2, ["--greedy", "would change nothing"]),
        ("text", ["--temperature", "-1"], 2, ["--temperature"]),
        ("text", ["--top-k", "0"], 2, ["--top-k"]),
        ("text", ["--top-p", "0"], 2, ["--top-p"]),
        ("text", ["--top-p", "1.01"], 2, ["--top-p"]),
        ("text", ["--length", "-1"], 2, ["--length"]),
        ("sine", ["--length", "-5"], 2, ["--length"]),
        ("text", ["--num-samples", "0"], 2, ["--num-samples"]),
        ("text", ["--backend", "jax"], 2, ["--backend"]),
        ("sine", ["--separator", "x"], 2, ["--separator", "--format values"]),
        ("text", ["--format", "jsonl", "--per-step", "--include-prime"], 2, ["--include-prime", "--per-step"]),
        ("text", ["--save-state", "sine.safetensors"], 2, ["--save-state sine.safetensors", "not a state file"]),
        ("text", ["--save-state", "."], 2, ["--save-state .", "is a directory"]),
        ("text", ["--save-state", "nowhere/s.safetensors"], 2, ["the folder nowhere does not exist"]),
    ],
)
def test_sample_rejects_bad_primes_and_options(runs, model, args, code, needles):
    assert_one_line_error(cli("sample", f"{model}.safetensors", *args, cwd=runs), code, *needles)


def test_debug_shows_the_traceback(runs):
    for how in (["--debug"], []):
        extra = {} if how else {"SEQGEN_DEBUG": "1"}
        result = run(*how, "sample", "missing.safetensors", cwd=runs, **extra)
        assert result.returncode == 1 and "Traceback" in result.stderr and "CheckpointError" in result.stderr
    usage = run("--debug", "sample", "missing.safetensors", "--length", "-1", cwd=runs)
    assert usage.returncode == 2 and "Traceback" in usage.stderr  # the same exit status as without --debug


# --------------------------------------------------------------------------------------------
# Faults during training
# --------------------------------------------------------------------------------------------
def start_training(folder: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*SEQGEN, "train", "poem.txt", *TINY_TEXT_RUN, *args],
        cwd=folder,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_at_the_next_step_and_saves_a_resumable_checkpoint(tmp_path, signum):
    (tmp_path / "poem.txt").write_text(TINY_TEXT, encoding="utf-8")
    process = start_training(tmp_path, "--out", "run.safetensors", "--steps", "100000", "--eval-every", "20")
    wait_for(tmp_path / "run.metrics.jsonl", process)  # written just after the first checkpoint
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, stderr
    assert stdout == "" and "Traceback" not in stderr
    assert "--resume run.safetensors" in stderr
    stopped = load_checkpoint(tmp_path / "run.safetensors").meta["progress"]["step"]
    assert 20 <= stopped < 100000

    resumable = load_checkpoint(tmp_path / "run.safetensors")
    assert any(k.startswith("optim.") for k in resumable.training)  # what --resume needs (used in the determinism test)


def test_a_run_on_standard_input_says_to_give_the_data_again(tmp_path):
    process = subprocess.Popen(
        [*SEQGEN, "train", "-", *TINY_TEXT_RUN, "--out", "run.safetensors", "--steps", "100000", "--eval-every", "20"],
        cwd=tmp_path,
        env=env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdin.write(TINY_TEXT)
    process.stdin.close()
    wait_for(tmp_path / "run.metrics.jsonl", process)
    process.send_signal(signal.SIGINT)
    process.stdin = None  # already closed; communicate must not flush it
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "the data came from standard input, so give it again" in stderr
    assert "seqgen train - --resume run.safetensors < DATA" in stderr
    without = run("train", "--resume", "run.safetensors", cwd=tmp_path)
    assert without.returncode == 2 and "give it again: seqgen train - --resume run.safetensors < DATA" in without.stderr
    (tmp_path / "DATA").write_text(TINY_TEXT, encoding="utf-8")
    again = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m seqgen train - --resume run.safetensors --steps 30 < DATA"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr  # the command as printed


def test_a_second_ctrl_c_exits_at_once(monkeypatch):
    from seqgen.train import stop_on_signals

    class Exited(Exception):
        pass

    def fake_exit(code):
        raise Exited(code)

    monkeypatch.setattr(os, "_exit", fake_exit)
    before = signal.getsignal(signal.SIGINT)
    with stop_on_signals() as received:
        os.kill(os.getpid(), signal.SIGINT)
        assert received() == signal.SIGINT  # the first one only asks the loop to stop
        with pytest.raises(Exited) as exited:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here, between bytecodes
    assert exited.value.args == (130,)
    assert signal.getsignal(signal.SIGINT) is before  # restored afterwards


def test_a_second_ctrl_c_says_why_the_summary_is_missing(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from seqgen.cli import app

    class Exited(Exception):
        pass

    def fake_exit(code):
        raise Exited(code)

    def interrupted_twice(self, on_event=None, should_stop=None):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # the handlers run here, between bytecodes

    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.setattr(Trainer, "run", interrupted_twice)
    (tmp_path / "poem.txt").write_text(TINY_TEXT, encoding="utf-8")
    result = CliRunner().invoke(
        app, ["train", str(tmp_path / "poem.txt"), "--out", str(tmp_path / "m.safetensors"), "--quiet", *TINY_TEXT_RUN]
    )
    assert isinstance(result.exception, Exited) and result.exception.args == (130,)
    assert "stopped at once by a second interrupt, without saving; no checkpoint was written" in result.stderr


def nan_from_step(monkeypatch, bad: Callable[[int], bool]) -> None:
    """Make the training loss NaN at the steps where bad(steps done) is true."""
    real_loss = Trainer._loss

    def poisoned(self, output, target):
        loss = real_loss(self, output, target)
        return loss * float("nan") if bad(self.step) else loss

    monkeypatch.setattr(Trainer, "_loss", poisoned)


def tiny_sine_trainer(out: Path, steps: int) -> Trainer:
    data = load_data(None, sine=SineConfig(waves=4, length=200))
    return Trainer(
        data, ModelConfig(hidden=8, layers=1), TrainConfig(batch_size=4, window=20, steps=steps, eval_every=4), out
    )


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "s.safetensors"
    trainer = tiny_sine_trainer(out, steps=50)
    nan_from_step(monkeypatch, lambda done: done >= 6)
    # Each nan sends the run back to step 4's weights with half the rate, until the restarts run out.
    with pytest.raises(
        TrainingError, match=r"became nan at step 10 \(after 3 restarts.*s\.safetensors, is kept.*lower `lr`"
    ):
        trainer.run()
    ckpt = load_checkpoint(out)
    assert ckpt.meta["progress"]["step"] == 4
    assert all(np.isfinite(w).all() for w in ckpt.weights.values())


def test_a_passing_nan_sends_the_run_back_to_its_best_weights_with_half_the_rate(tmp_path, monkeypatch):
    out = tmp_path / "s.safetensors"
    trainer = tiny_sine_trainer(out, steps=30)
    nan_from_step(monkeypatch, lambda done: done == 6)
    events = []
    result = trainer.run(on_event=events.append)
    rollbacks = [e for e in events if e["type"] == "rollback"]
    assert [(e["step"], e["to_step"]) for e in rollbacks] == [(7, 4)]
    assert rollbacks[0]["lr"] == pytest.approx(trainer.config.lr / 2)
    assert result.steps == 30 and result.stopped_by == "limit"
    progress = load_checkpoint(out).meta["progress"]
    assert progress["rollbacks"] == 1 and progress["lr_scale"] == 0.5


def test_a_text_run_that_blows_up_goes_back_but_overfitting_does_not(tmp_path, monkeypatch):
    data = text_dataset("the quick brown fox jumps over the lazy dog. " * 40, "t", "t", 0.2)
    config = TrainConfig(batch_size=4, window=16, steps=24, eval_every=4, warmup=0)
    values = iter([2.0, 1.5, 1.9, 1.8, 3.0, 1.4])  # validation losses at steps 4, 8, ..., 24
    monkeypatch.setattr(Trainer, "validate", lambda self: next(values))
    trainer = Trainer(data, ModelConfig(hidden=8, layers=1, embed=4), config, tmp_path / "t.safetensors")
    real_step = Trainer.train_step
    # The training loss blows up only after step 16: a rise in validation loss alone (steps 12, 16) is overfitting.
    monkeypatch.setattr(Trainer, "train_step", lambda self: real_step(self) * (10 if self.step > 16 else 1))
    events = []
    trainer.run(on_event=events.append)
    assert [(e["step"], e["to_step"]) for e in events if e["type"] == "rollback"] == [(20, 8)]


def test_diverging_run_from_the_command_line(tmp_path):
    # A point head: the oscillator head (the sine default) bounds its output and does not diverge.
    result = cli(
        "train",
        *TINY_SINE,
        "--head",
        "point",
        "--steps",
        "50",
        "--eval-every",
        "1",
        "--lr",
        "1e30",
        "--out",
        "d.safetensors",
        cwd=tmp_path,
    )
    assert_one_line_error(result, 1, "at step", "--lr")
    assert load_checkpoint(tmp_path / "d.safetensors").meta["progress"]["step"] >= 1


def test_output_folder_that_cannot_exist_is_reported_before_training(tmp_path):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    result = cli("train", *TINY_SINE, "--steps", "5", "--out", "notes.txt/model.safetensors", cwd=tmp_path)
    assert_one_line_error(result, 1, "notes.txt/model.safetensors", "not a folder")
    assert not any(line.startswith("step ") for line in result.stderr.splitlines())  # no training happened


def test_disk_full_at_save_time_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"data": {"kind": "series"}}, {"w": np.ones(4, np.float32)})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(CheckpointError, match="No space left.*previous .* is intact"):
        save_checkpoint(path, {"data": {"kind": "series"}}, {"w": np.zeros(4, np.float32)})
    monkeypatch.undo()
    np.testing.assert_array_equal(load_checkpoint(path).weights["w"], np.ones(4))
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


def test_kill_9_during_a_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"data": {"kind": "series"}}, {"w": np.ones(4, np.float32)})
    # A writer that has written the new file's bytes and is stuck before the rename.
    script = textwrap.dedent(f"""
        import os, sys, time
        import numpy as np
        from seqgen.checkpoint import save_checkpoint
        def stuck(fd):
            print("writing", flush=True)
            time.sleep(60)
        os.fsync = stuck
        save_checkpoint({str(path)!r}, {{"data": {{"kind": "series"}}}}, {{"w": np.zeros(1_000_000, np.float32)}})
    """)
    writer = subprocess.Popen([sys.executable, "-c", script], env=env(), stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "writing\n"
    writer.kill()
    writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    np.testing.assert_array_equal(load_checkpoint(path).weights["w"], np.ones(4))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "c.safetensors"]
    assert all(
        name.startswith(".c.safetensors.") and name.endswith(".tmp") for name in leftovers
    )  # never the final name


# --------------------------------------------------------------------------------------------
# Pipes and output
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("model", ["text", "sine"])
def test_closed_pipes_end_quietly(runs, model, backend):
    command = [*SEQGEN, "sample", f"{model}.safetensors", "--length", "200000", "--backend", backend]
    for head, check in (
        (["head", "-c", "10"], lambda out: len(out) == 10),
        (["head", "-n", "1"], lambda out: out.count(b"\n") == 1),
    ):
        producer = subprocess.Popen(command, cwd=runs, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        consumer = subprocess.run(head, stdin=producer.stdout, capture_output=True, timeout=120)
        producer.stdout.close()
        stderr = producer.stderr.read()
        producer.wait(timeout=120)
        assert producer.returncode == 0, stderr
        assert stderr == b""
        assert check(consumer.stdout), consumer.stdout


@pytest.mark.parametrize("model", ["text", "sine"])
def test_redirected_stdout_holds_exactly_the_data(runs, tmp_path, model):
    target = tmp_path / "out.txt"
    with open(target, "w") as out:
        result = subprocess.run(
            [*SEQGEN, "sample", f"{model}.safetensors", "--length", "40", "--seed", "4"],
            cwd=runs,
            env=env(FORCE_COLOR="1"),
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    written = target.read_text(encoding="utf-8")
    assert "\x1b" not in written
    if model == "text":
        assert len(written) == 41 and written.endswith("\n")
        gen = Generator.from_checkpoint(runs / "text.safetensors", seed=4)
        gen.feed("\n")
        assert written == gen.decode([t[0] for t in gen.generate(40)]) + "\n"  # the data and nothing else
    else:
        assert [float(line) for line in written.splitlines()] and len(written.splitlines()) == 40


def test_messages_honour_no_color(runs):
    coloured = run("sample", "missing.safetensors", cwd=runs, FORCE_COLOR="1", NO_COLOR="")
    plain = run("sample", "missing.safetensors", cwd=runs, FORCE_COLOR="1", NO_COLOR="1")
    assert "\x1b[31m" in coloured.stderr  # with a terminal forced, the error is red...
    assert "\x1b[3" not in plain.stderr and "seqgen: error:" in plain.stderr  # ...unless NO_COLOR says no


# --------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model,args", [("text", ["--top-p", "0.9"]), ("sine", ["--noise", "0.1"])])
def test_same_sample_command_same_bytes(runs, model, args):
    outputs = set()
    for backend in ("numpy", "numpy", "torch"):
        result = run(
            "sample", f"{model}.safetensors", "--length", "200", "--seed", "11", "--backend", backend, *args, cwd=runs
        )
        assert result.returncode == 0, result.stderr
        outputs.add(result.stdout)
    if model == "text":
        assert len(outputs) == 1  # token choices agree across backends too
    else:
        assert len(outputs) <= 2  # values may differ in the last printed digit between float paths
    other = run("sample", f"{model}.safetensors", "--length", "200", "--seed", "12", *args, cwd=runs)
    assert other.stdout not in outputs


def weights_of(path: Path) -> dict[str, np.ndarray]:
    ckpt = load_checkpoint(path)
    return {**ckpt.weights, **{k: v for k, v in ckpt.training.items() if k.startswith(("weights.", "optim."))}}


def test_same_seed_same_weights_and_resume_equals_uninterrupted(tmp_path):
    """Two processes run the same command; one is stopped by Ctrl-C and resumed. Both end with the
    same weights, bit for bit: run-to-run determinism and exact resumption in one comparison."""
    (tmp_path / "poem.txt").write_text(TINY_TEXT, encoding="utf-8")
    common = ["--steps", "300", "--eval-every", "25", "--seed", "7", "--dropout", "0.1", "-q"]
    whole = start_training(tmp_path, *common, "--out", "a.safetensors")
    stopped = start_training(tmp_path, *common, "--out", "b.safetensors")
    wait_for(tmp_path / "b.metrics.jsonl", stopped)
    stopped.send_signal(signal.SIGINT)
    _, stderr = stopped.communicate(timeout=120)
    assert stopped.returncode == 130, stderr  # stopped part-way, not at the end
    assert load_checkpoint(tmp_path / "b.safetensors").meta["progress"]["step"] < 300
    resumed = run("train", "poem.txt", "--resume", "b.safetensors", "-q", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    _, stderr = whole.communicate(timeout=120)
    assert whole.returncode == 0, stderr

    a, b = weights_of(tmp_path / "a.safetensors"), weights_of(tmp_path / "b.safetensors")
    assert load_checkpoint(tmp_path / "b.safetensors").meta["progress"]["step"] == 300
    assert a.keys() == b.keys() and any(k.startswith("optim.") for k in a)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


# --------------------------------------------------------------------------------------------
# Library-level: never anything but a SeqgenError
# --------------------------------------------------------------------------------------------
def test_generator_from_a_damaged_checkpoint_is_a_seqgen_error(runs, tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes((runs / "text.safetensors").read_bytes()[:-7])
    with pytest.raises(SeqgenError):
        Generator.from_checkpoint(path)


# --------------------------------------------------------------------------------------------
# Fuzz: whatever text arrives, seqgen trains and samples, or says clearly why not
# --------------------------------------------------------------------------------------------
# Combining marks, emoji, NUL, a lone surrogate (written with surrogatepass: undecodable UTF-8) and plain letters.
AWKWARD = st.sampled_from(
    ["\u0301", "\u20dd", "\U0001f642", "\U0001f468\u200d\U0001f469", "\x00", "\ud800", "\n", "a", "b", " "]
)
FUZZ_TEXT = st.lists(st.one_of(AWKWARD, st.characters()), min_size=0, max_size=120).map("".join)


def train_and_sample_or_clean_error(path: Path, folder: Path) -> None:
    try:
        data = load_data(str(path))
        out = folder / "fuzz.safetensors"
        Trainer(
            data,
            ModelConfig(hidden=4, embed=2, layers=1),
            TrainConfig(batch_size=2, window=4, steps=2, eval_every=2),
            out,
        ).run()
    except SeqgenError as e:
        assert str(e) and "\n" not in str(e)
        return
    if data.kind == "text":
        assert "".join(data.vocab[i] for i in data.streams[0]) == path.read_bytes().decode("utf-8")
    gen = Generator.from_checkpoint(out, seed=0)
    gen.feed(
        data.vocab[int(data.streams[0][0])] if data.kind == "text" else [float(data.unscale(data.streams[0][:1])[0])]
    )
    items = [item[0] for item in gen.generate(5)]
    if data.kind == "text":
        assert set(gen.decode(items)) <= set(data.vocab)
    else:
        assert np.isfinite(items).all()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=FUZZ_TEXT)
def test_fuzz_unicode_text_trains_and_samples_or_fails_cleanly(tmp_path, text):
    path = tmp_path / "fuzz.txt"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    train_and_sample_or_clean_error(path, tmp_path)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(min_size=0, max_size=300))
def test_fuzz_raw_bytes_train_and_sample_or_fail_cleanly(tmp_path, raw):
    path = tmp_path / "fuzz.bin"
    path.write_bytes(raw)
    train_and_sample_or_clean_error(path, tmp_path)


# --------------------------------------------------------------------------------------------
# Stress (slow): big inputs stay well under 2 GB
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_big_text_and_series_train_and_sample_well_under_2_gb(tmp_path, monkeypatch):
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "stress.py"
    spec = importlib.util.spec_from_file_location("stress", script)
    stress = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stress)
    monkeypatch.setenv("PYTHONPATH", env()["PYTHONPATH"])  # the processes it starts import this checkout
    for label, _seconds, peak_mb in stress.run(tmp_path):
        assert peak_mb < 1500, (label, peak_mb)


def test_writing_to_a_folder_says_so(tmp_path):
    from seqgen.errors import CheckpointError
    from seqgen.files import write_atomic

    with pytest.raises(CheckpointError, match="it is a folder, not a file"):
        write_atomic(tmp_path, b"data")
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
