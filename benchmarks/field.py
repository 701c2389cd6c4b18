"""Forecasting methods scored against statsforecast's classical models on real series, in one run.

Series: every CSV in ../shared/data/series/ (beside the repository; its README lists them),
except raw-austourists.csv, which holds austourists again in R's export layout. A file with
several value columns gives one series per column, except visnights.csv, of which only the first
4 of its 20 columns are used, so that one file of similar regional series does not dominate the
averages. us_employment.csv is in long format: one series per id in its `series` column, values
in `employed`; rows before a series' first value (it started later than the others) are dropped.
presidents.csv has missing values: they are filled by linear interpolation before anything else
(the first one, which has nothing before it, takes the next value). With `--statsmodels` (the
default) the five series that ship with statsmodels are added: yearly sunspots and Nile flow,
monthly CO2 at Mauna Loa and El Nino temperatures, quarterly US real GDP. The frequency is read
from the dates and sets the season length m and the held-out horizon H: monthly m=12 H=18,
quarterly m=4 H=8, yearly m=1 H=6.

Origins: `--origins K` forecasts each series from K origins, the last being H values before the
end of the data, each earlier one H before the next. The train part is everything before the
origin, the test part the next H values. An origin whose train part holds fewer than m + 10
values is skipped (and said so): the seasonal naive scale then rests on fewer than 10 seasonal
differences, and AutoETS fails on tiny series. Insurance (22 monthly values before its only
origin) is kept: under two seasons, but the classical models fit it.

Methods:
- statsforecast's SeasonalNaive, AutoETS, AutoARIMA and AutoTheta with season_length=m, each
  fitted on its own (one forecast call per series and origin, n_jobs=1, after a warm-up call so
  that numba's compilation is not charged to the first series), with prediction intervals at
  levels 10..90, which give the quantiles 0.05..0.95; the mean is the point forecast and q0.5.
  `--skip-stats` keeps only SeasonalNaive, the baseline the "beats" counts need.
- any number of commands, `--method 'NAME=TEMPLATE'`. The template is run by the shell after
  str.format with {csv} (the train part as a CSV: a header `date,value`, ISO dates), {h}, {m},
  {seed}, {quantiles} (0.05,0.1,...,0.95), {dir} (a fresh empty folder for this run), {name}
  (the series name). It must print a CSV on stdout: one row per step, the columns q0.05, q0.1,
  ..., q0.95 and mean (others, such as time, are ignored). Its point forecast is q0.5. A command
  that exits non-zero or prints something else fails that series (its stderr's last line is
  reported), not the run. Commands run once per seed of `--seeds` (statsforecast is
  deterministic, so it runs once); each seed is its own row of the table.

Scores per series, origin and method, with scale = the in-sample MAE of the seasonal naive
forecast on the train part (seqgen.metrics.naive_scale):
- MASE: the point forecast's mean absolute error over the horizon / scale;
- sCRPS: 2 x the mean pinball loss over the 19 quantiles (sorted per step, to undo crossings)
  and the steps, / scale: a CRPS estimate that averages across series;
- cover80: the share of held-out values within [q0.1, q0.9].
Per method, each series' scores are first averaged over its origins, then over the series. A
series a method failed on at any origin is left out of that method's means and counted apart;
"beats X" counts the series (of those both scored) where the method's MASE is below X's.
Seconds: wall clock per series and origin, process start included for commands; two cores
shared with anything else running, so read them as rough.

    pip install -e '.[bench]'          # statsforecast and statsmodels
    python benchmarks/field.py --skip-stats --only auscafe                  # a quick check
    python benchmarks/field.py --method 'seqgen=seqgen train {csv} -o {dir}/m.safetensors --seed {seed} --quiet \\
        && seqgen forecast {dir}/m.safetensors -H {h} --quantiles {quantiles} --seed {seed}' \\
        [--seeds 0,1] [--origins 3] [--only auscafe,arrivals/japan] [--no-statsmodels] [--details rows.csv]

The Markdown table goes to stdout, progress to stderr; `--details FILE` writes one row per
series, origin, method and seed.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import os
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seqgen.metrics import naive_scale  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "series"
# Season length and horizon by the step between dates, in months.
FREQUENCIES = {1: ("monthly", 12, 18), 3: ("quarterly", 4, 8), 12: ("yearly", 1, 6)}
SKIP_FILES = {"raw-austourists"}
FIRST_COLUMNS_ONLY = {"visnights": 4}
LONG_FORMAT = {"us_employment": ("series", "employed")}  # file stem -> (id column, value column)
QUANTILES = [round(0.05 * k, 2) for k in range(1, 20)]
LEVELS = list(range(10, 100, 10))
STATS = ["SeasonalNaive", "AutoETS", "AutoARIMA", "AutoTheta"]
BASELINE = "SeasonalNaive"
# A train part needs m + MIN_EXTRA values: 10 seasonal differences at least behind the MASE scale.
MIN_EXTRA = 10


@dataclass
class Series:
    name: str
    values: np.ndarray
    dates: np.ndarray  # datetime64[D], one per value
    frequency: str
    m: int
    h: int


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def months_between(dates: np.ndarray) -> np.ndarray:
    months = dates.astype("datetime64[M]").astype(int)
    return np.diff(months)


def make_series(name: str, values: np.ndarray, dates: np.ndarray) -> Series:
    """The series with the season length and horizon its dates' step implies."""
    steps = months_between(dates)
    # The most common step, so that one odd gap in a file does not change its frequency.
    kinds, counts = np.unique(steps, return_counts=True)
    step = int(kinds[np.argmax(counts)])
    if step not in FREQUENCIES:
        raise ValueError(f"{name}: dates {step} months apart are neither monthly, quarterly nor yearly")
    frequency, m, h = FREQUENCIES[step]
    return Series(name, np.asarray(values, float), dates.astype("datetime64[D]"), frequency, m, h)


def fill_gaps(values: np.ndarray) -> np.ndarray:
    """Missing values linearly interpolated; one at an edge takes the nearest value there is."""
    missing = np.isnan(values)
    if not missing.any():
        return values
    where = np.arange(len(values))
    filled = values.copy()
    filled[missing] = np.interp(where[missing], where[~missing], values[~missing])
    return filled


def shared_series() -> list[Series]:
    """One series per value column (or per id) of each CSV in the shared folder."""
    import pandas as pd

    out = []
    for path in sorted(DATA.glob("*.csv")):
        stem = path.stem
        if stem in SKIP_FILES:
            continue
        table = pd.read_csv(path)
        dates = pd.to_datetime(table["date"]).to_numpy().astype("datetime64[D]")
        if stem in LONG_FORMAT:
            id_column, value_column = LONG_FORMAT[stem]
            for key, rows in table.groupby(id_column, sort=True):
                rows = rows.assign(date=pd.to_datetime(rows["date"])).sort_values("date")
                values = rows[value_column].to_numpy(float)
                # Leading blanks are months before this series was collected, not gaps in it.
                present = np.flatnonzero(~np.isnan(values))
                keep = slice(present[0], present[-1] + 1)
                out.append(
                    make_series(
                        f"{stem}/{key}", fill_gaps(values[keep]), rows["date"].to_numpy().astype("datetime64[D]")[keep]
                    )
                )
            continue
        columns = [c for c in table.columns if c != "date"]
        columns = columns[: FIRST_COLUMNS_ONLY.get(stem, len(columns))]
        for column in columns:
            name = stem if len(columns) == 1 else f"{stem}/{column}"
            out.append(make_series(name, fill_gaps(table[column].to_numpy(float)), dates))
    return out


def statsmodels_series() -> list[Series]:
    """The five series of benchmarks/forecast.py, loaded the same way, with dates."""
    import statsmodels.api as sm

    def years(first: int, count: int) -> np.ndarray:
        return (np.datetime64(str(first), "Y") + np.arange(count)).astype("datetime64[D]")

    def months(first: str, count: int, step: int = 1) -> np.ndarray:
        return (np.datetime64(first, "M") + step * np.arange(count)).astype("datetime64[D]")

    sunspots = sm.datasets.sunspots.load_pandas().data
    nile = sm.datasets.nile.load_pandas().data
    # Weekly readings averaged by month; the few empty months carry the last one forward.
    co2 = sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean().ffill()
    macro = sm.datasets.macrodata.load_pandas().data
    elnino = sm.datasets.elnino.load_pandas().data
    month_names = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    gdp_start = f"{int(macro['year'][0])}-{3 * int(macro['quarter'][0]) - 2:02d}"
    return [
        make_series(
            "sunspots", sunspots["SUNACTIVITY"].to_numpy(float), years(int(sunspots["YEAR"][0]), len(sunspots))
        ),
        make_series("nile", nile["volume"].to_numpy(float), years(int(nile["year"][0]), len(nile))),
        make_series("co2", co2.to_numpy(float), co2.index.to_numpy().astype("datetime64[D]")),
        make_series("realgdp", macro["realgdp"].to_numpy(float), months(gdp_start, len(macro), 3)),
        make_series(
            "elnino",
            elnino[month_names].to_numpy(float).reshape(-1),
            months(f"{int(elnino['YEAR'][0])}-01", 12 * len(elnino)),
        ),
    ]


# ---- methods: each returns (quantiles (19, H) or an error line, point forecast (H,), seconds)

Forecast = tuple[np.ndarray | str, np.ndarray | None, float]


def stats_model(name: str, m: int) -> object:
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

    return {"SeasonalNaive": SeasonalNaive, "AutoETS": AutoETS, "AutoARIMA": AutoARIMA, "AutoTheta": AutoTheta}[name](
        season_length=m
    )


def run_stats(method: str, train: np.ndarray, h: int, m: int) -> Forecast:
    """One statsforecast model fitted on `train` alone; its quantiles from its intervals."""
    import pandas as pd
    from statsforecast import StatsForecast

    # Integer time stamps: the models ignore dates, and pandas needs none for years before 1677.
    frame = pd.DataFrame({"unique_id": "s", "ds": np.arange(len(train)), "y": train})
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = StatsForecast(models=[stats_model(method, m)], freq=1, n_jobs=1).forecast(
                df=frame, h=h, level=LEVELS
            )
    except Exception as error:  # a model that cannot fit a series fails it, not the run
        return f"{type(error).__name__}: {error}".splitlines()[0], None, time.perf_counter() - started
    took = time.perf_counter() - started
    mean = result[method].to_numpy(float)
    # lo-L and hi-L bound the central L% interval: the quantiles 0.5 -/+ L/200.
    by_level = {0.5: mean}
    for level in LEVELS:
        by_level[round(0.5 - level / 200, 2)] = result[f"{method}-lo-{level}"].to_numpy(float)
        by_level[round(0.5 + level / 200, 2)] = result[f"{method}-hi-{level}"].to_numpy(float)
    quantiles = np.stack([by_level[q] for q in QUANTILES])
    if not np.isfinite(quantiles).all():
        return "non-finite forecast or interval", None, took
    return quantiles, mean, took


def warm_up(methods: list[str]) -> None:
    """Fit each model once on a made-up series so that numba compiles before the timing starts."""
    rng = np.random.default_rng(0)
    values = 10 + np.sin(np.arange(48) * np.pi / 6) + rng.normal(0, 0.2, 48)
    for method in methods:
        run_stats(method, values, 6, 12)


def run_command(template: str, series: Series, train: np.ndarray, h: int, seed: int, folder: Path) -> Forecast:
    """The command's forecast read from its stdout, or the reason it has none."""
    import pandas as pd

    folder.mkdir(parents=True)
    data = folder / (series.name.replace("/", "-") + ".csv")
    data.write_text("date,value\n" + "".join(f"{d},{v:.10g}\n" for d, v in zip(series.dates, train)))
    run_dir = folder / "run"
    run_dir.mkdir()
    command = template.format(
        csv=shlex.quote(str(data)),
        h=h,
        m=series.m,
        seed=seed,
        quantiles=",".join(f"{q:g}" for q in QUANTILES),
        dir=shlex.quote(str(run_dir)),
        name=shlex.quote(series.name),
    )
    started = time.perf_counter()
    done = subprocess.run(command, shell=True, capture_output=True, text=True)
    took = time.perf_counter() - started
    last_err = next((line.strip() for line in reversed(done.stderr.splitlines()) if line.strip()), "")
    if done.returncode != 0:
        return f"exit {done.returncode}: {last_err or '(no stderr)'}", None, took
    try:
        table = pd.read_csv(io.StringIO(done.stdout))
        table.columns = [str(c).strip() for c in table.columns]
        wanted = [f"q{q:g}" for q in QUANTILES]
        absent = [c for c in wanted + ["mean"] if c not in table.columns]
        if absent:
            more = f" and {len(absent) - 1} more" if len(absent) > 1 else ""
            raise ValueError(f"no column {absent[0]}{more}; it has {', '.join(table.columns[:8])}")
        if len(table) != h:
            raise ValueError(f"{len(table)} rows for a horizon of {h}")
        quantiles = table[wanted].to_numpy(float).T
        point = table["q0.5"].to_numpy(float) if "q0.5" in table.columns else table["mean"].to_numpy(float)
        if not (np.isfinite(quantiles).all() and np.isfinite(point).all()):
            raise ValueError("non-finite values")
    except Exception as error:
        return f"unparsable output ({error}); stderr: {last_err or '(none)'}", None, took
    return quantiles, point, took


# ---- scores


def scores(truth: np.ndarray, quantiles: np.ndarray, point: np.ndarray, train: np.ndarray, m: int) -> dict:
    scale = naive_scale(train, m)
    quantiles = np.sort(quantiles, axis=0)  # crossing quantiles: read them in order
    levels = np.asarray(QUANTILES)[:, None]
    miss = truth[None, :] - quantiles
    pinball = np.maximum(levels * miss, (levels - 1) * miss)
    low, high = quantiles[QUANTILES.index(0.1)], quantiles[QUANTILES.index(0.9)]
    return {
        "mase": float(np.mean(np.abs(truth - point)) / scale),
        "scrps": float(2 * np.mean(pinball) / scale),
        "coverage": float(np.mean((truth >= low) & (truth <= high))),
    }


# ---- the run


def origins_of(series: Series, count: int) -> list[int]:
    """Where each train part ends, earliest first; the last leaves H values after it."""
    n = len(series.values)
    return [n - series.h * back for back in range(count, 0, -1)]


def machine_line() -> str:
    model, avx512 = "unknown CPU", False
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next(
            (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), model
        )
        avx512 = any(line.startswith("flags") and "avx512f" in line.split() for line in text.splitlines())
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, avx512f {'yes' if avx512 else 'no'}"


def parse_methods(parser: argparse.ArgumentParser, given: list[str]) -> dict[str, str]:
    methods = {}
    for item in given:
        name, sep, template = item.partition("=")
        name = name.strip()
        if not sep or not name or not template.strip():
            parser.error(f"--method wants NAME=COMMAND, got {item!r}")
        if name in STATS or name in methods:
            parser.error(f"--method name {name!r} is taken")
        methods[name] = template
    return methods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--method",
        action="append",
        default=[],
        metavar="NAME=TEMPLATE",
        help="a command to score (see the module docstring for the placeholders); repeatable",
    )
    parser.add_argument("--seeds", default="0", help="seeds for the commands, comma-separated")
    parser.add_argument("--origins", type=int, default=1, help="forecast origins per series, a horizon apart")
    parser.add_argument("--only", help="these series only, comma-separated (stem, stem/column or stem/id)")
    parser.add_argument(
        "--statsmodels",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add the five statsmodels series of benchmarks/forecast.py",
    )
    parser.add_argument("--skip-stats", action="store_true", help="of statsforecast, run SeasonalNaive only")
    parser.add_argument("--details", type=Path, help="write a CSV row per series, origin, method and seed here")
    args = parser.parse_args()
    if args.origins < 1:
        parser.error("--origins must be at least 1")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds wants integers, got {args.seeds!r}")
    if not seeds:
        parser.error("--seeds is empty")
    commands = parse_methods(parser, args.method)
    if not DATA.is_dir():
        log(f"no shared series folder at {DATA} (../shared beside the repository); nothing to benchmark")
        sys.exit(1)

    all_series = shared_series() + (statsmodels_series() if args.statsmodels else [])
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in {s.name for s in all_series}]
        if unknown:
            parser.error(f"unknown series {', '.join(unknown)}; there are: {', '.join(s.name for s in all_series)}")
        all_series = [s for s in all_series if s.name in wanted]

    stats = [BASELINE] if args.skip_stats else STATS
    # Table rows, in order: the statsforecast models, then each command once per seed.
    rows = [(method, None) for method in stats] + [(name, seed) for name in commands for seed in seeds]
    label = {row: row[0] if row[1] is None else f"{row[0]}, seed {row[1]}" for row in rows}
    log(f"{len(all_series)} series, {args.origins} origin(s); warming statsforecast up")
    warm_up(stats)

    # results[row][series name] = list over scored origins of a score dict, or an error line
    results: dict[tuple, dict[str, list | str]] = {row: {} for row in rows}
    details = []
    skipped = []
    with tempfile.TemporaryDirectory(prefix="field-") as tmp:
        for number, series in enumerate(all_series, 1):
            ends = [end for end in origins_of(series, args.origins) if end >= series.m + MIN_EXTRA]
            if len(ends) < args.origins:
                skipped.append(
                    f"{series.name}: {args.origins - len(ends)} origin(s) with under "
                    f"{series.m + MIN_EXTRA} train values"
                )
            log(
                f"[{number}/{len(all_series)}] {series.name}: {series.frequency}, {len(series.values)} values, "
                f"m={series.m}, H={series.h}, {len(ends)} origin(s)"
            )
            for origin, end in enumerate(ends, 1):
                train, truth = series.values[:end], series.values[end : end + series.h]
                if len(ends) > 1:
                    log(f"  origin {origin}: {len(train)} train values")
                for row in rows:
                    method, seed = row
                    if method in commands:
                        folder = Path(tmp) / f"{number}-{origin}-{len(details)}"
                        made, point, took = run_command(commands[method], series, train, series.h, seed, folder)
                    else:
                        made, point, took = run_stats(method, train, series.h, series.m)
                    entry = {
                        "series": series.name,
                        "frequency": series.frequency,
                        "m": series.m,
                        "h": series.h,
                        "origin": origin,
                        "train_values": len(train),
                        "method": method,
                        "seed": "" if seed is None else seed,
                        "seconds": round(took, 3),
                    }
                    so_far = results[row].setdefault(series.name, [])
                    if isinstance(made, str):
                        log(f"    {label[row]}: FAILED ({took:.1f} s): {made}")
                        if isinstance(so_far, list):  # one failed origin fails the series; its first error tells
                            results[row][series.name] = made
                        details.append({**entry, "error": made})
                        continue
                    got = {**scores(truth, made, point, train, series.m), "seconds": took}
                    if isinstance(so_far, list):
                        so_far.append(got)
                    details.append({**entry, **{k: round(v, 4) for k, v in got.items() if k != "seconds"}, "error": ""})
                    log(
                        f"    {label[row]}: MASE {got['mase']:.3f} sCRPS {got['scrps']:.3f} "
                        f"cover80 {got['coverage']:.0%} ({took:.1f} s)"
                    )

    if args.details:
        fields = [
            "series",
            "frequency",
            "m",
            "h",
            "origin",
            "train_values",
            "method",
            "seed",
            "mase",
            "scrps",
            "coverage",
            "seconds",
            "error",
        ]
        with open(args.details, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, restval="")
            writer.writeheader()
            writer.writerows(details)
    for line in skipped:
        log(f"skipped {line}")
    report(results, rows, label, stats, seeds, commands, args.origins)


def report(
    results: dict,
    rows: list[tuple],
    label: dict,
    stats: list[str],
    seeds: list[int],
    commands: dict[str, str],
    origins: int,
) -> None:
    """The Markdown table: per method, means over the series it scored, and its wins."""
    # Each series' scores averaged over its origins; a failed series stays a string.
    per_series = {
        row: {
            name: (got if isinstance(got, str) else {k: float(np.mean([o[k] for o in got])) for k in got[0]})
            for name, got in by_series.items()
            if got
        }
        for row, by_series in results.items()
    }
    scored = sorted({name for by_series in per_series.values() for name in by_series})
    print(
        f"machine: {machine_line()}; {datetime.date.today().isoformat()}; {len(scored)} series, "
        f"{origins} origin(s) each (a horizon apart)\n"
    )
    head = (
        ["method", "series", "mean MASE", "median MASE", "mean sCRPS", "cover80"]
        + [f"beats {s}" for s in stats]
        + ["median s", "mean s"]
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|")
    for row in rows:
        ok = {n: r for n, r in per_series[row].items() if not isinstance(r, str)}
        failed = len(per_series[row]) - len(ok)
        if not ok:
            print("| " + " | ".join([label[row], f"0 ({failed} failed)"] + [""] * (len(head) - 2)) + " |")
            continue
        mase = [r["mase"] for r in ok.values()]
        cells = [
            label[row],
            f"{len(ok)}" + (f" ({failed} failed)" if failed else ""),
            f"{np.mean(mase):.3f}",
            f"{np.median(mase):.3f}",
            f"{np.mean([r['scrps'] for r in ok.values()]):.3f}",
            f"{np.mean([r['coverage'] for r in ok.values()]):.0%}",
        ]
        for other in stats:
            if row == (other, None):
                cells.append("-")
                continue
            theirs = {n: r for n, r in per_series[(other, None)].items() if not isinstance(r, str)}
            both = [n for n in ok if n in theirs]
            cells.append(f"{sum(ok[n]['mase'] < theirs[n]['mase'] for n in both)}/{len(both)}")
        seconds = [r["seconds"] for r in ok.values()]
        cells += [f"{np.median(seconds):.2f}", f"{np.mean(seconds):.2f}"]
        print("| " + " | ".join(cells) + " |")

    failures = [
        (label[row], name, why) for row in rows for name, why in per_series[row].items() if isinstance(why, str)
    ]
    if failures:
        print("\nfailed:")
        for who, name, why in failures:
            print(f"- {who} on {name}: {why}")
    if len(seeds) > 1:
        # Seeds compared on the series every seed scored, so that one failure does not move the ratio.
        print()
        for name in commands:
            by_seed = [{n: r for n, r in per_series[(name, s)].items() if not isinstance(r, str)} for s in seeds]
            common = set.intersection(*(set(b) for b in by_seed))
            if not common:
                print(f"{name}: no series scored by every seed")
                continue
            means = [np.mean([b[n]["mase"] for n in common]) for b in by_seed]
            print(
                f"{name}: mean MASE across seeds {', '.join(map(str, seeds))} on {len(common)} series: "
                f"{', '.join(f'{x:.3f}' for x in means)}; largest / smallest {max(means) / min(means):.3f}"
            )


if __name__ == "__main__":
    main()
