"""`seqgen sample` and `seqgen follow`: a prime in, generated data out on stdout (or a file)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ..errors import UsageError
from ..output import StreamWriter
from .app import app, as_flags, check_seed, console, flagged, open_output, option, say

CHECKPOINT = typer.Argument(..., metavar="CHECKPOINT", help="A checkpoint written by 'seqgen train'.")
TEMPERATURE_HELP = "Text: divide the logits by this; a series: scale the spread. \\[default: 1.0; a point model 0]"
SERIES_HELP = "A model of several series: the one to continue; of several channels (--joint): the one to write."
DEVICE_HELP = "Device for the torch backend: cpu, cuda, mps or auto."


@app.command()
def sample(
    checkpoint: Path = CHECKPOINT,
    length: int = option(500, "Tokens (characters, for a char model) or values to generate.", "--length", "-n"),
    prime: Optional[str] = option(None, 'Start from this text or these numbers, e.g. "0.1 0.3 0.5".'),
    prime_file: Optional[Path] = option(None, "Start from this file (text, numbers, or a CSV of channels)."),
    unknown: str = option("error", "Text: prime characters the model never saw: error, skip or replace."),
    temperature: Optional[float] = option(None, TEMPERATURE_HELP),
    top_k: Optional[int] = option(None, "Text: sample only from the k most likely tokens."),
    top_p: Optional[float] = option(None, "Text: sample from the smallest set with this total probability."),
    min_p: Optional[float] = option(None, "Text: only tokens at least this fraction as likely as the likeliest."),
    repetition_penalty: Optional[float] = option(None, "Text: divide the logits of recent tokens by this."),
    frequency_penalty: Optional[float] = option(None, "Text: subtract this per time a token was seen recently."),
    presence_penalty: Optional[float] = option(None, "Text: subtract this from recently seen tokens' logits."),
    penalty_window: Optional[int] = option(None, "Text: the last tokens the penalties look at. \\[default: 64]"),
    greedy: bool = option(False, "Text: the most likely token; a gaussian series: the mean.", "--greedy"),
    stop: Optional[str] = option(None, "Text: a sample ends once its text has produced this (\\n for a newline)."),
    beam: Optional[int] = option(None, "Text: beam search over this many hypotheses instead of sampling."),
    length_penalty: float = option(1.0, "Text, with --beam: rank by log-probability / length ** this."),
    noise: Optional[float] = option(None, "Continuous: std of noise added to each fed-back value. \\[default: 0]"),
    num_samples: Optional[int] = option(None, "Streams generated together in one batch. \\[default: 1]"),
    include_prime: bool = option(False, "Also write the prime before the generated part.", "--include-prime"),
    fmt: Optional[str] = option(None, "text, values, csv or jsonl. \\[default: text or values]", "--format"),
    per_step: bool = option(False, "jsonl: one object per step and sample.", "--per-step"),
    separator: Optional[str] = option(None, "text: written between samples. \\[default: \\n\\n, a blank line]"),
    output: Optional[Path] = option(None, "Write to this file (atomically) instead of stdout.", "--output", "-o"),
    plot: bool = option(False, "Continuous: draw the prime and the continuation on stderr.", "--plot"),
    plot_file: Optional[Path] = option(None, "Continuous: save that picture as an image (the 'plot' extra)."),
    series: Optional[str] = option(None, SERIES_HELP),
    save_state: Optional[Path] = option(None, "After generating, save the generator's state here."),
    load_state: Optional[Path] = option(None, "Continue from a state saved with --save-state."),
    adapt: bool = option(False, "Text: first fine-tune a copy of the weights on the prime.", "--adapt"),
    seed: Optional[int] = option(None, "Random seed; the same seed gives the same output.", callback=check_seed),
    backend: str = option("auto", "auto (NumPy on CPU), numpy or torch."),
    device: str = option("cpu", DEVICE_HELP),
) -> None:
    """Generate from a trained checkpoint; the output goes to stdout (or --output)."""
    _sample(dict(locals()))


def _sample(o: dict) -> None:
    from ..checkpoint import load_checkpoint
    from ..generate.request import Request, calendar_note, notes, prepare
    from ..generate.zero_shot import resolve
    from ..output import check_format, unescape

    _check_state(o["save_state"], o["output"])
    texts = ("min_p", "repetition_penalty", "frequency_penalty", "presence_penalty", "penalty_window")
    asked = ("length", "num_samples", "seed", "temperature", "top_k", "top_p", "greedy", "noise", "beam")
    asked += ("length_penalty", "series", "load_state", "unknown", "adapt", "backend", "device")
    request = Request(**{k: o[k] for k in asked}, stop=unescape(o["stop"]), choices={k: o[k] for k in texts})
    request.check()
    ckpt = load_checkpoint(resolve(o["checkpoint"]))
    with flagged():
        fmt = check_format(o["fmt"], ckpt.data_kind, o["per_step"])
    _check_writing(ckpt, request, o, fmt)
    request.prime = _read_prime(ckpt, o["prime"], o["prime_file"])
    _check_adapt(ckpt, request)
    if request.prime is not None and calendar_note(ckpt, ""):
        say(calendar_note(ckpt, "the prime's last value"))
    started = time.perf_counter()
    ready = prepare(ckpt, request)
    for note in notes(ready, request, time.perf_counter() - started):
        say(as_flags(note), style="yellow" if note.startswith("warning") else None)
    _write_sample(o, ready, fmt)
    if o["save_state"] is not None:
        from ..generate.state import save_state

        save_state(o["save_state"], ready.gen)


def _write_sample(o: dict, ready, fmt: str) -> None:
    """The steps written as asked, and what the output calls for after: a loop warning, a chart."""
    from ..generate.loops import loop_warning, recording_text
    from ..output import prime_rows, unescape, write, write_channels

    gen, steps, prime = ready.gen, ready.steps, ready.fed if o["include_prime"] else None
    texts: list[list[str]] = []
    if gen.data_kind.allows("loop warnings") and (gen.sampling.greedy or o["beam"] is not None):
        steps = recording_text(steps, gen.batch_size, texts)
    drawn: list[np.ndarray] = []
    if o["plot"] or o["plot_file"]:
        steps = _recording(steps, drawn)
    with open_output(o["output"], line_flush=o["per_step"]) as out:
        # A part that --save-state will continue ends where generation stopped, so that the parts
        # joined are the whole; otherwise text gets a final newline.
        between = unescape("\\n\\n" if o["separator"] is None else o["separator"])
        if ready.ckpt.model_config.channels > 1:
            write_channels(out, fmt, gen, steps, ready.ckpt.described.channels, prime, o["per_step"], ready.channel)
        else:
            write(fmt, out, gen, steps, prime, between, o["per_step"], final=o["save_state"] is None)
    how = "beam" if o["beam"] is not None else "greedy"
    warning = loop_warning(texts, how, as_flags) if texts else None
    if warning:
        say(warning, style="yellow")
    if o["plot"] or o["plot_file"]:
        _plot(o, prime_rows(ready.fed, gen.batch_size), np.array(drawn).reshape(-1, gen.batch_size).T)


def _plot(o: dict, primes: np.ndarray, drawn: np.ndarray) -> None:
    from ..plot import save_plot, terminal_chart

    if o["plot"]:
        # One chart shows one sample clearly; the legend says which when there are several.
        more = " (--plot-file draws them all)"
        console.print(terminal_chart(primes[0], drawn[0], width=console.width, samples=len(drawn), more=more))
    if o["plot_file"] is not None:
        with flagged():
            save_plot(o["plot_file"], primes, drawn)


def _check_state(save_state: Optional[Path], output: Optional[Path]) -> None:
    if save_state is not None:
        from ..generate.state import check_state_target

        check_state_target(save_state)
        if output is not None and output.resolve() == save_state.resolve():
            raise UsageError(
                f"--output and --save-state are both {output}: the state would replace the output; give two files"
            )


def _check_writing(ckpt, request, o: dict, fmt: str) -> None:
    """The options of how the output is written that do not go together, before any work."""
    plot = o["plot"] or o["plot_file"]
    if request.load_state is not None and o["prime"] is None and o["prime_file"] is None and o["include_prime"]:
        raise UsageError("--include-prime: with --load-state there is no prime to include (give --prime)")
    if request.load_state is not None and request.seed is not None:
        say("warning: --seed is ignored with --load-state: the saved random state goes on", style="yellow")
    if o["include_prime"] and o["per_step"]:
        raise UsageError(
            "--include-prime: --per-step records only the generated steps (the prime is the input you gave)"
        )
    if o["separator"] is not None and fmt != "text":
        raise UsageError(f"--separator goes between text samples; --format {fmt} keeps samples apart by itself")
    if request.beam is not None and o["per_step"]:
        raise UsageError("--per-step: beam search knows the best continuation only at the end, not step by step")
    _picked_channel(ckpt, request.series)
    if ckpt.model_config.channels > 1 and plot:
        raise UsageError(
            f"--plot and --plot-file draw the values of one series; {ckpt.path} models {ckpt.model_config.channels} "
            "channels jointly (`seqgen forecast --plot` draws their forecast, one channel at a time with --series)"
        )
    if plot:
        with flagged():
            ckpt.data_kind.check("plot")
    if o["plot_file"] is not None:
        _check_plot_file(o["plot_file"])


def _check_plot_file(path: Path) -> None:
    from ..plot import check_plot_file

    with flagged():
        check_plot_file(path)  # before the work, not after it


def _check_adapt(ckpt, request) -> None:
    if request.adapt and request.load_state is not None:
        raise UsageError(
            "--adapt adapts the weights to the prime of a new generation; --load-state goes on with the "
            "weights the state was saved with (drop --adapt)"
        )
    if request.adapt and ckpt.data_kind.allows("adapt") and request.prime is None:
        raise UsageError(
            "--adapt learns from the prime: give one with --prime or --prime-file (a few hundred characters or more)"
        )


def _recording(steps, drawn: list):
    """Pass the steps on, keeping every sample's values for the plot."""
    for items, live in steps:
        drawn.append(np.array(items, dtype=np.float64))
        yield items, live


def _read_prime(ckpt, prime: Optional[str], prime_file: Optional[Path]):
    from ..generate.prime import read_prime

    with flagged():
        return read_prime(ckpt, prime, prime_file)


@app.command()
def follow(
    checkpoint: Path = CHECKPOINT,
    horizon: int = option(1, "Values forecast after each input (free-running, on a copy of the state)."),
    quantiles: Optional[str] = option(None, "Also forecast these quantiles (e.g. 0.1,0.9): JSON lines."),
    samples: int = option(200, "Sample paths per forecast, with --quantiles."),
    series: Optional[str] = option(None, SERIES_HELP),
    seed: Optional[int] = option(None, "Random seed for the sampled paths.", callback=check_seed),
    backend: str = option("auto", "auto (NumPy on CPU), numpy or torch."),
    device: str = option("cpu", DEVICE_HELP),
    season: Optional[int] = option(None, "The pretrained forecaster: the season length in steps.", min=1),
    learn: bool = option(False, "Keep training on the values as they arrive.", "--learn"),
    learn_every: Optional[int] = option(None, "With --learn: values between updates. \\[default: 10]"),
    learn_window: Optional[int] = option(None, "With --learn: the last values each step learns from. \\[default: 50]"),
    learn_lr: Optional[float] = option(None, "With --learn: the step size (Adam). \\[default: 3e-3]"),
    save: Optional[Path] = option(None, "With --learn: at the end, write a checkpoint with what was learnt."),
) -> None:
    """Read values from stdin, one per line (a model of channels: a row of them a line); after each, write the forecast of the next value(s)."""
    _follow(dict(locals()))


def _follow(o: dict) -> None:
    from ..checkpoint import load_checkpoint
    from ..generate.zero_shot import is_forecaster, resolve
    from ..output import parse_quantiles

    with flagged():
        levels = parse_quantiles(o["quantiles"]) if o["quantiles"] is not None else ()
    if o["quantiles"] is not None and o["samples"] < 1:
        raise UsageError(f"--samples must be >= 1, got {o['samples']}")
    config = _learn_config(o["learn"], o["learn_every"], o["learn_window"], o["learn_lr"], o["save"])
    ckpt = load_checkpoint(resolve(o["checkpoint"]))
    if config is not None and is_forecaster(ckpt):
        raise UsageError(f"--learn trains a model of seqgen train; {o['checkpoint']} is the pretrained forecaster")
    if is_forecaster(ckpt):
        return _follow_forecaster(ckpt, o["horizon"], levels, o["season"])
    if o["season"] is not None:
        raise UsageError(
            f"--season applies to the pretrained forecaster; {o['checkpoint']} learnt its season in training"
        )
    ckpt.data_kind.check("seqgen follow", path=o["checkpoint"])
    entries = ckpt.described.series
    if len(entries) > 1 and o["series"] is None:
        # Values arrive one at a time: there is no history yet to tell the series by.
        raise UsageError(
            f"{o['checkpoint']} models {len(entries)} series, each in its own scale: name the one stdin "
            f"continues with --series ({', '.join(repr(e['name']) for e in entries[:10])})"
        )
    _follow_model(o, ckpt, levels, config)


def _follow_model(o: dict, ckpt, levels: tuple, config) -> None:
    from ..data.rows import read_rows, training_column
    from ..generate import follow as follow_values
    from ..generate.forecast import follower
    from ..generate.request import calendar_note
    from ..learn import OnlineLearner, saved_at_the_end
    from ..output import follow_line

    channels = ckpt.described.channels if ckpt.model_config.channels > 1 else None
    picked = _picked_channel(ckpt, o["series"])
    if calendar_note(ckpt, ""):
        say(calendar_note(ckpt, "the first value from standard input"))
    gen = follower(ckpt, o["series"], levels, seed=o["seed"], backend=o["backend"], device=o["device"])
    learner = OnlineLearner(ckpt, gen, config) if config is not None else None
    column = training_column(ckpt, gen.series if not channels else None)
    with StreamWriter(sys.stdout, line_flush=True) as out, saved_at_the_end(learner, o["save"], say):
        read = read_rows(sys.stdin, channels, column=column)
        for forecast in follow_values(gen, read, o["horizon"], o["samples"] if levels else 0, levels, learn=learner):
            if picked is not None:  # one channel of several: written as a model of one series would write it
                forecast = forecast[..., picked]
            out.write(follow_line(forecast, levels, channels if picked is None else None))


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


def _follow_forecaster(ckpt, horizon: int, levels: tuple, season: Optional[int]) -> None:
    """follow with the pretrained forecaster: the same lines as for a trained model."""
    from ..data.rows import read_rows
    from ..generate.zero_shot import follow_zero_shot
    from ..output import follow_line

    if season is None:
        say("note: values on stdin carry no dates: read without a season (--season sets one, e.g. 12 for monthly)")
    with StreamWriter(sys.stdout, line_flush=True) as out:
        for forecast in follow_zero_shot(ckpt, read_rows(sys.stdin), horizon, season or 1, levels):
            out.write(follow_line(forecast if levels else forecast[:1], levels))


def _picked_channel(ckpt, series: Optional[str]) -> Optional[int]:
    """`--series NAME` on a model of several channels: the index of the channel to write."""
    from ..generate.api import channel_index

    try:
        return channel_index(ckpt, series)
    except UsageError as e:
        raise UsageError(str(e).replace("`series`", "--series", 1)) from None
