"""Training: truncated backpropagation through time over contiguous tracks, with checkpoints.

Each stream is cut into `batch_size` contiguous tracks (or, for many short streams such as the
sine waves, each stream is a track). Consecutive windows of a track are consecutive steps, so
the recurrent state is carried from one window to the next and only detached between them.
"""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ..checkpoint import Checkpoint, save_checkpoint
from ..config import MIN_WINDOW, ModelConfig, TrainConfig
from ..data import Dataset
from ..data.calendar import model_streams, values_of
from ..device import keep_freed_memory, resolve_device, usable_cores
from .distributed import current as current_group, device_for
from ..errors import CheckpointError, DataError, TrainingError, UsageError
from ..kinds import kind_named
from ..model.network import SeqModel, State, detach_state, parameter_count, state_from_tensors, state_tensors
from .plan import RunPlan, fitted_to
from .precision import autocast, grad_scaler, hardware_runs, resolve_precision
from .threads import measure_threads, threads_asked


# Text validation during training runs the held-out tail as this many warmed-up pieces side by
# side (see evaluate_loss); `seqgen eval` runs it as one unbroken stream.
VAL_PIECES = 16

# A run that blows up goes back to its best weights with half the learning rate, this many times
# at most before it gives up. Text counts as blown up when both the validation loss and the
# smoothed training loss are this factor above their values at the best step: overfitting raises
# only the first, and a healthy run moves neither this much between two evaluations.
MAX_ROLLBACKS = 3
BLOWUP_FACTOR = 1.25
# A run stops early when each of its last `patience` validation losses is this factor above the
# best. A plateau never stops it (the best is among the last values, or they come back near it):
# only a rise that lasts. Text loss is in nats, where 5% is a clear rise; a series' loss is a
# mean squared error, which wanders by 2-4x between evaluations of a run that is still improving
# (the default sine run), so its rise must be larger.
OVERFIT_FACTOR = {"text": 1.05, "series": 1.5}
GOLDEN_RATIO = (math.sqrt(5) - 1) / 2


@dataclass
class TrainResult:
    path: str
    steps: int
    elapsed: float
    best_val: float | None
    best_step: int
    items_per_sec: float
    stopped_by: str  # "limit", "interrupt", "early" (the validation loss kept above its best)
    best_bpc: float | None = None  # text: the best validation loss in bits per character
    calibration: object | None = None  # a series model's interval calibration (calibrate.Calibration)
    limit: str | None = None  # the limit reached, as `Trainer.limit_reached` names it


Event = dict

EventHandler = Callable[[Event], None]


def _float_state(state):
    """The carried state in float32: under autocast an RNN may hand it back in bfloat16, and the
    next window (and a checkpoint of it) must start from the same float32 state either way."""
    if isinstance(state, tuple):
        return tuple(t.float() for t in state)
    return state.float()


def make_tracks(
    streams: list[np.ndarray], batch_size: int, window: int, label: str = "the training data"
) -> np.ndarray:
    """Arrange the training streams as a (tracks, length) array of contiguous tracks ((tracks,
    length, inputs) for streams with calendar inputs).

    One stream is cut into `batch_size` tracks (fewer if it is too short to give each track one
    window); several streams are cut into tracks as long as the shortest of them. What does not
    fill a whole track is left out at a stream's start: its most recent values matter most to a
    forecast.
    """
    if len(streams) == 1:
        stream = streams[0]
        # Each track needs window + 1 items (inputs and the targets shifted by one).
        count = min(batch_size, len(stream) // (window + 1))
        if count < 1:
            shorter = (
                f"give more data or a smaller `window` (at least {MIN_WINDOW})"
                if window > MIN_WINDOW
                else (
                    f"give at least {MIN_WINDOW + 1} values to train on (the training part, before the validation tail)"
                )
            )
            raise DataError(
                f"{label}: the training part has {len(stream)} items, fewer than one window of {window} "
                f"plus one; {shorter}"
            )
        length = len(stream) // count
        return stream[len(stream) - count * length :].reshape(count, length, *stream.shape[1:])
    length = min(len(s) for s in streams)
    if length < window + 1:
        raise DataError(f"the training streams are {length} items long, shorter than `window` {window} plus one")
    # Streams of other lengths (the series of a long table) give as many tracks of the shortest's
    # length as they hold, so no stream is cut down to the shortest.
    return np.concatenate([s[len(s) % length :].reshape(-1, length, *s.shape[1:]) for s in streams])


class Schedule:
    """Linear warm-up, then cosine decay to lr * lr_min_ratio over the run's length (steps or time)."""

    def __init__(self, config: TrainConfig, total_steps: int | None):
        self.config, self.total_steps = config, total_steps

    def fraction(self, step: int, elapsed: float) -> float:
        """How far through the run the schedule is. A run with a step (or epoch) limit follows its
        steps, and a time limit beside it only stops it: following whichever limit was further
        along let a busy machine's slower steps change the learning rates, and a seed then gave
        other weights (seen with a series' default of 2,500 steps or 50 s). A run limited by
        time alone follows the time."""
        if self.total_steps:
            return min(1.0, step / self.total_steps)
        if self.config.max_time:
            return min(1.0, elapsed / self.config.max_time)
        return 0.0

    def lr(self, step: int, elapsed: float) -> float:
        c = self.config
        if step < c.warmup:
            return c.lr * (step + 1) / c.warmup
        cosine = 0.5 * (1 + math.cos(math.pi * self.fraction(step, elapsed)))
        return c.lr * (c.lr_min_ratio + (1 - c.lr_min_ratio) * cosine)


class Trainer:
    """Holds the model, optimizer and counters of one run; `run()` trains until a limit or a stop."""

    def __init__(
        self,
        data: Dataset,
        model_config: ModelConfig,
        config: TrainConfig,
        out: str | Path,
        resume: Checkpoint | None = None,
    ):
        config.check()
        model_config = fitted_to(model_config, data)  # a copy: the caller's configuration stays as given
        self.data, self.model_config, self.config, self.out = data, model_config, config, Path(out)
        self.group = current_group()
        self.device = resolve_device(device_for(config.device))
        torch.manual_seed(config.seed)
        self.model = SeqModel(model_config).to(self.device)
        self.head = self.model.output  # what the outputs mean, and their loss (model/heads.py)
        if config.free_run and model_config.calendar:
            raise UsageError(
                "`free_run` feeds the model's output back as its next input, without the calendar inputs "
                "this model reads beside it: give `calendar` none, or leave out `free_run`"
            )
        if config.free_run and model_config.channels > 1:
            raise UsageError(
                "`free_run` trains a model of one value per step; leave it out for channels modelled jointly"
            )
        if config.free_run and not self.head.feeds_back:
            # The free run feeds each output back as the next input, and only a point head's output
            # is a value; a likelihood head's is a distribution's parameters, the oscillator's a correction.
            raise UsageError(
                f"`free_run` feeds the model's output back as its next input, which works only with "
                f"`head` point (its output is the next value); this model's head is {self.head.name}: "
                "give `head` point, or leave out `free_run`"
            )
        # Under torchrun the forward pass goes through DDP, which averages the gradients across
        # ranks; validation, checkpoints and state_dict names use the bare model.
        self.net = self.model
        if self.group.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = make_optimizer(self.model, config)
        # A resumed run keeps the precision it began with, whatever `auto` would choose now (a
        # precision named for the resumed run is taken: the weights then go on less exactly).
        trained_in = resume.meta["progress"].get("precision", "fp32") if resume is not None else None
        stored = trained_in if config.precision == "auto" else None
        if trained_in == "fp16" and (stored or config.precision) == "fp16" and self.device.type != "cuda":
            raise UsageError(
                f"`resume` {resume.path}: that run trained in fp16, which runs on CUDA only; resume it with "
                "`device` cuda, or give `precision` bf16 or fp32 to go on in that"
            )
        if stored == "bf16" and not hardware_runs(self.device, "bf16", model_config.cell):
            raise UsageError(
                f"`resume` {resume.path}: that run trained in bf16, which this {self.device.type.upper()} "
                f"cannot run (no bfloat16 units, or no bfloat16 kernel for the {model_config.cell.upper()} "
                "cell); give `precision` fp32 to go on in float32"
            )
        self.precision = stored or resolve_precision(
            config.precision, self.device, model_config.cell, model_config.hidden, self.head.in_nats
        )
        self.scaler = grad_scaler(self.device, self.precision)
        # The torch threads of the training step: asked for, a resumed run's own, or measured
        # when the run starts (see threads.py); a GPU sets the pace elsewhere.
        self.threads = threads_asked(config.threads)
        self.threads_from = "asked"
        if self.threads is None and resume is not None and resume.meta["progress"].get("threads"):
            # More than this machine's cores would crawl (threads wait at every barrier): fewer,
            # though the weights may then differ from an uninterrupted run's.
            self.threads = min(resume.meta["progress"]["threads"], usable_cores())
            self.threads_from = "resumed" if self.threads == resume.meta["progress"]["threads"] else "fewer cores"
        label = data.source.get("path", "the training data")
        # A view of the (possibly memory-mapped) streams: each step copies only its own window.
        streams = [s[:k] for s, k in zip(model_streams(data), data.splits)]
        tracks = self.tracks = make_tracks(streams, config.batch_size, config.window, label)
        self.batch = min(config.batch_size, len(tracks))
        self.first_row, self.rows = self.group.share(self.batch)  # this rank's tracks of each batch
        self.groups = len(tracks) // self.batch
        self.windows = (tracks.shape[1] - 1) // config.window
        # The values at the end of each track that no window of an epoch reaches. Each epoch
        # starts its windows at another offset into them (see _offset), so that over the epochs
        # every value is trained on: for a short series these are a fifth of the data.
        self.spare = tracks.shape[1] - 1 - self.windows * config.window
        self.steps_per_epoch = self.groups * self.windows
        # Text losses are per token; times this they are per character of the validation text
        # (1 for characters, and for values), which compares models whatever their tokens.
        val = data.val_streams
        self.tokens_per_char = sum(len(s) for s in val) / max(1, sum(data.characters(s) for s in val))
        self.step, self.elapsed, self.items_seen = 0, 0.0, 0
        self.best_val: float | None = None
        self.best_step = 0
        self.best_weights: dict[str, np.ndarray] | None = None
        self.state: State | None = None
        self.head_state = None  # the output head's own state per track (OscillatorHead's sums)
        # A likelihood head's error over its predicted spread on validation data (see validation_pass).
        self.last_spread: float | None = None
        self.best_spread: float | None = None
        # The factor fitted to the validation tail at the end of a run (see calibrate.py).
        self.calibration = None
        self.last_loss: float | None = None
        self.loss_average: float | None = None  # smoothed training loss
        self.average_at_best: float | None = None
        self.lr_scale, self.rollbacks = 1.0, 0
        self.recent_vals: list[float] = []  # the validation losses of this session, for early stopping
        self.schedule = Schedule(config, self._total_steps())
        if resume is not None:
            self._restore(resume)

    @classmethod
    def from_plan(cls, plan: RunPlan) -> "Trainer":
        """The trainer of a finished plan (`seqgen.train.plan_run`), which it runs as it is."""
        return cls(plan.data, plan.model, plan.train, plan.out, resume=plan.resume)

    # --- limits -------------------------------------------------------------------------
    def _total_steps(self) -> int | None:
        limits = []
        if self.config.steps:
            limits.append(self.config.steps)
        if self.config.epochs:
            limits.append(max(1, round(self.config.epochs * self.steps_per_epoch)))
        return min(limits) if limits else None

    def _done(self) -> bool:
        return self.limit_reached() is not None

    def limit_reached(self) -> str | None:
        """The limit the run has reached ("steps", "epochs" or "max_time"), or None: a resumed run
        already at its limit has nothing left to do."""
        total = self.schedule.total_steps
        if total is not None and self.step >= total:
            return "steps" if self.config.steps and self.step >= self.config.steps else "epochs"
        if self.config.max_time and self.elapsed >= self.config.max_time:
            return "max_time"
        return None

    # --- one step -----------------------------------------------------------------------
    def _window(self) -> tuple[torch.Tensor, torch.Tensor]:
        position = self.step % self.steps_per_epoch
        group, window = divmod(position, self.windows)
        if window == 0 or self.state is None:
            self.state = self.model.init_state(self.rows, self.device)
            self.head_state = self.head.init_state(self.rows)
        rows = self._share(group)
        start = self._offset() + window * self.config.window
        chunk = self._rows(rows, start, start + self.config.window + 1)
        return chunk[:, :-1], values_of(chunk[:, 1:], self.model_config.channels)

    def _offset(self) -> int:
        """Where this epoch's windows start in each track: at 0 in the first epoch, then spread
        evenly over the spare values by the golden-ratio sequence, whatever the number of epochs."""
        epoch = self.step // self.steps_per_epoch
        return int((self.spare + 1) * ((epoch * GOLDEN_RATIO) % 1.0))

    def _share(self, group: int) -> slice:
        first = group * self.batch + self.first_row
        return slice(first, first + self.rows)

    def _rows(self, rows: slice, start: int, stop: int) -> torch.Tensor:
        """tracks[rows, start:stop] as a tensor on the device (token ids as int64, values as float32)."""
        dtype = self.model.reader.dtype
        return torch.from_numpy(np.array(self.tracks[rows, start:stop], dtype=dtype)).to(self.device)

    def train_step(self) -> float:
        """One optimizer step on the next window; returns the training loss."""
        x, y = self._window()
        if self.config.input_noise:
            x = self.model.reader.noisy(x, self.config.input_noise)  # token ids take none
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.lr(self.step, self.elapsed) * self.lr_scale
        self.model.train()
        loss, state, self.head_state = self._forward_loss(self.net, x, y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
            self.optimizer.step()
        self.state = detach_state(state)
        self.step += 1
        self.items_seen += y.numel() * self.group.world
        return loss.item()

    def _forward_loss(self, net, x: torch.Tensor, y: torch.Tensor):
        """A window's training loss through `net` (the model, or DDP around it), with the
        recurrent state and the head's state it ends in."""
        with autocast(self.device, self.precision):
            out, state = net(x, self.state)
            out = out.float()  # the loss, and the head's arithmetic, in float32
            state = _float_state(state)
            out, head_state, mask = self.head.forward(values_of(x, self.model_config.channels), out, self.head_state)
            loss = self._loss(out, y) if mask is None else self.head.loss(out, y, mask)
            horizon = self._free_run_horizon()
            if horizon:
                loss = loss + self._free_run_loss(out[:, -1], state, horizon)
        return loss, state, head_state

    def _probe_pass(self) -> None:
        """A forward and backward pass of the next window that trains nothing: what the thread
        count is measured on (see threads.py). The gradients are dropped and the random state
        (dropout's masks) put back."""
        x, y = self._window()
        random = torch.get_rng_state()
        self.model.train()
        self.model.zero_grad(set_to_none=True)
        loss, _, _ = self._forward_loss(self.model, x, y)  # not through DDP: nothing to share with other ranks
        loss.backward()
        self.model.zero_grad(set_to_none=True)
        torch.set_rng_state(random)

    def _settle_threads(self, emit: EventHandler) -> None:
        """Set torch's thread count for the run: asked for, stored by a resumed run, or measured now."""
        if self.device.type != "cpu":
            return
        why = self.threads_from  # asked for, or a resumed run's own
        if self.threads is None:
            self.threads, why = measure_threads(self._probe_pass, torch.get_num_threads())
        torch.set_num_threads(self.threads)
        emit({"type": "threads", "threads": self.threads, "measured": why})

    def _free_run_horizon(self) -> int:
        """Free-running steps for this window: growing from 0 after the first `free_run_start` of
        the run to `free_run` at `free_run_full` (a point head's only: see __init__)."""
        c = self.config
        if not c.free_run:
            return 0
        fraction = self.schedule.fraction(self.step, self.elapsed)
        ramp = (fraction - c.free_run_start) / max(c.free_run_full - c.free_run_start, 1e-9)
        return int(round(c.free_run * min(max(ramp, 0.0), 1.0)))

    def _free_run_loss(self, first: torch.Tensor, state: State, horizon: int) -> torch.Tensor:
        """Let the model continue from the window's end on its own output, as it will when it
        generates, and score that continuation against the true values that follow.

        Teacher forcing alone never shows the model its own errors, so they compound once it
        free-runs; backpropagating through its own feedback loop teaches it to stay on the signal.
        """
        position = self.step % self.steps_per_epoch
        group, window = divmod(position, self.windows)
        end = self._offset() + (window + 1) * self.config.window + 1
        truth = self._rows(self._share(group), end, end + horizon)
        prediction, predictions = first, []
        for _ in range(truth.shape[1]):
            prediction, state = self.model.step(prediction, state)
            predictions.append(prediction)
        if not predictions:
            return first.new_zeros(())
        return self.head.loss(torch.stack(predictions, dim=1), truth)

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """A window's loss where every prediction counts: the head's (cross-entropy for tokens)."""
        return self.head.loss(out, y)

    # --- validation ---------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> float:
        """Mean validation loss per item (see evaluate_loss)."""
        pieces = VAL_PIECES if self.head.in_nats else 1
        if not self.group.is_main:
            return self.group.broadcast(0.0)
        with autocast(self.device, self.precision):
            loss, self.last_spread = validation_pass(
                self.model, self.data, self.config.window, self.device, pieces, head=self.head
            )
        return self.group.broadcast(loss)

    # --- the run --------------------------------------------------------------------------
    def run(self, on_event: EventHandler | None = None, should_stop: Callable[[], bool] = lambda: False) -> TrainResult:
        """Train until a limit is reached or `should_stop()` turns true; save the checkpoint on the way."""
        main = self.group.is_main
        emit = (on_event if main else None) or (lambda event: None)
        metrics_path = metrics_log_path(self.out)
        if main:
            check_writable(self.out)
            if self.step == 0:
                metrics_path.unlink(missing_ok=True)
        emit(
            {
                "type": "start",
                "parameters": parameter_count(self.model),
                "device": str(self.device),
                "precision": self.precision,
                "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.schedule.total_steps,
                "batch": self.batch,
                "processes": self.group.world,
                "step": self.step,
                "batch_asked": self.config.batch_size,
                "streams": len(self.data.streams),
                "train_values": sum(len(t) for t in self.data.train_streams),
            }
        )
        # This session's speed counts its own steps over its own training time (evaluations
        # excluded): a resumed run's figure is not diluted by the steps or time before it.
        elapsed_before = self.elapsed
        keep_freed_memory()  # each step's buffers reuse the last step's pages (see device.py)
        threads_before = torch.get_num_threads()
        try:
            self._settle_threads(emit)
            stopped_by, session_items = self._train_steps(emit, should_stop, metrics_path, elapsed_before)
            if stopped_by == "interrupt":
                # No evaluation here: the checkpoint must be what an uninterrupted run would hold at this step.
                self.save()
            elif self.step > 0 and self.step % self.config.eval_every != 0:
                self._evaluate_and_save(emit, metrics_path)
            if stopped_by != "interrupt":
                self._calibrate(emit, should_stop)
        finally:
            torch.set_num_threads(threads_before)  # a library caller's own setting
        rate = session_items / max(self.elapsed - elapsed_before, 1e-9)
        return TrainResult(
            str(self.out),
            self.step,
            self.elapsed,
            self.best_val,
            self.best_step,
            rate,
            stopped_by,
            self.bits_per_char(self.best_val),
            self.calibration,
            self.limit_reached(),
        )

    def _calibrate(self, emit: EventHandler, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Fit the spread of a series model's forecasts to its validation tail (see calibrate.py)
        and store the factor with the best weights."""
        from ..calibrate import calibrate

        if not self.head.continuous or self.best_weights is None or self.data.source.get("type") == "sine":
            return
        if self.group.is_main and self.calibration is None:  # else a resumed run's weights are those calibrated
            try:
                self.calibration = calibrate(
                    Checkpoint(self.meta(), self.best_weights),
                    self.data,
                    seed=self.config.seed,
                    should_stop=should_stop,
                )
            except (MemoryError, ValueError, FloatingPointError) as e:
                # The run is trained and saved; its forecasts widen by the one-step ratio, as before calibration.
                emit({"type": "calibration_failed", "reason": f"{type(e).__name__}: {e}"})
                self.calibration = None
        if self.group.is_main and self.calibration is not None:
            emit({"type": "calibrated", **self.calibration.to_dict()})
        self.save()  # on every rank: saving gathers the batch's state from all of them

    def _train_steps(
        self, emit: EventHandler, should_stop: Callable[[], bool], metrics_path: Path, elapsed_before: float
    ) -> tuple[str, int]:
        """The loop of `run`: returns why it stopped and how many items it trained on."""
        stopped_by, session_items = "limit", 0
        last, stop = time.perf_counter(), False
        while not self._done():
            # Ranks stop only on the flag they agreed on after a step; a lone process may also
            # stop on a request that came in during the evaluation just before.
            if stop or (self.group.world == 1 and should_stop()):
                stopped_by = "interrupt"
                break
            loss = self.train_step()
            now = time.perf_counter()
            self.elapsed += now - last
            last = now
            several = self.group.world > 1
            loss, stop, self.elapsed = self.group.agree(loss, several and should_stop(), self.elapsed)
            self.last_loss = loss
            session_items += self.batch * self.config.window
            if not math.isfinite(loss):
                if not self._roll_back(f"the training loss became {loss}", emit):
                    raise self._diverged(loss)
                continue
            self.loss_average = loss if self.loss_average is None else 0.95 * self.loss_average + 0.05 * loss
            rate = session_items / max(self.elapsed - elapsed_before, 1e-9)
            emit(
                {
                    "type": "step",
                    "step": self.step,
                    "loss": loss,
                    "elapsed": self.elapsed,
                    "items_per_sec": rate,
                    "epoch": self.step / self.steps_per_epoch,
                    "fraction": self.schedule.fraction(self.step, self.elapsed),
                }
            )
            if self.step % self.config.eval_every == 0:
                self._evaluate_and_save(emit, metrics_path)
                last = time.perf_counter()  # evaluation time is not training time
                if self._overfitting():
                    stopped_by = "early"
                    break
        return stopped_by, session_items

    def _overfitting(self) -> bool:
        """Whether each of the last `patience` validation losses is well above the best one."""
        patience = self.config.patience
        recent = self.recent_vals[-patience:]
        if not patience or len(recent) < patience or self.best_val is None:
            return False
        return min(recent) > OVERFIT_FACTOR[self.data.kind] * self.best_val

    def _diverged(self, loss: float) -> TrainingError:
        # The weights are already spoiled, so nothing is saved: the file on disk is the last good one.
        kept = (
            f"the last good checkpoint, {self.out}, is kept" if self.out.exists() else "no checkpoint was written yet"
        )
        tried = f" (after {self.rollbacks} restarts from the best weights with a halved rate)" if self.rollbacks else ""
        return TrainingError(
            f"the training loss became {loss} at step {self.step}{tried}; {kept}; try a lower `lr` (now {self.config.lr:g})"
        )

    def _blew_up(self, val: float) -> bool:
        if not self.head.in_nats or self.best_val is None or self.average_at_best is None:
            return False
        average = self.loss_average if self.loss_average is not None else math.inf
        return val > BLOWUP_FACTOR * self.best_val and average > BLOWUP_FACTOR * self.average_at_best

    def _roll_back(self, reason: str, emit: EventHandler) -> bool:
        """Go back to the best weights with fresh optimizer moments and half the learning rate.

        Returns False (nothing done) when there are no best weights yet or the restarts are used up.
        The steps since the best one are lost, but the rest of the time budget is not.
        """
        if self.best_weights is None or self.rollbacks >= MAX_ROLLBACKS:
            return False
        self.model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in self.best_weights.items()})
        self.optimizer.state.clear()
        self.lr_scale *= 0.5
        self.rollbacks += 1
        self.state, self.loss_average = None, self.average_at_best
        emit(
            {
                "type": "rollback",
                "step": self.step,
                "to_step": self.best_step,
                "reason": reason,
                "lr": self.config.lr * self.lr_scale,
            }
        )
        return True

    def _evaluate_and_save(self, emit: EventHandler, metrics_path: Path) -> None:
        val = self.validate()
        self.recent_vals.append(val)
        if self._blew_up(val):
            self._roll_back(f"the validation loss rose to {val:.4f} from {self.best_val:.4f}", emit)
        improved = self.best_val is None or val < self.best_val
        if improved:
            self.best_val, self.best_step = val, self.step
            self.best_weights = self.weights()
            self.calibration = None  # it was fitted to the weights these replace
            self.average_at_best = self.loss_average
            self.best_spread = self.last_spread
        record = {
            "step": self.step,
            "epoch": round(self.step / self.steps_per_epoch, 4),
            "elapsed": round(self.elapsed, 3),
            "val_loss": val,
            "best_val_loss": self.best_val,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": self.last_loss,
        }
        if self.head.in_nats:
            record["val_bpc"] = self.bits_per_char(val)
        self.save()
        if not self.group.is_main:
            return
        try:
            with open(metrics_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
        except OSError as e:
            raise TrainingError(
                f"cannot write {metrics_path} ({e.strerror}); the checkpoint {self.out} is saved"
            ) from None
        emit({"type": "eval", **record, "improved": improved})

    def bits_per_char(self, loss: float | None) -> float | None:
        """A text loss (nats per token) in bits per character of the validation text."""
        return None if loss is None or not self.head.in_nats else loss * self.tokens_per_char / math.log(2)

    # --- checkpoint -----------------------------------------------------------------------
    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def save(self) -> None:
        """Write best weights for generation plus everything `resume` needs."""
        latest = self.weights()
        training = {f"optim.{k}": v for k, v in _optimizer_tensors(self.optimizer).items()}
        if self.best_step != self.step:
            training.update({f"weights.{k}": v for k, v in latest.items()})
        if self.state is not None:
            # The whole batch's state, every rank's rows in order, so any number of processes can resume it.
            full = [self.group.gather_rows(t) for t in state_tensors(self.state)]
            training.update({f"state.{i}": t.cpu().numpy() for i, t in enumerate(full)})
        for name, value in (self.head_state or {}).items():
            training[f"head.{name}"] = self.group.gather_rows(torch.as_tensor(value), dim=0).cpu().numpy()
        if not self.group.is_main:
            return
        training["rng"] = torch.get_rng_state().numpy()
        save_checkpoint(self.out, self.meta(), self.best_weights or latest, training)

    def meta(self) -> dict:
        return {
            "model": asdict(self.model_config),
            "train": asdict(self.config),
            "data": data_meta(self.data),
            "progress": {
                "step": self.step,
                "elapsed": self.elapsed,
                "items_seen": self.items_seen,
                "epoch": self.step / self.steps_per_epoch,
                "best_val_loss": self.best_val,
                "best_step": self.best_step,
                "parameters": parameter_count(self.model),
                "lr_scale": self.lr_scale,
                "rollbacks": self.rollbacks,
                "loss_average": self.loss_average,
                "average_at_best": self.average_at_best,
                "processes": self.group.world,
                "spread_ratio": self.best_spread,
                "interval_scale": self.calibration.scale if self.calibration else None,
                "calibration": self.calibration.to_dict() if self.calibration else None,
                "precision": self.precision,
                "threads": self.threads,
                "best_val_bpc": self.bits_per_char(self.best_val),
                # float16's loss scale, found over the run: a fresh one would skip steps finding it again.
                **({"grad_scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
            },
            "optimizer": {"param_groups": self.optimizer.state_dict()["param_groups"]},
            "torch_version": torch.__version__,
        }

    def _restore(self, ckpt: Checkpoint) -> None:
        check_resume_compatible(ckpt, self.data, self.model_config, self.config)
        progress, training = ckpt.meta["progress"], ckpt.training
        latest = {k[8:]: v for k, v in training.items() if k.startswith("weights.")} or ckpt.weights
        self.model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in latest.items()})
        self.best_weights = dict(ckpt.weights)
        _load_optimizer(self.optimizer, training, ckpt.meta["optimizer"]["param_groups"], self.device)
        self.step, self.elapsed = progress["step"], progress["elapsed"]
        self.items_seen, self.best_val, self.best_step = (
            progress["items_seen"],
            progress["best_val_loss"],
            progress["best_step"],
        )
        self.lr_scale, self.rollbacks = progress.get("lr_scale", 1.0), progress.get("rollbacks", 0)
        self.loss_average, self.average_at_best = progress.get("loss_average"), progress.get("average_at_best")
        self.best_spread = progress.get("spread_ratio")
        # The stored best weights keep their calibration until better ones replace them, so a
        # resumed run interrupted before its own end still forecasts with calibrated intervals.
        # Only on the same data: resumed on more or other values, the tail is another one.
        if progress.get("calibration") and ckpt.data == data_meta(self.data):
            from ..calibrate import Calibration
            from ..config import from_dict

            try:
                self.calibration = from_dict(Calibration, progress["calibration"])
            except TypeError:  # a calibration stored before all its fields were: calibrated anew at the end
                self.calibration = None
        if self.scaler is not None and progress.get("grad_scaler"):
            self.scaler.load_state_dict(progress["grad_scaler"])
        rows = slice(self.first_row, self.first_row + self.rows)
        states = [
            torch.from_numpy(training[f"state.{i}"][:, rows].copy()).to(self.device)
            for i in range(2)
            if f"state.{i}" in training
        ]
        self.state = state_from_tensors(states, self.model_config.cell) if states else None
        head = {k[5:]: training[k][rows].copy() for k in training if k.startswith("head.")}
        self.head_state = head or (self.head.init_state(self.rows) if self.head and self.state is not None else None)
        if "rng" in training:
            torch.set_rng_state(torch.from_numpy(training["rng"].copy()))


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    out = {}
    for index, values in optimizer.state_dict()["state"].items():
        for key, value in values.items():
            out[f"{index}.{key}"] = torch.as_tensor(value).detach().cpu().numpy()
    return out


def _load_optimizer(optimizer: torch.optim.Optimizer, training: dict[str, np.ndarray], groups: list, device) -> None:
    state: dict[int, dict] = {}
    for name, value in training.items():
        if name.startswith("optim."):
            index, key = name[6:].split(".", 1)
            tensor = torch.from_numpy(value.copy())
            state.setdefault(int(index), {})[key] = tensor if key == "step" else tensor.to(device)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def data_meta(data: Dataset) -> dict:
    """What generation needs to know about the data: vocabulary or scaling, and a default prime."""
    meta = {
        "kind": data.kind,
        "name": data.name,
        "description": data.description,
        "source": data.source,
        "val_fraction": data.val_fraction,
    }
    meta.update(kind_named(data.kind).describe(data))
    return meta


def check_resume_compatible(ckpt: Checkpoint, data: Dataset, model_config: ModelConfig, config: TrainConfig) -> None:
    """`resume` must continue the same run: same kind of data, same vocabulary, same model shape."""
    if ckpt.kind != data.kind:
        raise UsageError(f"`resume` {ckpt.path}: that checkpoint was trained on {ckpt.kind} data, not {data.kind}")
    kind_named(data.kind).check_resumed(ckpt, data)
    if ckpt.described.target != data.target:
        raise UsageError(
            f"`resume` {ckpt.path}: that run modelled the series by its {ckpt.described.target}, "
            f"not its {data.target} (give the same `target`)"
        )
    if ckpt.model_config != model_config:
        theirs, ours = asdict(ckpt.model_config), asdict(model_config)
        diff = ", ".join(f"{k} {theirs[k]} vs {ours[k]}" for k in theirs if theirs[k] != ours.get(k))
        raise UsageError(f"`resume` {ckpt.path}: the model shape differs from the checkpoint's ({diff})")
    decay = ckpt.meta.get("train", {}).get("weight_decay", 0.0)
    if decay != config.weight_decay:
        raise UsageError(
            f"`resume` {ckpt.path}: that run's weight decay was {decay:g}, not {config.weight_decay:g} "
            "(give the same `weight_decay`)"
        )
    # Only stripped checkpoints lack the optimizer's metadata; its moments may be empty (saved
    # just after a restart from the best weights), and then they start afresh on resume.
    if "optimizer" not in ckpt.meta:
        raise CheckpointError(f"{ckpt.path} holds no training state to resume from")


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam; with `weight_decay`, AdamW decaying the matrices (weights, embeddings) and not the
    biases, whose size sets an offset, not a capacity."""
    if not config.weight_decay:
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": matrices, "weight_decay": config.weight_decay}, {"params": vectors, "weight_decay": 0.0}],
        lr=config.lr,
    )


@torch.no_grad()
def evaluate_loss(
    model: SeqModel,
    data: Dataset,
    warmup: int,
    device: torch.device | str = "cpu",
    pieces: int = 1,
    chunk: int = 4096,
    head=None,
) -> float:
    """Mean loss over every validation item, each counted once.

    With `pieces` = 1 the state runs through each validation tail in order from its start. With
    more, a tail is cut into that many contiguous pieces run side by side, each with its state
    warmed up on the `warmup` items before it: nearly the same figure, many times faster.
    """
    return validation_pass(model, data, warmup, device, pieces, chunk, head)[0]


@torch.no_grad()
def validation_pass(
    model: SeqModel,
    data: Dataset,
    warmup: int,
    device: torch.device | str = "cpu",
    pieces: int = 1,
    chunk: int = 4096,
    head=None,
) -> tuple[float, float | None]:
    """`evaluate_loss`, and for a likelihood head the root mean of each squared error over the
    variance it predicted: how much wider (above 1) or narrower its spread should be on data it
    was not trained on (None for other models). `head`: the model's own unless given."""
    model.eval()
    head = head or model.output
    total, count, spread = 0.0, 0, 0.0
    for rows, skip in _val_batches(data, warmup, pieces):
        state = None
        head_state = head.init_state(len(rows))
        # Rows are views of the streams (memmaps for files): only one chunk is copied at a time.
        for start in range(0, len(rows[0]) - 1, chunk):
            block = torch.as_tensor(
                np.stack([r[start : start + chunk + 1] for r in rows]).astype(model.reader.dtype), device=device
            )
            x, y = block[:, :-1], values_of(block[:, 1:], model.config.channels)
            out, state = model(x, state)
            out = out.float()  # under autocast the logits may be bfloat16; the loss is summed in float32
            out, head_state, _ = head.forward(values_of(x, model.config.channels), out, head_state)
            lo = max(skip - start, 0)
            if lo >= out.shape[1]:
                continue
            part_out, part_y = out[:, lo:], y[:, lo:]
            part_total, part_spread = head.validation_sums(part_out, part_y)
            total += part_total
            spread += part_spread
            count += part_y.numel()
    ratio = math.sqrt(spread / max(count, 1)) if head.probabilistic else None
    return total / max(count, 1), ratio


def _val_batches(data: Dataset, warmup: int, pieces: int) -> Iterator[tuple[list[np.ndarray], int]]:
    """Yield (rows, skip): equally long stretches of the streams, run side by side; each gives
    inputs row[:-1] and targets row[1:], and the loss of the first `skip` targets (warm-up) is not counted."""
    rows: dict[tuple[int, int], list[np.ndarray]] = {}
    for stream, split in zip(model_streams(data), data.splits):
        size = -(-(len(stream) - split) // pieces)
        for first in range(split, len(stream), size):
            last = min(first + size, len(stream))  # targets are stream[first:last]
            begin = max(first - 1 - warmup, 0)
            rows.setdefault((last - begin, first - 1 - begin), []).append(stream[begin:last])
    for (_, skip), group in rows.items():
        yield group, skip


def metrics_log_path(out: Path) -> Path:
    return out.with_name(out.stem + ".metrics.jsonl")


def check_writable(out: Path) -> None:
    """Fail before training, not after it, when the checkpoint cannot be written."""
    folder = out.parent if str(out.parent) else Path(".")
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise TrainingError(
            f"cannot write the checkpoint to {out}: {blocker} is a file, not a folder; choose another `out`"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".seqgen-write-test-"):
            pass
    except OSError as e:
        raise TrainingError(f"cannot write the checkpoint to {folder}/ ({e.strerror}); choose another `out`") from None
    if out.is_dir():
        raise UsageError(f"`out` {out} is a directory; give a file name such as {out}/model.safetensors")


@contextmanager
def stop_on_signals(
    exit_on_second: bool = True, on_second: Callable[[int], None] | None = None
) -> Iterator[Callable[[], int | None]]:
    """Turn the first SIGINT/SIGTERM into a polite stop request; a second SIGINT exits at once,
    after `on_second(signum)` (a program says there why it left without its summary).

    Yields a function that returns the signal number received, or None. Under torchrun a rank
    gets Ctrl-C twice (from the terminal and from torchrun), so there `exit_on_second` is off.
    """
    received: list[int] = []

    def handler(signum, frame):
        if received and exit_on_second:
            if on_second is not None:
                on_second(signum)
            os._exit(128 + signum)  # the user insists: leave without touching the checkpoint
        if not received:
            received.append(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: received[0] if received else None
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
