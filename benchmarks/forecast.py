"""Forecasts of real series with seqgen's defaults, scored against classical baselines.

For each series that ships with statsmodels (yearly sunspots 1700-2008, yearly Nile flow at
Aswan 1871-1970, monthly CO2 at Mauna Loa 1958-2001 (weekly readings averaged by month),
quarterly US real GDP 1959-2009 (macrodata), monthly El Nino sea temperatures 1950-2010) the
last values are held out. seqgen trains with its defaults on the rest, written
as a CSV with a header, and forecasts the held-out horizon twice: with no prime (the
continuation of the data it was trained on) and with `--prime-file` holding the last 200
training values (the same file shape, header included). Each forecast is scored by MASE: mean
absolute error over the horizon divided by the in-sample mean absolute error of the seasonal
naive forecast (lower is better; 1 is as good as that naive forecast in sample). The baselines
are the last value repeated, the last season repeated, and exponential smoothing (ETS, from
statsmodels).

    pip install statsmodels          # the benchmark's only extra need
    python benchmarks/real_series.py [--seed 0] [--only sunspots]

Takes about 2 minutes on 2 cores (short series train in seconds; none takes longer than
seqgen's default limit). Targets (issue 14): MASE below seasonal naive on every series, and the
mean MASE at or below ETS's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def series() -> dict[str, tuple[np.ndarray, int, int]]:
    """name -> (values, held-out horizon, season length)."""
    import statsmodels.api as sm

    sunspots = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(float)
    nile = sm.datasets.nile.load_pandas().data["volume"].to_numpy(float)
    co2 = sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean().ffill().to_numpy(float)
    gdp = sm.datasets.macrodata.load_pandas().data["realgdp"].to_numpy(float)
    months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    elnino = sm.datasets.elnino.load_pandas().data[months].to_numpy(float).reshape(-1)
    return {"sunspots": (sunspots, 22, 11), "nile": (nile, 10, 1), "co2": (co2, 48, 12), "realgdp": (gdp, 8, 4),
            "elnino": (elnino, 24, 12)}


def mase(forecast: np.ndarray, truth: np.ndarray, train: np.ndarray, season: int) -> float:
    scale = np.mean(np.abs(train[season:] - train[:-season]))
    return float(np.mean(np.abs(forecast - truth)) / scale)


def baselines(train: np.ndarray, horizon: int, season: int) -> dict[str, np.ndarray]:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    last_season = train[-season:]
    out = {"last value": np.full(horizon, train[-1]),
           "seasonal naive": np.resize(last_season, horizon) if season > 1 else np.full(horizon, train[-1])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seasonal = "add" if season > 1 else None
        model = ExponentialSmoothing(train, trend="add", damped_trend=True, seasonal=seasonal,
                                     seasonal_periods=season if season > 1 else None).fit()
    out["ETS (statsmodels)"] = model.forecast(horizon)
    return out


def seqgen(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "seqgen", *args], capture_output=True, text=True, env=env, check=True)


def write_csv(path: Path, header: str, values: np.ndarray) -> None:
    path.write_text(header + "\n" + "".join(f"{v:.6g}\n" for v in values))


def seqgen_forecasts(name: str, train: np.ndarray, horizon: int, seed: int, folder: Path) -> tuple[dict, dict]:
    data, ckpt, prime = folder / f"{name}.csv", folder / f"{name}.safetensors", folder / f"{name}-prime.csv"
    write_csv(data, name.upper(), train)
    write_csv(prime, name.upper(), train[-200:])
    try:
        seqgen("train", str(data), "--out", str(ckpt), "--seed", str(seed), "--quiet")
    except subprocess.CalledProcessError as e:
        refused = e.stderr.strip().splitlines()[-1] if e.stderr.strip() else f"exit {e.returncode}"
        return {"seqgen": refused}, None
    info = json.loads(seqgen("info", str(ckpt), "--json").stdout)
    out = {}
    runs = {"seqgen, no prime": [], "seqgen, --prime-file": ["--prime-file", str(prime)]}
    for label, extra in runs.items():
        try:
            text = seqgen("sample", str(ckpt), "--length", str(horizon), "--seed", str(seed), *extra).stdout
            out[label] = np.array([float(v) for v in text.split()])
        except subprocess.CalledProcessError as e:
            out[label] = e.stderr.strip().splitlines()[-1] if e.stderr.strip() else f"exit {e.returncode}"
    return out, info["training"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="one series: " + ", ".join(series()))
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}")
    print(f"{'series':<10} {'method':<24} {'MASE':>8}")
    scores: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (values, horizon, season) in series().items():
            if args.only and name != args.only:
                continue
            train, truth = values[:-horizon], values[-horizon:]
            forecasts = baselines(train, horizon, season)
            made, training = seqgen_forecasts(name, train, horizon, args.seed, Path(tmp))
            forecasts.update(made)
            for method, forecast in forecasts.items():
                if isinstance(forecast, np.ndarray):
                    scores.setdefault(method, {})[name] = mase(forecast, truth, train, season)
                    print(f"{name:<10} {method:<24} {scores[method][name]:8.2f}")
                else:
                    print(f"{name:<10} {method:<24} {forecast}")
            if training:
                print(f"{name:<10} {'(seqgen training)':<24} {training['steps']} steps, best at {training['best_step']}, "
                      f"{len(train)} values, {horizon} held out, season {season}")
    report(scores)


def report(scores: dict[str, dict[str, float]]) -> None:
    """Mean MASE per method, and the targets met or not."""
    names = sorted(scores.get("seasonal naive", {}))
    print(f"\n{'mean MASE over ' + str(len(names)) + ' series':<35} {'':>8}")
    for method, by_series in scores.items():
        if all(n in by_series for n in names):
            print(f"  {method:<33} {np.mean([by_series[n] for n in names]):8.2f}")
    ours = scores.get("seqgen, no prime", {})
    if not names or any(n not in ours for n in names):
        print("seqgen failed on some series: targets NOT MET")
        return
    beaten = [n for n in names if ours[n] < scores["seasonal naive"][n]]
    verdict = lambda ok: "met" if ok else "NOT MET"
    print(f"seqgen below seasonal naive on every series: {len(beaten)}/{len(names)}  {verdict(len(beaten) == len(names))}")
    ets = np.mean([scores["ETS (statsmodels)"][n] for n in names])
    mine = np.mean([ours[n] for n in names])
    print(f"seqgen mean MASE {mine:.2f} <= ETS {ets:.2f}  {verdict(mine <= ets)}")


if __name__ == "__main__":
    main()
