"""`seqgen forecast`: sampled futures of a series, written as a table of mean and quantiles."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ..errors import DataError, UsageError
from .app import app, check_seed, console, say
from .output import _fmt, parse_quantiles

FORMATS = ("csv", "jsonl")


@app.command()
def forecast(
    checkpoint: Path = typer.Argument(
        ..., metavar="CHECKPOINT", help="A continuous-model checkpoint written by 'seqgen train'."
    ),
    data: Optional[str] = typer.Argument(
        None,
        metavar="[DATA]",
        help="The history to continue: a file as 'seqgen train' reads them (numbers, or a CSV table with dates, read as the model's was) or - for stdin. \\[default: the end of the training data; for a sine model a fresh wave]",
    ),
    horizon: int = typer.Option(24, "--horizon", "-H", help="Steps to forecast."),
    samples: int = typer.Option(200, help="Sample paths drawn; the mean and quantiles are taken over them."),
    quantiles: str = typer.Option(
        "0.1,0.5,0.9", help="Comma-separated quantile levels to report, each between 0 and 1."
    ),
    fmt: str = typer.Option("csv", "--format", help="csv (one row per step) or jsonl (one object per step)."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write to this file (atomically) instead of stdout."
    ),
    plot: bool = typer.Option(False, "--plot", help="Draw the history and the forecast's band on stderr."),
    plot_file: Optional[Path] = typer.Option(
        None, help="Save the fan chart as an image (needs the 'plot' extra: matplotlib)."
    ),
    series: Optional[str] = typer.Option(
        None,
        help="Forecast only this series (a column, an id of a long table, or a channel of a --joint model, which is still forecast with the others). \\[default: every series]",
    ),
    seed: Optional[int] = typer.Option(
        None, callback=check_seed, help="Random seed; the same seed gives the same paths."
    ),
    backend: str = typer.Option("auto", help="auto (NumPy on CPU), numpy or torch."),
    fill: str = typer.Option(
        "error",
        help="For the pretrained forecaster, a CSV's missing values and time steps: error (name the first), previous, linear or zero.",
    ),
    season: Optional[int] = typer.Option(
        None,
        min=1,
        help="For the pretrained forecaster: the season length in steps (1: none). \\[default: from DATA's dates (12 for monthly, 4 for quarterly, 1 for yearly), else from its autocorrelation]",
    ),
) -> None:
    """Forecast a series: sample many futures and write, per step, their mean and quantiles.

    CHECKPOINT 'pretrained' is the shipped forecaster, which forecasts a series it was never
    trained on: seqgen forecast pretrained DATA.csv -H 12."""
    from ..checkpoint import load_checkpoint
    from ..generate.forecast import Forecast, forecast as run_forecast
    from ..generate.zero_shot import is_forecaster, resolve

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)} for forecast, got {fmt!r}")
    levels = parse_quantiles(quantiles)
    if plot_file is not None:
        from .plot import check_plot_file

        check_plot_file(plot_file)  # before the work, not after it
    ckpt = load_checkpoint(resolve(checkpoint))
    if ckpt.kind == "text":
        raise UsageError(f"{checkpoint} is a text model; forecast continues numbers (use 'seqgen sample' for text)")
    if 0 < samples < FEW_SAMPLES:
        say(
            f"note: --samples {samples}: the quantiles of so few paths say little about the spread (the default is 200)"
        )
    if is_forecaster(ckpt):
        results, histories_by_name, frequency = _zero_shot(ckpt, data, series, season, horizon, samples, levels, fill)
        _finish(results, histories_by_name, output, fmt, plot, plot_file, "series", frequency)
        return
    if season is not None or fill != "error":
        raise UsageError(
            f"--{'season' if season is not None else 'fill'} applies to the pretrained forecaster; "
            f"{checkpoint} reads DATA as its training data was read"
        )
    histories, frequency = _histories(ckpt, data, series, seed)
    results, histories_by_name = [], {}
    for name, history, last_time in histories:
        known = name is not None and any(e["name"] == name for e in ckpt.described.series)
        made = run_forecast(
            ckpt,
            history,
            horizon,
            samples=samples,
            quantiles=levels,
            seed=seed,
            backend=backend,
            series=name if known else None,
            end=_end(ckpt, data, last_time, frequency),
        )
        times = _times(last_time, frequency, horizon)
        if made.paths.ndim == 3:  # channels modelled jointly: written (and plotted) one channel after another
            channels = ckpt.described.channels
            if series is not None and series not in channels:
                raise UsageError(
                    f"--series: {ckpt.path} has no channel {series!r}; its channels are "
                    f"{', '.join(map(repr, channels))}"
                )
            for k, channel in enumerate(channels):
                if series is not None and channel != series:
                    continue  # forecast with every channel, shown for the one asked for
                results.append((channel, times, Forecast(made.paths[..., k], made.levels)))
                histories_by_name[channel] = history[:, k]
        else:
            results.append((name, times, made))
            histories_by_name[name] = history
    _finish(
        results,
        histories_by_name,
        output,
        fmt,
        plot,
        plot_file,
        "channels" if ckpt.model_config.channels > 1 else "series",
        frequency,
    )


def _zero_shot(
    ckpt,
    data: Optional[str],
    only: Optional[str],
    season: Optional[int],
    horizon: int,
    samples: int,
    levels,
    fill: str = "error",
) -> tuple[list, dict, object]:
    """The pretrained forecaster's forecast of each series of DATA, the histories, and the step of
    DATA's dates (None without)."""
    from ..generate.zero_shot import guess_season, season_for, zero_shot

    if data is None:
        raise UsageError(
            f"{ckpt.path} is a forecaster, which continues a series you give: "
            f"seqgen forecast {ckpt.path} DATA.csv --horizon 12"
        )
    rows, frequency = user_series(data, only, fill)
    results, histories = [], {}
    for name, values, last_time in rows:
        if season is not None and season >= len(values):
            raise UsageError(
                f"--season {season} is as long as {name or data}'s whole history ({len(values)} values): "
                "a season must repeat in the history; give a shorter one, or 1 for none"
            )
        m = season or (season_for(frequency) if frequency is not None else guess_season(values))
        if season is None and frequency is None:
            say(
                f"note: {name or data} has no dates; read with a season of {m} step{'s' if m != 1 else ''} "
                "(from its autocorrelation; --season sets it)"
            )
        made = zero_shot(ckpt, values, horizon, m, samples=samples, quantiles=levels)
        results.append((name, _times(last_time, frequency, horizon), made))
        histories[name] = values
    return results, histories, frequency


def user_series(data: str, only: Optional[str], fill: str = "error"):
    """[(series name or None, values, time of the last value or None)] of a file read as
    'seqgen train' reads one with no options, and the step between its times (None without)."""
    from ..data import read_values
    from ..data.load import TableOptions
    from ..data.table import looks_like_table

    raw, label, suffix = _read_data(data)
    text = None if suffix.lower() == ".npy" else _decode(raw, label)
    if text is not None and looks_like_table(text):
        table = TableOptions(fill=fill).read(text, label)
        rows = _table_rows(table, only, label)
        return rows, table.frequency
    values = read_values(raw, label, suffix)
    if len(values) == 0:
        raise DataError(f"{label} holds no numbers: give the history to continue")
    return [(only, values, None)], None


def _table_rows(table, only: Optional[str], label: str) -> list:
    """[(series name, values, time of the last value or None)] of a table: every series, or the one named `only`."""
    rows = [
        (name, values, None if table.times is None else str(times[-1]))
        for name, values, times in zip(table.names, table.series, table.times or [None] * len(table.names))
    ]
    if only is not None:
        rows = [row for row in rows if row[0] == only]
        if not rows:
            raise DataError(f"{label} has no series {only!r}; its series are {', '.join(map(repr, table.names[:10]))}")
    return rows


def _finish(results, histories_by_name, output, fmt, plot, plot_file, what: str, frequency=None) -> None:
    """Write the forecasts' table, then draw the first one's chart where asked."""
    from .sample import _open_output

    with _open_output(output) as out:
        _write(out, _table(results, several=len(results) > 1), fmt)
    if plot or plot_file:
        name, times, first = results[0]
        history = histories_by_name[name]
        levels = first.levels
        low, high, middle = first.quantiles[0], first.quantiles[-1], np.median(first.paths, axis=0)
        if len(results) > 1:
            say(
                f"the chart shows the first of {len(results)} {what}, {name!r}"
                + ("" if what == "channels" else " (--series chooses another)")
            )
        if plot:
            from .plot import fan_chart

            console.print(fan_chart(history, low, middle, high, levels, width=console.width))
        if plot_file is not None:
            from .plot import save_fan_plot

            save_fan_plot(
                plot_file,
                history,
                low,
                middle,
                high,
                levels,
                start=None if times is None else str(times[0]),
                frequency=frequency,
                name=name,
            )


def _end(ckpt, data: Optional[str], last_time: Optional[str], frequency) -> Optional[float]:
    """For a model with calendar inputs: the step index of the history's last value, from its time;
    None (the training data's end) when DATA has no times, which the user is told."""
    from ..data.calendar import step_index

    if not ckpt.model_config.calendar or data is None:
        return None
    stored = ckpt.described.frequency
    if last_time is None or frequency is None:
        return None  # the training data's end (a checkpoint that stores no time)
    if [frequency.unit, frequency.count] != list(stored):
        from ..data.times import Frequency

        raise DataError(
            f"{data} steps every {frequency}; the model was trained on a series that steps every "
            f"{Frequency(*stored)}, and reads its calendar in those steps"
        )
    return step_index(last_time, frequency)


def _histories(ckpt, data: Optional[str], only: Optional[str], seed: Optional[int] = None):
    """[(series name or None, values to continue, the time of the last value or None)] and the step
    between times: DATA's series, or each series' end as the checkpoint stores it (a sine model's:
    a fresh wave, drawn with `seed`)."""
    from ..data.table import Frequency, looks_like_table
    from ..generate.forecast import stored_history
    from ..generate.generator import series_entry

    source = ckpt.described.source
    stored = Frequency(*source["frequency"]) if source.get("frequency") else None
    if data is None:
        entries = ckpt.described.series
        if entries:
            chosen = [series_entry(ckpt, only)] if only else entries
            return [(e["name"], stored_history(ckpt, e), e["last_time"]) for e in chosen], stored
        series_entry(ckpt, only)  # a name that is not the one series is an error
        return [(source.get("series"), stored_history(ckpt, seed=seed), source.get("last_time"))], stored
    raw, label, suffix = _read_data(data)
    text = None if suffix.lower() == ".npy" else _decode(raw, label)
    if text is not None and looks_like_table(text):
        from ..data.load import TableOptions

        table = TableOptions.from_source(source).read(text, label)
        # A table of one row has a time but no step to infer: it steps as the training data did.
        step = table.frequency or (stored if table.times is not None else None)
        if stored is not None and table.frequency is not None and table.frequency != stored:
            # A calendar model refuses it later; a model of values alone continues at DATA's step, as asked.
            say(
                f"note: {label} steps every {table.frequency}, and {ckpt.path} was trained on data that steps every "
                f"{stored}: the forecast continues at {label}'s step, from a model that learnt the other one"
            )
        if ckpt.model_config.channels > 1:
            last = None if table.times is None else str(table.times[0][-1])
            return [(None, np.stack(table.series, axis=1), last)], step
        rows = _table_rows(table, only, label)
        return rows, step
    from ..data import read_values

    if ckpt.model_config.channels > 1:
        raise DataError(
            f"{label}: {ckpt.path} models the columns {', '.join(map(repr, ckpt.described.channels))} "
            "jointly; give DATA as a CSV with those columns"
        )
    values = read_values(raw, label, suffix)
    if len(values) == 0:
        raise DataError(f"{label} holds no numbers: give the history to continue")
    if ckpt.model_config.calendar:
        # Values without times are placed where the training data ended, and dated from there.
        from ..data.times import format_time

        last = (series_entry(ckpt, only) or source).get("last_time")
        say(
            f"note: {label} has no times; this model reads the calendar, and takes its last value to be at the "
            f"training data's last time, {format_time(np.datetime64(last, 's'), stored)} (give DATA as a CSV with "
            "its time column to forecast from another time)"
        )
        return [(only, values, last)], stored
    return [(only, values, None)], None


# Fewer sample paths than this get a note: their quantiles are rough (one path: all the same).
FEW_SAMPLES = 20


def _read_data(data: str) -> tuple[bytes, str, str]:
    if data == "-":
        return sys.stdin.buffer.read(), "standard input", ""
    path = Path(data)
    if path.is_dir():
        raise DataError(f"{data} is a directory: give a file of numbers")
    if not path.is_file():
        raise DataError(f"{data}: no such file")
    try:
        return path.read_bytes(), data, path.suffix
    except OSError as e:
        raise DataError(f"{data}: cannot read ({e.strerror})") from None


def _decode(raw: bytes, label: str) -> str:
    from ..data import decode_text

    return decode_text(raw, label)


def _times(last_time: Optional[str], frequency, horizon: int) -> Optional[list[str]]:
    """The forecast's timestamps, continuing the data's at its step (None without times)."""
    if last_time is None or frequency is None:
        return None
    from ..data.table import format_time, next_times

    return [format_time(t, frequency) for t in next_times(np.datetime64(last_time, "s"), frequency, horizon)]


def _table(results, several: bool) -> list[dict]:
    """One row per series and step: the series (when several), the time (or step), the mean, then
    each quantile, named q<level>."""
    rows = []
    for name, times, result in results:
        names = [f"q{level:g}" for level in result.levels]
        for step, (mean, qs) in enumerate(zip(result.mean, result.quantiles.T), start=1):
            row = {"series": name} if several else {}
            row.update({"time": times[step - 1]} if times else {"step": step})
            rows.append({**row, "mean": float(mean), **{n: float(q) for n, q in zip(names, qs)}})
    return rows


def _write(out, table: list[dict], fmt: str) -> None:
    if fmt == "jsonl":
        for row in table:
            out.write(json.dumps(row) + "\n")
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(table[0]))
    for row in table:
        writer.writerow([_fmt(v) if isinstance(v, float) else v for v in row.values()])
