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
from .app import app, check_seed, console
from .output import _fmt

FORMATS = ("csv", "jsonl")


@app.command()
def forecast(
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="A continuous-model checkpoint written by 'seqgen train'."),
    data: Optional[str] = typer.Argument(None, metavar="[DATA]", help="The history to continue: a file of numbers (as 'seqgen train' reads them) or - for stdin. \\[default: the end of the training data]"),
    horizon: int = typer.Option(24, "--horizon", "-H", help="Steps to forecast."),
    samples: int = typer.Option(200, help="Sample paths drawn; the mean and quantiles are taken over them."),
    quantiles: str = typer.Option("0.1,0.5,0.9", help="Comma-separated quantile levels to report, each between 0 and 1."),
    fmt: str = typer.Option("csv", "--format", help="csv (one row per step) or jsonl (one object per step)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file (atomically) instead of stdout."),
    plot: bool = typer.Option(False, "--plot", help="Draw the history and the forecast's band on stderr."),
    plot_file: Optional[Path] = typer.Option(None, help="Save the fan chart as an image (needs the 'plot' extra: matplotlib)."),
    seed: Optional[int] = typer.Option(None, callback=check_seed, help="Random seed; the same seed gives the same paths."),
    backend: str = typer.Option("auto", help="auto (NumPy on CPU), numpy or torch."),
) -> None:
    """Forecast a series: sample many futures and write, per step, their mean and quantiles."""
    from ..checkpoint import load_checkpoint
    from ..generate.forecast import forecast as run_forecast

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)} for forecast, got {fmt!r}")
    levels = _levels(quantiles)
    ckpt = load_checkpoint(checkpoint)
    if ckpt.kind == "text":
        raise UsageError(f"{checkpoint} is a text model; forecast continues numbers (use 'seqgen sample' for text)")
    if plot_file is not None:
        from .plot import require_matplotlib

        require_matplotlib()  # before the work, not after it
    history = _history(ckpt, data)
    result = run_forecast(ckpt, history, horizon, samples=samples, quantiles=levels, seed=seed, backend=backend)
    table = _table(result)
    from .sample import _open_output

    with _open_output(output) as out:
        _write(out, table, fmt)
    if plot or plot_file:
        low, high = result.quantiles[0], result.quantiles[-1]
        middle = np.median(result.paths, axis=0)
        if plot:
            from .plot import fan_chart

            console.print(fan_chart(history, low, middle, high, levels, width=console.width))
        if plot_file is not None:
            from .plot import save_fan_plot

            save_fan_plot(plot_file, history, low, middle, high, levels)


def _levels(text: str) -> tuple[float, ...]:
    from ..generate.forecast import check_quantiles

    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--quantiles takes numbers separated by commas, like 0.1,0.5,0.9; got {text!r}") from None
    if not values:
        raise UsageError("--quantiles: give at least one level, like 0.1,0.5,0.9")
    return check_quantiles(values)


def _history(ckpt, data: Optional[str]) -> np.ndarray:
    """The values to continue: DATA's numbers, or the end of the training data stored in the checkpoint."""
    from ..data import read_values
    from ..generate.api import default_prime

    if data is None:
        return default_prime(ckpt, length=len(ckpt.data.get("prime", [])) or 100)
    if data == "-":
        raw, label, suffix = sys.stdin.buffer.read(), "standard input", ""
    else:
        path = Path(data)
        if path.is_dir():
            raise UsageError(f"{data} is a directory: give a file of numbers")
        if not path.is_file():
            raise UsageError(f"{data}: no such file")
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise DataError(f"{data}: cannot read ({e.strerror})") from None
        label, suffix = data, path.suffix
    values = read_values(raw, label, suffix)
    if len(values) == 0:
        raise DataError(f"{label} holds no numbers: give the history to continue")
    return values


def _table(result) -> list[dict]:
    """One row per step: the step, the mean, then each quantile, named q<level>."""
    names = [f"q{level:g}" for level in result.levels]
    rows = []
    for step, (mean, qs) in enumerate(zip(result.mean, result.quantiles.T), start=1):
        rows.append({"step": step, "mean": float(mean), **{n: float(q) for n, q in zip(names, qs)}})
    return rows


def _write(out, table: list[dict], fmt: str) -> None:
    if fmt == "jsonl":
        for row in table:
            out.write(json.dumps(row) + "\n")
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(table[0]))
    for row in table:
        writer.writerow([row["step"], *(_fmt(v) for k, v in row.items() if k != "step")])
