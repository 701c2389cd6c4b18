"""Forecasts of real series with seqgen's defaults, scored against classical baselines.

For each series that ships with statsmodels (yearly sunspots 1700-2008, yearly Nile flow at
Aswan 1871-1970, monthly CO2 at Mauna Loa 1958-2001 (weekly readings averaged by month),
quarterly US real GDP 1959-2009 (macrodata), monthly El Nino sea temperatures 1950-2010) the
last H values are held out (H: one or two seasons). seqgen trains on the rest, written as a CSV
with a date column and a header (the monthly and quarterly series so get calendar inputs), with its defaults (`seqgen train FILE --seed S`, and once more with each `--head`
asked for), then draws 200 sample paths of the held-out horizon from the end of the training
data, as `seqgen forecast` does.

Scores, from seqgen.metrics:
- MASE of the per-step median: mean absolute error over the horizon divided by the in-sample
  mean absolute error of the seasonal naive forecast (1 is as good as that forecast in sample);
- CRPS of the 200 paths, divided by the same in-sample scale so that series average (sCRPS);
- coverage: the share of held-out values inside the paths' central 80% interval.
Baselines: the last value repeated, the last season repeated, and exponential smoothing (ETS,
statsmodels' ExponentialSmoothing with a damped additive trend and additive season), whose
intervals come from 200 paths it simulates with its own residual errors.

    pip install statsmodels          # the benchmark's only extra need
    python benchmarks/forecast.py [--seed 0] [--only sunspots] [--heads point,gaussian,studentt]
                                  [--train-options '--calendar none'] [--spread-rules] [--origins 4]

One held-out window says little on its own (El Nino's last two years hold an El Nino and a La
Nina; realgdp's, the 2008 recession). `--origins K` forecasts each series from K origins a horizon
apart, the last being the end of the data, training anew on what precedes each, and averages
each method's scores over them; the verdicts are then on those averages.

Targets (issue 14), for the default: MASE below seasonal naive on every series, mean MASE at or
below ETS's; 80% intervals covering 70-90% of the held-out values on average; training within
the default time budget and 200 paths within a second per series.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seqgen import load_checkpoint  # noqa: E402
from seqgen.generate.forecast import forecast  # noqa: E402
from seqgen.metrics import naive_scale, score, seasonal_naive  # noqa: E402

SAMPLES = 200


def series() -> dict[str, tuple[np.ndarray, int, int, np.ndarray]]:
    """name -> (values, held-out horizon, season length, the date of each value)."""
    import statsmodels.api as sm

    def dates(first: str, unit: str, count: int, step: int = 1) -> np.ndarray:
        return np.datetime64(first, unit) + step * np.arange(count)

    sunspots = sm.datasets.sunspots.load_pandas().data
    nile = sm.datasets.nile.load_pandas().data
    co2 = sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean().ffill()
    macro = sm.datasets.macrodata.load_pandas().data
    months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    elnino = sm.datasets.elnino.load_pandas().data
    gdp_start = f"{int(macro['year'][0])}-{3 * int(macro['quarter'][0]) - 2:02d}"
    return {
        "sunspots": (
            sunspots["SUNACTIVITY"].to_numpy(float),
            22,
            11,
            dates(str(int(sunspots["YEAR"][0])), "Y", len(sunspots)),
        ),
        "nile": (nile["volume"].to_numpy(float), 10, 1, dates(str(int(nile["year"][0])), "Y", len(nile))),
        "co2": (co2.to_numpy(float), 48, 12, co2.index.to_numpy().astype("datetime64[M]")),
        "realgdp": (macro["realgdp"].to_numpy(float), 8, 4, dates(gdp_start, "M", len(macro), 3)),
        "elnino": (
            elnino[months].to_numpy(float).reshape(-1),
            24,
            12,
            dates(str(int(elnino["YEAR"][0])), "M", 12 * len(elnino)),
        ),
    }


def baselines(train: np.ndarray, horizon: int, season: int, seed: int) -> dict[str, np.ndarray]:
    """Point forecasts (horizon,) or sample paths (n, horizon) of the classical methods."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    out = {"last value": np.full(horizon, train[-1]), "seasonal naive": seasonal_naive(train, horizon, season)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(
            train,
            trend="add",
            damped_trend=True,
            seasonal="add" if season > 1 else None,
            seasonal_periods=season if season > 1 else None,
        ).fit()
        paths = fit.simulate(horizon, repetitions=SAMPLES, error="add", random_state=seed)
    out["ETS (statsmodels)"] = np.asarray(paths).T
    return out


def seqgen(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "seqgen", *args], capture_output=True, text=True, env=env, check=True)


def seqgen_forecast(
    name: str,
    train: np.ndarray,
    times: np.ndarray,
    horizon: int,
    seed: int,
    folder: Path,
    head: str | None,
    options: list[str],
):
    """Train with the defaults (and `--head` when given, and `options`), then draw the paths;
    returns (paths or the error's last line, a note on training, the seconds the paths took)."""
    data = folder / f"{name}.csv"
    # A date column, as an export has one: the first day of each year, month or quarter.
    days = times.astype("datetime64[D]")
    data.write_text("date," + name.upper() + "\n" + "".join(f"{t},{v:.6g}\n" for t, v in zip(days, train)))
    ckpt = folder / f"{name}-{head or 'default'}.safetensors"
    extra = (["--head", head] if head else []) + options
    try:
        seqgen("train", str(data), "--out", str(ckpt), "--seed", str(seed), "--quiet", "--force", *extra)
    except subprocess.CalledProcessError as e:
        return (e.stderr.strip().splitlines() or [f"exit {e.returncode}"])[-1], "", 0.0
    model = load_checkpoint(ckpt)
    progress = model.meta["progress"]
    calendar = model.model_config.calendar
    note = (
        f"{model.model_config.head} head, {model.data.get('target', 'level')}, {progress['step']} steps in "
        f"{progress['elapsed']:.0f} s, best at {progress['best_step']}"
        + (f", calendar {'/'.join(f'{p:g}' for p in calendar)}" if calendar else "")
        + (
            f", spread x{progress['interval_scale']:.2f} (validation tail {progress['calibration']['coverage_before']:.0%}"
            f" -> {progress['calibration']['coverage']:.0%})"
            if progress.get("calibration")
            else ""
        )
    )
    started = time.perf_counter()
    result = forecast(model, train, horizon, samples=SAMPLES, seed=seed)
    return result.paths, note, time.perf_counter() - started


# How the factor on a likelihood head's spread could be chosen from what a checkpoint stores: the
# one-step `spread_ratio` and the factor the validation tail's forecasts asked for (`fitted`).
SPREAD_RULES = {
    "x1 (as trained)": lambda ratio, fitted: 1.0,
    "max(1, ratio)": lambda ratio, fitted: max(1.0, ratio),
    "fitted": lambda ratio, fitted: fitted,
    "max(1, fitted)": lambda ratio, fitted: max(1.0, fitted),
    "max(1, ratio, fitted)": lambda ratio, fitted: max(1.0, ratio, fitted),
}


def spread_rules(model, train: np.ndarray, horizon: int, seed: int) -> dict[str, np.ndarray]:
    """The default model's paths with its spread factor chosen by each rule of SPREAD_RULES."""
    progress = model.meta["progress"]
    if not progress.get("calibration"):
        return {}
    ratio, fitted = progress.get("spread_ratio") or 1.0, progress["calibration"]["fitted"]
    stored, out = progress["interval_scale"], {}
    for rule, choose in SPREAD_RULES.items():
        progress["interval_scale"] = choose(ratio, fitted)
        out[rule] = forecast(model, train, horizon, samples=SAMPLES, seed=seed).paths
    progress["interval_scale"] = stored
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="one series: " + ", ".join(series()))
    parser.add_argument("--heads", default="", help="also train with these heads (comma-separated), beside the default")
    parser.add_argument(
        "--train-options", default="", help="more options for every `seqgen train`, e.g. '--calendar none'"
    )
    parser.add_argument(
        "--spread-rules",
        action="store_true",
        help="also score the default model's paths with the spread widened by each rule of SPREAD_RULES",
    )
    parser.add_argument(
        "--origins",
        type=int,
        default=1,
        help="forecast from this many origins per series, each a horizon before the next (the last is "
        "the end of the data), training anew at each; scores are averaged over them",
    )
    args = parser.parse_args()
    if args.origins < 1:
        parser.error("--origins must be at least 1")
    options = args.train_options.split()
    heads = [None] + [h for h in args.heads.split(",") if h]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}")
    print(f"{'series':<10} {'method':<26} {'MASE':>6} {'sCRPS':>6} {'cover80':>7}")
    scores: dict[str, dict[str, dict]] = {}
    timings: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (values, horizon, season, times) in series().items():
            if args.only and name != args.only:
                continue
            by_origin = []
            for back in range(args.origins - 1, -1, -1):
                end = len(values) - back * horizon
                window, notes = score_window(
                    name, values[:end], times[:end], horizon, season, args, heads, options, Path(tmp), timings
                )
                by_origin.append(window)
            methods = list(dict.fromkeys(m for window in by_origin for m in window))
            for method in methods:
                # A method an origin lacks (its seqgen run failed, so no spread-rule rows) fails the row.
                results = [window.get(method, "no result at every origin") for window in by_origin]
                if any(isinstance(r, str) for r in results):
                    print(f"{name:<10} {method:<26} {next(r for r in results if isinstance(r, str))}")
                    continue
                result = {key: float(np.mean([r[key] for r in results])) for key in results[0]}
                scores.setdefault(method, {})[name] = result
                cover = "" if np.isnan(result["coverage"]) else f"{result['coverage']:7.0%}"
                each = "" if args.origins == 1 else "  (" + " ".join(f"{r['mase']:.2f}" for r in results) + ")"
                print(f"{name:<10} {method:<26} {result['mase']:6.2f} {result['scrps']:6.2f} {cover:>7}{each}")
            for method, note in notes.items():
                print(f"{'':<10} {'(' + method + ')':<26} {note}")
            print(
                f"{'':<10} {'(data)':<26} {len(values) - horizon} values, {horizon} held out, season {season}"
                + (f"; {args.origins} origins, a horizon apart (notes: the last)" if args.origins > 1 else "")
            )
    report(scores, timings)


def score_window(
    name: str,
    values: np.ndarray,
    times: np.ndarray,
    horizon: int,
    season: int,
    args,
    heads: list[str | None],
    options: list[str],
    folder: Path,
    timings: list[float],
) -> tuple[dict, dict]:
    """Every method's score (or its error line) on `values` with its last `horizon` held out, and
    what each seqgen run says of its training."""
    train, truth = values[:-horizon], values[-horizon:]
    forecasts = baselines(train, horizon, season, args.seed)
    notes = {}
    for head in heads:
        label = "seqgen" if head is None else f"seqgen --head {head}"
        forecasts[label], notes[label], took = seqgen_forecast(
            name, train, times[:-horizon], horizon, args.seed, folder, head, options
        )
        timings.append(took) if head is None else None
    if args.spread_rules and not isinstance(forecasts["seqgen"], str):
        model = load_checkpoint(folder / f"{name}-default.safetensors")
        for rule, paths in spread_rules(model, train, horizon, args.seed).items():
            forecasts[f"seqgen, spread {rule}"] = paths
    scale = naive_scale(train, season)
    out: dict = {}
    for method, made in forecasts.items():
        if isinstance(made, str):
            out[method] = made
            continue
        result = score(truth, made, train, season)
        out[method] = {**result, "scrps": result["crps"] / scale}
    return out, notes


def report(scores: dict[str, dict[str, dict]], timings: list[float]) -> None:
    """Means over the series per method, and the targets met or not."""
    names = sorted(scores.get("seasonal naive", {}))
    print(f"\nmeans over {len(names)} series{'':<12} {'MASE':>6} {'sCRPS':>6} {'cover80':>7}")
    for method, by_series in scores.items():
        if all(n in by_series for n in names):
            mean = lambda key: np.mean([by_series[n][key] for n in names])
            cover = "" if np.isnan(mean("coverage")) else f"{mean('coverage'):7.0%}"
            print(f"  {method:<34} {mean('mase'):6.2f} {mean('scrps'):6.2f} {cover:>7}")
    ours = scores.get("seqgen", {})
    verdict = lambda ok: "met" if ok else "NOT MET"
    if not names or any(n not in ours for n in names):
        print("seqgen failed on some series: targets NOT MET")
        return
    beaten = [n for n in names if ours[n]["mase"] < scores["seasonal naive"][n]["mase"]]
    print(
        f"1. seqgen MASE below seasonal naive on every series: {len(beaten)}/{len(names)}"
        f"  {verdict(len(beaten) == len(names))}"
    )
    ets = np.mean([scores["ETS (statsmodels)"][n]["mase"] for n in names])
    mine = np.mean([ours[n]["mase"] for n in names])
    print(f"1. seqgen mean MASE {mine:.2f} <= ETS {ets:.2f}  {verdict(mine <= ets)}")
    cover = np.mean([ours[n]["coverage"] for n in names])
    print(f"2. seqgen 80% intervals cover {cover:.0%} of held-out values (70-90%)  {verdict(0.7 <= cover <= 0.9)}")
    ets_crps = np.mean([scores["ETS (statsmodels)"][n]["scrps"] for n in names])
    print(f"2. seqgen mean sCRPS {np.mean([ours[n]['scrps'] for n in names]):.2f} beside ETS {ets_crps:.2f}")
    print(f"3. {SAMPLES} paths per series: slowest {max(timings):.2f} s (<= 1 s)  {verdict(max(timings) <= 1.0)}")


if __name__ == "__main__":
    main()
