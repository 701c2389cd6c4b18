"""`seqgen train`: options to configurations, checks before any work, the run and its live display."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from .app import app, as_flags, check_seed, console, parse_duration, say


# `train --help` groups its many options; the ones left ungrouped (output, resume, display) stay on top.
DATA_PANEL = "Data"
MODEL_PANEL = "Model"
TRAINING_PANEL = "Training"
LIMITS_PANEL = "Limits and validation"
SINE_PANEL = "Sine data (no DATA)"


@app.command()
def train(
    data: Optional[str] = typer.Argument(
        None,
        metavar="DATA",
        help="Text file, numeric series (.npy, one number per line, or a CSV table: a date column and value columns), '-' for stdin, or nothing for built-in sine waves.",
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Checkpoint to write. \\[default: checkpoints/<data name>.safetensors]"
    ),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue the run saved in this checkpoint (options not given are taken from it)."
    ),
    init: Optional[Path] = typer.Option(
        None,
        "--init",
        help="Fine-tune this pretrained forecaster ('pretrained': the shipped one) on DATA's series instead of training a new model; --steps, --lr, --seed and --out apply.",
    ),
    kind: str = typer.Option("auto", help="How to read DATA: auto, text or series.", rich_help_panel=DATA_PANEL),
    encoding: str = typer.Option(
        "utf-8", help="Text encoding of DATA (for example latin-1).", rich_help_panel=DATA_PANEL
    ),
    val_fraction: float = typer.Option(
        0.1, help="Fraction at the end of each source kept for validation.", rich_help_panel=DATA_PANEL
    ),
    cache_dir: Optional[Path] = typer.Option(
        None,
        help="Folder for the decoded copy of DATA (token ids or values), reused while DATA is unchanged. \\[default: $XDG_CACHE_HOME/seqgen or ~/.cache/seqgen]",
        rich_help_panel=DATA_PANEL,
    ),
    tokens: Optional[str] = typer.Option(
        None,
        help="Text: what a token is: char (a character), byte (a UTF-8 byte, 256 tokens), word (the most frequent word pieces, rare ones spelt in characters) or bpe (byte-level BPE learnt from the training part; needs the 'bpe' extra: Hugging Face tokenizers). \\[default: char; a resumed run its own]",
        rich_help_panel=DATA_PANEL,
    ),
    vocab_size: Optional[int] = typer.Option(
        None,
        help="Text: the most tokens word or bpe learns (characters or bytes included). \\[default: word 8000, bpe 1024]",
        rich_help_panel=DATA_PANEL,
    ),
    head: Optional[str] = typer.Option(
        None,
        help="Series: what the output is: gaussian or studentt (a distribution of the next value, trained by its likelihood and sampled from: forecasts with intervals), point (the next value itself) or oscillator (an order-2 recurrence fitted to everything the stream has shown, which holds a sine's period, plus the network's correction of its coefficient). \\[default: sine oscillator, a file gaussian]",
        rich_help_panel=MODEL_PANEL,
    ),
    cell: Optional[str] = typer.Option(
        None,
        help="Recurrent cell: lstm, gru or rnn. \\[default: series lstm; text gru, or lstm where the hardware has bfloat16 units (see --precision)]",
        rich_help_panel=MODEL_PANEL,
    ),
    layers: Optional[int] = typer.Option(
        None,
        help="Stacked recurrent layers. \\[default: 2; a text under 20,000 characters or a series under 150 values 1]",
        rich_help_panel=MODEL_PANEL,
    ),
    hidden: Optional[int] = typer.Option(
        None,
        help="Units per layer. \\[default: text 384 (under 200,000 characters 128), series 64 (under 150 values 16)]",
        rich_help_panel=MODEL_PANEL,
    ),
    embed: Optional[int] = typer.Option(
        None, help="Character embedding size (text). \\[default: 64]", rich_help_panel=MODEL_PANEL
    ),
    dropout: Optional[float] = typer.Option(
        None,
        help="Dropout between layers and before the head. \\[default: 0; a text's LSTM in bfloat16 0.2]",
        rich_help_panel=MODEL_PANEL,
    ),
    batch_size: Optional[int] = typer.Option(
        None,
        help="Tracks trained side by side. \\[default: 32; a text under 20,000 characters 16]",
        rich_help_panel=TRAINING_PANEL,
    ),
    window: Optional[int] = typer.Option(
        None,
        help="Steps per backpropagation window. \\[default: text 128 (under 20,000 characters 64), series 100]",
        rich_help_panel=TRAINING_PANEL,
    ),
    lr: Optional[float] = typer.Option(
        None,
        help="Peak learning rate (Adam; AdamW with --weight-decay). \\[default: text 5e-3, series 3e-3]",
        rich_help_panel=TRAINING_PANEL,
    ),
    clip: Optional[float] = typer.Option(
        None, help="Gradient-norm clipping. \\[default: 1.0]", rich_help_panel=TRAINING_PANEL
    ),
    warmup: Optional[int] = typer.Option(
        None, help="Learning-rate warm-up steps. \\[default: 50]", rich_help_panel=TRAINING_PANEL
    ),
    weight_decay: Optional[float] = typer.Option(
        None,
        help="Decoupled weight decay (AdamW) on the weight matrices and embeddings; 0 is plain Adam. \\[default: 0]",
        rich_help_panel=TRAINING_PANEL,
    ),
    input_noise: Optional[float] = typer.Option(
        None,
        help="Std of noise added to series inputs while training. \\[default: 0.15]",
        rich_help_panel=TRAINING_PANEL,
    ),
    time_column: Optional[str] = typer.Option(
        None,
        help="CSV: the column of dates or times. \\[default: the first column of dates]",
        rich_help_panel=DATA_PANEL,
    ),
    columns: Optional[str] = typer.Option(
        None,
        help="CSV: the value columns to train on, comma-separated; several are several series of one model. \\[default: every column of numbers]",
        rich_help_panel=DATA_PANEL,
    ),
    joint: bool = typer.Option(
        False,
        "--joint",
        help="CSV with several value columns: model them as the channels of one series (each step reads and predicts all of them) rather than as several series of one model.",
        rich_help_panel=DATA_PANEL,
    ),
    id_column: Optional[str] = typer.Option(
        None,
        help="CSV in long format: the column that names each row's series (one series per id).",
        rich_help_panel=DATA_PANEL,
    ),
    fill: str = typer.Option(
        "error",
        help="CSV: missing values and missing time steps: error (name the first), previous (carry the last value), linear (interpolate) or zero.",
        rich_help_panel=DATA_PANEL,
    ),
    calendar: Optional[str] = typer.Option(
        None,
        help="Series with a time column: auto reads each step's place in the cycles its frequency implies (the year for monthly data; the week and the year for daily; the day and the week for hourly) beside its value, for the cycles the training part spans; none reads values alone. \\[default: none (measured: see docs/results.md); a resumed run its own]",
        rich_help_panel=DATA_PANEL,
    ),
    target: Optional[str] = typer.Option(
        None,
        help="Series: what the model predicts: the values (level), their steps (diff), or auto: the steps when a straight line explains over half the series' variance (it trends). \\[default: auto]",
        rich_help_panel=DATA_PANEL,
    ),
    free_run: Optional[int] = typer.Option(
        None,
        help="Series, with --head point: after each window, let the model run this many steps on its own output and score them too (ramped in from 30% to 80% of the run). \\[default: 0, off]",
        rich_help_panel=TRAINING_PANEL,
    ),
    steps: Optional[int] = typer.Option(
        None, help="Stop after this many optimizer steps. \\[default: series 2500]", rich_help_panel=LIMITS_PANEL
    ),
    epochs: Optional[float] = typer.Option(
        None, help="Stop after this many passes over the data.", rich_help_panel=LIMITS_PANEL
    ),
    max_time: Optional[str] = typer.Option(
        None,
        help="Stop after this long, e.g. 90s, 5m, 1h. \\[default: text 5m (under 200,000 characters 2m, under 20,000 1m), series 50s]",
        rich_help_panel=LIMITS_PANEL,
    ),
    eval_every: Optional[int] = typer.Option(
        None,
        help="Validate and save every N steps. \\[default: text 200 (under 200,000 characters 50, under 20,000 20), series 100 (under 2,000 values 20)]",
        rich_help_panel=LIMITS_PANEL,
    ),
    patience: Optional[int] = typer.Option(
        None,
        help="Stop early once the validation loss has stayed clearly above its best for this many evaluations in a row (0: never). \\[default: 5]",
        rich_help_panel=LIMITS_PANEL,
    ),
    seed: Optional[int] = typer.Option(
        None,
        callback=check_seed,
        help="Random seed; the same seed gives the same weights on the same kind of CPU with the same --threads. \\[default: 0]",
        rich_help_panel=TRAINING_PANEL,
    ),
    device: Optional[str] = typer.Option(
        None, help="auto, cpu, cuda or mps. \\[default: auto]", rich_help_panel=TRAINING_PANEL
    ),
    precision: Optional[str] = typer.Option(
        None,
        help="The training step's arithmetic: fp32, bf16 (float32 weights, bfloat16 products), fp16 (CUDA), or auto: bf16 for an LSTM text model where the CPU or GPU has bfloat16 units, else fp32. Checkpoints are float32 either way. \\[default: auto]",
        rich_help_panel=TRAINING_PANEL,
    ),
    threads: Optional[int] = typer.Option(
        None,
        help="Torch threads for the training step, kept for the whole run: the same seed gives the same weights on the same thread count and kind of CPU. \\[default: OMP_NUM_THREADS if set, a resumed run's own, else measured when the run starts: one per core other processes leave idle, where that is faster than one]",
        rich_help_panel=TRAINING_PANEL,
    ),
    sine_waves: int = typer.Option(256, help="Number of waves.", rich_help_panel=SINE_PANEL),
    sine_length: int = typer.Option(1000, help="Steps per wave.", rich_help_panel=SINE_PANEL),
    period_min: float = typer.Option(20.0, help="Shortest period in steps.", rich_help_panel=SINE_PANEL),
    period_max: float = typer.Option(100.0, help="Longest period in steps.", rich_help_panel=SINE_PANEL),
    amp_min: float = typer.Option(0.5, help="Smallest amplitude.", rich_help_panel=SINE_PANEL),
    amp_max: float = typer.Option(1.0, help="Largest amplitude.", rich_help_panel=SINE_PANEL),
    sine_noise: float = typer.Option(0.0, help="Std of noise added to the waves.", rich_help_panel=SINE_PANEL),
    scale_each: bool = typer.Option(
        True,
        "--scale-each/--no-scale-each",
        help="Divide each wave by its own size (of its first 100 values), as generation divides each stream by its prime's, so that a long free run keeps the prime's amplitude.",
        rich_help_panel=SINE_PANEL,
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress; only the final summary."),
    sample_every: Optional[int] = typer.Option(
        None,
        help="Text: print a short sample (200 characters, temperature 1) after every N validations; 0 for none (--quiet prints none). \\[default: after a validation at most every 30 s of training]",
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace an existing checkpoint at --out (training never overwrites one otherwise)."
    ),
    log_every: Optional[int] = typer.Option(
        None, help="Print a progress line every N steps instead of the live bar (for logs)."
    ),
    nproc: Optional[int] = typer.Option(
        None,
        help="Train in N processes on this machine (one rank each, as torchrun would start them); --batch-size is split across them.",
    ),
) -> None:
    """Train a model on DATA and save it as a checkpoint."""
    if init is not None:
        from .pretrain import finetune_command

        given = {
            "--resume": resume,
            "--head": head,
            "--cell": cell,
            "--layers": layers,
            "--hidden": hidden,
            "--embed": embed,
            "--target": target,
            "--calendar": calendar,
            "--nproc": nproc,
        }
        finetune_command(
            data, init, out, steps, lr, seed, force, [flag for flag, v in given.items() if v is not None], fill
        )
        return
    from ..data import SineConfig
    from ..train.plan import plan_run
    from ..train.distributed import end_rank, launched, local_leader_first, process_group, relaunch

    if log_every is not None and log_every < 1:
        raise UsageError(f"--log-every must be >= 1, got {log_every}")
    if sample_every is not None and sample_every < 0:
        raise UsageError(f"--sample-every must be >= 0 (0: no samples), got {sample_every}")
    options = dict(
        head=head,
        cell=cell,
        layers=layers,
        hidden=hidden,
        embed=embed,
        dropout=dropout,
        batch_size=batch_size,
        window=window,
        lr=lr,
        clip=clip,
        warmup=warmup,
        weight_decay=weight_decay,
        input_noise=input_noise,
        free_run=free_run,
        steps=steps,
        epochs=epochs,
        max_time=parse_duration(max_time) if max_time else None,
        eval_every=eval_every,
        patience=patience,
        seed=seed,
        device=device,
        precision=precision,
        threads=threads,
    )
    sine = SineConfig(sine_waves, sine_length, period_min, period_max, amp_min, amp_max, sine_noise, scale_each)

    def plan(checkpoint):
        return plan_run(
            data,
            out=out,
            resume=checkpoint,
            force=force,
            kind=kind,
            encoding=encoding,
            val_fraction=val_fraction,
            cache_dir=cache_dir,
            tokens=tokens,
            vocab_size=vocab_size,
            target=target,
            calendar=calendar,
            time_column=time_column,
            columns=_names(columns),
            id_column=id_column,
            fill=fill,
            joint=joint,
            sine=sine,
            **options,
        )

    if nproc is not None and not launched():
        # A mistake is reported once, here, rather than by every rank after they have started.
        if nproc < 1:
            raise UsageError(f"--nproc must be >= 1, got {nproc}")
        if data == "-":
            raise UsageError("--nproc: every process reads DATA, so it cannot be standard input; save it to a file")
        run = plan(_load_for_resume(resume, data))
        _check_split(run.data, run.train, nproc)
        del run  # the ranks read their own data (from the cache just built)
        status, killed = relaunch(nproc, without_nproc(sys.argv[1:]))
        if killed:
            say(f"seqgen: error: {killed}", style="red")
        raise typer.Exit(status)
    with process_group(device or "auto") as group:
        checkpoint = _load_for_resume(resume, data)
        with local_leader_first(group):
            run = plan(checkpoint)
        earlier = checkpoint.meta["progress"].get("processes", 1) if checkpoint else 1
        if earlier > 1 and nproc is None and not launched() and not quiet:
            # Any process count can resume a run (its state is saved whole); say which one this is.
            say(
                f"note: this run trained in {earlier} processes and goes on in one; add --nproc {earlier} for {earlier}"
            )
        _run_training(run, quiet or not group.is_main, log_every, sample_every, distributed=group.world > 1)
        if group.world > 1:
            end_rank(0)


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


def _left_out_note(left_out: dict[str, str]) -> str:
    """Which columns of a table are not series of the model, and why."""
    columns = ", ".join(f"{name!r} ({why})" for name, why in left_out.items())
    return f"note: not read as series: {columns}; --columns names the series to train on"


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
    from ..train.meaning import summarise
    from ..train.samples import with_samples
    from .text_report import meaning_rows, sample_schedule

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
        for note in run.notes:
            say(as_flags(note))
    for warning in run.warnings if main else ():
        say(as_flags(warning))
    if main and dataset.left_out:
        # Said even with --quiet: a column silently missing from the model is a surprise found too late.
        say(_left_out_note(dataset.left_out))
    display = TrainDisplay(
        quiet,
        dataset.kind,
        train_config,
        log_every,
        tokens=dataset.tokenizer.kind if dataset.tokenizer is not None else "char",
    )

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
        if dataset.source.get("path") == "standard input":
            # The checkpoint cannot hold its data: standard input must bring it again.
            say(
                f"stopped by signal at step {result.steps}; the data came from standard input, so give it again "
                f"to continue: seqgen train - --resume {result.path}{again} < DATA"
            )
        else:
            say(f"stopped by signal at step {result.steps}; continue with: seqgen train --resume {result.path}{again}")
    if signum is not None:
        raise typer.Exit(128 + signum)


def _calibration_line(c) -> str:
    """What the training summary says of the spread's calibration (see seqgen/calibrate.py)."""
    tail = (
        f"{c.coverage:.0%} of the validation tail's values inside them ({c.coverage_before:.0%} as trained), "
        f"{c.origins} forecasts of {c.horizon} steps"
    )
    if c.scale > 1 and c.scale == c.fitted:
        if c.coverage < 0.8:  # the search's widest factor, and still short of 80%
            return f"spread x{c.scale:.2f}, the widest calibration tries (80% of the validation tail was not reached): {tail}"
        return f"spread x{c.scale:.2f}, the factor that covers 80% of the validation tail: {tail}"
    why = (f"the one-step error ratio x{c.ratio:.2f}" if c.scale > 1 else "as trained") + (
        f"; the tail asked for x{c.fitted:.2f}, and the spread is never narrowed" if c.fitted < c.scale else ""
    )
    return f"spread x{c.scale:.2f} ({why}): {tail}"


# Off a terminal, an evaluation line at most this often (training seconds): a short series is
# validated every 20 steps, a line each would be a hundred lines in ten seconds.
EVAL_LINE_SECONDS = 5.0


class TrainDisplay:
    """Live progress on stderr (a bar on a terminal, a line per evaluation, at most every EVAL_LINE_SECONDS, otherwise)."""

    def __init__(self, quiet: bool, kind: str, config, log_every: Optional[int] = None, tokens: str = "char"):
        self.quiet, self.kind, self.config, self.log_every, self.tokens = quiet, kind, config, log_every, tokens
        self.progress = None
        self.task = None
        self.val = "-"
        self.unit = "values" if kind != "text" else "chars" if tokens == "char" else "tokens"
        self.pending: Optional[tuple[int, str]] = None  # a --log-every line waiting for its step's evaluation
        self.last_line = -1.0  # when (training seconds) the last evaluation line was printed

    def __enter__(self):
        if not self.quiet and console.is_terminal and not self.log_every:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("step {task.fields[step]}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("loss {task.fields[loss]}  val {task.fields[val]}  {task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=1.0, step=0, loss="-", val="-", rate="")
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()
        self._flush()
        return False

    def _flush(self) -> None:
        """Print the progress line held back for an evaluation that did not come."""
        if self.pending:
            say(self.pending[1].format(val=self.val))
            self.pending = None

    def handle(self, event: dict) -> None:
        kind = event["type"]
        if self.pending and not (kind == "eval" and event["step"] == self.pending[0]):
            self._flush()  # a --log-every line waits only for an evaluation of its own step, to share its line
        if kind == "start" and not self.quiet:
            if event["step"]:
                total = f" of {event['total_steps']}" if event.get("total_steps") else ""
                say(f"resuming from step {event['step']}{total}")
            where = f"{event['processes']} processes" if event.get("processes", 1) > 1 else event["device"]
            if event.get("precision", "fp32") != "fp32":
                where += f" in {event['precision']}"
            say(
                f"model: {event['parameters']:,} parameters on {where}, batch {event['batch']}, "
                f"{event['steps_per_epoch']} step{'s' if event['steps_per_epoch'] != 1 else ''} per epoch"
            )
            if event["batch"] < event.get("batch_asked", 0):
                say(self._small_batch(event))
        elif kind == "step" and self.progress:
            self.progress.update(
                self.task,
                completed=event["fraction"],
                step=event["step"],
                loss=f"{event['loss']:.4f}",
                val=self.val,
                rate=f"{event['items_per_sec']:,.0f} {self.unit}/s",
            )
        elif kind == "step" and self.log_every and not self.quiet:
            if event["step"] % self.log_every == 0:
                self.pending = (
                    event["step"],
                    f"step {event['step']}  loss {event['loss']:.4f}  val {{val}}  "
                    f"{event['items_per_sec']:,.0f} {self.unit}/s  {event['elapsed']:.0f}s",
                )
        elif kind == "threads" and event["measured"] != "asked" and not self.quiet:
            why = {
                "busy": "other processes keep the cores busy",
                "slower": "more were slower for this model",
                "faster": "measured faster than one",
                "one core": "one core",
                "resumed": "the run's own",
                "fewer cores": "fewer than the run had: this machine has no more cores",
            }[event["measured"]]
            count = event["threads"]
            say(f"threads: {count} torch thread{'s' if count > 1 else ''} ({why}); --threads N fixes the count")
        elif kind == "sample":
            from .text_report import show_sample

            show_sample(event)
        elif kind == "calibration_failed":
            say(
                f"warning: the intervals could not be calibrated ({event['reason']}); forecasts widen the spread by "
                "the one-step error ratio",
                style="yellow",
            )
        elif kind == "rollback":
            # Shown even with --quiet: the run changed course, and the user should know why.
            say(
                f"warning: {event['reason']} at step {event['step']}; went back to step "
                f"{event['to_step']}'s weights and halved the learning rate to {event['lr']:.3g}",
                style="yellow",
            )
        elif kind == "eval":
            self.val = self._loss(event["val_loss"])
            if not self.quiet and not self.progress:
                extra = f" ({event['val_bpc']:.3f} bits/char)" if "val_bpc" in event else ""
                val = f"{self._loss(event['val_loss'])}{extra}{'  *' if event['improved'] else ''}"
                if self.pending and self.pending[0] == event["step"]:
                    say(self.pending[1].format(val=val) + f"  epoch {event['epoch']:.2f}")
                    self.pending = None
                elif self.log_every or event["elapsed"] - self.last_line >= EVAL_LINE_SECONDS or self.last_line < 0:
                    self.last_line = event["elapsed"]
                    say(f"step {event['step']}  epoch {event['epoch']:.2f}  {event['elapsed']:.0f}s  val {val}")

    def _loss(self, value: float) -> str:
        # Text loss is a few nats; a series' MSE can be 1e-12 (the oscillator head on sines).
        return f"{value:.4f}" if self.kind == "text" else f"{value:.4g}"

    def _small_batch(self, event: dict) -> str:
        """Why the batch is smaller than --batch-size asked, and what would give more tracks."""
        batch, asked = event["batch"], event["batch_asked"]
        if event["streams"] > 1:
            return f"note: batch {batch} instead of {asked}: the data has {event['streams']} streams, one track each"
        window = self.config.window
        return (
            f"note: batch {batch} instead of {asked}: the training part has {event['train_values']:,} "
            f"{self.unit}, enough for {batch} track{'s' if batch != 1 else ''} of at least one window ({window}) "
            f"plus one; every {self.unit[:-1]} is still trained on, and a smaller --window gives more tracks"
        )

    def summary(self, result, kind: str, meaning: list[tuple[str, str]] = ()) -> None:
        from rich.table import Table

        table = Table(show_header=False, box=None, padding=(0, 2))
        if result.best_val is None:
            table.add_row(
                "validation",
                f"none yet (the first comes at step {self.config.eval_every}); the checkpoint holds the latest weights",
            )
        else:
            per = "char" if self.tokens == "char" else "token"
            label = f"best val loss (nats/{per})" if kind == "text" else "best val MSE (scaled)"
            table.add_row(label, f"{self._loss(result.best_val)} at step {result.best_step}")
            if kind == "text":
                table.add_row("best val bits/char", f"{result.best_bpc:.4f}")
            for row in meaning:
                table.add_row(*row)
        calibration = getattr(result, "calibration", None)
        if calibration is not None:
            table.add_row("80% intervals", _calibration_line(calibration))
        table.add_row("steps", str(result.steps))
        planned = self.config.steps if self.config is not None else None
        if getattr(result, "limit", None) == "max_time" and planned and result.steps < planned:
            # The time limit came first: say so, or a short run looks like a finished one.
            table.add_row(
                "stopped at the time limit",
                f"{self.config.max_time:g} s, after {result.steps} of {planned} "
                "steps (a busy machine trains slower); --max-time or --steps changes the limits",
            )
        if result.stopped_by == "early":
            table.add_row(
                "stopped early",
                f"the validation loss stayed above its best (step {result.best_step}) for "
                f"{self.config.patience} evaluations: more steps would overfit; the checkpoint holds the best weights",
            )
        table.add_row("training time", f"{result.elapsed:.1f}s")
        table.add_row(f"{self.unit}/s", f"{result.items_per_sec:,.0f}")
        table.add_row("checkpoint", result.path)
        console.print(table)
