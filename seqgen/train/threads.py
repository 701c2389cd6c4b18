"""How many torch threads a training run gets: chosen once when the run starts, kept to its end,
stored in the checkpoint and taken again by `resume`.

torch's OpenMP threads meet at a barrier after every operation. When other processes want the
same cores, one of the run's threads is often waiting for the scheduler, and every operation waits
for it: measured on a 2-core AMD EPYC with two busy processes beside it (benchmarks/busy.py), the
default sine run trained 8,000-19,000 values/s on two threads against 85,000-94,000 on one. On
the same cores left quiet two threads are worth having (267,000-312,000 against 114,000-146,000).
Letting idle threads sleep instead of spin (OMP_WAIT_POLICY=PASSIVE) is no way out: 41,000-50,000
quiet, 47,000 busy, since the barriers remain.

So the count is measured, once, before the first step (`measure_threads`): a few forward and
backward passes of the run's own model on its first window, alternately on all threads and on
one, and several threads are kept only when they are clearly faster. Nothing is trained by the
probe (the gradients are thrown away and the random state is put back), so it changes no weight.

The count is then fixed for the whole run, because it can change the weights a seed trains: a
sum split over threads is added in another order. A later probe that switched counts mid-run
would make the weights depend on the machine's load at that moment; a run that starts on busy
cores and becomes quiet keeps one thread (say `threads` to choose). Given `threads`, or
OMP_NUM_THREADS in the environment, no probe runs: that is how to train the same weights from the
same seed whatever the load (see docs/reference.md, "Reproducibility").
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable

import torch

from ..errors import UsageError

# Several threads are kept only when a step on them takes at most this share of a step on one:
# on a quiet machine they are 1.5-2.5x faster for the default models, on a busy one 4-10x slower.
KEEP_SEVERAL = 0.9
# Timed passes on each count; one untimed pass on each goes first (the first calls are slow).
PROBE_PASSES = 2
# A probe whose several-thread pass takes this much longer than one thread's ends at once.
CLEARLY_SLOWER = 2.0


def threads_asked(threads: int | None) -> int | None:
    """The count a user chose: `threads`, else OMP_NUM_THREADS, else None (to be measured)."""
    if threads is not None:
        if threads < 1:
            raise UsageError(f"`threads` must be >= 1, got {threads}")
        return threads
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) >= 1 else None


def measure_threads(pass_: Callable[[], None], most: int, clock: Callable[[], float] = time.perf_counter) -> int:
    """The thread count to train on: `most` when a pass (a forward and backward pass of the run's
    model) is clearly faster on `most` threads than on one, else 1. Leaves torch on that count."""
    if most <= 1:
        torch.set_num_threads(1)
        return 1
    times: dict[int, list[float]] = {most: [], 1: []}
    for round_ in range(PROBE_PASSES + 1):
        for threads in (most, 1):
            torch.set_num_threads(threads)
            start = clock()
            pass_()
            if round_ > 0:
                times[threads].append(clock() - start)
        if round_ > 0 and times[most][-1] > CLEARLY_SLOWER * times[1][-1]:
            break
    chosen = most if statistics.median(times[most]) <= KEEP_SEVERAL * statistics.median(times[1]) else 1
    torch.set_num_threads(chosen)
    return chosen
