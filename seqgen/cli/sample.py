"""`seqgen sample` and `seqgen follow`: a prime in, generated data out on stdout (or a file)."""

from __future__ import annotations

import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ..data.series import is_number
from ..errors import DataError, UsageError
from .app import app, check_seed, console, say


@app.command()
def sample(
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="A checkpoint written by 'seqgen train'."),
    length: int = typer.Option(
        500, "--length", "-n", help="Tokens (characters, for a char model) or values to generate."
    ),
    prime: Optional[str] = typer.Option(
        None, help='Start from this text (text models) or these numbers, e.g. "0.1 0.3 0.5".'
    ),
    prime_file: Optional[Path] = typer.Option(
        None,
        help="Start from the contents of this file (text, or numbers one per line; for a model of channels, a CSV with its columns).",
    ),
    unknown: str = typer.Option(
        "error",
        help="Text: what to do with prime characters the model has never seen: error, skip (leave them out) or replace (with a space, or a newline if the model knows no space).",
    ),
    temperature: Optional[float] = typer.Option(
        None,
        help="Text: divide the logits by this (lower is more conservative). A gaussian or studentt series model: scale the spread it samples from. A point model: the same as --noise. \\[default: 1.0; a point model 0]",
    ),
    top_k: Optional[int] = typer.Option(None, help="Text: sample only from the k most likely tokens."),
    top_p: Optional[float] = typer.Option(None, help="Text: sample from the smallest set with this total probability."),
    min_p: Optional[float] = typer.Option(
        None, help="Text: sample only from tokens at least this fraction as likely as the most likely one (e.g. 0.05)."
    ),
    repetition_penalty: Optional[float] = typer.Option(
        None,
        help="Text: divide the logit of each token seen in the last --penalty-window (a positive logit; multiply a negative one) by this (e.g. 1.2; 1 is none).",
    ),
    frequency_penalty: Optional[float] = typer.Option(
        None,
        help="Text: subtract this from a token's logit once for each time it was seen in the last --penalty-window.",
    ),
    presence_penalty: Optional[float] = typer.Option(
        None, help="Text: subtract this from the logit of each token seen in the last --penalty-window."
    ),
    penalty_window: Optional[int] = typer.Option(
        None, help="Text: how many of the last tokens (prime included) the penalties look at. \\[default: 64]"
    ),
    greedy: bool = typer.Option(
        False,
        "--greedy",
        help="Text: always take the most likely token. A gaussian or studentt series model: feed back the mean of each step.",
    ),
    stop: Optional[str] = typer.Option(
        None, help="Text: a sample ends once its text has produced this string, even across tokens (\\n for a newline)."
    ),
    beam: Optional[int] = typer.Option(
        None,
        help="Text: beam search over this many hypotheses instead of sampling: the most likely continuation (or the --num-samples most likely, best first).",
    ),
    length_penalty: float = typer.Option(
        1.0,
        help="Text, with --beam: rank continuations of different lengths (ended by --stop) by log-probability / length ** this (1: per token; 0: the plain sum).",
    ),
    noise: Optional[float] = typer.Option(
        None, help="Continuous: std of noise added to each fed-back value (0 = deterministic). \\[default: 0]"
    ),
    num_samples: Optional[int] = typer.Option(
        None, help="Independent streams generated together in one batched state. \\[default: 1]"
    ),
    include_prime: bool = typer.Option(
        False, "--include-prime", help="Also write the prime before the generated part."
    ),
    fmt: Optional[str] = typer.Option(
        None, "--format", help="text, values, csv or jsonl. \\[default: text for text, values for continuous]"
    ),
    per_step: bool = typer.Option(
        False, "--per-step", help="jsonl: one object per step and sample (the chosen token's text and probability)."
    ),
    separator: Optional[str] = typer.Option(
        None, help="text: written between samples (\\n for a newline). \\[default: \\n\\n, a blank line]"
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write to this file (atomically) instead of stdout."
    ),
    plot: bool = typer.Option(False, "--plot", help="Continuous: draw the prime and the continuation on stderr."),
    plot_file: Optional[Path] = typer.Option(
        None, help="Continuous: save that picture as an image (needs the 'plot' extra: matplotlib)."
    ),
    series: Optional[str] = typer.Option(
        None,
        help="A model of several series: the one to continue, in its own scale; of several channels (--joint): the one channel to write. \\[default: the one a --prime is a stretch of, else the prime's own scale; without a prime the first]",
    ),
    save_state: Optional[Path] = typer.Option(
        None, help="After generating, save the generator's state here for --load-state."
    ),
    load_state: Optional[Path] = typer.Option(
        None, help="Continue from a state saved with --save-state (a --prime is fed after it)."
    ),
    adapt: bool = typer.Option(
        False,
        "--adapt",
        help="Text: first fine-tune a copy of the weights on the prime (a few passes of dynamic evaluation's update), so that the continuation follows its style; --save-state keeps those weights. The checkpoint is untouched.",
    ),
    seed: Optional[int] = typer.Option(
        None, callback=check_seed, help="Random seed; the same seed gives the same output."
    ),
    backend: str = typer.Option("auto", help="auto (NumPy on CPU), numpy or torch."),
    device: str = typer.Option(
        "cpu", help="Device for the torch backend: cpu, cuda, mps or auto (the first available of those)."
    ),
) -> None:
    """Generate from a trained checkpoint; the output goes to stdout (or --output)."""
    from ..checkpoint import load_checkpoint
    from ..generate.request import Request, prepare
    from ..generate.zero_shot import resolve
    from .output import check_format, unescape

    if save_state is not None:
        from ..generate.state import check_state_target

        check_state_target(save_state)
        if output is not None and output.resolve() == save_state.resolve():
            raise UsageError(
                f"--output and --save-state are both {output}: the state would replace the output; give two files"
            )
    request = Request(
        length=length,
        num_samples=num_samples,
        seed=seed,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        greedy=greedy,
        noise=noise,
        stop=unescape(stop),
        beam=beam,
        length_penalty=length_penalty,
        series=series,
        load_state=load_state,
        unknown=unknown,
        adapt=adapt,
        backend=backend,
        device=device,
        choices=dict(
            min_p=min_p,
            repetition_penalty=repetition_penalty,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            penalty_window=penalty_window,
        ),
    )
    request.check()
    ckpt = load_checkpoint(resolve(checkpoint))
    fmt = check_format(fmt, ckpt.kind == "text", per_step)
    _check_writing(ckpt, request, prime, prime_file, include_prime, per_step, fmt, separator, plot, plot_file)
    request.prime = _read_prime(ckpt, prime, prime_file)
    _check_adapt(ckpt, request)
    if ckpt.kind != "text" and request.prime is not None:
        _calendar_note(ckpt, "the prime's last value")
    started = time.perf_counter()
    ready = prepare(ckpt, request)
    _say_adapted(ready.running, request, time.perf_counter() - started)
    gen, fed, steps, channels = ready.gen, ready.fed, ready.steps, ckpt.described.channels
    _say_which_series(ckpt, None if load_state else gen.series, series, request.prime)
    _warn_same_samples(ckpt, request, gen.sampling)
    texts: list[list[str]] = []
    if gen.is_text and (gen.sampling.greedy or beam is not None):
        from .text_report import recording_text

        steps = recording_text(steps, gen, texts)
    drawn: list[float] = []
    if plot or plot_file:
        steps = _recording(steps, drawn)
    with _open_output(output, line_flush=per_step) as out:
        # A part that --save-state will continue ends where generation stopped, so that the parts
        # joined are the whole; otherwise text gets a final newline.
        between = unescape("\\n\\n" if separator is None else separator)
        if ckpt.model_config.channels > 1:
            from .output import write_channels

            write_channels(out, fmt, gen, steps, channels, fed if include_prime else None, per_step, ready.channel)
        else:
            _write(fmt, out, gen, steps, fed if include_prime else None, between, per_step, final=save_state is None)
    if texts:
        from .text_report import warn_of_loops

        warn_of_loops(texts, "--beam" if beam is not None else "--greedy")
    if plot or plot_file:
        from .output import prime_rows

        primes, drawn = prime_rows(fed, gen.batch_size), np.array(drawn).reshape(-1, gen.batch_size).T
    if plot:
        from .plot import terminal_chart

        # One chart shows one sample clearly; the legend says which when there are several.
        console.print(terminal_chart(primes[0], drawn[0], width=console.width, samples=gen.batch_size))
    if plot_file is not None:
        from .plot import save_plot

        save_plot(plot_file, primes, drawn)
    if save_state is not None:
        from ..generate.state import save_state as write_state

        write_state(save_state, gen)


def _check_writing(
    ckpt,
    request,
    prime,
    prime_file,
    include_prime: bool,
    per_step: bool,
    fmt: str,
    separator: Optional[str],
    plot: bool,
    plot_file: Optional[Path],
) -> None:
    """The options of how the output is written that do not go together, before any work."""
    if request.load_state is not None and prime is None and prime_file is None and include_prime:
        raise UsageError("--include-prime: with --load-state there is no prime to include (give --prime)")
    if request.load_state is not None and request.seed is not None:
        say("warning: --seed is ignored with --load-state: the saved random state goes on", style="yellow")
    if include_prime and per_step:
        raise UsageError(
            "--include-prime: --per-step records only the generated steps (the prime is the input you gave)"
        )
    if separator is not None and fmt != "text":
        raise UsageError(f"--separator goes between text samples; --format {fmt} keeps samples apart by itself")
    if request.beam is not None and per_step:
        raise UsageError("--per-step: beam search knows the best continuation only at the end, not step by step")
    channels = ckpt.described.channels if ckpt.model_config.channels > 1 else None
    _picked_channel(ckpt, request.series)
    if channels and (plot or plot_file):
        raise UsageError(
            f"--plot and --plot-file draw the values of one series; {ckpt.path} models {len(channels)} "
            "channels jointly (`seqgen forecast --plot` draws their forecast, one channel at a time with --series)"
        )
    if (plot or plot_file) and ckpt.kind == "text":
        raise UsageError("--plot and --plot-file draw continuous output; this model generates text")
    if plot_file is not None:
        from .plot import check_plot_file

        check_plot_file(plot_file)  # before the work, not after it


def _check_adapt(ckpt, request) -> None:
    if request.adapt and request.load_state is not None:
        raise UsageError(
            "--adapt adapts the weights to the prime of a new generation; --load-state goes on with the "
            "weights the state was saved with (drop --adapt)"
        )
    if request.adapt and ckpt.kind == "text" and request.prime is None:
        raise UsageError(
            "--adapt learns from the prime: give one with --prime or --prime-file (a few hundred characters or more)"
        )


def _say_adapted(running, request, seconds: float) -> None:
    """What --adapt did, or that a loaded state brings adapted weights."""
    how = running.meta.get("adapted")
    if request.adapt:
        say(
            f"adapted a copy of the weights to the prime: {how['prime_tokens']:,} tokens read {how['passes']} times, "
            f"{how['method']} lr {how['lr']:g}, windows of {how['window']} ({seconds:.1f}s)"
        )
    elif how is not None:
        say(f"note: {request.load_state} holds weights adapted to its prime; the generation goes on with them")


def _warn_same_samples(ckpt, request, sampling) -> None:
    """Several samples that will all be the same: say why, and what makes them differ."""
    from ..generate.api import is_probabilistic

    count = request.samples
    if ckpt.kind == "text" and count > 1 and sampling.greedy:
        say(f"warning: the {count} samples will be the same: --greedy makes the same choice in each", style="yellow")
    # Without a prime, a sine model's samples each start from a fresh wave of their own.
    own_primes = request.prime is None and request.load_state is None and ckpt.described.is_sine
    if (
        ckpt.kind != "text"
        and count > 1
        and not sampling.noise
        and not own_primes
        and not (is_probabilistic(ckpt) and not sampling.greedy)
    ):
        say(
            f"warning: the {count} streams will be the same (up to rounding): a continuous model is "
            "deterministic without --noise (give --noise 0.05, say, for different streams)",
            style="yellow",
        )


def _say_which_series(ckpt, scaling, named: Optional[str], prime) -> None:
    """A model of several series continues one of them: say which, when the user did not name it."""
    entries = ckpt.described.series
    if named is not None or scaling is None or len(entries) < 2:
        return
    if "name" not in scaling:
        say(
            f"note: the prime is none of the {len(entries)} series this model knows; it is scaled by its own mean and "
            "standard deviation (--series names one of them)"
        )
    elif prime is None:
        say(
            f"note: this model knows {len(entries)} series; continuing the first, {scaling['name']!r} "
            "(--series chooses another)"
        )


def _recording(steps, drawn: list):
    """Pass the steps on, keeping every sample's values for the plot."""
    for items, live in steps:
        drawn.append(np.array(items, dtype=np.float64))
        yield items, live


def _write(fmt: str, out, gen, steps, prime, separator: str, per_step: bool, final: bool = True) -> None:
    """`final`: nothing continues this output (no saved state), so it gets its ending: a newline
    after text, U+FFFD for a character whose last bytes never came."""
    from .output import write_csv, write_jsonl, write_text, write_values

    if fmt == "text":
        write_text(out, gen, steps, prime or "", separator, "\n" if final else "", final)
    elif fmt == "values":
        write_values(out, gen, steps, prime)
    elif fmt == "csv":
        write_csv(out, gen, steps, prime)
    else:
        write_jsonl(out, gen, steps, prime, per_step, final)


class FileOutput:
    """--output: collect the output, then write it atomically (a failed run leaves no partial file)."""

    def __init__(self, path: Path):
        import io

        self.path, self.buffer = path, io.StringIO()

    def write(self, text: str) -> None:
        self.buffer.write(text)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            from ..files import write_atomic

            try:
                write_atomic(self.path, self.buffer.getvalue().encode("utf-8"))
            except OSError as e:
                raise UsageError(f"--output {self.path}: cannot write ({e.strerror})") from None
        return False


def _open_output(path: Optional[Path], line_flush: bool = False):
    return FileOutput(path) if path is not None else StreamWriter(sys.stdout, line_flush)


def _read_prime(ckpt, prime: Optional[str], prime_file: Optional[Path]):
    from ..data import decode_text, read_values
    from ..generate.api import as_prime

    if prime is not None and prime_file is not None:
        raise UsageError("give either --prime or --prime-file, not both")
    columns = ckpt.described.channels if ckpt.model_config.channels > 1 else None
    if columns and prime is not None:
        raise UsageError(
            f"--prime: {ckpt.path} models the columns {', '.join(map(repr, columns))} jointly; give the "
            "prime as a CSV with those columns (--prime-file)"
        )
    if prime_file is None:
        result = as_prime(ckpt, prime)
    else:
        if prime_file.is_dir():
            raise DataError(f"--prime-file {prime_file} is a directory: give a file")
        if not prime_file.is_file():
            raise DataError(f"--prime-file {prime_file}: no such file")
        try:
            raw = prime_file.read_bytes()
        except OSError as e:
            raise DataError(f"--prime-file {prime_file}: cannot read ({e.strerror})") from None
        label = f"--prime-file {prime_file}"
        if ckpt.kind == "text":
            result = decode_text(raw, label)
        elif columns:
            result = _channel_rows(ckpt, decode_text(raw, label), label)
        else:
            result = read_values(raw, label, prime_file.suffix)
    if result is not None and len(result) == 0:
        raise UsageError("the prime is empty: give at least one character or value")
    return result


def _channel_rows(ckpt, text: str, label: str) -> np.ndarray:
    """A prime for a model of several channels: a CSV with its columns, as (time, channels)."""
    from ..data.load import TableOptions
    from ..data.table import looks_like_table

    lines = [line for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    columns = ", ".join(map(repr, ckpt.described.channels))
    if len(lines) == 1 and any(is_number(f) for f in _fields(lines[0])):
        raise DataError(f"{label}: a CSV needs a header line naming its columns ({columns}) above the values")
    if len(lines) <= 1:
        raise UsageError(f"the prime is empty: {label} has no rows of values (give at least one)")
    if not looks_like_table(text):
        raise DataError(
            f"{label}: {ckpt.path} models the columns {columns} jointly; give the prime as a CSV with those columns"
        )
    options = TableOptions.from_source(ckpt.described.source)
    if options.time_column is not None and options.time_column not in _fields(lines[0]):
        options = replace(options, time_column=None)  # a prime's times are not read: values alone will do
    return np.stack(options.read(text, label).series, axis=1)


class StreamWriter:
    """Writes data to stdout, flushing at most every 50 ms so output is live but cheap;
    a closed pipe (`| head`) ends the command quietly."""

    def __init__(self, stream, line_flush: bool = False):
        self.stream, self.last_flush = stream, time.monotonic()
        # Lines for another program (jsonl --per-step, follow) go out at once: it may be waiting.
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
            raise typer.Exit(0)
        return False


@app.command()
def follow(
    checkpoint: Path = typer.Argument(
        ..., metavar="CHECKPOINT", help="A continuous-model checkpoint written by 'seqgen train'."
    ),
    horizon: int = typer.Option(1, help="Values forecast after each input (free-running, on a copy of the state)."),
    quantiles: Optional[str] = typer.Option(
        None,
        help='Also forecast these quantiles (e.g. 0.1,0.9) from --samples sampled paths: each line becomes a JSON object {"mean": [...], "q0.1": [...], ...}.',
    ),
    samples: int = typer.Option(200, help="Sample paths per forecast, with --quantiles."),
    series: Optional[str] = typer.Option(
        None,
        help="A model of several series: the one stdin continues, in its own scale (needed for such a model); of several channels (--joint): the one channel to write.",
    ),
    seed: Optional[int] = typer.Option(None, callback=check_seed, help="Random seed for the sampled paths."),
    backend: str = typer.Option("auto", help="auto (NumPy on CPU), numpy or torch."),
    device: str = typer.Option(
        "cpu", help="Device for the torch backend: cpu, cuda, mps or auto (the first available of those)."
    ),
    season: Optional[int] = typer.Option(
        None,
        min=1,
        help="For the pretrained forecaster: the season length of the values read, in steps. \\[default: 1, none]",
    ),
    learn: bool = typer.Option(
        False,
        "--learn",
        help="Keep training on the values as they arrive (every --learn-every values, a step on the last --learn-window), forecasting from what was learnt. The checkpoint is untouched; --save keeps what was learnt.",
    ),
    learn_every: Optional[int] = typer.Option(
        None, help="With --learn: values between learning updates (3 steps each). \\[default: 10]"
    ),
    learn_window: Optional[int] = typer.Option(
        None, help="With --learn: the last values each step learns from. \\[default: 50]"
    ),
    learn_lr: Optional[float] = typer.Option(None, help="With --learn: the step size (Adam). \\[default: 3e-3]"),
    save: Optional[Path] = typer.Option(
        None,
        help="With --learn: when the input ends (or on Ctrl-C), write a checkpoint with what was learnt (atomically).",
    ),
) -> None:
    """Read values from stdin, one per line (a model of channels: a row of them a line); after each, write the forecast of the next value(s)."""
    import json

    from ..checkpoint import load_checkpoint
    from ..generate import Generator, follow as follow_values
    from ..generate.zero_shot import is_forecaster
    from ..generate.zero_shot import resolve as resolve_checkpoint
    from .output import parse_quantiles

    levels = parse_quantiles(quantiles) if quantiles is not None else ()
    if quantiles is not None and samples < 1:
        raise UsageError(f"--samples must be >= 1, got {samples}")
    config = _learn_config(learn, learn_every, learn_window, learn_lr, save)
    ckpt = load_checkpoint(resolve_checkpoint(checkpoint))
    if config is not None and is_forecaster(ckpt):
        raise UsageError(f"--learn trains a model of seqgen train; {checkpoint} is the pretrained forecaster")
    if is_forecaster(ckpt):
        _follow_forecaster(ckpt, horizon, levels, season)
        return
    if season is not None:
        raise UsageError(f"--season applies to the pretrained forecaster; {checkpoint} learnt its season in training")
    if ckpt.kind == "text":
        raise UsageError(f"{checkpoint} is a text model; follow forecasts numbers")
    from ..generate.generator import series_entry
    from ..learn import OnlineLearner

    entries = ckpt.described.series
    if len(entries) > 1 and series is None:
        # Values arrive one at a time: there is no history yet to tell the series by.
        raise UsageError(
            f"{checkpoint} models {len(entries)} series, each in its own scale: name the one stdin "
            f"continues with --series ({', '.join(repr(e['name']) for e in entries[:10])})"
        )
    channels = ckpt.described.channels if ckpt.model_config.channels > 1 else None
    picked = _picked_channel(ckpt, series)
    entry = None if channels else series_entry(ckpt, series)
    _calendar_note(ckpt, "the first value from standard input")
    gen = Generator.from_checkpoint(ckpt, backend=backend, device=device, seed=seed, series=entry)
    if levels and not gen.head.probabilistic:
        from ..generate.forecast import validation_error

        # A point model's paths, as seqgen forecast draws them: its error in the units of the series followed.
        gen.sampling.noise = validation_error(ckpt, entry) * gen.spread_scale  # widened as calibrated
    names = ["mean", *(f"q{level:g}" for level in levels)]
    learner = OnlineLearner(ckpt, gen, config) if config is not None else None
    with StreamWriter(sys.stdout, line_flush=True) as out, _saving(learner, save):
        read = _stdin_values(channels, column=_training_column(ckpt, entry))
        for forecast in follow_values(gen, read, horizon, samples if levels else 0, levels, learn=learner):
            if picked is not None:  # one channel of several: written as a model of one series would write it
                forecast = forecast[..., picked]
            if levels and channels and picked is None:
                out.write(
                    json.dumps(
                        {
                            n: {c: [round(float(v), 6) for v in row[:, k]] for k, c in enumerate(channels)}
                            for n, row in zip(names, forecast)
                        }
                    )
                    + "\n"
                )
            elif levels:
                out.write(json.dumps({n: [round(float(v), 6) for v in row] for n, row in zip(names, forecast)}) + "\n")
            else:  # each forecast step (and each channel of it) in turn
                out.write(" ".join(f"{v:.6g}" for v in np.ravel(forecast)) + "\n")


def _learn_config(learn: bool, every: Optional[int], window: Optional[int], lr: Optional[float], save: Optional[Path]):
    """The learning asked for (None: a frozen follower); its options without --learn are a mistake."""
    from ..learn import LearnConfig

    given = {"every": every, "window": window, "lr": lr}
    if not learn:
        stray = [f"--learn-{k}" for k, v in given.items() if v is not None] + (["--save"] if save else [])
        if stray:
            raise UsageError(f"{stray[0]} goes with --learn (a frozen follower learns nothing)")
        return None
    try:
        return LearnConfig(**{k: v for k, v in given.items() if v is not None})
    except UsageError as error:  # worded in the library's parameters: say it in the flags
        raise UsageError(str(error).replace("`learn_", "--learn-").replace("`", "")) from None


@contextmanager
def _saving(learner, save: Optional[Path]):
    """Write what was learnt once the input ends, or is interrupted (Ctrl-C) or fails."""
    try:
        yield
    finally:
        if learner is not None and save is not None:
            learner.save(save)
            say(f"saved what was learnt from {learner.seen} values ({learner.updates} steps) to {save}")


def _follow_forecaster(ckpt, horizon: int, levels: tuple, season: Optional[int]) -> None:
    """follow with the pretrained forecaster: the same lines as for a trained model."""
    import json

    from ..generate.zero_shot import follow_zero_shot

    if season is None:
        say("note: values on stdin carry no dates: read without a season (--season sets one, e.g. 12 for monthly)")
    names = ["mean", *(f"q{level:g}" for level in levels)]
    with StreamWriter(sys.stdout, line_flush=True) as out:
        for forecast in follow_zero_shot(ckpt, _stdin_values(), horizon, season or 1, levels):
            if levels:
                out.write(json.dumps({n: [round(float(v), 6) for v in row] for n, row in zip(names, forecast)}) + "\n")
            else:
                out.write(" ".join(f"{v:.6g}" for v in forecast[0]) + "\n")


def _stdin_values(channels: Optional[list[str]] = None, column: Optional[str] = None):
    """Numbers from stdin as they arrive (readline, not a read-ahead), skipping blank lines and,
    as in a series file, a header on the first line. For a model of several channels (`channels`,
    its column names), rows of one number per channel separated by commas, semicolons, tabs or
    spaces, in the order of its columns. A header that names the columns (the channels, or a
    one-series model's training `column`) says where they are in each row, any other column (a
    date) left aside: rows copied from the training CSV can be followed."""
    names = channels or ([column] if column else [])
    width = len(channels) if channels else 1
    columns = list(range(width))  # where each value the model reads is in a row
    first = True
    for number, line in enumerate(iter(sys.stdin.readline, ""), start=1):
        text = line.strip().lstrip("\ufeff")
        if not text:
            continue
        fields = _fields(text)
        if first:
            first = False
            if _is_header(fields, channels, names):
                if channels or any(f in names for f in fields):
                    columns, width = _header_columns(fields, names), len(fields)
                continue
        if len(fields) != width:
            # Rows copied from a CSV without its header: say how to pick the column out of them.
            hint = (
                f" (for rows copied from a CSV, put its header line, naming {', '.join(map(repr, names))}, above them)"
                if names and width == len(names) and len(fields) > width
                else ""
            )
            raise DataError(
                f"standard input, line {number}: {len(fields)} value{'s' * (len(fields) != 1)}, expected "
                f"{_row_width(width, columns)}{hint}"
            )
        try:
            row = [float(fields[k]) for k in columns]
        except ValueError:
            raise DataError(
                f"standard input, line {number}: {text[:40]!r} is not "
                + ("a number" if len(columns) == 1 else f"a row of {len(columns)} numbers")
            ) from None
        if not all(math.isfinite(v) for v in row):
            raise DataError(f"standard input, line {number}: {text!r} is not a finite number")
        yield row if channels else row[0]


def _fields(line: str) -> list[str]:
    """A line's cells: split at commas (or else semicolons, tabs or spaces), quotes respected."""
    import csv

    delimiter = next((d for d in ",;\t" if d in line), None)
    if delimiter is None:
        return line.split()
    return [cell.strip() for cell in next(csv.reader([line], delimiter=delimiter))]


def _is_header(fields: list[str], channels: Optional[list[str]], names: list[str]) -> bool:
    """Whether a first line is a header to skip: it names a column the model reads; for
    channels, it holds no number; for one series, it is neither a row of numbers nor a dated row."""
    from ..data.times import parse_time

    if any(f in names for f in fields):
        return True
    if channels:  # a line with a number in it is a row with a mistake, said as such
        return not any(is_number(f) for f in fields)
    # One series: a header's words (even "sensor 1") are skipped, as `seqgen train` skips them; a
    # row of numbers, or a dated row ("1967-01-01,1100" copied without its header), is a row,
    # said as such when it is not the one number a line the model reads.
    return not (all(is_number(f) for f in fields) or any(parse_time(f) is not None for f in fields))


def _row_width(width: int, columns: list[int]) -> str:
    if width == 1:
        return "one a line"
    if len(columns) == width:
        return f"{width} (one per channel) separated by commas"
    return f"{width}, as the header names"


def _header_columns(header: list[str], names: list[str]) -> list[int]:
    """Where a header puts each of the columns the model reads."""
    missing = [name for name in names if name not in header]
    if missing:
        raise DataError(
            f"standard input: the header names {', '.join(map(repr, header))}; this model reads the columns "
            f"{', '.join(map(repr, names))} (name them in the header, or leave the header out and give "
            "the values in that order)"
        )
    return [header.index(name) for name in names]


def _training_column(ckpt, entry: Optional[dict]) -> Optional[str]:
    """The CSV column a one-series model was trained on (of several series, the one followed)."""
    if ckpt.model_config.channels > 1:
        return None
    if entry is not None:
        return entry["name"] if entry["name"] in (ckpt.described.columns) else None
    columns = ckpt.described.columns
    return columns[0] if len(columns) == 1 else None


def _picked_channel(ckpt, series: Optional[str]) -> Optional[int]:
    """`--series NAME` on a model of several channels: the index of the channel to write."""
    from ..generate.api import channel_index

    try:
        return channel_index(ckpt, series)
    except UsageError as e:
        raise UsageError(str(e).replace("`series`", "--series", 1)) from None


def _calendar_note(ckpt, what: str) -> None:
    """A model that reads the calendar is given values without times: say where they are taken to be."""
    if ckpt.model_config.calendar:
        say(
            f"note: this model reads the calendar; {what} is taken to be at the training data's last time "
            "(`seqgen forecast` with a CSV of dated values forecasts from any time)"
        )
