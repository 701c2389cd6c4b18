"""How many torch threads a training run gets: chosen once when the run starts, kept to its end,
stored in the checkpoint and taken again by `resume`.

torch's OpenMP threads meet at a barrier after every operation. When other processes want the
same cores, one of the run's threads is often waiting for the scheduler, and every operation waits
for it: measured on a 2-core AMD EPYC with two busy processes beside it (benchmarks/busy.py), the
default sine run trained 8,000-19,000 values/s on two threads against 85,000-94,000 on one. On
the same cores left quiet two threads are worth having (267,000-312,000 against 114,000-146,000).
Letting idle threads sleep instead of spin (OMP_WAIT_POLICY=PASSIVE) is no way out: 41,000-50,000
quiet, 47,000 busy, since the barriers remain.

So the count is measured, once, before the first step (`measure_threads`). First, how many of
the cores other processes leave idle, over a fifth of a second (Linux's /proc/stat): on busy
cores the run takes one thread without timing anything, because a timing of a few short passes
can catch both threads running by luck (it did: two threads chosen beside two busy processes,
then 50,000 values/s where one thread made 125,000-164,000). Then, with cores to spare, a few
forward and backward passes of the run's own model on its first window, alternately on all
threads and on one; several threads are kept unless their fastest pass is slower than one
thread's. Nothing is trained by the probe (the gradients are thrown away and the random state is
put back), so it changes no weight.

The count is then fixed for the whole run, because it can change the weights a seed trains: a
sum split over threads is added in another order. A later probe that switched counts mid-run
would make the weights depend on the machine's load at that moment; a run that starts on busy
cores and becomes quiet keeps one thread (say `threads` to choose). Given `threads`, or
OMP_NUM_THREADS in the environment, no probe runs: that is how to train the same weights from the
same seed whatever the load (see docs/reference.md, "Reproducibility").
"""

from __future__ import annotations

import os
import time
from typing import Callable, NamedTuple

import torch

from ..device import idle_cores, usable_cores
from ..errors import UsageError

# Several threads are kept when their fastest pass takes at most this share of one thread's. The
# cores are known to be idle by then, so a tie costs nothing either way; a margin did: the sine
# default's passes are only 1.2-1.3x faster on two threads (7.0-7.7 ms against 9.1-10.0) where its
# whole steps are 1.4x (330,000-340,000 values/s against 240,000), and a 0.9 margin chose one
# thread on a quiet machine in two runs of three.
KEEP_SEVERAL = 1.0
# Timed passes on each count; one untimed pass on each goes first (the first calls are slow).
PROBE_PASSES = 3
# The timed rounds stop once the probe has taken this long (seconds): a pass of the full-size text
# model takes about half a second, and one timed pair of it says enough.
PROBE_BUDGET = 2.0
# A probe whose several-thread pass takes this much longer than one thread's ends at once (where
# the cores' idle time cannot be read, this is how busy cores show).
CLEARLY_SLOWER = 2.0


def check_threads(threads: int) -> None:
    """A thread count must be at least one and at most the cores this process may use: more
    threads than cores wait for each other at every operation (64 on 2 cores trained 80 times
    slower than one)."""
    if threads < 1:
        raise UsageError(f"`threads` must be >= 1, got {threads}")  # as TrainConfig.check says it
    if threads > usable_cores():
        raise UsageError(f"`threads` {threads}: this process may use {usable_cores()} cores; give at most that")


def threads_asked(threads: int | None) -> int | None:
    """The count a user chose: `threads`, else OMP_NUM_THREADS, else None (to be measured)."""
    if threads is not None:
        check_threads(threads)
        return threads
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) >= 1 else None


class ThreadChoice(NamedTuple):
    """A thread count and why: measured, "one core" (no other to use), "busy" (other processes
    keep the cores busy), "faster" (several threads timed faster) or "slower" (they were not);
    otherwise "asked", "resumed" (a resumed run's own) or "fewer cores" (a resumed run's own count
    was more than this machine's cores)."""

    threads: int
    why: str


def measure_threads(
    pass_: Callable[[], None],
    most: int,
    clock: Callable[[], float] = time.perf_counter,
    idle: Callable[[], float | None] = idle_cores,
) -> ThreadChoice:
    """The thread count to train on: as many of `most` as the cores other processes leave idle,
    and of those, several unless a pass (a forward and backward pass of the run's model) is
    slower on them than on one thread. Leaves torch on that count."""
    if most <= 1:
        torch.set_num_threads(1)
        return ThreadChoice(1, "one core")
    free = idle()
    if free is not None:
        most = min(most, max(1, int(free + 0.5)))
    if most <= 1:
        torch.set_num_threads(1)
        return ThreadChoice(1, "busy")
    times: dict[int, list[float]] = {most: [], 1: []}
    began = clock()
    for round_ in range(PROBE_PASSES + 1):
        for threads in (most, 1):
            torch.set_num_threads(threads)
            start = clock()
            pass_()
            if round_ > 0:
                times[threads].append(clock() - start)
        if round_ > 0 and (times[most][-1] > CLEARLY_SLOWER * times[1][-1] or clock() - began > PROBE_BUDGET):
            break
    # The fastest pass of each: on quiet cores the others are slower only by chance.
    chosen = most if min(times[most]) <= KEEP_SEVERAL * min(times[1]) else 1
    torch.set_num_threads(chosen)
    return ThreadChoice(chosen, "faster" if chosen > 1 else "slower")
