"""`seqgen eval`, `info` and `strip`: measure a checkpoint, show what it holds, make it small."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import DataError, UsageError
from .app import app, as_flags, check_seed, console, flagged, option, say

CHECKPOINT = typer.Argument(..., metavar="CHECKPOINT", help="A checkpoint written by 'seqgen train'.")
DATA_HELP = "Data to evaluate on. \\[default: the checkpoint's training file; fresh waves for sine]"
PROTOCOL_HELP = "Text: the loss shown first: stream (state carried through) or windows (each from zero state)."


@app.command("eval")
def eval_command(
    checkpoint: Path = CHECKPOINT,
    data: Optional[str] = typer.Argument(None, metavar="DATA", help=DATA_HELP),
    val_fraction: Optional[float] = option(
        None, "Evaluate on this last fraction of DATA. \\[default: the checkpoint's]"
    ),
    long: bool = option(False, "Continuous: also free-run 10,000 steps.", "--long"),
    waves: Optional[int] = option(None, "Sine: number of fresh waves, run as one batch. \\[default: 32]"),
    seed: Optional[int] = option(
        None, "Sine: seed for the fresh waves. \\[default: a new one, printed]", callback=check_seed
    ),
    encoding: str = option("utf-8", "Text encoding of DATA."),
    backend: str = option("auto", "Continuous: auto (NumPy on CPU), numpy or torch."),
    device: str = option("cpu", "Device for torch: cpu, cuda, mps or auto."),
    protocol: str = option("stream", PROTOCOL_HELP),
    window: int = option(256, "Text: the window of the windows protocol."),
    adapt: bool = option(False, "Text: also dynamic evaluation (each window scored, then learnt from).", "--adapt"),
    adapt_lr: Optional[float] = option(None, "Text, with --adapt: the step size of the update. \\[default: 0.0004]"),
    adapt_window: Optional[int] = option(None, "Text, with --adapt: tokens read between steps. \\[default: 50]"),
    horizon: Optional[int] = option(None, "Series: steps forecast from each origin. \\[default: the season, or 8]"),
    origins: int = option(5, "Series: forecast origins spread over the validation tail."),
    season: Optional[int] = option(None, "Series: the seasonal period for MASE. \\[default: detected]"),
    samples: int = option(200, "Series: sample paths per forecast."),
    fill: str = option("error", "The pretrained forecaster's DATA: a CSV's gaps: error, previous, linear or zero."),
    json_out: bool = option(False, "Print the figures as one JSON object on stdout.", "--json"),
) -> None:
    """Measure a checkpoint: text validation loss; continuous free-running error, and for a
    series a rolling-origin backtest of its forecasts beside the seasonal naive forecast."""
    _eval(dict(locals()))


def _eval(o: dict) -> None:
    from ..checkpoint import load_checkpoint
    from ..generate.zero_shot import resolve
    from ..report import finite

    data, checkpoint = o["data"], o["checkpoint"]
    if o["val_fraction"] is not None and not 0 < o["val_fraction"] < 1:
        raise UsageError(f"--val-fraction must be between 0 and 1 (exclusive), got {o['val_fraction']}")
    if data not in (None, "-") and not Path(data).exists():
        raise DataError(f"{data}: no such file (give the data to evaluate on, or nothing for the checkpoint's own)")
    ckpt = load_checkpoint(resolve(checkpoint))
    adapting = _adapt_config(ckpt, o["adapt"], o["adapt_lr"], o["adapt_window"])
    if ckpt.kind == "forecaster":
        tested = _backtest_forecaster(ckpt, o)
        _show_backtest(tested, " (from the dates, or detected)" if o["season"] is None else "")
        if o["json_out"]:
            print(
                json.dumps(finite({"kind": "forecaster", "checkpoint": str(checkpoint), "backtest": tested.to_dict()}))
            )
        return
    if o["fill"] != "error":
        raise UsageError(
            f"--fill applies to the pretrained forecaster; {checkpoint} reads DATA as its training data was read"
        )
    if o["long"] or o["waves"] is not None or o["seed"] is not None:
        with flagged():
            ckpt.data_kind.check("continuous measures")
    if ckpt.data_kind.allows("text evaluation"):
        figures = _eval_text(ckpt, o, adapting)
    else:
        figures = _eval_series(ckpt, o)
    if o["json_out"]:
        print(json.dumps(finite(figures)))


def _eval_text(ckpt, o: dict, adapting) -> dict:
    from ..evaluate import evaluate_text
    from ..report import text_report

    asked = {k: o[k] for k in ("val_fraction", "encoding", "device", "protocol", "window")}
    result = evaluate_text(ckpt, o["data"], **asked, adapt=adapting or False)
    for line in text_report(result, o["protocol"]):
        say(line)
    return result.to_dict()


def _eval_series(ckpt, o: dict) -> dict:
    """A continuous model's free run (none for a model of channels) and backtest, shown and as figures."""
    from ..evaluate import HORIZONS, LONG_HORIZONS, backtest, evaluate_series
    from ..report import free_run_report

    result = None
    if ckpt.model_config.channels > 1 and (o["long"] or o["waves"] is not None):
        # A free run's RMSE would add up channels in different units: the backtest scores each channel.
        raise UsageError(
            f"--long and --waves measure a free run, which a model of channels ({o['checkpoint']}) has "
            "none of: its evaluation is the backtest, channel by channel"
        )
    if ckpt.model_config.channels == 1:
        waves = 32 if o["waves"] is None else o["waves"]
        asked = {k: o[k] for k in ("seed", "val_fraction", "backend")}
        result = evaluate_series(
            ckpt, o["data"], horizons=LONG_HORIZONS if o["long"] else HORIZONS, waves=waves, **asked
        )
    figures = result.to_dict() if result is not None else {"kind": "series", "checkpoint": str(o["checkpoint"])}
    # A backtest forecasts the series a model was trained on: a sine model has none, whatever DATA it is measured on.
    tested = None
    if (result is None or result.source["type"] == "file") and not ckpt.described.is_sine:
        # Before anything is shown: a --horizon too long for the data is one line, not the end of a report.
        asked = {k: o[k] for k in ("horizon", "origins", "season", "samples", "val_fraction", "backend")}
        tested = backtest(ckpt, o["data"], **asked)
        figures["backtest"] = tested.to_dict()
    for line in free_run_report(result, as_flags) if result is not None else []:
        say(line)
    if tested is not None:
        _show_backtest(tested, " (detected)" if o["season"] is None else "")
    return figures


def _show_backtest(tested, note: str) -> None:
    from ..report import backtest_report

    for line in backtest_report(tested, note, as_flags):
        say(line) if isinstance(line, str) else console.print(line)


def _adapt_config(ckpt, adapt: bool, lr: Optional[float], window: Optional[int]):
    """--adapt's settings, or None; a one-line error where they cannot apply."""
    if not adapt:
        if lr is not None or window is not None:
            raise UsageError("--adapt-lr and --adapt-window set up --adapt: give --adapt too")
        return None
    with flagged():
        ckpt.data_kind.check("dynamic evaluation", path=ckpt.path)
    from ..adapt import DEFAULT_WINDOW, AdaptConfig

    return AdaptConfig(lr=lr, window=DEFAULT_WINDOW if window is None else window)


def _backtest_forecaster(ckpt, o: dict):
    """The pretrained forecaster's backtest on DATA's series, each read with its season."""
    from ..evaluate import backtest_forecaster
    from ..generate.histories import seasoned_series
    from ..generate.zero_shot import called

    if o["data"] is None:
        raise UsageError(f"{called(ckpt.path)} is a forecaster, which backtests on the series you give: give DATA")
    series = seasoned_series(o["data"], o["fill"], o["season"])
    asked = {k: o[k] for k in ("horizon", "origins", "samples")}
    return backtest_forecaster(ckpt, series, **asked, label=o["data"])


@app.command()
def info(
    checkpoint: Path = CHECKPOINT,
    json_out: bool = option(False, "Print the details as one JSON object on stdout.", "--json"),
) -> None:
    """Show what a checkpoint holds: data, vocabulary, model, training progress, format."""
    from ..generate.zero_shot import resolve
    from ..info import checkpoint_info, info_rows

    details = checkpoint_info(resolve(checkpoint))
    if json_out:
        print(json.dumps(details, ensure_ascii=False))
        return
    table = Table(show_header=False, box=None, padding=(0, 2))
    for row in info_rows(details, as_flags):
        table.add_row(*row)
    console.print(table)


@app.command()
def strip(
    checkpoint: Path = CHECKPOINT,
    out: Optional[Path] = option(
        None, "Where to write it. \\[default: replace CHECKPOINT, with --force]", "--out", "-o"
    ),
    force: bool = option(
        False, "Replace an existing file: CHECKPOINT itself (no --out) or the one at --out.", "--force"
    ),
) -> None:
    """Drop the resume state (optimizer moments, latest weights): a small file for sharing and sampling."""
    from ..checkpoint import load_checkpoint, strip_training_state

    _check_replace(checkpoint, out, force)
    before = checkpoint.stat().st_size if checkpoint.is_file() else 0
    resumable = checkpoint.is_file() and bool(load_checkpoint(checkpoint).training)
    target = strip_training_state(checkpoint, out)
    after = f"{target}: {before / 1e6:.1f} MB -> {target.stat().st_size / 1e6:.1f} MB"
    none = f"; {checkpoint} held no resume state already (a shipped or stripped checkpoint)"
    say(f"{after} (it can no longer be resumed)" if resumable else after + none)


def _check_replace(checkpoint: Path, out: Optional[Path], force: bool) -> None:
    """Like `seqgen train`, strip never replaces a file unasked: in place it drops the resume state for good."""
    if force:
        return
    if out is None and checkpoint.is_file():
        small = checkpoint.with_name(checkpoint.stem + ".small" + checkpoint.suffix)
        raise UsageError(
            f"strip would replace {checkpoint} and drop its resume state for good; pass --force to do "
            f"that, or --out to write the small copy elsewhere (e.g. --out {small})"
        )
    if out is not None and out.exists():
        raise UsageError(f"--out {out} already exists; pass --force to replace it, or give another --out")
