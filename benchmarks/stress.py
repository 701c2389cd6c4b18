"""Stress: train and sample on a 1,000,000-character text and a 10,000,000-value series, and report
each command's peak memory (resident set size, Linux). Run: python benchmarks/stress.py [--keep DIR]

Each step is a real `seqgen` process, so the figure is what a user would see; a handful of
training steps is enough, since the memory goes to reading, scaling and windowing the data.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TEXT_CHARS = 1_000_000
SERIES_VALUES = 10_000_000
SHAKESPEARE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare.txt"


def make_text(path: Path) -> None:
    if SHAKESPEARE.exists():
        base = SHAKESPEARE.read_text(encoding="utf-8")
    else:  # any varied text will do; the size is what matters here
        rng = np.random.default_rng(0)
        base = "".join(rng.choice(list("abcdefghij klmnopqrstuvwxyz.,\n"), 100_000))
    text = (base * math.ceil(TEXT_CHARS / len(base)))[:TEXT_CHARS]
    path.write_text(text, encoding="utf-8")


def make_series(path: Path) -> None:
    # Written as text, one number per line: the heaviest format to read (100+ MB of digits).
    t = np.arange(SERIES_VALUES)
    values = np.sin(2 * np.pi * t / 37) + 0.3 * np.sin(2 * np.pi * t / 211)
    with open(path, "w") as f:
        for start in range(0, SERIES_VALUES, 1_000_000):
            np.savetxt(f, values[start : start + 1_000_000], fmt="%.5f")


# Runs seqgen in a fresh process and records that process's own peak RSS when it exits. VmHWM
# belongs to the process's own memory map; ru_maxrss would also count the parent's memory at fork.
PEAK_WRAPPER = """
import atexit, sys
def record(path=sys.argv[1]):
    peak = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM"))
    open(path, "w").write(peak)
atexit.register(record)
sys.argv = ["seqgen", *sys.argv[2:]]
from seqgen.cli import main
main()
"""


def measure(args: list[str], cwd: Path, stdout=subprocess.DEVNULL) -> tuple[float, float]:
    """Run `seqgen ARGS`; return (seconds, peak RSS in MB) of that process alone."""
    peak_file = cwd / "peak.kb"
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PEAK_WRAPPER, str(peak_file), *args],
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"seqgen {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return time.perf_counter() - start, int(peak_file.read_text()) / 1024


def run(folder: Path) -> list[tuple[str, float, float]]:
    make_text(folder / "big.txt")
    make_series(folder / "big_series.txt")
    small = ["--hidden", "64", "--layers", "1", "--steps", "20", "--eval-every", "20", "-q"]
    commands = [
        ("train, text 1M chars", ["train", "big.txt", "--out", "text.safetensors", "--embed", "16", *small]),
        ("sample, text 100k chars", ["sample", "text.safetensors", "--length", "100000"]),
        ("train, series 10M values", ["train", "big_series.txt", "--out", "series.safetensors", *small]),
        ("sample, series 100k values", ["sample", "series.safetensors", "--length", "100000"]),
    ]
    results = []
    for label, args in commands:
        seconds, peak = measure(args, folder)
        results.append((label, seconds, peak))
        print(f"{label:28s} {seconds:7.1f} s   peak RSS {peak:7.0f} MB", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep the files.")
    options = parser.parse_args()
    if options.keep:
        options.keep.mkdir(parents=True, exist_ok=True)
        run(options.keep)
    else:
        with tempfile.TemporaryDirectory() as folder:
            run(Path(folder))


if __name__ == "__main__":
    main()
