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
