"""The histories a forecast continues, and every series of them forecast: DATA's series (a file
of numbers, or a CSV table read as the model's training data was, with its times), or each series'
end as the checkpoint stores it; by a trained model (forecast.py) or the pretrained forecaster
(zero_shot.py). Notes for the person who asked go to `note`, parameters in backquotes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np

from ..checkpoint import Checkpoint
from ..data import decode_text, read_values
from ..data.calendar import step_index
from ..data.load import TableOptions
from ..data.table import Frequency, format_time, looks_like_table, next_times
from ..errors import DataError, UsageError
from .forecast import Forecast, forecast, stored_history
from .generator import series_entry


def _quiet(message: str) -> None:
    pass


def forecast_series(
    ckpt: Checkpoint,
    data: str | None,
    horizon: int,
    *,
    series: str | None = None,
    samples: int = 200,
    levels=(0.1, 0.5, 0.9),
    seed: int | None = None,
    backend: str = "auto",
    note: Callable[[str], None] = _quiet,
) -> tuple[list, dict, object]:
    """A trained model's forecast of each series of `data` (None: each stored series' end), as
    [(name, times or None, Forecast)], the histories by name, and the step of the data's times;
    a model of several channels gives one result per channel (only `series`, if named)."""
    found, frequency = histories(ckpt, data, series, seed, note)
    results, by_name = [], {}
    for name, history, last_time in found:
        known = name is not None and any(e["name"] == name for e in ckpt.described.series)
        end = history_end(ckpt, data, last_time, frequency)
        made = forecast(ckpt, history, horizon, samples=samples, quantiles=levels, seed=seed, backend=backend,
                        series=name if known else None, end=end)  # fmt: skip
        times = times_after(last_time, frequency, horizon)
        if made.paths.ndim == 2:
            results.append((name, times, made))
            by_name[name] = history
            continue
        channels = ckpt.described.channels  # modelled jointly: written (and plotted) one channel after another
        if series is not None and series not in channels:
            raise UsageError(
                f"`series`: {ckpt.path} has no channel {series!r}; its channels are {', '.join(map(repr, channels))}"
            )
        for k, channel in enumerate(channels):
            if series is None or channel == series:  # forecast with every channel, shown for the one asked for
                results.append((channel, times, Forecast(made.paths[..., k], made.levels)))
                by_name[channel] = history[:, k]
    return results, by_name, frequency


def zero_shot_series(
    ckpt,
    data: str | None,
    only: str | None,
    season: int | None,
    horizon: int,
    samples: int,
    levels,
    fill: str = "error",
    note: Callable[[str], None] = _quiet,
) -> tuple[list, dict, object]:
    """The pretrained forecaster's forecast of each series of DATA, the histories, and the step of
    DATA's dates (None without)."""
    from .zero_shot import called, guess_season, season_for, zero_shot

    if data is None:
        raise UsageError(
            f"{called(ckpt.path)} is a forecaster, which continues a series you give: "
            f"seqgen forecast {called(ckpt.path)} DATA.csv `horizon` 12"
        )
    rows, frequency = user_series(data, only, fill)
    results, histories = [], {}
    for name, values, last_time in rows:
        if season is not None and season >= len(values):
            raise UsageError(
                f"`season` {season} is as long as {name or data}'s whole history ({len(values)} values): "
                "a season must repeat in the history; give a shorter one, or 1 for none"
            )
        m = season or (season_for(frequency) if frequency is not None else guess_season(values))
        if season is None and frequency is None:
            note(
                f"note: {name or data} has no dates; read with a season of {m} step{'s' if m != 1 else ''} "
                "(from its autocorrelation; `season` sets it)"
            )
        made = zero_shot(ckpt, values, horizon, m, samples=samples, quantiles=levels)
        results.append((name, times_after(last_time, frequency, horizon), made))
        histories[name] = values
    return results, histories, frequency


def seasoned_series(data: str, fill: str = "error", season: int | None = None) -> list[tuple]:
    """[(name, values, season)] of each series of `data` read as `user_series` reads it: `season`,
    else the one its dates imply, else the one its autocorrelation shows."""
    from .zero_shot import guess_season, season_for

    rows, frequency = user_series(data, None, fill)
    return [
        (name, values, season or (season_for(frequency) if frequency is not None else guess_season(values)))
        for name, values, _ in rows
    ]


def user_series(data: str, only: str | None, fill: str = "error"):
    """[(series name or None, values, time of the last value or None)] of a file read as
    'seqgen train' reads one with no options, and the step between its times (None without)."""

    raw, label, suffix = read_data(data)
    text = None if suffix.lower() == ".npy" else decode_text(raw, label)
    if text is not None and looks_like_table(text):
        table = TableOptions(fill=fill).read(text, label)
        rows = table_rows(table, only, label)
        return rows, table.frequency
    values = read_values(raw, label, suffix)
    if len(values) == 0:
        raise DataError(f"{label} holds no numbers: give the history to continue")
    return [(only, values, None)], None


def table_rows(table, only: str | None, label: str) -> list:
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


def history_end(ckpt: Checkpoint, data: str | None, last_time: str | None, frequency) -> float | None:
    """For a model with calendar inputs: the step index of the history's last value, from its time;
    None (the training data's end) when DATA has no times, which the user is told."""
    if not ckpt.model_config.calendar or data is None:
        return None
    stored = ckpt.described.frequency
    if last_time is None or frequency is None:
        return None  # the training data's end (a checkpoint that stores no time)
    if [frequency.unit, frequency.count] != list(stored):
        raise DataError(
            f"{data} steps every {frequency}; the model was trained on a series that steps every "
            f"{Frequency(*stored)}, and reads its calendar in those steps"
        )
    return step_index(last_time, frequency)


def histories(ckpt: Checkpoint, data: str | None, only: str | None, seed: int | None = None, note=_quiet):
    """[(series name or None, values to continue, the time of the last value or None)] and the step
    between times: DATA's series, or each series' end as the checkpoint stores it (a sine model's:
    a fresh wave, drawn with `seed`)."""

    source = ckpt.described.source
    stored = Frequency(*source["frequency"]) if source.get("frequency") else None
    if data is None:
        entries = ckpt.described.series
        if entries:
            chosen = [series_entry(ckpt, only)] if only else entries
            return [(e["name"], stored_history(ckpt, e), e["last_time"]) for e in chosen], stored
        series_entry(ckpt, only)  # a name that is not the one series is an error
        return [(source.get("series"), stored_history(ckpt, seed=seed), source.get("last_time"))], stored
    raw, label, suffix = read_data(data)
    text = None if suffix.lower() == ".npy" else decode_text(raw, label)
    if text is not None and looks_like_table(text):
        table = TableOptions.from_source(source).read(text, label)
        # A table of one row has a time but no step to infer: it steps as the training data did.
        step = table.frequency or (stored if table.times is not None else None)
        if stored is not None and table.frequency is not None and table.frequency != stored:
            # A calendar model refuses it later; a model of values alone continues at DATA's step, as asked.
            note(
                f"note: {label} steps every {table.frequency}, and {ckpt.path} was trained on data that steps every "
                f"{stored}: the forecast continues at {label}'s step, from a model that learnt the other one"
            )
        if ckpt.model_config.channels > 1:
            last = None if table.times is None else str(table.times[0][-1])
            return [(None, np.stack(table.series, axis=1), last)], step
        rows = table_rows(table, only, label)
        return rows, step
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
        last = (series_entry(ckpt, only) or source).get("last_time")
        note(
            f"note: {label} has no times; this model reads the calendar, and takes its last value to be at the "
            f"training data's last time, {format_time(np.datetime64(last, 's'), stored)} (give DATA as a CSV with "
            "its time column to forecast from another time)"
        )
        return [(only, values, last)], stored
    return [(only, values, None)], None


def read_data(data: str) -> tuple[bytes, str, str]:
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


def times_after(last_time: str | None, frequency, horizon: int) -> list[str] | None:
    """The forecast's timestamps, continuing the data's at its step (None without times)."""
    if last_time is None or frequency is None:
        return None
    return [format_time(t, frequency) for t in next_times(np.datetime64(last_time, "s"), frequency, horizon)]
