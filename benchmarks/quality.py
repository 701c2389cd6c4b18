"""Quality benchmark for issue 3, run end to end through the public command line.

    python benchmarks/quality.py [--skip-text] [--seed N]

1. Sine: `seqgen train` with no flags (timed), then `seqgen eval --long` on 32 fresh waves drawn
   with a seed never used in training (random unless --seed): free-run RMSE at 100 and 1000 steps
   after a 100-step prime, and generated/true amplitude over the last 1000 of 10,000 steps.
2. A user's own series: a sum of two sines and a noisy sine (std 0.05) written as numeric files,
   trained with defaults, free-run RMSE on each file's validation tail.
3. Text (when ../shared/data/tinyshakespeare.txt exists): `seqgen train FILE --max-time 5m`, then
   `seqgen eval` (validation loss over the last 10%, one unbroken stream), and a sample primed with
   "ROMEO:" at temperature 0.8, with the share of its words that occur in the corpus.
Prints a table of figures and targets. Exits non-zero only if a command crashes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
SEQGEN = [sys.executable, "-m", "seqgen"]


def seqgen(*args: str, cwd: str) -> tuple[str, float]:
    """Run a seqgen command; returns (stdout, wall seconds). Raises if it fails."""
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([*SEQGEN, *args], capture_output=True, text=True, cwd=cwd, env=env)
    if result.returncode != 0:
        raise SystemExit(f"seqgen {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout, time.perf_counter() - start


def sine_rows(folder: str, seed: int) -> list[tuple]:
    _, seconds = seqgen("train", "--quiet", cwd=folder)
    report = json.loads(seqgen("eval", "checkpoints/sine.safetensors", "--long", "--waves", "32",
                               "--seed", str(seed), "--json", cwd=folder)[0])
    rmse = report["rmse"]
    amp_lo, amp_hi = report["amplitude_ratio_min"], report["amplitude_ratio_max"]
    return [
        ("sine: default training time (s)", seconds, "<= 60", seconds <= 60),
        ("sine: free-run RMSE, 100 steps", rmse["100"], "<= 0.01", rmse["100"] <= 0.01),
        ("sine: free-run RMSE, 1000 steps", rmse["1000"], "<= 0.05", rmse["1000"] <= 0.05),
        ("sine: amplitude ratio at 10k, min", amp_lo, ">= 0.90", amp_lo >= 0.9),
        ("sine: amplitude ratio at 10k, max", amp_hi, "<= 1.10", amp_hi <= 1.1),
    ]


def user_series_rows(folder: str, seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    t = np.arange(20_000)
    series = {
        "two_sines": 0.6 * np.sin(2 * math.pi * t / 37 + rng.uniform(0, 6.28)) + 0.3 * np.sin(2 * math.pi * t / 83),
        "noisy_sine": np.sin(2 * math.pi * t / 50 + rng.uniform(0, 6.28)) + rng.normal(0, 0.05, len(t)),
    }
    rows = []
    for name, values in series.items():
        path = Path(folder) / f"{name}.txt"
        path.write_text("\n".join(f"{v:.6f}" for v in values) + "\n")
        _, seconds = seqgen("train", str(path), "--quiet", cwd=folder)
        report = json.loads(seqgen("eval", f"checkpoints/{name}.safetensors", str(path), "--json", cwd=folder)[0])
        rows.append((f"{name}: training time (s)", seconds, "", None))
        for horizon, value in report["rmse"].items():
            rows.append((f"{name}: free-run RMSE, {horizon} steps", value, "report", None))
    return rows


def text_rows(folder: str) -> list[tuple]:
    _, seconds = seqgen("train", str(SHAKESPEARE), "--max-time", "5m", "--quiet", cwd=folder)
    ckpt = "checkpoints/tinyshakespeare.safetensors"
    report = json.loads(seqgen("eval", ckpt, str(SHAKESPEARE), "--json", cwd=folder)[0])
    sample, _ = seqgen("sample", ckpt, "--prime", "ROMEO:", "--temperature", "0.8", "--length", "1000",
                       "--seed", "1", "--include-prime", cwd=folder)
    corpus_words = set(re.findall(r"[a-z']+", SHAKESPEARE.read_text(encoding="utf-8").lower()))
    words = re.findall(r"[a-z']+", sample.lower())
    known = sum(w in corpus_words for w in words) / max(len(words), 1)
    speakers = len(re.findall(r"^[A-Z][A-Za-z ]+:$", sample, flags=re.M))
    print("\n--- sample (seed 1, temperature 0.8) ---\n" + sample[:600] + "\n---", file=sys.stderr)
    loss = report["loss"]
    return [
        ("text: wall time of the 5m run incl. start (s)", seconds, "", None),
        ("text: validation loss (nats/char)", loss, "<= 1.45", loss <= 1.45),
        ("text: validation bits/char", loss / math.log(2), "", None),
        ("text: sample words found in the corpus", known, "mostly", known >= 0.8),
        ("text: speaker lines ('NAME:') in 1000 chars", speakers, ">= 1", speakers >= 1),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-text", action="store_true", help="leave out the 5-minute text run")
    parser.add_argument("--seed", type=int, default=None, help="seed of the evaluation waves (default: random)")
    parser.add_argument("--keep", type=Path, default=None, help="copy the trained checkpoints into this folder")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        rows += sine_rows(folder, seed)
        rows += user_series_rows(folder, seed)
        if not args.skip_text and SHAKESPEARE.exists():
            rows += text_rows(folder)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in Path(folder, "checkpoints").glob("*.safetensors"):
                shutil.copy2(path, args.keep / path.name)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; evaluation seed {seed}")
    print(f"{'measure':48s} {'value':>10s}  {'target':10s} met")
    for name, value, target, met in rows:
        flag = "" if met is None else ("yes" if met else "NO")
        print(f"{name:48s} {value:>10.4f}  {target:10s} {flag}")


if __name__ == "__main__":
    main()
