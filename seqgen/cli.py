"""The `seqgen` command: a thin typer layer over the library. stdout carries data only;
everything for humans goes to stderr through one rich Console (which honours NO_COLOR)."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time

# One BLAS thread for NumPy: a generation step's small matrix products gain nothing from a second
# thread, and OpenBLAS's spinning threads slow each step many times over whenever another process
# wants the cores (measured: batch-64 steps 2 ms vs 30-50 ms on 2 busy cores). It must be set
# before NumPy is first imported; a user's own setting wins. Torch's threads are not affected.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from . import __version__
from .errors import DataError, SeqgenError, UsageError

console = Console(stderr=True)
app = typer.Typer(
    add_completion=True, no_args_is_help=True, pretty_exceptions_show_locals=False,
    help="Train a recurrent network (LSTM, GRU, Elman) on a sequence and generate from it.",
)


def say(message: str, style: str | None = None) -> None:
    """One message for humans, on stderr; never wrapped, never parsed as markup."""
    console.print(message, style=style, markup=False, highlight=False, soft_wrap=True)


# The library names a parameter in backquotes (`top_k`, `SineConfig.noise`); the command line
# names the flag that sets it. Most flags are the parameter's name with dashes.
FLAG_NAMES = {"SineConfig.waves": "--sine-waves", "SineConfig.length": "--sine-length",
              "SineConfig.noise": "--sine-noise"}
PARAMETER = re.compile(r"`([A-Za-z_][\w.]*)`")


def as_flags(message: str) -> str:
    """A library message worded for the command line: each `parameter` becomes its --flag."""
    def flag(match: re.Match) -> str:
        name = match[1]
        return FLAG_NAMES.get(name) or "--" + name.rsplit(".", 1)[-1].replace("_", "-")

    return PARAMETER.sub(flag, message)


def _check_seed(value: Optional[int]) -> Optional[int]:
    # NumPy's generators refuse negative seeds and torch's refuse ones past 64 bits: say so in one line.
    if value is not None and not 0 <= value < 2**63:
        raise UsageError(f"--seed must be a whole number from 0 to {2**63 - 1}, got {value}")
    return value


def _version(value: bool) -> None:
    if value:
        print(f"seqgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show a full traceback on errors (or set SEQGEN_DEBUG=1)."),
) -> None:
    if debug:
        os.environ["SEQGEN_DEBUG"] = "1"


DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")


def parse_duration(text: str) -> float:
    """'90s', '5m', '1h30m', '1.5h' or a plain number of seconds -> seconds."""
    match = DURATION.match(text)
    if not text.strip() or not match or not any(match.groups()):
        raise UsageError(f"--max-time {text!r} is not a duration; write it like 90s, 5m, 1h30m or 300")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise UsageError("--max-time must be longer than zero")
    return total


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------
@app.command()
def train(
    data: Optional[str] = typer.Argument(None, metavar="DATA", help="Text file, numeric series (.npy, .csv, one number per line), '-' for stdin, or nothing for built-in sine waves."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Checkpoint to write. \\[default: checkpoints/<data name>.safetensors]"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run saved in this checkpoint (options not given are taken from it)."),
    kind: str = typer.Option("auto", help="How to read DATA: auto, text or series."),
    encoding: str = typer.Option("utf-8", help="Text encoding of DATA (for example latin-1)."),
    val_fraction: float = typer.Option(0.1, help="Fraction at the end of each source kept for validation."),
    cache_dir: Optional[Path] = typer.Option(None, help="Folder for the decoded copy of DATA (token ids or values), reused while DATA is unchanged. \\[default: $XDG_CACHE_HOME/seqgen or ~/.cache/seqgen]"),
    cell: Optional[str] = typer.Option(None, help="Recurrent cell: lstm, gru or rnn. \\[default: text gru, series lstm]"),
    layers: Optional[int] = typer.Option(None, help="Stacked recurrent layers. \\[default: 2]"),
    hidden: Optional[int] = typer.Option(None, help="Units per layer. \\[default: text 384, series 64]"),
    embed: Optional[int] = typer.Option(None, help="Character embedding size (text). \\[default: 64]"),
    dropout: Optional[float] = typer.Option(None, help="Dropout between layers and before the head. \\[default: 0]"),
    batch_size: Optional[int] = typer.Option(None, help="Tracks trained side by side. \\[default: 32]"),
    window: Optional[int] = typer.Option(None, help="Steps per backpropagation window. \\[default: text 128, series 100]"),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate (Adam). \\[default: text 5e-3, series 3e-3]"),
    clip: Optional[float] = typer.Option(None, help="Gradient-norm clipping. \\[default: 1.0]"),
    warmup: Optional[int] = typer.Option(None, help="Learning-rate warm-up steps. \\[default: 50]"),
    input_noise: Optional[float] = typer.Option(None, help="Std of noise added to series inputs while training. \\[default: 0.15]"),
    free_run: Optional[int] = typer.Option(None, help="Series: after each window, let the model run this many steps on its own output and score them too (ramped in from 30% to 80% of the run). \\[default: 0, off]"),
    steps: Optional[int] = typer.Option(None, help="Stop after this many optimizer steps. \\[default: series 2500]"),
    epochs: Optional[float] = typer.Option(None, help="Stop after this many passes over the data."),
    max_time: Optional[str] = typer.Option(None, help="Stop after this long, e.g. 90s, 5m, 1h. \\[default: text 5m, series 50s]"),
    eval_every: Optional[int] = typer.Option(None, help="Validate and save every N steps. \\[default: text 200, series 100]"),
    seed: Optional[int] = typer.Option(None, callback=_check_seed, help="Random seed; the same seed gives the same weights on CPU. \\[default: 0]"),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda or mps. \\[default: auto]"),
    sine_waves: int = typer.Option(256, help="Sine data: number of waves."),
    sine_length: int = typer.Option(1000, help="Sine data: steps per wave."),
    period_min: float = typer.Option(20.0, help="Sine data: shortest period in steps."),
    period_max: float = typer.Option(100.0, help="Sine data: longest period in steps."),
    amp_min: float = typer.Option(0.5, help="Sine data: smallest amplitude."),
    amp_max: float = typer.Option(1.0, help="Sine data: largest amplitude."),
    sine_noise: float = typer.Option(0.0, help="Sine data: std of noise added to the waves."),
    scale_each: bool = typer.Option(True, "--scale-each/--no-scale-each", help="Sine data: divide each wave by its own size (of its first 100 values), as generation divides each stream by its prime's, so that a long free run keeps the prime's amplitude."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress; only the final summary."),
    force: bool = typer.Option(False, "--force", help="Replace an existing checkpoint at --out (training never overwrites one otherwise)."),
    log_every: Optional[int] = typer.Option(None, help="Print a progress line every N steps instead of the live bar (for logs)."),
    nproc: Optional[int] = typer.Option(None, help="Train in N processes on this machine (one rank each, as torchrun would start them); --batch-size is split across them."),
) -> None:
    """Train a model on DATA and save it as a checkpoint."""
    from .config import ModelConfig, TrainConfig
    from .data import SineConfig
    from .train.distributed import launched, local_leader_first, process_group, relaunch

    model_opts = dict(cell=cell, layers=layers, hidden=hidden, embed=embed, dropout=dropout)
    train_opts = dict(batch_size=batch_size, window=window, lr=lr, clip=clip, warmup=warmup, input_noise=input_noise, free_run=free_run,
                      steps=steps, epochs=epochs, max_time=parse_duration(max_time) if max_time else None,
                      eval_every=eval_every, seed=seed, device=device)
    model_opts = {k: v for k, v in model_opts.items() if v is not None}
    train_opts = {k: v for k, v in train_opts.items() if v is not None}
    replace(ModelConfig(), **model_opts).check()  # fail on a bad option before reading any data
    replace(TrainConfig(), **train_opts).check()
    if log_every is not None and log_every < 1:
        raise UsageError(f"--log-every must be >= 1, got {log_every}")
    sine = SineConfig(sine_waves, sine_length, period_min, period_max, amp_min, amp_max, sine_noise, scale_each)
    sine.check()
    if nproc is not None and not launched():
        # A mistake is reported once, here, rather than by every rank after they have started.
        if nproc < 1:
            raise UsageError(f"--nproc must be >= 1, got {nproc}")
        checkpoint = _load_for_resume(resume) if resume else None
        if data == "-":
            raise UsageError("--nproc: every process reads DATA, so it cannot be standard input; save it to a file")
        dataset, _, train_config, target = _train_setup(
            data, out, resume, checkpoint, kind, encoding, val_fraction, cache_dir, seed, sine, model_opts, train_opts)
        _check_overwrite(target, resume, force)
        _check_split(dataset, train_config, nproc)
        del dataset, checkpoint  # the ranks read their own (from the cache just built)
        status, killed = relaunch(nproc, sys.argv[1:])
        if killed:
            say(f"seqgen: error: {killed}", style="red")
        raise typer.Exit(status)
    with process_group(device or "auto") as group:
        checkpoint = _load_for_resume(resume) if resume else None
        with local_leader_first(group):
            dataset, model_config, train_config, out = _train_setup(
                data, out, resume, checkpoint, kind, encoding, val_fraction, cache_dir, seed, sine, model_opts, train_opts)
        _check_overwrite(out, resume, force)
        earlier = checkpoint.meta["progress"].get("processes", 1) if checkpoint else 1
        if earlier > 1 and nproc is None and not launched() and not quiet:
            # Any process count can resume a run (its state is saved whole); say which one this is.
            say(f"note: this run trained in {earlier} processes and goes on in one; add --nproc {earlier} for {earlier}")
        _run_training(dataset, model_config, train_config, out, checkpoint, quiet or not group.is_main, log_every,
                      distributed=group.world > 1)


LIMITS = ("steps", "epochs", "max_time")


def _train_setup(data, out, resume, checkpoint, kind, encoding, val_fraction, cache_dir, seed, sine, model_opts, train_opts):
    """The dataset and the configurations of a run: options given, else the checkpoint's, else the defaults."""
    from .config import TrainConfig, defaults_for, from_dict
    from .data import SineConfig, load_data

    if data is None and checkpoint is not None:
        data = _resume_source(checkpoint, resume)
    if data is None and encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise UsageError("--encoding says how to read DATA; the built-in sine waves are not read from a file")
    data_seed = seed if seed is not None else (checkpoint.meta["train"]["seed"] if checkpoint else 0)
    if checkpoint and checkpoint.data.get("source", {}).get("type") == "sine":
        # A checkpoint from before scale_each existed trained on unscaled waves; a resumed run
        # goes on with the waves it began with.
        stored = {"scale_each": False, **checkpoint.data["source"]}
        if data is None:
            sine = from_dict(SineConfig, {k: v for k, v in stored.items() if k != "type"})
        else:
            sine = replace(sine, scale_each=stored["scale_each"])
    dataset = load_data(data, kind=kind, encoding=encoding, val_fraction=val_fraction, sine=sine, seed=data_seed,
                        cache_dir=cache_dir)
    if checkpoint:
        base_model, base_train = checkpoint.model_config, from_dict(TrainConfig, checkpoint.meta["train"])
    else:
        base_model, base_train = defaults_for(dataset.kind)
    if any(k in train_opts for k in LIMITS):
        # Limits given replace all the stored or default ones: --steps 5000 means 5000 steps, not
        # "5000 steps unless the default time limit comes first".
        base_train = replace(base_train, **{k: None for k in LIMITS})
    model_config = replace(base_model, **model_opts)
    train_config = replace(base_train, **train_opts)
    if not any((train_config.steps, train_config.epochs, train_config.max_time)):
        train_config.max_time = 300.0
    series_only = [f"--{k.replace('_', '-')}" for k in ("input_noise", "free_run") if k in train_opts]
    if dataset.kind == "text" and series_only:
        raise UsageError(f"{' and '.join(series_only)} apply to numeric series; this data is text")
    out = out or (resume if resume else Path("checkpoints") / f"{dataset.name}.safetensors")
    return dataset, model_config, train_config, out


def _check_split(dataset, train_config, nproc: int) -> None:
    """What each rank would find wrong with the device, the data's length or the batch's split."""
    from .train.distributed import Group
    from .device import resolve_device
    from .train.trainer import make_tracks

    resolve_device(train_config.device)
    label = dataset.source.get("path", "the training data")
    tracks = make_tracks(dataset.train_streams, train_config.batch_size, train_config.window, label)
    Group(world=nproc).share(min(train_config.batch_size, len(tracks)))  # as the Trainer splits it


def _resume_source(checkpoint, resume: Path) -> Optional[str]:
    """The data a resumed run trained on, when DATA is not given again (None for sine waves)."""
    source = checkpoint.data.get("source", {})
    if source.get("type") != "file":
        return None
    stored = source.get("path")
    if not stored or stored == "standard input" or not Path(stored).is_file():
        raise UsageError(f"--resume {resume}: give the training data again (the run read {stored!r}, not found here)")
    return stored


def _check_overwrite(out: Path, resume: Optional[Path], force: bool) -> None:
    """A finished model is work: never replace one by accident (the shipped ones included)."""
    continuing = resume is not None and out.resolve() == resume.resolve()
    if out.exists() and not (force or continuing):
        resume_hint = f", --resume {out} to continue its run," if _resumable(out) else ""
        raise UsageError(f"{out} already exists; pass --force to replace it{resume_hint} or --out to write elsewhere")


def _resumable(path: Path) -> bool:
    """Whether a checkpoint still holds its training state (stripped ones, like the shipped ones, do not)."""
    from .checkpoint import load_checkpoint
    from .errors import SeqgenError

    try:
        return "optimizer" in load_checkpoint(path).meta
    except SeqgenError:
        return False


def _load_for_resume(path: Path):
    from .checkpoint import load_checkpoint

    return load_checkpoint(path)


def _run_training(dataset, model_config, train_config, out: Path, checkpoint, quiet: bool,
                  log_every: Optional[int] = None, distributed: bool = False) -> None:
    from .train import Trainer, stop_on_signals

    trainer = Trainer(dataset, model_config, train_config, out, resume=checkpoint)
    main = trainer.group.is_main
    if not quiet:
        say(f"data: {dataset.description}")
    display = TrainDisplay(quiet, dataset.kind, train_config, log_every)
    with stop_on_signals(exit_on_second=not distributed) as received, display:
        result = trainer.run(on_event=display.handle, should_stop=lambda: received() is not None)
    signum = received()
    if main:
        display.summary(result, dataset.kind)
    if signum is None and result.stopped_by == "interrupt":
        signum = signal.SIGTERM  # another rank was signalled; this one stopped with it
    if signum is not None and main:
        again = f" --nproc {trainer.group.world}" if trainer.group.world > 1 else ""
        say(f"stopped by signal at step {result.steps}; continue with: seqgen train --resume {result.path}{again}")
    if signum is not None:
        raise typer.Exit(128 + signum)


class TrainDisplay:
    """Live progress on stderr (a bar on a terminal, a line per evaluation otherwise)."""

    def __init__(self, quiet: bool, kind: str, config, log_every: Optional[int] = None):
        self.quiet, self.kind, self.config, self.log_every = quiet, kind, config, log_every
        self.progress = None
        self.task = None
        self.val = "-"
        self.unit = "chars" if kind == "text" else "values"

    def __enter__(self):
        if not self.quiet and console.is_terminal and not self.log_every:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("step {task.fields[step]}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("loss {task.fields[loss]}  val {task.fields[val]}  {task.fields[rate]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=1.0, step=0, loss="-", val="-", rate="")
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()
        return False

    def handle(self, event: dict) -> None:
        kind = event["type"]
        if kind == "start" and not self.quiet:
            where = f"{event['processes']} processes" if event.get("processes", 1) > 1 else event["device"]
            say(f"model: {event['parameters']:,} parameters on {where}, batch {event['batch']}, "
                f"{event['steps_per_epoch']} step{'s' if event['steps_per_epoch'] != 1 else ''} per epoch")
        elif kind == "step" and self.progress:
            self.progress.update(self.task, completed=event["fraction"], step=event["step"], loss=f"{event['loss']:.4f}",
                                 val=self.val, rate=f"{event['items_per_sec']:,.0f} {self.unit}/s")
        elif kind == "step" and self.log_every and not self.quiet and event["step"] % self.log_every == 0:
            say(f"step {event['step']}  loss {event['loss']:.4f}  val {self.val}  "
                f"{event['items_per_sec']:,.0f} {self.unit}/s  {event['elapsed']:.0f}s")
        elif kind == "threads":
            if event["threads"] == 1:
                say(f"note: at step {event['step']} one torch thread was faster than several (another process "
                    "is using the cores); training goes on with one, which gives the same results")
            else:
                say(f"note: at step {event['step']} the cores were free again; back to {event['threads']} torch threads")
        elif kind == "rollback":
            # Shown even with --quiet: the run changed course, and the user should know why.
            say(f"warning: {event['reason']} at step {event['step']}; went back to step "
                f"{event['to_step']}'s weights and halved the learning rate to {event['lr']:.3g}", style="yellow")
        elif kind == "eval":
            self.val = f"{event['val_loss']:.4f}"
            if not self.quiet and not self.progress:
                extra = f" ({event['val_bpc']:.3f} bits/char)" if "val_bpc" in event else ""
                say(f"step {event['step']}  epoch {event['epoch']:.2f}  {event['elapsed']:.0f}s  "
                    f"val {event['val_loss']:.4f}{extra}{'  *' if event['improved'] else ''}")

    def summary(self, result, kind: str) -> None:
        from rich.table import Table

        table = Table(show_header=False, box=None, padding=(0, 2))
        if result.best_val is not None:
            label = "best val loss (nats/char)" if kind == "text" else "best val MSE (scaled)"
            table.add_row(label, f"{result.best_val:.4f} at step {result.best_step}")
            if kind == "text":
                table.add_row("best val bits/char", f"{result.best_val / 0.6931471805599453:.4f}")
        table.add_row("steps", str(result.steps))
        table.add_row("training time", f"{result.elapsed:.1f}s")
        table.add_row(f"{self.unit}/s", f"{result.items_per_sec:,.0f}")
        table.add_row("checkpoint", result.path)
        console.print(table)


# --------------------------------------------------------------------------------------------
# sample
# --------------------------------------------------------------------------------------------
@app.command()
def sample(
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="A checkpoint written by 'seqgen train'."),
    length: int = typer.Option(500, "--length", "-n", help="Characters or values to generate."),
    prime: Optional[str] = typer.Option(None, help="Start from this text (text models) or these numbers, e.g. \"0.1 0.3 0.5\"."),
    prime_file: Optional[Path] = typer.Option(None, help="Start from the contents of this file (text, or numbers one per line)."),
    temperature: Optional[float] = typer.Option(None, help="Text: divide the logits by this (lower is more conservative). Continuous: the same as --noise. \\[default: text 1.0, continuous 0]"),
    top_k: Optional[int] = typer.Option(None, help="Text: sample only from the k most likely characters."),
    top_p: Optional[float] = typer.Option(None, help="Text: sample from the smallest set with this total probability."),
    greedy: bool = typer.Option(False, "--greedy", help="Text: always take the most likely character."),
    stop: Optional[str] = typer.Option(None, help="Text: a sample ends once it has produced this string (\\n for a newline)."),
    noise: Optional[float] = typer.Option(None, help="Continuous: std of noise added to each fed-back value (0 = deterministic). \\[default: 0]"),
    num_samples: Optional[int] = typer.Option(None, help="Independent streams generated together in one batched state. \\[default: 1]"),
    include_prime: bool = typer.Option(False, "--include-prime", help="Also write the prime before the generated part."),
    fmt: Optional[str] = typer.Option(None, "--format", help="text, values, csv or jsonl. \\[default: text for text, values for continuous]"),
    per_step: bool = typer.Option(False, "--per-step", help="jsonl: one object per step and sample (with the chosen character's probability)."),
    separator: Optional[str] = typer.Option(None, help="text: written between samples (\\n for a newline). \\[default: \\n\\n, a blank line]"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file (atomically) instead of stdout."),
    plot: bool = typer.Option(False, "--plot", help="Continuous: draw the prime and the continuation on stderr."),
    plot_file: Optional[Path] = typer.Option(None, help="Continuous: save that picture as an image (needs the 'plot' extra: matplotlib)."),
    save_state: Optional[Path] = typer.Option(None, help="After generating, save the generator's state here for --load-state."),
    load_state: Optional[Path] = typer.Option(None, help="Continue from a state saved with --save-state (a --prime is fed after it)."),
    seed: Optional[int] = typer.Option(None, callback=_check_seed, help="Random seed; the same seed gives the same output."),
    backend: str = typer.Option("auto", help="auto (NumPy on CPU), numpy or torch."),
    device: str = typer.Option("cpu", help="Device for the torch backend: cpu, cuda, mps or auto (the first available of those)."),
) -> None:
    """Generate from a trained checkpoint; the output goes to stdout (or --output)."""
    from .checkpoint import load_checkpoint
    from .generate import Generator
    from .generate.api import generate_steps, sampling_for, start
    from .output import check_format, unescape

    if length < 0:
        raise UsageError(f"--length must be >= 0, got {length}")
    if save_state is not None:
        from .generate.state import check_state_target

        check_state_target(save_state)
        if output is not None and output.resolve() == save_state.resolve():
            raise UsageError(f"--output and --save-state are both {output}: the state would replace the output; give two files")
    ckpt = load_checkpoint(checkpoint)
    sampling = sampling_for(ckpt.kind, str(load_state) if load_state else None, temperature=temperature, top_k=top_k,
                            top_p=top_p, greedy=greedy, noise=noise)
    fmt = check_format(fmt, ckpt.kind == "text", per_step)
    if load_state is not None and prime is None and prime_file is None and include_prime:
        raise UsageError("--include-prime: with --load-state there is no prime to include (give --prime)")
    if load_state is not None and num_samples is not None:
        raise UsageError("--num-samples: a state loaded with --load-state brings its own number of samples")
    if load_state is not None and seed is not None:
        say("warning: --seed is ignored with --load-state: the saved random state goes on", style="yellow")
    if include_prime and per_step:
        raise UsageError("--include-prime: --per-step records only the generated steps (the prime is the input you gave)")
    if separator is not None and fmt != "text":
        raise UsageError(f"--separator goes between text samples; --format {fmt} keeps samples apart by itself")
    if ckpt.kind != "text" and (num_samples or 1) > 1 and not sampling.noise:
        say(f"warning: the {num_samples} streams will be the same (up to rounding): a continuous model is "
            "deterministic without --noise (give --noise 0.05, say, for different streams)", style="yellow")
    if ckpt.kind == "text" and (num_samples or 1) > 1 and sampling.greedy:
        say(f"warning: the {num_samples} samples will be the same: --greedy makes the same choice in each", style="yellow")
    gen = Generator.from_checkpoint(ckpt, backend=backend, device=device, sampling=sampling, seed=seed)
    user_prime = _read_prime(ckpt, prime, prime_file)
    fed = start(gen, ckpt, user_prime, num_samples=1 if num_samples is None else num_samples, seed=seed,
                load_state=str(load_state) if load_state else None)
    steps = generate_steps(gen, length, unescape(stop))
    drawn: list[float] = []
    if plot or plot_file:
        if gen.is_text:
            raise UsageError("--plot and --plot-file draw continuous output; this model generates text")
        if plot_file:
            from .plot import require_matplotlib

            require_matplotlib()  # before generating, not after
        steps = _recording(steps, drawn)
    with _open_output(output, line_flush=per_step) as out:
        # A part that --save-state will continue ends where generation stopped, so that the parts
        # joined are the whole; otherwise text gets a final newline.
        between = unescape("\\n\\n" if separator is None else separator)
        _write(fmt, out, gen, steps, fed if include_prime else None, between, per_step,
               end="" if save_state is not None else "\n")
    if plot:
        from .plot import terminal_chart

        console.print(terminal_chart(fed, drawn, width=console.width))
    if plot_file is not None:
        from .plot import save_plot

        save_plot(plot_file, fed, drawn)
    if save_state is not None:
        from .generate.state import save_state as write_state

        write_state(save_state, gen)


def _recording(steps, drawn: list):
    """Pass the steps on, keeping the first sample's values for the plot."""
    for items, live in steps:
        drawn.append(float(items[0]))
        yield items, live


def _write(fmt: str, out, gen, steps, prime, separator: str, per_step: bool, end: str = "\n") -> None:
    from .output import write_csv, write_jsonl, write_text, write_values

    if fmt == "text":
        write_text(out, gen, steps, prime or "", separator, end)
    elif fmt == "values":
        write_values(out, gen, steps, prime)
    elif fmt == "csv":
        write_csv(out, gen, steps, prime)
    else:
        write_jsonl(out, gen, steps, prime, per_step)


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
            from .files import write_atomic

            try:
                write_atomic(self.path, self.buffer.getvalue().encode("utf-8"))
            except OSError as e:
                raise UsageError(f"--output {self.path}: cannot write ({e.strerror})") from None
        return False


def _open_output(path: Optional[Path], line_flush: bool = False):
    return FileOutput(path) if path is not None else StreamWriter(sys.stdout, line_flush)


def _read_prime(ckpt, prime: Optional[str], prime_file: Optional[Path]):
    from .data import decode_text
    from .data import parse_numbers
    from .generate.api import as_prime

    if prime is not None and prime_file is not None:
        raise UsageError("give either --prime or --prime-file, not both")
    if prime_file is None:
        result = as_prime(ckpt, prime)
    else:
        if prime_file.is_dir():
            raise UsageError(f"--prime-file {prime_file} is a directory: give a file")
        if not prime_file.is_file():
            raise UsageError(f"--prime-file {prime_file}: no such file")
        try:
            raw = prime_file.read_bytes()
        except OSError as e:
            raise DataError(f"--prime-file {prime_file}: cannot read ({e.strerror})") from None
        text = decode_text(raw, str(prime_file))
        result = text if ckpt.kind == "text" else parse_numbers(text, f"--prime-file {prime_file}")
    if result is not None and len(result) == 0:
        raise UsageError("the prime is empty: give at least one character or value")
    return result


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


# --------------------------------------------------------------------------------------------
# follow
# --------------------------------------------------------------------------------------------
@app.command()
def follow(
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="A continuous-model checkpoint written by 'seqgen train'."),
    horizon: int = typer.Option(1, help="Values forecast after each input (free-running, on a copy of the state)."),
    backend: str = typer.Option("auto", help="auto (NumPy on CPU), numpy or torch."),
    device: str = typer.Option("cpu", help="Device for the torch backend: cpu, cuda, mps or auto (the first available of those)."),
) -> None:
    """Read values from stdin, one per line; after each, write the forecast of the next value(s)."""
    from .checkpoint import load_checkpoint
    from .generate import Generator, follow as follow_values

    ckpt = load_checkpoint(checkpoint)
    gen = Generator.from_checkpoint(ckpt, backend=backend, device=device)
    with StreamWriter(sys.stdout, line_flush=True) as out:
        for forecast in follow_values(gen, _stdin_values(), horizon):
            out.write(" ".join(f"{v:.6g}" for v in forecast) + "\n")


def _stdin_values():
    """Numbers from stdin as they arrive (readline, not a read-ahead), skipping blank lines."""
    from .errors import DataError

    for number, line in enumerate(iter(sys.stdin.readline, ""), start=1):
        text = line.strip()
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            raise DataError(f"standard input, line {number}: {text[:40]!r} is not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise DataError(f"standard input, line {number}: {text!r} is not a finite number")
        yield value


# --------------------------------------------------------------------------------------------
# eval
# --------------------------------------------------------------------------------------------
@app.command("eval")
def eval_command(
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="A checkpoint written by 'seqgen train'."),
    data: Optional[str] = typer.Argument(None, metavar="DATA", help="Data to evaluate on. \\[default: the checkpoint's training file; fresh waves for sine]"),
    val_fraction: Optional[float] = typer.Option(None, help="Evaluate on this last fraction of DATA. \\[default: the checkpoint's]"),
    long: bool = typer.Option(False, "--long", help="Continuous: also free-run 10,000 steps."),
    waves: Optional[int] = typer.Option(None, help="Sine: number of fresh waves, run as one batch. \\[default: 32]"),
    seed: Optional[int] = typer.Option(None, callback=_check_seed, help="Sine: seed for the fresh waves. \\[default: a new one each run, printed]"),
    encoding: str = typer.Option("utf-8", help="Text encoding of DATA."),
    backend: str = typer.Option("auto", help="Continuous: auto (NumPy on CPU), numpy or torch."),
    device: str = typer.Option("cpu", help="Device for torch: cpu, cuda, mps or auto (the first available of those)."),
    json_out: bool = typer.Option(False, "--json", help="Print the figures as one JSON object on stdout."),
) -> None:
    """Measure a checkpoint: text validation loss, or continuous free-running error."""
    from .checkpoint import load_checkpoint
    from .evaluate import HORIZONS, LONG_HORIZONS, evaluate_series, evaluate_text

    if val_fraction is not None and not 0 < val_fraction < 1:
        raise UsageError(f"--val-fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if data not in (None, "-") and not Path(data).exists():
        raise DataError(f"{data}: no such file (give the data to evaluate on, or nothing for the checkpoint's own)")
    ckpt = load_checkpoint(checkpoint)
    if ckpt.kind == "text" and (long or waves is not None or seed is not None):
        raise UsageError("--long, --waves and --seed measure continuous models; this checkpoint generates text")
    if ckpt.kind == "text":
        result = evaluate_text(ckpt, data, val_fraction=val_fraction, encoding=encoding, device=device)
        say(f"{result.data}: last {result.val_fraction:g} ({result.characters:,} characters, one stream)")
        say(f"validation loss {result.loss:.4f} nats/char, {result.bits_per_char:.4f} bits/char  ({result.seconds:.1f}s)")
    else:
        horizons = LONG_HORIZONS if long else HORIZONS
        result = evaluate_series(ckpt, data, horizons=horizons, waves=32 if waves is None else waves, seed=seed, val_fraction=val_fraction,
                                 backend=backend)
        src = result.source
        where = (f"{src['waves']} fresh sine waves (--seed {src['seed']})" if src["type"] == "sine"
                 else f"the last {src['val_fraction']:g} of {src['path']}")
        say(f"free run on {where}, after a {result.prime}-step prime:")
        for steps, rmse in result.rmse.items():
            say(f"  RMSE over {steps:>6,} steps  {rmse:.4f}")
        say(f"  generated / true amplitude  {result.amplitude_ratio:.3f} "
            f"(range {result.amplitude_ratio_min:.3f}-{result.amplitude_ratio_max:.3f})")
    if json_out:
        print(json.dumps(result.to_dict()))


# --------------------------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------------------------
@app.command()
def info(
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="A checkpoint written by 'seqgen train'."),
    json_out: bool = typer.Option(False, "--json", help="Print the details as one JSON object on stdout."),
) -> None:
    """Show what a checkpoint holds: data, vocabulary, model, training progress, format."""
    from rich.table import Table

    from .info import checkpoint_info

    details = checkpoint_info(checkpoint)
    if json_out:
        print(json.dumps(details, ensure_ascii=False))
        return
    data, model, progress = details["data"], details["model"], details["training"]
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_row("data", f"{data['kind']}: {data['description']}")
    if "vocab_size" in data:
        table.add_row("vocabulary", f"{data['vocab_size']} characters: {data['vocab_preview']!r}")
    else:
        table.add_row("scaling", f"mean {data['mean']:.6g}, std {data['std']:.6g}")
    shape = f"{model['cell'].upper()}, {model['layers']} x {model['hidden']}"
    shape += f", embedding {model['embed']}" if "embed" in model else ""
    table.add_row("model", f"{shape}; {model['parameters']:,} parameters")
    table.add_row("training", f"{progress['steps']} steps, {progress['seconds'] or 0:.1f}s, {progress['epochs'] or 0:.2f} epochs"
                  + ("" if progress["resumable"] else " (weights only)"))
    if progress["best_val_loss"] is not None:
        unit = "nats/char" if data["kind"] == "text" else "MSE, scaled"
        table.add_row("best validation", f"{progress['best_val_loss']:.4f} {unit} at step {progress['best_step']}")
    table.add_row("format", f"seqgen-checkpoint version {details['format_version']}")
    console.print(table)


# --------------------------------------------------------------------------------------------
# strip
# --------------------------------------------------------------------------------------------
@app.command()
def strip(
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="A checkpoint written by 'seqgen train'."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the result. [default: replace CHECKPOINT]"),
) -> None:
    """Drop the resume state (optimizer moments, latest weights): a small file for sharing and sampling."""
    from .checkpoint import strip_training_state

    before = checkpoint.stat().st_size if checkpoint.is_file() else 0
    target = strip_training_state(checkpoint, out)
    say(f"{target}: {before / 1e6:.1f} MB -> {target.stat().st_size / 1e6:.1f} MB (it can no longer be resumed)")


# --------------------------------------------------------------------------------------------
def main() -> None:
    """Entry point: run the app, turning every mistake into one line on stderr."""
    try:
        from click import exceptions as click
    except ImportError:  # newer typer releases carry their own copy of click
        from typer._click import exceptions as click

    if len(sys.argv) <= 1:
        sys.argv.append("--help")  # a bare `seqgen` asks what there is
    try:
        code = app(standalone_mode=False)
    except SeqgenError as e:
        if os.environ.get("SEQGEN_DEBUG"):
            import traceback

            traceback.print_exc()  # and still the exit status a script would see without --debug
        say(f"seqgen: error: {as_flags(str(e))}", style="red")
        sys.exit(e.exit_code)
    except click.UsageError as e:  # an unknown option, a missing argument, a bad value...
        where = e.ctx.command_path if e.ctx is not None else "seqgen"
        say(f"seqgen: error: {e.format_message()} (see '{where} --help')", style="red")
        sys.exit(2)
    except click.ClickException as e:
        say(f"seqgen: error: {e.format_message()}", style="red")
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        say("seqgen: interrupted")
        sys.exit(130)
    except Exception as e:
        if not _lost_peer(e):
            raise
        # Another rank failed first and said why; this one only lost its connection to it.
        say(f"seqgen: error: rank {os.environ.get('RANK')} stopped: another process of this run failed", style="red")
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)


def _lost_peer(error: Exception) -> bool:
    """Whether a rank's error is gloo's report of a peer process that went away."""
    from .train.distributed import launched

    text = str(error)
    return launched() and ("Connection closed by peer" in text or "Connection reset by peer" in text)
