"""What `seqgen eval` says to people: a text model's losses, a free run's errors, a backtest's
table; and its figures as JSON (no NaN). Each report is a list of lines (and tables) to print;
`word` says a hint's `parameters` as the caller names them."""

from __future__ import annotations

import math
from typing import Callable

from rich.table import Table

# A backtest's table shows this many series' own rows; the JSON lists them all.
SHOWN_SERIES = 10


def text_report(result, protocol: str) -> list[str]:
    """A text model's validation losses, the one `protocol` names first."""
    tokens = "" if result.tokenization == "char" else f", {result.tokens:,} {result.tokenization} tokens"
    lines = [f"{result.data}: last {result.val_fraction:g} ({result.characters:,} characters{tokens})"]
    losses = {
        "stream": f"one stream, state carried through    {nats(result.stream_loss)}",
        "windows": f"windows of {result.window}, each from zero state  {nats(result.windows_loss or 0)}",
    }
    if result.windows_loss is None:
        del losses["windows"]
    lines += [f"validation loss, {losses[name]}" for name in sorted(losses, key=lambda n: n != protocol)]
    if tokens:
        lines.append(f"per token ({protocol}): {result.loss_per_token:.4f} nats")
    if result.adapted_loss is not None:
        how, gain = result.adapt, result.adapted_loss - result.stream_loss
        lines.append(
            f"adapted loss (dynamic evaluation, {how['method']} lr {how['lr']:g}, windows of {how['window']}), "
            f"the same stream  {nats(result.adapted_loss)}  ({gain:+.4f} nats/char against static)"
        )
    return lines + [f"({result.seconds:.1f}s)"]


def finite(value):
    """`value` with NaN and infinities as None (null): JSON has no NaN, and a point forecast has no
    interval coverage to report."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def nats(loss: float) -> str:
    return f"{loss:.4f} nats/char, {loss / math.log(2):.4f} bits/char"


def free_run_report(result, word: Callable[[str], str] = str) -> list[str]:
    """A continuous model's free-running error against the true values."""
    src = result.source
    where = (
        word(f"{src['waves']} fresh sine waves (`seed` {src['seed']})")
        if src["type"] == "sine"
        else f"the last {src['val_fraction']:g} of {src['path']}"
    )
    if src.get("series") is not None:
        where = f"series {src['series']!r} ({where})"
    lines = [f"free run on {where}, after a {result.prime}-step prime:"]
    several = result.streams > 1  # the worst stream and the range mean something only then
    for steps, rmse in result.rmse.items():
        worst = f"  (worst stream {result.rmse_worst[steps]:.4f})" if several else ""
        lines.append(f"  RMSE over {steps:>6,} steps  {rmse:.4f}{worst}")
    spread = f" (range {result.amplitude_ratio_min:.3f}-{result.amplitude_ratio_max:.3f})" if several else ""
    return lines + [f"  generated / true amplitude  {result.amplitude_ratio:.3f}{spread}"]


def backtest_report(tested, note: str, word: Callable[[str], str] = str) -> list[str | Table]:
    """A backtest's forecasts scored beside the seasonal naive forecast's (and others')."""
    what = "channels" if tested.joint else "series"
    several = f" of {len(tested.series)} {what}" if len(tested.series) > 1 else ""
    lines: list[str | Table] = [
        f"backtest: {tested.origins} forecasts from origins in {tested.where}{several}, {tested.horizon} steps "
        f"each, {tested.samples} paths; season {tested.season}{note}:"
    ]
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
    lines.append(table)
    if len(tested.per_series) > SHOWN_SERIES:
        lines.append(word(f"  ... and {len(tested.per_series) - SHOWN_SERIES} more series (`json` lists them all)"))
    return lines
