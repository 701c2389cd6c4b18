"""How many torch threads a training step gets: measured while training, since crowded cores make several threads slower than one."""

from __future__ import annotations

import math
import time

import torch


# Steps in a row that must look crowded before a run that keeps its thread count says so.
CROWDED_NOTE = 20


class ThreadTuner:
    """Times a training step on a single torch thread against the step before it, when the cores
    look crowded or every `period` steps, and keeps whichever thread count was faster.

    torch's OpenMP threads wait for each other by spinning. When another multi-threaded process
    wants the same cores, every operation waits for a thread that is not running: measured on 2
    cores, two default text trainings side by side ran at 200 characters/s each with two threads,
    against about 7,000 each on one (11,000 alone on two). A step that got much less CPU time than
    its threads could have used (spinning counts as CPU time, so an uncrowded step gets nearly
    all of it) means the cores are shared, and the probe runs at once; otherwise it runs only
    every `period` steps, so a short run on a quiet machine never pays for a slow probe step.
    A thread count that changes mid-run must not change what a seed trains: the trainer first
    checks that one thread computes its gradients bit for bit as several do (Trainer.threads_agree;
    often so, since the thread count splits the work, not the sums, but not for every model and
    CPU). Where they differ, `switching` is off: the count stays, and `note_crowded` says once
    when the cores look shared, so the user can choose one thread (OMP_NUM_THREADS=1) themselves.
    """

    def __init__(self, period: int = 100, margin: float = 1.2, recheck: int = 10, crowded: float = 0.75,
                 active: bool = True):
        """`active`: False where the thread count does not set the pace (a GPU does the work)."""
        self.most = torch.get_num_threads()
        self.active = active
        self.period, self.margin, self.recheck, self.crowded_share = period, margin, recheck, crowded
        self.steps, self.before, self.probing = 0, math.inf, None
        self.last_probe, self.crowded, self.started = -recheck, False, (0.0, 0.0)
        self.wait = recheck  # steps between probes while crowded; doubles each time one thread loses
        # Whether the last probe ran because the cores looked crowded (rather than on schedule):
        # only then does a win say anything about other processes. On a quiet machine one thread
        # can simply be faster for a small model, whose operations are too short to share.
        self.probe_crowded = False
        # False where the thread count changes the weights: then only crowding is noted, once.
        self.switching = True
        self.crowded_steps, self.noted = 0, False

    def before_step(self) -> None:
        self.steps += 1
        self.started = (time.perf_counter(), time.process_time())
        if not self.active or not self.switching or self.most <= 1 or self.steps < 3:  # not the slow first steps
            return
        since = self.steps - self.last_probe
        if self.steps % self.period == 0 or (self.crowded and since >= self.wait):
            self.last_probe = self.steps
            self.probe_crowded = self.crowded
            self.probing = torch.get_num_threads()
            torch.set_num_threads(1 if self.probing > 1 else self.most)

    def note_crowded(self) -> bool:
        """True once, when the cores have looked shared for CROWDED_NOTE steps in a row of a run
        that keeps its thread count (`switching` off)."""
        if self.switching or self.noted or not self.active:
            return False
        self.crowded_steps = self.crowded_steps + 1 if self.crowded else 0
        self.noted = self.crowded_steps >= CROWDED_NOTE
        return self.noted

    def restore(self) -> None:
        """Leave torch with the thread count it had (a library caller's setting)."""
        torch.set_num_threads(self.most)

    def after_step(self, seconds: float) -> int | None:
        """Record the step's wall time; return the new thread count when the probe won."""
        threads, (wall, cpu) = torch.get_num_threads(), self.started
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        self.crowded = threads > 1 and cpu < self.crowded_share * threads * wall
        if self.probing is None:
            self.before = seconds
            return None
        kept, self.probing = self.probing, None
        if seconds * self.margin < self.before:
            self.wait = self.recheck
            return threads
        # Where idle threads sleep rather than spin (OMP_WAIT_POLICY=PASSIVE), a quiet machine
        # also looks crowded: probes that keep losing come ever more rarely.
        self.wait = min(2 * self.wait, self.period)
        torch.set_num_threads(kept)
        return None
