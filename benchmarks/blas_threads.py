"""What holding OpenBLAS to one thread saves when the NumPy backend steps a batch in slices on
threads of its own (seqgen/model/numpy_backend.py, `OneBlasThread`), in a program that imports
seqgen without setting OPENBLAS_NUM_THREADS (the `seqgen` command sets it to 1 itself).

    python benchmarks/blas_threads.py [--busy 2]

`--busy N` keeps N other processes spinning on the cores meanwhile, as on a shared machine (and
leaves out the 20,000 paths, which take minutes so).

Times `forecast` (12 steps) of 1 to 20,000 sample paths from the series default (an LSTM 2x64
with a Gaussian head, briefly trained), with the limit on and off; median of 7 runs each,
alternating.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seqgen.generate.forecast import forecast  # noqa: E402
from seqgen.model.numpy_backend import one_blas_thread  # noqa: E402

HORIZON, RUNS = 12, 7


def trained(folder: Path):
    """The series default (an LSTM 2x64, Gaussian head), briefly trained on a monthly cycle with a trend."""
    from seqgen import Trainer, load_checkpoint
    from seqgen.config import defaults_for
    from seqgen.data import series_dataset

    t = np.arange(478)
    values = 300 + 0.1 * t + 3 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(0).normal(0, 0.3, len(t))
    model_config, train_config = defaults_for("series", size=len(values))
    out = folder / "cycle.safetensors"
    Trainer(series_dataset(values, "cycle", "cycle", 0.1), model_config, replace(train_config, steps=100), out).run()
    return load_checkpoint(out), values


def timed(ckpt, history: np.ndarray, samples: int, seed: int) -> float:
    started = time.perf_counter()
    forecast(ckpt, history, HORIZON, samples=samples, seed=seed)
    return time.perf_counter() - started


def main() -> None:
    import argparse
    import subprocess

    from threadpoolctl import ThreadpoolController

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=0, help="processes kept spinning on the cores while timing")
    args = parser.parse_args()

    blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['num_threads']} threads)"
                     for b in ThreadpoolController().select(user_api="blas").info())
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}; "
          f"numpy {np.__version__}, BLAS {blas}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, history = trained(Path(tmp))
    print(f"forecasts of {HORIZON} steps, median of {RUNS} runs; {args.busy} other processes spinning")
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        measure(ckpt, history, (1, 16, 64, 200, 2000) if args.busy else (1, 16, 64, 200, 2000, 20000))
    finally:
        for hog in hogs:
            hog.kill()


def measure(ckpt, history: np.ndarray, sizes: tuple[int, ...]) -> None:
    print(f"{'paths':>8} {'OpenBLAS default (s)':>21} {'one thread (s)':>15} {'ratio':>7}")
    for samples in sizes:
        times = {True: [], False: []}
        for run in range(RUNS):
            for enabled in (False, True):
                one_blas_thread.enabled = enabled
                times[enabled].append(timed(ckpt, history, samples, run))
        off, on = np.median(times[False]), np.median(times[True])
        print(f"{samples:>8} {off:>21.4f} {on:>15.4f} {off / on:>6.1f}x")
    one_blas_thread.enabled = True


if __name__ == "__main__":
    main()
