"""Columns modelled jointly (`--joint`) against the same columns as separate series of one model.

Two tables of quarterly US macro data that ship with statsmodels (macrodata, 1959-2009, US BEA,
BLS and Federal Reserve figures): "real" holds real GDP, consumption and investment, which move
together over the business cycle; "prices" holds the CPI, the M1 money stock and the 3-month
T-bill rate. Each is written as a CSV with its dates and trained twice with the defaults for a
series file (`seqgen train FILE --seed S`, and the same with `--joint`), then scored by the
rolling-origin backtest `seqgen eval` runs: forecasts of 8 quarters from 5 origins in the
validation tail (the last 10%, 2005-2009), 200 paths each, MASE and 80% coverage averaged over
the columns, beside the seasonal naive forecast from the same origins (season 4).

    pip install statsmodels
    python benchmarks/joint.py [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seqgen.evaluate import backtest  # noqa: E402

TABLES = {"real": ["realgdp", "realcons", "realinv"], "prices": ["cpi", "m1", "tbilrate"]}


def write_table(folder: Path, name: str, columns: list[str]) -> Path:
    import statsmodels.api as sm

    data = sm.datasets.macrodata.load_pandas().data
    months = [f"{int(y)}-{3 * int(q) - 2:02d}" for y, q in zip(data["year"], data["quarter"])]
    path = folder / f"{name}.csv"
    rows = [",".join([m] + [f"{data[c][i]:.6g}" for c in columns]) for i, m in enumerate(months)]
    path.write_text("quarter," + ",".join(columns) + "\n" + "\n".join(rows) + "\n")
    return path


def train(data: Path, out: Path, seed: int, joint: bool) -> None:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "seqgen", "train", str(data), "--out", str(out), "--seed", str(seed), "--quiet"]
    subprocess.run(command + (["--joint"] if joint else []), check=True, capture_output=True, text=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}")
    print(f"{'table':<8} {'method':<22} " + " ".join(f"{'seed ' + str(s):>14}" for s in seeds) + f" {'mean':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, columns in TABLES.items():
            data = write_table(Path(tmp), name, columns)
            rows: dict[str, list[tuple[float, float]]] = {}
            for seed in seeds:
                for joint in (False, True):
                    out = Path(tmp) / f"{name}-{seed}-{'joint' if joint else 'separate'}.safetensors"
                    train(data, out, seed, joint)
                    tested = backtest(out, data, horizon=8, origins=5, season=4, seed=seed)
                    label = "--joint" if joint else "separate series"
                    rows.setdefault(label, []).append((tested.seqgen["mase"], tested.seqgen["coverage"]))
                    rows.setdefault("seasonal naive", []).append((tested.seasonal_naive["mase"], float("nan")))
            rows["seasonal naive"] = rows["seasonal naive"][::2]  # the same origins for both models
            for label, figures in rows.items():
                cells = [f"{m:6.2f} / {c:4.0%}" if not np.isnan(c) else f"{m:6.2f}       " for m, c in figures]
                mean_m, mean_c = np.mean([m for m, _ in figures]), np.mean([c for _, c in figures])
                mean = f"{mean_m:6.2f} / {mean_c:4.0%}" if not np.isnan(mean_c) else f"{mean_m:6.2f}       "
                print(f"{name:<8} {label:<22} " + " ".join(f"{c:>14}" for c in cells) + f" {mean:>14}")
    print("(MASE / 80% interval coverage, means over the table's columns and 5 origins of 8 quarters)")


if __name__ == "__main__":
    main()
