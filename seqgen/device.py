"""Where the work runs: the torch device a name stands for, and the CPU cores this process may use.

Torch is imported only when a device is resolved, so that the NumPy backend can ask for the
core count without it.
"""

from __future__ import annotations

import os

from .errors import UsageError


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_device(name: str):
    """Map a device name (auto, cpu, cuda, cuda:N or mps) to a torch device, failing clearly when it is absent."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("`device` cuda: no CUDA device is available here (use `device` cpu or auto)")
    if name == "mps" and not (mps and mps.is_available()):
        raise UsageError("`device` mps: Apple's MPS is not available here (use `device` cpu or auto)")
    if name != "cpu" and not name.startswith(("cuda", "mps")):
        raise UsageError(f"`device` must be auto, cpu, cuda or mps, got {name!r}")
    return torch.device(name)


# glibc's malloc hands an allocation above its mmap threshold (128 KiB at first, raised as such
# blocks are freed) straight to the kernel and back when it is freed, and returns the top of its
# heap once more than twice that is free. A training step allocates and frees the same
# megabyte-sized buffers every time, so each step paid for fresh pages: the default sine run
# trained 139,000-160,000 values/s on one thread, and 235,000-254,000 with both limits raised
# (2-core AMD EPYC; benchmarks/busy.py). These are the largest values glibc accepts for the
# first (32 MiB on 64-bit) and a bound on the memory kept idle for the second.
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 512 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for the next allocation of its size instead of
    returning it to the kernel (see above). Process-wide; does nothing (False) without glibc."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
        _ = ctypes.CDLL(None).gnu_get_libc_version  # glibc's own; musl's mallopt does nothing
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, TRIM_THRESHOLD))


def idle_cores(interval: float = 0.2) -> float | None:
    """How many of this process's cores were idle over the next `interval` seconds (this process
    sleeps meanwhile), from Linux's /proc/stat; None where there is no such file."""
    import time

    cores = {f"cpu{n}" for n in (os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else ())}
    first = _cpu_times(cores)
    if not first:
        return None
    time.sleep(interval)
    second = _cpu_times(cores)
    idle = total = 0
    for name, (idle_then, total_then) in first.items():
        idle_now, total_now = second.get(name, (idle_then, total_then))
        idle, total = idle + idle_now - idle_then, total + total_now - total_then
    return len(first) * idle / total if total > 0 else None


def _cpu_times(cores: set[str]) -> dict[str, tuple[int, int]]:
    """Per core: (idle, total) clock ticks since boot, as /proc/stat counts them."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            lines = stat.read().splitlines()
    except OSError:
        return {}
    times = {}
    for line in lines:
        name, *fields = line.split()
        if name in cores and len(fields) >= 5:
            ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
            times[name] = (ticks[3] + ticks[4], sum(ticks))
    return times
