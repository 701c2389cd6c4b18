"""`seqgen train`: options to `plan_run`, the run (in one process or several) and its display."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from .app import app, as_flags, check_seed, parse_duration, say


def _panel(title: Optional[str]):
    """Options shown under one title of `train --help` (None: on top, with output, resume, display)."""
    return lambda default, help, *names, **more: typer.Option(default, *names, help=help, rich_help_panel=title, **more)


TOP, DATA, MODEL = _panel(None), _panel("Data"), _panel("Model")
TRAINING, LIMITS, SINE = _panel("Training"), _panel("Limits and validation"), _panel("Sine data (no DATA)")
DATA_HELP = (
    "Text file, numeric series (.npy, one number a line, a CSV table), '-' for stdin, or nothing for sine waves."
)
CELL_HELP = "lstm, gru or rnn. \\[default: series lstm; text gru, or lstm where the hardware has bfloat16 units]"
HEAD_HELP = "Series: gaussian, studentt, point or oscillator. \\[default: sine oscillator, a file gaussian]"
CALENDAR_HELP = "Series with dates: auto (read each step's place in its cycles) or none. \\[default: none]"
THREADS_HELP = "Torch threads for the whole run. \\[default: OMP_NUM_THREADS, a resumed run's, else measured]"


@app.command()
def train(
    data: Optional[str] = typer.Argument(None, metavar="DATA", help=DATA_HELP),
    out: Optional[Path] = TOP(
        None, "Checkpoint to write. \\[default: checkpoints/<data name>.safetensors]", "--out", "-o"
    ),
    resume: Optional[Path] = TOP(None, "Continue the run saved in this checkpoint."),
    init: Optional[Path] = TOP(None, "Fine-tune this pretrained forecaster ('pretrained') on DATA's series."),
    kind: str = DATA("auto", "How to read DATA: auto, text or series."),
    encoding: str = DATA("utf-8", "Text encoding of DATA (for example latin-1)."),
    val_fraction: float = DATA(0.1, "Fraction at the end of each source kept for validation."),
    cache_dir: Optional[Path] = DATA(None, "Folder for the decoded copy of DATA. \\[default: ~/.cache/seqgen]"),
    tokens: Optional[str] = DATA(None, "Text: char, byte, word or bpe (the 'bpe' extra). \\[default: char]"),
    vocab_size: Optional[int] = DATA(None, "Text: most tokens word or bpe learns. \\[default: word 8000, bpe 1024]"),
    head: Optional[str] = MODEL(None, HEAD_HELP),
    cell: Optional[str] = MODEL(None, CELL_HELP),
    layers: Optional[int] = MODEL(None, "Stacked recurrent layers. \\[default: 2; small data 1]"),
    hidden: Optional[int] = MODEL(None, "Units per layer. \\[default: text 384, series 64; less for small data]"),
    embed: Optional[int] = MODEL(None, "Character embedding size (text). \\[default: 64]"),
    dropout: Optional[float] = MODEL(None, "Dropout between layers and before the head. \\[default: 0]"),
    batch_size: Optional[int] = TRAINING(None, "Tracks trained side by side. \\[default: 32; small text 16]"),
    window: Optional[int] = TRAINING(None, "Steps per backpropagation window. \\[default: text 128, series 100]"),
    lr: Optional[float] = TRAINING(None, "Peak learning rate (Adam). \\[default: text 5e-3, series 3e-3]"),
    clip: Optional[float] = TRAINING(None, "Gradient-norm clipping. \\[default: 1.0]"),
    warmup: Optional[int] = TRAINING(None, "Learning-rate warm-up steps. \\[default: 50]"),
    weight_decay: Optional[float] = TRAINING(None, "Decoupled weight decay (AdamW); 0 is plain Adam. \\[default: 0]"),
    input_noise: Optional[float] = TRAINING(None, "Std of noise added to series inputs. \\[default: 0.15]"),
    time_column: Optional[str] = DATA(None, "CSV: the column of dates. \\[default: the first column of dates]"),
    columns: Optional[str] = DATA(None, "CSV: value columns to train on, comma-separated. \\[default: all]"),
    joint: bool = DATA(False, "CSV: model the value columns as channels of one series.", "--joint"),
    id_column: Optional[str] = DATA(None, "CSV in long format: the column naming each row's series."),
    fill: str = DATA("error", "CSV: missing values and steps: error, previous, linear or zero."),
    calendar: Optional[str] = DATA(None, CALENDAR_HELP),
    target: Optional[str] = DATA(None, "Series: predict level, diff (steps), or auto. \\[default: auto]"),
    free_run: Optional[int] = TRAINING(None, "Series, point head: also score this many free-run steps."),
    steps: Optional[int] = LIMITS(None, "Stop after this many optimizer steps. \\[default: series 2500]"),
    epochs: Optional[float] = LIMITS(None, "Stop after this many passes over the data."),
    max_time: Optional[str] = LIMITS(None, "Stop after this long: 90s, 5m, 1h. \\[default: text 5m, series 50s]"),
    eval_every: Optional[int] = LIMITS(None, "Validate and save every N steps. \\[default: by data size]"),
    patience: Optional[int] = LIMITS(None, "Stop after N evaluations above the best (0: never). \\[default: 5]"),
    seed: Optional[int] = TRAINING(None, "Random seed. \\[default: 0]", callback=check_seed),
    device: Optional[str] = TRAINING(None, "auto, cpu, cuda or mps. \\[default: auto]"),
    precision: Optional[str] = TRAINING(None, "fp32, bf16, fp16 (CUDA) or auto. \\[default: auto]"),
    threads: Optional[int] = TRAINING(None, THREADS_HELP),
    sine_waves: int = SINE(256, "Number of waves."),
    sine_length: int = SINE(1000, "Steps per wave."),
    period_min: float = SINE(20.0, "Shortest period in steps."),
    period_max: float = SINE(100.0, "Longest period in steps."),
    amp_min: float = SINE(0.5, "Smallest amplitude."),
    amp_max: float = SINE(1.0, "Largest amplitude."),
    sine_noise: float = SINE(0.0, "Std of noise added to the waves."),
    scale_each: bool = SINE(True, "Divide each wave by its own size.", "--scale-each/--no-scale-each"),
    quiet: bool = TOP(False, "No live progress; only the final summary.", "--quiet", "-q"),
    sample_every: Optional[int] = TOP(None, "Text: a short sample every N validations; 0 for none."),
    force: bool = TOP(False, "Replace an existing checkpoint at --out.", "--force"),
    log_every: Optional[int] = TOP(None, "Print a progress line every N steps instead of the live bar."),
    nproc: Optional[int] = TOP(None, "Train in N processes on this machine; --batch-size is split across them."),
) -> None:
    """Train a model on DATA and save it as a checkpoint."""
    _train(dict(locals()))


MODEL_OPTIONS = ("head", "cell", "layers", "hidden", "embed", "dropout", "batch_size", "window", "lr", "clip")
RUN_OPTIONS = ("warmup", "weight_decay", "input_noise", "free_run", "steps", "epochs", "eval_every", "patience")
DATA_OPTIONS = ("kind", "encoding", "val_fraction", "cache_dir", "tokens", "vocab_size", "target", "calendar")
TABLE_OPTIONS = ("time_column", "id_column", "fill", "joint")


def _train(o: dict) -> None:
    from ..data import SineConfig
    from ..train.distributed import end_rank, launched, local_leader_first, process_group
    from ..train.plan import plan_run

    if o["init"] is not None:
        return _finetune(o)
    if o["log_every"] is not None and o["log_every"] < 1:
        raise UsageError(f"--log-every must be >= 1, got {o['log_every']}")
    if o["sample_every"] is not None and o["sample_every"] < 0:
        raise UsageError(f"--sample-every must be >= 0 (0: no samples), got {o['sample_every']}")
    sine = SineConfig(*(o[k] for k in ("sine_waves", "sine_length", "period_min", "period_max")), o["amp_min"],
                      o["amp_max"], o["sine_noise"], o["scale_each"])  # fmt: skip
    asked = {k: o[k] for k in (*MODEL_OPTIONS, *RUN_OPTIONS, "seed", "device", "precision", "threads")}
    asked.update({k: o[k] for k in (*DATA_OPTIONS, *TABLE_OPTIONS)}, columns=_names(o["columns"]), sine=sine)
    asked["max_time"] = parse_duration(o["max_time"]) if o["max_time"] else None

    def plan(checkpoint):
        return plan_run(o["data"], out=o["out"], resume=checkpoint, force=o["force"], **asked)

    if o["nproc"] is not None and not launched():
        return _relaunch(o, plan)
    with process_group(o["device"] or "auto") as group:
        checkpoint = _load_for_resume(o["resume"], o["data"])
        with local_leader_first(group):
            run = plan(checkpoint)
        earlier = checkpoint.meta["progress"].get("processes", 1) if checkpoint else 1
        if earlier > 1 and o["nproc"] is None and not launched() and not o["quiet"]:
            # Any process count can resume a run (its state is saved whole); say which one this is.
            say(
                f"note: this run trained in {earlier} processes and goes on in one; add --nproc {earlier} for {earlier}"
            )
        quiet = o["quiet"] or not group.is_main
        _run_training(run, quiet, o["log_every"], o["sample_every"], distributed=group.world > 1)
        if group.world > 1:
            end_rank(0)


def _finetune(o: dict) -> None:
    from .pretrain import finetune_command

    fixed = ("resume", "head", "cell", "layers", "hidden", "embed", "target", "calendar", "nproc")
    given = ["--" + k for k in fixed if o[k] is not None]
    finetune_command(o["data"], o["init"], o["out"], o["steps"], o["lr"], o["seed"], o["force"], given, o["fill"])


def _relaunch(o: dict, plan) -> None:
    """Start the ranks of a run of --nproc processes; a mistake is reported once, here, rather than
    by every rank after they have started."""
    from ..train.distributed import relaunch

    nproc = o["nproc"]
    if nproc < 1:
        raise UsageError(f"--nproc must be >= 1, got {nproc}")
    if o["data"] == "-":
        raise UsageError("--nproc: every process reads DATA, so it cannot be standard input; save it to a file")
    run = plan(_load_for_resume(o["resume"], o["data"]))
    _check_split(run.data, run.train, nproc)
    del run  # the ranks read their own data (from the cache just built)
    status, killed = relaunch(nproc, without_nproc(sys.argv[1:]))
    if killed:
        say(f"seqgen: error: {killed}", style="red")
    raise typer.Exit(status)


def without_nproc(argv: list[str]) -> list[str]:
    """The command line without its --nproc option (the relaunched ranks must not relaunch)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def _names(text: Optional[str]) -> Optional[list[str]]:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError("--columns: give the names of one or more columns, separated by commas")
    return names


def _check_split(dataset, train_config, nproc: int) -> None:
    """What each rank would find wrong with the device, the data's length or the batch's split."""
    from ..train.distributed import Group
    from ..device import resolve_device
    from ..train.trainer import make_tracks

    resolve_device(train_config.device)
    label = dataset.source.get("path", "the training data")
    tracks = make_tracks(dataset.train_streams, train_config.batch_size, train_config.window, label)
    Group(world=nproc).share(min(train_config.batch_size, len(tracks)))  # as the Trainer splits it


def _finished(out: Path, step: int, limit: str, config) -> str:
    """What to say when a resumed run is already at its limit: nothing to do, and how to go on."""
    value = getattr(config, limit)
    reached = f"--{limit.replace('_', '-')} {value:g}{'s' if limit == 'max_time' else ''}"
    return (
        f"{out}: the run is finished (step {step}, its limit {reached}); nothing to train or write. To train "
        f"further, resume with a larger limit, e.g. seqgen train --resume {out} --steps {2 * step}"
    )


def _load_for_resume(path: Optional[Path], data: Optional[str]):
    """The checkpoint of the run to resume (None for a new run). A run that read standard input
    cannot find its data again: say here, with the command, how to give it."""
    from ..checkpoint import load_checkpoint

    if path is None:
        return None
    checkpoint = load_checkpoint(path)
    if data is None and checkpoint.described.source.get("path") == "standard input":
        raise UsageError(
            f"--resume {path}: the run read its data from standard input; give it again: "
            f"seqgen train - --resume {path} < DATA"
        )
    return checkpoint


def _run_training(
    run, quiet: bool, log_every: Optional[int] = None, sample_every: Optional[int] = None, distributed: bool = False
) -> None:
    from ..train import Trainer, stop_on_signals
    from ..train.display import TrainDisplay, sample_schedule
    from ..train.meaning import meaning_rows, summarise
    from ..train.samples import with_samples

    trainer = Trainer.from_plan(run)
    dataset, train_config, out, checkpoint = run.data, run.train, run.out, run.resume
    main = trainer.group.is_main
    limit = trainer.limit_reached() if checkpoint is not None else None
    if limit is not None:
        if main:
            # Nothing was written to `out`: the run to resume is the checkpoint it came from.
            say(_finished(Path(checkpoint.path) if checkpoint.path else out, trainer.step, limit, train_config))
        return
    if not quiet:
        say(f"data: {dataset.description}")
    for note in run.notes if not quiet else ():
        say(as_flags(note))
    for warning in run.warnings if main else ():
        say(as_flags(warning))
    if main and dataset.left_out:
        # Said even with --quiet: a column silently missing from the model is a surprise found too late.
        columns = ", ".join(f"{name!r} ({why})" for name, why in dataset.left_out.items())
        say(f"note: not read as series: {columns}; --columns names the series to train on")
    tokens = dataset.tokenizer.kind if dataset.tokenizer is not None else "char"
    display = TrainDisplay(quiet, dataset.kind, train_config, log_every, tokens=tokens, word=as_flags)

    def leaving(signum: int) -> None:
        kept = f"{out} holds the last evaluation's weights" if out.exists() else "no checkpoint was written"
        say(f"\nseqgen: stopped at once by a second interrupt, without saving; {kept}", style="red")

    with stop_on_signals(exit_on_second=not distributed, on_second=leaving) as received, display:
        every, seconds = sample_schedule(sample_every, quiet)
        result = trainer.run(
            on_event=with_samples(trainer, display.handle, every, seconds), should_stop=lambda: received() is not None
        )
    signum = received()
    if main:
        display.summary(result, dataset.kind, meaning_rows(summarise(trainer), train_config, result))
    if signum is None and result.stopped_by == "interrupt":
        signum = signal.SIGTERM  # another rank was signalled; this one stopped with it
    if signum is not None and main:
        again = f" --nproc {trainer.group.world}" if trainer.group.world > 1 else ""
        from_stdin = dataset.source.get("path") == "standard input"  # the checkpoint cannot hold its data
        give = "the data came from standard input, so give it again to continue: seqgen train -" if from_stdin else ""
        how = (
            f"{give} --resume {result.path}{again} < DATA"
            if from_stdin
            else f"continue with: seqgen train --resume {result.path}{again}"
        )
        say(f"stopped by signal at step {result.steps}; {how}")
    if signum is not None:
        raise typer.Exit(128 + signum)
