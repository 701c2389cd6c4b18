"""Pictures of continuous output: a chart in the terminal (rich, on stderr) or an image file.

The prime and the generated continuation are drawn with different characters (and colours, when
colour is allowed), so the chart reads the same with NO_COLOR or in a log file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import MissingPackage, UsageError
from .extras import install_hint

PRIME_MARK, GENERATED_MARK = "░", "█"


def terminal_chart(
    prime: np.ndarray, generated: np.ndarray, width: int = 80, height: int = 12, samples: int = 1, more: str = ""
):
    """A rich Text chart of one sample: each column spans the min..max of the values it covers.
    With `samples` > 1 the legend says it is the first of them (and `more`, where the rest are)."""
    from rich.text import Text

    values = np.concatenate([np.asarray(prime, dtype=np.float64), np.asarray(generated, dtype=np.float64)])
    if len(values) == 0:
        return Text("(nothing to plot)")
    top, bottom = float(values.max()), float(values.min())
    labels = [f"{top:.3g}", f"{bottom:.3g}"]
    pad = max(map(len, labels))
    columns = max(1, min(width - pad - 3, len(values)))
    edges = np.linspace(0, len(values), columns + 1).astype(int)
    span = (top - bottom) or 1.0
    grid = [[" "] * columns for _ in range(height)]
    styles = [[None] * columns for _ in range(height)]
    for c in range(columns):
        chunk = values[edges[c] : max(edges[c + 1], edges[c] + 1)]
        hi = int(round((top - chunk.max()) / span * (height - 1)))
        lo = int(round((top - chunk.min()) / span * (height - 1)))
        is_prime = edges[c] < len(prime)
        for row in range(hi, lo + 1):
            grid[row][c] = PRIME_MARK if is_prime else GENERATED_MARK
            styles[row][c] = "blue" if is_prime else "green"
    chart = Text()
    for r, row in enumerate(grid):
        label = labels[0] if r == 0 else labels[1] if r == height - 1 else ""
        chart.append(f"{label:>{pad}} ┤ ")
        for ch, style in zip(row, styles[r]):
            chart.append(ch, style=style)
        chart.append("\n")
    chart.append(f"{'':>{pad}}   {PRIME_MARK} prime ({len(prime)})", style="blue")
    chart.append(f"   {GENERATED_MARK} generated ({len(generated)})", style="green")
    if samples > 1:
        chart.append(f"\n{'':>{pad}}   sample 1 of {samples} drawn{more}")
    return chart


def require_matplotlib():
    """matplotlib's pyplot (drawing to files only), or an error that says how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingPackage(
            f"`plot_file` needs matplotlib: {install_hint('plot')} (or pip install matplotlib)"
        ) from None
    return plt


def check_plot_file(path: Path) -> None:
    """Fail before any work, not after it, when `path` cannot be written: matplotlib missing,
    a file type it does not draw (or no extension to tell one), or a folder that is not there."""
    require_matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    supported = sorted(FigureCanvasBase.get_supported_filetypes())
    extension = path.suffix.lower().lstrip(".")
    if extension not in supported:
        what = (
            f".{extension} is not an image type seqgen writes"
            if extension
            else "the name has no extension to say its image type"
        )
        raise UsageError(f"`plot_file` {path}: {what}; end it with one of {', '.join('.' + e for e in supported)}")
    if not path.parent.is_dir():
        raise UsageError(f"`plot_file` {path}: the folder {path.parent} does not exist")


def save_plot(path: str | Path, prime: np.ndarray, generated: np.ndarray) -> None:
    """Write the picture as an image (needs matplotlib, the optional `plot` extra): every sample,
    given as one row each (or one sample as 1-D arrays)."""
    plt = require_matplotlib()
    primes, drawn = np.atleast_2d(prime), np.atleast_2d(generated)
    fig, ax = plt.subplots(figsize=(10, 3.5))
    p = primes.shape[1]
    # Several samples are told apart by shade; the legend names the two parts once.
    alpha = 1.0 if len(drawn) == 1 else max(0.3, 1.0 / len(drawn) ** 0.5)
    for k, (first, then) in enumerate(zip(np.broadcast_to(primes, (len(drawn), p)), drawn)):
        ax.plot(np.arange(p), first, color="tab:blue", alpha=alpha, label="prime" if k == 0 else None)
        ax.plot(
            np.arange(p, p + len(then)),
            then,
            color="tab:green",
            alpha=alpha,
            label=f"generated ({len(drawn)} samples)" if k == 0 and len(drawn) > 1 else "generated" if k == 0 else None,
        )
    ax.axvline(p - 0.5, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("step")
    ax.legend(loc="upper right")
    _save(fig, path)


BAND_MARK, MIDDLE_MARK = "▒", "█"


def fan_chart(
    history: np.ndarray,
    low: np.ndarray,
    middle: np.ndarray,
    high: np.ndarray,
    levels,
    width: int = 80,
    height: int = 12,
    history_shown: int | None = None,
    times=None,
):
    """A rich Text chart of a forecast: the end of the history, then the median inside the band
    between the lowest and highest quantile asked for. The history shown is cut to leave the
    forecast at least a third of the width. `times`: the forecast's steps (dates, say), whose
    first and last are written under the columns where the forecast begins and ends."""
    from rich.text import Text

    history = np.asarray(history, dtype=np.float64)
    pad = 8
    columns = max(10, width - pad - 3)
    keep = history_shown if history_shown is not None else max(columns - len(middle), 2 * columns // 3, 1)
    history = history[-keep:]
    values = np.concatenate([history, low, high, middle])
    top, bottom = float(values.max()), float(values.min())
    span = (top - bottom) or 1.0
    row = lambda v: int(round((top - v) / span * (height - 1)))
    total = len(history) + len(middle)
    columns = min(columns, total)
    edges = np.linspace(0, total, columns + 1).astype(int)
    grid = [[(" ", None)] * columns for _ in range(height)]
    line = np.concatenate([history, middle])
    for c in range(columns):
        lo_i, hi_i = edges[c], max(edges[c + 1], edges[c] + 1)
        # Each column reaches back to the value before it, so the line is drawn unbroken.
        chunk = line[max(lo_i - 1, 0) : hi_i]
        if lo_i < len(history):
            for r in range(row(chunk.max()), row(chunk.min()) + 1):
                grid[r][c] = (PRIME_MARK, "blue")
            continue
        part = slice(lo_i - len(history), hi_i - len(history))
        for r in range(row(high[part].max()), row(low[part].min()) + 1):
            grid[r][c] = (BAND_MARK, "green")
        for r in range(row(chunk.max()), row(chunk.min()) + 1):
            grid[r][c] = (MIDDLE_MARK, "bold green")
    labels = [f"{top:.3g}", f"{bottom:.3g}"]
    pad = max(map(len, labels))
    chart = Text()
    for r, cells in enumerate(grid):
        label = labels[0] if r == 0 else labels[1] if r == height - 1 else ""
        chart.append(f"{label:>{pad}} ┤ ")
        for ch, style in cells:
            chart.append(ch, style=style)
        chart.append("\n")
    if times is not None and len(times):
        chart.append(_time_axis(times, edges, len(history), pad, columns) + "\n")
    chart.append(f"{'':>{pad}}   {PRIME_MARK} history ({len(history)} shown)", style="blue")
    chart.append(f"   {MIDDLE_MARK} median   {BAND_MARK} {band_label(levels)} ({len(middle)} steps)", style="green")
    return chart


def _time_axis(times, edges: np.ndarray, history: int, pad: int, columns: int) -> str:
    """A line under the chart: the forecast's first step under its first column, its last
    under the last column (when they do not run into each other)."""
    first, last = str(times[0]), str(times[-1])
    # The first forecast column, moved left where the label would run past the chart's end.
    start = min(int(np.searchsorted(edges[:-1], history, side="left")), max(0, columns - len(first)))
    axis = [" "] * columns
    axis[start : start + len(first)] = first
    if len(times) > 1 and start + len(first) < columns - len(last):
        axis[columns - len(last) :] = last
    return " " * (pad + 3) + "".join(axis)[:columns]


def band_label(levels) -> str:
    """What the band between the lowest and highest quantile asked for is called in a legend."""
    if levels[0] == levels[-1]:
        return f"the {levels[0]:g} quantile (ask for two, such as 0.1,0.9, for a band)"
    return f"{levels[0]:g} to {levels[-1]:g} quantiles"


def save_fan_plot(
    path: str | Path,
    history: np.ndarray,
    low: np.ndarray,
    middle: np.ndarray,
    high: np.ndarray,
    levels,
    start: str | None = None,
    frequency=None,
    name: str | None = None,
) -> None:
    """The fan chart as an image (needs matplotlib): history, median and the quantile band;
    `start`, the time of the first forecast step, and `frequency`, the data's step, if the data
    has times (the x-axis is then dated); `name` labels the y-axis."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(10, 3.5))
    n = len(history)
    past, steps = np.arange(n), np.arange(n, n + len(middle))
    if start is not None and frequency is not None:
        from .data.times import shifted

        first = np.datetime64(start, "s")
        past = shifted(first, frequency, np.arange(-n, 0)).astype("datetime64[D]")
        steps = shifted(first, frequency, np.arange(len(middle))).astype("datetime64[D]")
    ax.plot(past, history, color="tab:blue", label="history")
    ax.fill_between(steps, low, high, color="tab:green", alpha=0.25, label=band_label(levels))
    ax.plot(steps, middle, color="tab:green", label="median")
    if start is None or frequency is None:
        ax.axvline(n - 0.5, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel("step" if start is None else f"step (the forecast starts at {start})")
    else:
        ax.axvline(steps[0], color="grey", linewidth=0.8, linestyle=":")
    if name:
        ax.set_ylabel(name)
    ax.legend(loc="upper left")
    _save(fig, path)


def _save(fig, path) -> None:
    """Write the figure to `path` and let it go, failing in one line where it cannot be written."""
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as e:
        raise UsageError(f"`plot_file` {path}: cannot write ({e.strerror})") from None
    finally:
        require_matplotlib().close(fig)


def bands(forecast) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A `Forecast`'s band and line as its charts draw them: (lowest quantile, median, highest)."""
    return forecast.quantiles[0], np.median(forecast.paths, axis=0), forecast.quantiles[-1]
