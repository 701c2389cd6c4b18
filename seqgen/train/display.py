"""Training as people watch it: live progress on stderr (a bar on a terminal, lines in a log),
the notes a run's events call for, a text model's samples, and the summary at the end.

Messages name parameters in backquotes; `word` (given by the command line) says them as flags.
"""

from __future__ import annotations

from typing import Callable, Optional

from ..console import console, say
from ..kinds import kind_named

# Without `sample_every`, a sample at a validation at most this often (training seconds): a
# five-minute run shows ten, a small text validated every few seconds does not bury its lines.
DEFAULT_SAMPLE_SECONDS = 30.0


def sample_schedule(sample_every: Optional[int], quiet: bool) -> tuple[int, float]:
    """(every how many validations, at least how many seconds apart) for `with_samples`."""
    if quiet:
        return 0, 0.0
    if sample_every is None:
        return 1, DEFAULT_SAMPLE_SECONDS
    return sample_every, 0.0


def show_sample(event: dict) -> None:
    say(f"sample at step {event['step']}:", style="bold")
    text = event["text"].rstrip("\n")
    say("\n".join("  " + line for line in text.split("\n")), style="dim")


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
    """Live progress on stderr: a bar on a terminal, otherwise a line per evaluation (at most every
    EVAL_LINE_SECONDS) or, with `log_every`, every that many steps."""

    def __init__(
        self,
        quiet: bool,
        kind: str,
        config,
        log_every: Optional[int] = None,
        tokens: str = "char",
        word: Callable[[str], str] = str,
    ):
        self.quiet, self.kind, self.config, self.log_every, self.tokens = quiet, kind, config, log_every, tokens
        self.word = word  # a message's `parameters` as the caller names them
        self.progress = None
        self.task = None
        self.val = "-"
        self.unit = kind_named(kind).unit(tokens)
        self.pending: Optional[tuple[int, str]] = None  # a `log_every` line waiting for its step's evaluation
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
            self._flush()  # a `log_every` line waits only for an evaluation of its own step, to share its line
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
                say(self.word(self._small_batch(event)))
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
            say(
                self.word(
                    f"threads: {count} torch thread{'s' if count > 1 else ''} ({why}); `threads` N fixes the count"
                )
            )
        elif kind == "sample":
            show_sample(event)
        elif kind == "calibration_failed":
            say(
                f"warning: the intervals could not be calibrated ({event['reason']}); forecasts widen the spread by "
                "the one-step error ratio",
                style="yellow",
            )
        elif kind == "rollback":
            # Shown even with `quiet`: the run changed course, and the user should know why.
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
        return kind_named(self.kind).loss_text(value)

    def _small_batch(self, event: dict) -> str:
        """Why the batch is smaller than `batch_size` asked, and what would give more tracks."""
        batch, asked = event["batch"], event["batch_asked"]
        if event["streams"] > 1:
            return f"note: batch {batch} instead of {asked}: the data has {event['streams']} streams, one track each"
        window = self.config.window
        return (
            f"note: batch {batch} instead of {asked}: the training part has {event['train_values']:,} "
            f"{self.unit}, enough for {batch} track{'s' if batch != 1 else ''} of at least one window ({window}) "
            f"plus one; every {self.unit[:-1]} is still trained on, and a smaller `window` gives more tracks"
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
            for name, text in kind_named(kind).summary_rows(result, self.tokens):
                table.add_row(name, text)
            for name, text in meaning:
                table.add_row(name, self.word(text))
        calibration = getattr(result, "calibration", None)
        if calibration is not None:
            table.add_row("80% intervals", _calibration_line(calibration))
        table.add_row("steps", str(result.steps))
        planned = self.config.steps if self.config is not None else None
        if getattr(result, "limit", None) == "max_time" and planned and result.steps < planned:
            # The time limit came first: say so, or a short run looks like a finished one.
            table.add_row(
                "stopped at the time limit",
                self.word(
                    f"{self.config.max_time:g} s, after {result.steps} of {planned} "
                    "steps (a busy machine trains slower); `max_time` or `steps` changes the limits"
                ),
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
