"""Training across processes (torch.distributed, gloo on loopback): the same steps as one process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqgen import UsageError, load_checkpoint
from seqgen.train.distributed import Group, wait_for_ranks

from conftest import TINY_TEXT
from test_reliability import env

TINY_RUN = [
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
    "--eval-every",
    "1",
    "--seed",
    "3",
    "-q",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(cwd: Path, *args: str, launcher: list[str] = ()) -> None:
    command = [sys.executable, *(launcher or ["-m", "seqgen"]), "train", "poem.txt", *TINY_RUN, *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=180, env=env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def losses(path: Path) -> list[tuple[int, float, float]]:
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in map(json.loads, path.read_text().splitlines())]


def test_two_processes_take_the_same_steps_as_one_and_resume(tmp_path):
    (tmp_path / "poem.txt").write_text(TINY_TEXT, encoding="utf-8")
    train(tmp_path, "--steps", "6", "--out", "one.safetensors")
    torchrun = [
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(free_port()),
        "-m",
        "seqgen",
    ]
    train(tmp_path, "--steps", "3", "--out", "two.safetensors", launcher=torchrun)
    first = losses(tmp_path / "two.metrics.jsonl")
    # The convenience launcher, and a 2-process run resumed from a 2-process checkpoint.
    train(tmp_path, "--steps", "6", "--resume", "two.safetensors", "--nproc", "2")

    one, two = losses(tmp_path / "one.metrics.jsonl"), losses(tmp_path / "two.metrics.jsonl")
    assert [s for s, *_ in one] == [s for s, *_ in two] == [1, 2, 3, 4, 5, 6]
    assert first == two[:3]  # the resumed run appended to the log
    np.testing.assert_allclose([losses for _, *losses in two], [losses for _, *losses in one], rtol=1e-5)
    a, b = load_checkpoint(tmp_path / "one.safetensors"), load_checkpoint(tmp_path / "two.safetensors")
    assert b.meta["progress"]["step"] == 6
    for name, weights in a.weights.items():
        np.testing.assert_allclose(b.weights[name], weights, atol=1e-5, err_msg=name)
    assert a.training["state.0"].shape == b.training["state.0"].shape  # the whole batch's state, gathered
    assert b.meta["progress"]["processes"] == 2
    # Resumed without --nproc, it goes on in one process and says so.
    more = subprocess.run(
        [sys.executable, "-m", "seqgen", "train", "--resume", "two.safetensors", "--steps", "7"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=180,
        env=env(),
    )
    assert more.returncode == 0 and "trained in 2 processes and goes on in one" in more.stderr, more.stderr


def test_a_batch_that_does_not_split_evenly_is_a_usage_error():
    assert Group(rank=1, world=2).share(8) == (4, 4)
    with pytest.raises(UsageError, match="`batch_size` 5 does not split evenly across 2 processes"):
        Group(rank=0, world=2).share(5)


def test_a_rank_killed_from_outside_is_named_and_the_others_are_stopped():
    killed = [sys.executable, "-c", "import os, signal, time; time.sleep(0.2); os.kill(os.getpid(), signal.SIGKILL)"]
    waiting = [sys.executable, "-c", "import time; time.sleep(60)"]  # like a rank blocked on its lost peer
    ranks = [subprocess.Popen(killed), subprocess.Popen(waiting)]
    status, message = wait_for_ranks(ranks, grace=0.5)
    assert status == 128 + 9
    assert message == "rank 0 was killed by SIGKILL (out of memory?)"
    assert ranks[1].returncode == -9


def test_ranks_that_all_succeed_give_status_zero_and_the_first_failure_wins():
    ok, fails = [sys.executable, "-c", "pass"], [sys.executable, "-c", "import sys; sys.exit(3)"]
    assert wait_for_ranks([subprocess.Popen(ok), subprocess.Popen(ok)]) == (0, None)
    assert wait_for_ranks([subprocess.Popen(ok), subprocess.Popen(fails)]) == (3, None)
