"""Scaling benchmark: characters/s of `seqgen train` in 1 and 2 processes, and peak memory (RSS)
on a generated text corpus of at least 200 MB.

    python benchmarks/scale.py [--mb 200] [--steps 60]

Each run is a separate `seqgen train` (with --nproc 2 for 2 processes) with one torch thread
per process; its chars/s is read from the summary, its peak memory from /usr/bin/time -v
(the largest peak of any process it starts).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

WORDS = "the of and to in that it is was he for on are as with his they at be this from have or by one had".split()


def make_corpus(path: Path, megabytes: int) -> None:
    """Random words in lines: a stand-in for prose with a small alphabet, written 1 MB at a time."""
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(megabytes):
            words, size = [], 0
            while size < 1 << 20:
                word = rng.choice(WORDS) + ("\n" if rng.random() < 0.1 else " ")
                words.append(word)
                size += len(word)
            f.write("".join(words))


def train(folder: Path, corpus: Path, nproc: int, steps: int) -> tuple[float, float]:
    """(chars/s, peak RSS in MB) of one run."""
    args = [
        "train",
        str(corpus),
        "--steps",
        str(steps),
        "--eval-every",
        str(steps),
        "--val-fraction",
        "0.0005",
        "--batch-size",
        "64",
        "--cache-dir",
        str(folder / "cache"),
        "--out",
        str(folder / f"run{nproc}.safetensors"),
    ]
    if nproc > 1:
        args += ["--nproc", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    result = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "seqgen", *args], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    rate = float(re.search(r"chars/s\s+([\d,]+)", result.stderr).group(1).replace(",", ""))
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1)) / 1024
    return rate, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--steps", type=int, default=60)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        corpus = folder / "corpus.txt"
        make_corpus(corpus, options.mb)
        train(folder, corpus, 1, 2)  # build the cache first, so neither timed run pays for it
        one_rate, one_peak = train(folder, corpus, 1, options.steps)
        two_rate, two_peak = train(folder, corpus, 2, options.steps)
    print(f"corpus {options.mb} MB, {options.steps} steps, batch 64 x 128, default text model")
    print(f"1 process : {one_rate:,.0f} chars/s, peak RSS {one_peak:,.0f} MB")
    print(f"2 processes: {two_rate:,.0f} chars/s, peak RSS {two_peak:,.0f} MB per process (largest)")
    print(f"scaling: x{two_rate / one_rate:.2f}")


if __name__ == "__main__":
    main()
