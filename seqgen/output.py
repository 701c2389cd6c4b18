"""The shapes generated data is written in: text, values, csv and jsonl for `seqgen sample`, a
table of mean and quantiles for a forecast, and a file that is written whole or not at all.

Each writer consumes the (step, live) pairs of `generate_steps` and writes as it goes, so text,
values and per-step JSON lines appear while they are generated. The text of a step is what its
tokens completed (`Step.text`): with byte tokens, a character's first bytes are held back until
its last one comes, so text never splits a character.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import numpy as np

from .errors import UsageError
from .files import write_atomic
from .generate.api import collect_text
from .kinds import Kind, format_value, prime_rows

FORMATS = ("text", "values", "csv", "jsonl")
Steps = Iterable[tuple[np.ndarray, np.ndarray]]


class Sink(Protocol):
    def write(self, text: str) -> object: ...


def check_format(fmt: str | None, kind: Kind, per_step: bool = False) -> str:
    """The format to use for a model of `kind` (default: text for text models, values for continuous ones)."""
    fmt = fmt or kind.default_format
    if fmt not in FORMATS:
        raise UsageError(f"`format` must be one of {', '.join(FORMATS)}, got {fmt!r}")
    kind.check(f"format {fmt}")
    if per_step and fmt != "jsonl":
        raise UsageError("`per_step` goes with `format` jsonl")
    return fmt


def unescape(text: str | None) -> str | None:
    r"""Read \n, \t and \\ in an option the way a user typing them means them."""
    if text is None:
        return None
    return re.sub(r"\\(n|t|\\)", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], text)


def write_text(
    out: Sink, gen, steps: Steps, prefix: str = "", separator: str = "\n\n", end: str = "\n", final: bool = True
) -> None:
    """The text; one stream is written as generated, several are separated by `separator`.

    `end` closes the output unless it is empty or already ends with a newline, so that a
    terminal's prompt starts on its own line without doubling a newline the model wrote.
    `final`: the generation is not continued later (from a saved state), so a character left
    incomplete at the end is written as U+FFFD.
    """
    if gen.batch_size == 1:
        out.write(prefix)
        last = prefix
        for step, _ in steps:
            piece = step.text[0]
            out.write(piece)
            last = piece or last
        rest = gen.text_end()[0] if final else ""
        out.write(rest)
        last = rest or last
        out.write(end if last and not last.endswith("\n") else "")
        return
    text = separator.join(prefix + sample for sample in collect_text(gen, steps, final))
    out.write(text + (end if text and not text.endswith("\n") else ""))


def write_values(out: Sink, gen, steps: Steps, prime: np.ndarray | None = None) -> None:
    """One line per step, one column per sample."""
    if prime is not None:
        for column in prime_rows(prime, gen.batch_size).T:
            out.write(" ".join(map(format_value, column)) + "\n")
    for items, _ in steps:
        out.write(" ".join(map(format_value, items)) + "\n")


def write_csv(out: Sink, gen, steps: Steps, prime=None) -> None:
    """Header `step,sample_1,...`; the prime (if given) has steps up to 0, generated ones start at 1.
    A text sample that has stopped leaves its cells empty."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", *(f"sample_{k + 1}" for k in range(gen.batch_size))])
    if prime is not None and len(prime):
        columns = gen.data_kind.prime_cells(prime, gen.batch_size)
        for step, row in zip(range(1 - len(columns), 1), columns):
            writer.writerow([step, *row])
    for step, (items, live) in enumerate(steps, start=1):
        cells = gen.data_kind.cells(items)
        writer.writerow([step, *(cell if on else "" for cell, on in zip(cells, live))])


def write_jsonl(out: Sink, gen, steps: Steps, prime=None, per_step: bool = False, final: bool = True) -> None:
    """One JSON object per sample, or with `per_step` one per step and sample as it is generated."""
    if per_step:
        for record in _step_records(gen, steps):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    kind = gen.data_kind
    samples = kind.per_sample(kind.collect(gen, steps, final))
    rows = None if prime is None or isinstance(prime, str) else prime_rows(prime, gen.batch_size)
    for k, generated in enumerate(samples):
        record = {"sample": k + 1}
        if prime is not None:
            record["prime"] = prime if rows is None else [float(v) for v in rows[k]]
        record[kind.answer_key] = generated
        out.write(json.dumps(record, ensure_ascii=False) + "\n")


def _step_records(gen, steps: Steps) -> Iterator[dict]:
    for step, (items, live) in enumerate(steps, start=1):
        for k in np.flatnonzero(live):
            yield {"step": step, "sample": int(k) + 1, **gen.data_kind.step_record(gen, items, k)}


def write_channels(
    out: Sink,
    fmt: str,
    gen,
    steps: Steps,
    names: list[str],
    prime: np.ndarray | None = None,
    per_step: bool = False,
    only: int | None = None,
) -> None:
    """The output of a model of several channels (each step an item per channel, in the order of
    `names`, its training columns): values, one line per step with each sample's channels in turn;
    csv, columns sample_<k>_<name>; jsonl, per sample an object of each channel's values (or with
    `per_step` one per step and sample). The prime, (time, channels), is the same for every sample.
    `only`: write that channel alone (all were generated together)."""
    if only is not None:
        names = [names[only]]
        prime = None if prime is None else np.asarray(prime)[:, only : only + 1]
        steps = ((np.asarray(items)[:, only : only + 1], live) for items, live in steps)
    batch = gen.batch_size
    shared = None if prime is None else np.asarray(prime, dtype=np.float64)

    def cells(row) -> list[str]:  # one step's values of every sample, each sample's channels in turn
        return [format_value(v) for sample in np.broadcast_to(row, (batch, len(names))) for v in sample]

    if fmt == "values":
        for row in [] if shared is None else shared:
            out.write(" ".join(cells(row)) + "\n")
        for items, _ in steps:
            out.write(" ".join(cells(items)) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["step", *(f"sample_{k + 1}_{name}" for k in range(batch) for name in names)])
        rows = [] if shared is None else shared
        for step, row in zip(range(1 - len(rows), 1), rows):
            writer.writerow([step, *cells(row)])
        for step, (items, _) in enumerate(steps, start=1):
            writer.writerow([step, *cells(items)])
    elif per_step:
        for step, (items, _) in enumerate(steps, start=1):
            for k in range(batch):
                record = {"step": step, "sample": k + 1, "values": dict(zip(names, map(float, items[k])))}
                out.write(json.dumps(record) + "\n")
    else:
        drawn = np.array([items for items, _ in steps]).reshape(-1, batch, len(names))
        for k in range(batch):
            record: dict = {"sample": k + 1}
            if shared is not None:
                record["prime"] = {name: shared[:, c].tolist() for c, name in enumerate(names)}
            record["values"] = {name: drawn[:, k, c].tolist() for c, name in enumerate(names)}
            out.write(json.dumps(record) + "\n")


def parse_quantiles(text: str) -> tuple[float, ...]:
    """`quantiles` written as text: numbers between 0 and 1, separated by commas, sorted."""
    from .generate.forecast import check_quantiles

    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"`quantiles` takes numbers separated by commas, like 0.1,0.5,0.9; got {text!r}") from None
    if not values:
        raise UsageError("`quantiles`: give at least one level, like 0.1,0.5,0.9")
    return check_quantiles(values)


def write(fmt: str, out: Sink, gen, steps: Steps, prime, separator: str, per_step: bool, final: bool = True) -> None:
    """The steps in format `fmt`. `final`: nothing continues this output (no saved state), so it
    gets its ending: a newline after text, U+FFFD for a character whose last bytes never came."""
    if fmt == "text":
        write_text(out, gen, steps, prime or "", separator, "\n" if final else "", final)
    elif fmt == "values":
        write_values(out, gen, steps, prime)
    elif fmt == "csv":
        write_csv(out, gen, steps, prime)
    else:
        write_jsonl(out, gen, steps, prime, per_step, final)


def forecast_table(results) -> list[dict]:
    """One row per series and step of [(name, times or None, Forecast)]: the series (when
    several), the time (or step), the mean, then each quantile, named q<level>."""
    rows = []
    for name, times, result in results:
        names = [f"q{level:g}" for level in result.levels]
        for step, (mean, qs) in enumerate(zip(result.mean, result.quantiles.T), start=1):
            row = {"series": name} if len(results) > 1 else {}
            row.update({"time": times[step - 1]} if times else {"step": step})
            rows.append({**row, "mean": float(mean), **{n: float(q) for n, q in zip(names, qs)}})
    return rows


def write_table(out: Sink, table: list[dict], fmt: str) -> None:
    """Rows of a table as csv (a header, then a line each) or jsonl (an object each)."""
    if fmt == "jsonl":
        for row in table:
            out.write(json.dumps(row) + "\n")
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(table[0]))
    for row in table:
        writer.writerow([format_value(v) if isinstance(v, float) else v for v in row.values()])


class FileOutput:
    """Output collected, then written atomically (a failed run leaves no partial file)."""

    def __init__(self, path: Path):
        self.path, self.buffer = path, io.StringIO()

    def write(self, text: str) -> None:
        self.buffer.write(text)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                write_atomic(self.path, self.buffer.getvalue().encode("utf-8"))
            except OSError as e:
                raise UsageError(f"`output` {self.path}: cannot write ({e.strerror})") from None
        return False


def follow_line(forecast: np.ndarray, levels, channels: list[str] | None = None) -> str:
    """One line of a followed stream's forecast: the values of each step (and channel) in turn, or
    with quantile `levels` a JSON object of the mean and each quantile (per channel, if `channels`)."""
    names = ["mean", *(f"q{level:g}" for level in levels)]
    if levels and channels:
        rows = {
            n: {c: [round(float(v), 6) for v in row[:, k]] for k, c in enumerate(channels)}
            for n, row in zip(names, forecast)
        }
        return json.dumps(rows) + "\n"
    if levels:
        return json.dumps({n: [round(float(v), 6) for v in row] for n, row in zip(names, forecast)}) + "\n"
    return " ".join(f"{v:.6g}" for v in np.ravel(forecast)) + "\n"


class PipeClosed(Exception):
    """The reader of standard output went away (`| head`): there is nobody to write for."""


class StreamWriter:
    """Writes data to stdout, flushing at most every 50 ms so output is live but cheap;
    a closed pipe (`| head`) ends the command quietly."""

    def __init__(self, stream, line_flush: bool = False):
        self.stream, self.last_flush = stream, time.monotonic()
        # Lines for another program (per-step JSON lines, follow) go out at once: it may be waiting.
        self.interval = 0.0 if line_flush else 0.05

    def write(self, text: str) -> None:
        self.stream.write(text)
        now = time.monotonic()
        if now - self.last_flush >= self.interval:
            self.stream.flush()
            self.last_flush = now

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.stream.flush()
            except BrokenPipeError:
                exc_type = BrokenPipeError
        if exc_type is BrokenPipeError:
            # Python would complain again when flushing at exit: point stdout at /dev/null first.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise PipeClosed() from None
        return False
