"""`seqgen eval`, `info` and `strip`: measure a checkpoint, show what it holds, make it small."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer

from ..errors import DataError, UsageError
from .app import app, check_seed, console, say


@app.command("eval")
def eval_command(
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="A checkpoint written by 'seqgen train'."),
    data: Optional[str] = typer.Argument(
        None,
        metavar="DATA",
        help="Data to evaluate on. \\[default: the checkpoint's training file; fresh waves for sine]",
    ),
    val_fraction: Optional[float] = typer.Option(
        None, help="Evaluate on this last fraction of DATA. \\[default: the checkpoint's]"
    ),
    long: bool = typer.Option(False, "--long", help="Continuous: also free-run 10,000 steps."),
    waves: Optional[int] = typer.Option(None, help="Sine: number of fresh waves, run as one batch. \\[default: 32]"),
    seed: Optional[int] = typer.Option(
        None, callback=check_seed, help="Sine: seed for the fresh waves. \\[default: a new one each run, printed]"
    ),
    encoding: str = typer.Option("utf-8", help="Text encoding of DATA."),
    backend: str = typer.Option("auto", help="Continuous: auto (NumPy on CPU), numpy or torch."),
    device: str = typer.Option("cpu", help="Device for torch: cpu, cuda, mps or auto (the first available of those)."),
    protocol: str = typer.Option(
        "stream",
        help="Text: which loss comes first and is 'loss' in --json: stream (the tail as one stream, the state carried through) or windows (windows of --window tokens, each from a zero state, as nanoGPT scores). Both are measured.",
    ),
    window: int = typer.Option(256, help="Text: the window of the windows protocol."),
    adapt: bool = typer.Option(
        False,
        "--adapt",
        help="Text: also dynamic evaluation, beside the static figures: the same stream, each window scored and then learnt from (Krause et al., 2018).",
    ),
    adapt_lr: Optional[float] = typer.Option(
        None,
        help="Text, with --adapt: the step size of the update (rms: the gradient is divided by its scale on the training part). \\[default: 0.0004, measured: docs/results.md]",
    ),
    adapt_window: Optional[int] = typer.Option(
        None, help="Text, with --adapt: tokens read between steps, the state carried across. \\[default: 50]"
    ),
    horizon: Optional[int] = typer.Option(
        None, help="Series: steps forecast from each backtest origin. \\[default: the season, or 8 without one]"
    ),
    origins: int = typer.Option(5, help="Series: forecast origins spread over the validation tail."),
    season: Optional[int] = typer.Option(
        None,
        help="Series: the seasonal period for MASE and the seasonal naive forecast. \\[default: detected from the training part]",
    ),
    samples: int = typer.Option(200, help="Series: sample paths per forecast."),
    fill: str = typer.Option(
        "error",
        help="The pretrained forecaster's DATA: a CSV's missing values and time steps: error (name the first), previous, linear or zero.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the figures as one JSON object on stdout."),
) -> None:
    """Measure a checkpoint: text validation loss; continuous free-running error, and for a
    series a rolling-origin backtest of its forecasts beside the seasonal naive forecast."""
    from ..checkpoint import load_checkpoint
    from ..evaluate import HORIZONS, LONG_HORIZONS, evaluate_series, evaluate_text

    if val_fraction is not None and not 0 < val_fraction < 1:
        raise UsageError(f"--val-fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if data not in (None, "-") and not Path(data).exists():
        raise DataError(f"{data}: no such file (give the data to evaluate on, or nothing for the checkpoint's own)")
    from ..generate.zero_shot import resolve as resolve_checkpoint

    ckpt = load_checkpoint(resolve_checkpoint(checkpoint))
    adapting = _adapt_config(ckpt, adapt, adapt_lr, adapt_window)
    if ckpt.kind == "forecaster":
        tested = _backtest_forecaster(ckpt, data, horizon, origins, season, samples, fill)
        _show_backtest(tested, " (from the dates, or detected)" if season is None else "")
        if json_out:
            print(
                json.dumps(_finite({"kind": "forecaster", "checkpoint": str(checkpoint), "backtest": tested.to_dict()}))
            )
        return
    if fill != "error":
        raise UsageError(
            f"--fill applies to the pretrained forecaster; {checkpoint} reads DATA as its training data was read"
        )
    if ckpt.kind == "text" and (long or waves is not None or seed is not None):
        raise UsageError("--long, --waves and --seed measure continuous models; this checkpoint generates text")
    if ckpt.kind == "text":
        result = evaluate_text(
            ckpt,
            data,
            val_fraction=val_fraction,
            encoding=encoding,
            device=device,
            protocol=protocol,
            window=window,
            adapt=adapting or False,
        )
        tokens = "" if result.tokenization == "char" else f", {result.tokens:,} {result.tokenization} tokens"
        say(f"{result.data}: last {result.val_fraction:g} ({result.characters:,} characters{tokens})")
        lines = {
            "stream": f"one stream, state carried through    {_nats(result.stream_loss)}",
            "windows": f"windows of {result.window}, each from zero state  {_nats(result.windows_loss or 0)}",
        }
        if result.windows_loss is None:
            del lines["windows"]
        for name in sorted(lines, key=lambda n: n != protocol):
            say(f"validation loss, {lines[name]}")
        if tokens:
            say(f"per token ({protocol}): {result.loss_per_token:.4f} nats")
        if result.adapted_loss is not None:
            _show_adapted(result)
        say(f"({result.seconds:.1f}s)")
    elif ckpt.model_config.channels > 1:
        # A free run's RMSE would add up channels in different units: the backtest scores each channel.
        if long or waves is not None:
            raise UsageError(
                f"--long and --waves measure a free run, which a model of channels ({checkpoint}) has "
                "none of: its evaluation is the backtest, channel by channel"
            )
        result = None
    else:
        horizons = LONG_HORIZONS if long else HORIZONS
        result = evaluate_series(
            ckpt,
            data,
            horizons=horizons,
            waves=32 if waves is None else waves,
            seed=seed,
            val_fraction=val_fraction,
            backend=backend,
        )
    figures = result.to_dict() if result is not None else {"kind": "series", "checkpoint": str(checkpoint)}
    # A backtest forecasts the series a model was trained on: a sine model has none, whatever DATA it is measured on.
    trained_on_file = not ckpt.described.is_sine
    tested = None
    if ckpt.kind != "text" and (result is None or result.source["type"] == "file") and trained_on_file:
        from ..evaluate import backtest

        # Before anything is shown: a --horizon too long for the data is one line, not the end of a report.
        tested = backtest(
            ckpt,
            data,
            horizon=horizon,
            origins=origins,
            season=season,
            samples=samples,
            val_fraction=val_fraction,
            backend=backend,
        )
        figures["backtest"] = tested.to_dict()
    if ckpt.kind != "text" and result is not None:
        _show_free_run(result)
    if tested is not None:
        _show_backtest(tested, " (detected)" if season is None else "")
    if json_out:
        print(json.dumps(_finite(figures)))


def _adapt_config(ckpt, adapt: bool, lr: Optional[float], window: Optional[int]):
    """--adapt's settings, or None; a one-line error where they cannot apply."""
    if not adapt:
        if lr is not None or window is not None:
            raise UsageError("--adapt-lr and --adapt-window set up --adapt: give --adapt too")
        return None
    if ckpt.kind != "text":
        raise UsageError(f"--adapt: dynamic evaluation works with text models so far; {ckpt.path} models numbers")
    from ..adapt import DEFAULT_WINDOW, AdaptConfig

    return AdaptConfig(lr=lr, window=DEFAULT_WINDOW if window is None else window)


def _show_adapted(result) -> None:
    """The dynamic-evaluation figure on its own labelled line, beside the static one it compares with."""
    how = result.adapt
    gain = result.adapted_loss - result.stream_loss
    say(
        f"adapted loss (dynamic evaluation, {how['method']} lr {how['lr']:g}, windows of {how['window']}), "
        f"the same stream  {_nats(result.adapted_loss)}  ({gain:+.4f} nats/char against static)"
    )


def _finite(value):
    """`value` with NaN and infinities as None (null): JSON has no NaN, and a point forecast has no
    interval coverage to report."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _nats(loss: float) -> str:
    return f"{loss:.4f} nats/char, {loss / math.log(2):.4f} bits/char"


def _show_free_run(result) -> None:
    src = result.source
    where = (
        f"{src['waves']} fresh sine waves (--seed {src['seed']})"
        if src["type"] == "sine"
        else f"the last {src['val_fraction']:g} of {src['path']}"
    )
    if src.get("series") is not None:
        where = f"series {src['series']!r} ({where})"
    say(f"free run on {where}, after a {result.prime}-step prime:")
    several = result.streams > 1  # the worst stream and the range mean something only then
    for steps, rmse in result.rmse.items():
        worst = f"  (worst stream {result.rmse_worst[steps]:.4f})" if several else ""
        say(f"  RMSE over {steps:>6,} steps  {rmse:.4f}{worst}")
    spread = f" (range {result.amplitude_ratio_min:.3f}-{result.amplitude_ratio_max:.3f})" if several else ""
    say(f"  generated / true amplitude  {result.amplitude_ratio:.3f}{spread}")


def _backtest_forecaster(
    ckpt, data: Optional[str], horizon: Optional[int], origins: int, season: Optional[int], samples: int, fill: str
):
    """The pretrained forecaster's backtest on DATA's series, each read with its season."""
    from ..evaluate import backtest_forecaster
    from ..generate.zero_shot import guess_season, season_for
    from .forecast import user_series

    if data is None:
        raise UsageError(f"{ckpt.path} is a forecaster, which backtests on the series you give: give DATA")
    rows, frequency = user_series(data, None, fill)
    series = [
        (name, values, season or (season_for(frequency) if frequency is not None else guess_season(values)))
        for name, values, _ in rows
    ]
    return backtest_forecaster(ckpt, series, horizon=horizon, origins=origins, samples=samples, label=data)


def _show_backtest(tested, note: str) -> None:
    from rich.table import Table

    what = "channels" if tested.joint else "series"
    several = f" of {len(tested.series)} {what}" if len(tested.series) > 1 else ""
    say(
        f"backtest: {tested.origins} forecasts from origins in {tested.where}{several}, {tested.horizon} steps "
        f"each, {tested.samples} paths; season {tested.season}{note}:"
    )
    table = Table(box=None, padding=(0, 2))
    for column in ("", "MAE", "RMSE", "MASE", "CRPS", "80% interval covers"):
        table.add_column(column, justify="left" if not column else "right", no_wrap=not column)
    rows = [("seqgen", tested.seqgen), ("seasonal naive", tested.seasonal_naive)]
    rows += [(f"{name} (statsforecast)", scores) for name, scores in tested.others.items()]
    for series, scores in list(tested.per_series.items())[:SHOWN_SERIES]:
        rows += [(f"{series}: seqgen", scores["seqgen"]), (f"{series}: seasonal naive", scores["seasonal_naive"])]
    for name, scores in rows:
        cover = "-" if scores["coverage"] != scores["coverage"] else f"{scores['coverage']:.0%}"
        # Across series in their own units only MASE and coverage average: the others are each series' own.
        mixed = scores["mae"] is None
        units = ("-",) * 3 if mixed else tuple(f"{scores[k]:.4g}" for k in ("mae", "rmse", "crps"))
        table.add_row(f"  {name}", units[0], units[1], f"{scores['mase']:.4g}", units[2], cover)
    console.print(table)
    if len(tested.per_series) > SHOWN_SERIES:
        say(f"  ... and {len(tested.per_series) - SHOWN_SERIES} more series (--json lists them all)")


@app.command()
def info(
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="A checkpoint written by 'seqgen train'."),
    json_out: bool = typer.Option(False, "--json", help="Print the details as one JSON object on stdout."),
) -> None:
    """Show what a checkpoint holds: data, vocabulary, model, training progress, format."""
    from rich.table import Table

    from ..info import checkpoint_info

    from ..generate.zero_shot import resolve

    details = checkpoint_info(resolve(checkpoint))
    if json_out:
        print(json.dumps(details, ensure_ascii=False))
        return
    data, model, progress = details["data"], details["model"], details["training"]
    table = Table(show_header=False, box=None, padding=(0, 2))
    if data["kind"] == "forecaster":
        _forecaster_rows(table, model, progress, details.get("finetune"))
        table.add_row("format", f"seqgen-checkpoint version {details['format_version']}")
        console.print(table)
        return
    table.add_row("data", f"{data['kind']}: {data['description']}")
    if data.get("tokens", "char") == "char" and "vocab_size" in data:
        table.add_row("vocabulary", f"{data['vocab_size']} characters: {data['vocab_preview']!r}")
    elif "vocab_size" in data:
        shown = ", ".join(repr(piece) for piece in data["token_preview"])
        table.add_row(
            "vocabulary", f"{data['vocab_size']} {data['tokens']} tokens" + (f": {shown}, ..." if shown else "")
        )
    else:
        table.add_row("scaling", _scaling(data))
    shape = f"{model['cell'].upper()}, {model['layers']} x {model['hidden']}"
    shape += f", embedding {model['embed']}" if "embed" in model else f", {model['head']} head"
    if model.get("calendar"):
        from ..data.calendar import describe

        shape += f"; calendar inputs ({describe(model['calendar'])})"
    table.add_row("model", f"{shape}; {model['parameters']:,} parameters")
    table.add_row(
        "training",
        f"{progress['steps']} steps, {progress['seconds'] or 0:.1f}s, {progress['epochs'] or 0:.2f} epochs"
        f", {progress['precision']}"
        + (
            f", {progress['threads']} torch thread{'s' if progress['threads'] > 1 else ''}"
            if progress.get("threads")
            else ""
        )
        + ("" if progress["resumable"] else " (weights only)"),
    )
    settings = progress.get("settings") or {}
    if "batch_size" in settings:
        decay = f", weight decay {settings['weight_decay']:g}" if settings.get("weight_decay") else ""
        table.add_row(
            "settings",
            f"batch {settings['batch_size']} x {settings['window']}, learning rate {settings['lr']:g}, "
            f"dropout {settings['dropout']:g}{decay}",
        )
    if progress["best_val_loss"] is not None:
        tokens = data.get("tokens", "char")
        unit = (
            "MSE of the scaled values," if data["kind"] != "text" else "nats/char" if tokens == "char" else "nats/token"
        )
        bits = (
            f" ({progress['best_val_bpc']:.4g} bits/char)"
            if data["kind"] == "text" and progress.get("best_val_bpc")
            else ""
        )
        table.add_row(
            "best validation", f"{progress['best_val_loss']:.4g} {unit}{bits} at step {progress['best_step']}"
        )
    table.add_row("format", f"seqgen-checkpoint version {details['format_version']}")
    console.print(table)


def _forecaster_rows(table, model: dict, progress: dict, tuned: dict | None) -> None:
    table.add_row("data", "forecaster, pretrained on synthetic series: forecasts a series it has never seen")
    if tuned:
        table.add_row(
            "fine-tuned",
            f"on {tuned.get('data') or 'a series'} ({tuned['series']} series), {tuned['steps']} steps "
            f"at {tuned['lr']:g}; forecasts with both networks",
        )
    table.add_row(
        "model",
        f"LSTM, {model['layers']} x {model['hidden']}; quantiles of the next {model['horizon']} "
        f"steps; reads the last {model['context']} values; {model['parameters']:,} parameters",
    )
    table.add_row(
        "training",
        f"{progress['steps']} steps of {progress['settings'].get('batch')} series, "
        f"{progress['seconds'] or 0:.0f}s; validation pinball loss {progress['val_loss'] or float('nan'):.4f}",
    )


# `seqgen info` lists this many series' scaling; --json lists them all.
SHOWN_SERIES = 10


def _scaling(data: dict) -> str:
    """How a series model's values were scaled: one mean and std, each series' own, or each wave's size."""
    of = " (of the steps between values)" if data.get("target") == "diff" else ""
    if data.get("series"):
        entries = data["series"]
        lines = [f"{e['name']!r}: mean {e['mean']:.6g}, std {e['std']:.6g}" for e in entries[:SHOWN_SERIES]]
        if len(entries) > SHOWN_SERIES:
            lines.append(f"... and {len(entries) - SHOWN_SERIES} more (--json lists them all)")
        return f"per series, each by its own training part{of}:\n" + "\n".join(lines)
    if data.get("channels"):
        lines = [
            f"{name!r}: mean {m:.6g}, std {s:.6g}" for name, m, s in zip(data["channels"], data["mean"], data["std"])
        ]
        return f"channels modelled jointly, each by its own training part{of}:\n" + "\n".join(lines)
    if data.get("scale_each"):
        typical = (
            ""
            if data.get("typical_scale") is None
            else f" (the training waves' typical size {data['typical_scale']:.4g})"
        )
        return f"each stream divided by its own size{typical}"
    return f"mean {data['mean']:.6g}, std {data['std']:.6g}{of}"


@app.command()
def strip(
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="A checkpoint written by 'seqgen train'."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Where to write the result. \\[default: replace CHECKPOINT, with --force]"
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace an existing file: CHECKPOINT itself (no --out) or the one at --out."
    ),
) -> None:
    """Drop the resume state (optimizer moments, latest weights): a small file for sharing and sampling."""
    from ..checkpoint import strip_training_state

    _check_replace(checkpoint, out, force)
    before = checkpoint.stat().st_size if checkpoint.is_file() else 0
    resumable = _resumable(checkpoint)
    target = strip_training_state(checkpoint, out)
    after = f"{before / 1e6:.1f} MB -> {target.stat().st_size / 1e6:.1f} MB"
    say(
        f"{target}: {after} (it can no longer be resumed)"
        if resumable
        else f"{target}: {after}; {checkpoint} held no resume state already (a shipped or stripped checkpoint)"
    )


def _resumable(path: Path) -> bool:
    from ..checkpoint import load_checkpoint

    return path.is_file() and bool(load_checkpoint(path).training)


def _check_replace(checkpoint: Path, out: Optional[Path], force: bool) -> None:
    """Like `seqgen train`, strip never replaces a file unasked: in place it drops the resume state for good."""
    if force:
        return
    if out is None and checkpoint.is_file():
        raise UsageError(
            f"strip would replace {checkpoint} and drop its resume state for good; pass --force to do "
            f"that, or --out to write the small copy elsewhere (e.g. --out {_small_name(checkpoint)})"
        )
    if out is not None and out.exists():
        raise UsageError(f"--out {out} already exists; pass --force to replace it, or give another --out")


def _small_name(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.stem + ".small" + checkpoint.suffix)
