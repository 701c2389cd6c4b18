"""How many torch threads a training step gets: measured while training, since crowded cores make several threads slower than one."""

from __future__ import annotations

import math
import time

import torch


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
    One thread or several compute the same weights here, bit for bit (the thread count splits the
    work, not the sums), so seeded runs stay reproducible.
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

    def before_step(self) -> None:
        self.steps += 1
        self.started = (time.perf_counter(), time.process_time())
        if not self.active or self.most <= 1 or self.steps < 3:  # not the slow first steps
            return
        since = self.steps - self.last_probe
        if self.steps % self.period == 0 or (self.crowded and since >= self.wait):
            self.last_probe = self.steps
            self.probe_crowded = self.crowded
            self.probing = torch.get_num_threads()
            torch.set_num_threads(1 if self.probing > 1 else self.most)

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
