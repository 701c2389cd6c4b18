"""Quality benchmark (issues 3 and 13), run end to end through the public command line.

    python benchmarks/quality.py [--skip-text] [--seed N]

1. Sine: `seqgen train` with no flags (timed), then `seqgen eval --long` of that model, of one
   trained for only 20 steps (`--steps 20`) and of the shipped checkpoints/sine.safetensors on 32 fresh waves drawn with a seed never used in training
   (random unless --seed): free-run RMSE at 100 and 1000 steps after a 100-step prime (over all
   waves, and of the worst wave), and generated/true amplitude over steps 9,001-10,000. Beside
   them, the physical limit: a least-squares linear recurrence of order 2 fitted to each prime.
2. A user's own series: a sum of two sines and a noisy sine (std 0.05) written as numeric files,
   trained with defaults, free-run RMSE on each file's validation tail, beside a least-squares
   recurrence (order 4 for two sines, 2 for one) fitted to the same 100-value prime.
3. Text (when ../shared/data/tinyshakespeare.txt exists): `seqgen train FILE --max-time 5m`, then
   `seqgen eval` (validation loss over the last 10%, as one unbroken stream and as nanoGPT scores
   it, windows of 256 each from a zero state), and a sample primed with
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
sys.path.insert(0, str(ROOT))
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


def linear_recurrence(prime: np.ndarray, length: int, order: int) -> np.ndarray:
    """The physical limit: x[t] = sum_k c_k x[t-k], fitted by least squares to each prime (a row),
    continued on its own output for `length` steps (float64)."""
    prime = np.atleast_2d(prime)
    out = np.empty((len(prime), length))
    for row, values in enumerate(prime):
        lags = np.stack([values[order - k - 1 : len(values) - k - 1] for k in range(order)], axis=1)
        coef = np.linalg.lstsq(lags, values[order:], rcond=None)[0]
        history = list(values[-order:])
        for t in range(length):
            history.append(float(np.dot(coef, history[::-1][:order])))
            out[row, t] = history[-1]
    return out


def baseline_rmse(prime: np.ndarray, truth: np.ndarray, order: int, horizons) -> dict[int, tuple[float, float]]:
    """Mean and worst-row RMSE of the fitted recurrence at each horizon."""
    truth = np.atleast_2d(truth)
    generated = linear_recurrence(prime, truth.shape[1], order)
    per_row = {h: np.sqrt(np.mean((generated[:, :h] - truth[:, :h]) ** 2, axis=1)) for h in horizons}
    return {h: (float(np.sqrt(np.mean(r**2))), float(r.max())) for h, r in per_row.items()}


def sine_model_rows(label: str, checkpoint: str, folder: str, seed: int) -> list[tuple]:
    """Free run on 32 fresh waves: mean and worst-wave RMSE, amplitude band (issue 13's targets)."""
    report = json.loads(
        seqgen("eval", checkpoint, "--long", "--waves", "32", "--seed", str(seed), "--json", cwd=folder)[0]
    )
    rmse, worst = report["rmse"], report["rmse_worst"]
    amp_lo, amp_hi = report["amplitude_ratio_min"], report["amplitude_ratio_max"]
    return [
        (f"{label}: RMSE 100 steps, mean", rmse["100"], "<= 0.01", rmse["100"] <= 0.01),
        (f"{label}: RMSE 100 steps, worst wave", worst["100"], "<= 0.01", worst["100"] <= 0.01),
        (f"{label}: RMSE 1000 steps, mean", rmse["1000"], "<= 0.05", rmse["1000"] <= 0.05),
        (f"{label}: RMSE 1000 steps, worst wave", worst["1000"], "<= 0.05", worst["1000"] <= 0.05),
        (f"{label}: amplitude 9,001-10,000, min", amp_lo, ">= 0.95", amp_lo >= 0.95),
        (f"{label}: amplitude 9,001-10,000, max", amp_hi, "<= 1.05", amp_hi <= 1.05),
    ]


def sine_rows(folder: str, seed: int) -> list[tuple]:
    from seqgen.data import SineConfig, sine_waves

    _, seconds = seqgen("train", "--quiet", cwd=folder)
    rows = [("sine: default training time (s)", seconds, "<= 60", seconds <= 60)]
    rows += sine_model_rows("sine default", "checkpoints/sine.safetensors", folder, seed)
    # A run cut short must hold the period too (issue 30): the network's correction starts at zero.
    seqgen("train", "--quiet", "--steps", "20", "--out", "checkpoints/sine-20.safetensors", cwd=folder)
    rows += sine_model_rows("sine 20 steps", "checkpoints/sine-20.safetensors", folder, seed)
    rows += sine_model_rows("sine shipped", str(ROOT / "checkpoints" / "sine.safetensors"), folder, seed)
    waves = sine_waves(32, 1100, SineConfig(), np.random.default_rng(seed)).astype(np.float64)  # as eval draws them
    limit = baseline_rmse(waves[:, :100], waves[:, 100:], order=2, horizons=(100, 1000))
    for h, (mean, worst) in limit.items():
        rows.append((f"sine limit (LS order 2): RMSE {h}, mean/worst", mean, f"{worst:.2e}", None))
    return rows


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
        # The limit on the same prime and tail as eval uses: the 100 values before the last 10%.
        split = len(values) - round(len(values) * 0.1)
        order = 4 if name == "two_sines" else 2
        limit = baseline_rmse(values[split - 100 : split], values[split:], order, [int(h) for h in report["rmse"]])
        for horizon, value in report["rmse"].items():
            rows.append((f"{name}: free-run RMSE, {horizon} steps", value, "report", None))
            rows.append((f"{name}: limit (LS order {order}), {horizon}", limit[int(horizon)][0], "", None))
    return rows


def text_rows(folder: str) -> list[tuple]:
    _, seconds = seqgen("train", str(SHAKESPEARE), "--max-time", "5m", "--quiet", cwd=folder)
    ckpt = "checkpoints/tinyshakespeare.safetensors"
    report = json.loads(seqgen("eval", ckpt, str(SHAKESPEARE), "--json", cwd=folder)[0])
    sample, _ = seqgen(
        "sample",
        ckpt,
        "--prime",
        "ROMEO:",
        "--temperature",
        "0.8",
        "--length",
        "1000",
        "--seed",
        "1",
        "--include-prime",
        cwd=folder,
    )
    corpus_words = set(re.findall(r"[a-z']+", SHAKESPEARE.read_text(encoding="utf-8").lower()))
    words = re.findall(r"[a-z']+", sample.lower())
    known = sum(w in corpus_words for w in words) / max(len(words), 1)
    speakers = len(re.findall(r"^[A-Z][A-Za-z ]+:$", sample, flags=re.M))
    print("\n--- sample (seed 1, temperature 0.8) ---\n" + sample[:600] + "\n---", file=sys.stderr)
    loss, windows = report["stream_loss"], report["windows_loss"]
    return [
        ("text: wall time of the 5m run incl. start (s)", seconds, "", None),
        ("text: validation loss, one stream (nats/char)", loss, "<= 1.40 (issue 15)", loss <= 1.40),
        ("text: validation loss, windows of 256 from zero state", windows, "<= 1.47 (nanoGPT)", windows <= 1.47),
        ("text: validation bits/char, one stream", loss / math.log(2), "", None),
        ("text: sample words found in the corpus", known, "mostly", known >= 0.8),
        ("text: speaker lines ('NAME:') in 1000 chars", speakers, ">= 1", speakers >= 1),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-text", action="store_true", help="leave out the 5-minute text run")
    parser.add_argument("--sine-only", action="store_true", help="only the sine models (about 2 minutes)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the evaluation waves (default: random)")
    parser.add_argument("--keep", type=Path, default=None, help="copy the trained checkpoints into this folder")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        rows += sine_rows(folder, seed)
        if not args.sine_only:
            rows += user_series_rows(folder, seed)
        if not args.skip_text and not args.sine_only and SHAKESPEARE.exists():
            rows += text_rows(folder)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in Path(folder, "checkpoints").glob("*.safetensors"):
                shutil.copy2(path, args.keep / path.name)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; evaluation seed {seed}")
    print(f"{'measure':48s} {'value':>10s}  {'target':10s} met")
    for name, value, target, met in rows:
        flag = "" if met is None else ("met" if met else "NOT MET")
        print(f"{name:48s} {value:>10.4g}  {target:10s} {flag}")


if __name__ == "__main__":
    main()
