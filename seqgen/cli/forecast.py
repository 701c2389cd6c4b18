"""`seqgen forecast`: sampled futures of a series, written as a table of mean and quantiles."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from .app import app, as_flags, check_seed, console, flagged, open_output, option, say

FORMATS = ("csv", "jsonl")
# Fewer sample paths than this get a note: their quantiles are rough (one path: all the same).
FEW_SAMPLES = 20
DATA_HELP = (
    "The history to continue: a file as 'seqgen train' reads them, or - for stdin. \\[default: the training data's end]"
)
SERIES_HELP = "Forecast only this series (a column, an id, or a channel of a --joint model). \\[default: every series]"
SEASON_HELP = (
    "The pretrained forecaster: the season length in steps (1: none). \\[default: from the dates, or detected]"
)


@app.command()
def forecast(
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="A series checkpoint, or 'pretrained'."),
    data: Optional[str] = typer.Argument(None, metavar="[DATA]", help=DATA_HELP),
    horizon: int = option(24, "Steps to forecast.", "--horizon", "-H"),
    samples: int = option(200, "Sample paths drawn; the mean and quantiles are taken over them."),
    quantiles: str = option("0.1,0.5,0.9", "Comma-separated quantile levels to report, each between 0 and 1."),
    fmt: str = option("csv", "csv (one row per step) or jsonl (one object per step).", "--format"),
    output: Optional[Path] = option(None, "Write to this file (atomically) instead of stdout.", "--output", "-o"),
    plot: bool = option(False, "Draw the history and the forecast's band on stderr.", "--plot"),
    plot_file: Optional[Path] = option(None, "Save the fan chart as an image (needs the 'plot' extra: matplotlib)."),
    series: Optional[str] = option(None, SERIES_HELP),
    seed: Optional[int] = option(None, "Random seed; the same seed gives the same paths.", callback=check_seed),
    backend: str = option("auto", "auto (NumPy on CPU), numpy or torch."),
    fill: str = option("error", "The pretrained forecaster: a CSV's gaps: error, previous, linear or zero."),
    season: Optional[int] = option(None, SEASON_HELP, min=1),
) -> None:
    """Forecast a series: sample many futures and write, per step, their mean and quantiles.

    CHECKPOINT 'pretrained' is the shipped forecaster, which forecasts a series it was never
    trained on: seqgen forecast pretrained DATA.csv -H 12."""
    from ..checkpoint import load_checkpoint
    from ..generate.histories import forecast_series, zero_shot_series
    from ..generate.zero_shot import is_forecaster, resolve
    from ..output import parse_quantiles
    from .sample import _check_plot_file

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)} for forecast, got {fmt!r}")
    with flagged():
        levels = parse_quantiles(quantiles)
    if plot_file is not None:
        _check_plot_file(plot_file)
    ckpt = load_checkpoint(resolve(checkpoint))
    ckpt.data_kind.check("forecast", path=checkpoint)
    if 0 < samples < FEW_SAMPLES:
        say(
            f"note: --samples {samples}: the quantiles of so few paths say little about the spread (the default is 200)"
        )
    note = lambda message: say(as_flags(message))  # noqa: E731
    if is_forecaster(ckpt):
        with flagged():
            made = zero_shot_series(ckpt, data, series, season, horizon, samples, levels, fill, note=note)
        return _finish(*made[:2], output, fmt, plot, plot_file, "series", made[2])
    if season is not None or fill != "error":
        raise UsageError(
            f"--{'season' if season is not None else 'fill'} applies to the pretrained forecaster; "
            f"{checkpoint} reads DATA as its training data was read"
        )
    with flagged():
        made = forecast_series(ckpt, data, horizon, series=series, samples=samples, levels=levels, seed=seed,
                               backend=backend, note=note)  # fmt: skip
    what = "channels" if ckpt.model_config.channels > 1 else "series"
    _finish(*made[:2], output, fmt, plot, plot_file, what, made[2])


def _finish(results, histories_by_name, output, fmt, plot, plot_file, what: str, frequency=None) -> None:
    """Write the forecasts' table, then draw the first one's chart where asked."""
    from ..output import forecast_table, write_table
    from ..plot import bands, fan_chart, save_fan_plot

    with open_output(output) as out:
        write_table(out, forecast_table(results), fmt)
    if not (plot or plot_file):
        return
    name, times, first = results[0]
    if len(results) > 1:
        which = "" if what == "channels" else " (--series chooses another)"
        say(f"the chart shows the first of {len(results)} {what}, {name!r}{which}")
    history, (low, middle, high) = histories_by_name[name], bands(first)
    if plot:
        console.print(fan_chart(history, low, middle, high, first.levels, width=console.width, times=times))
    if plot_file is not None:
        start = None if times is None else str(times[0])
        with flagged():
            save_fan_plot(plot_file, history, low, middle, high, first.levels, start, frequency, name)
