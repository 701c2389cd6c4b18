"""The `seqgen` command: a thin typer layer over the library, one module per group of commands.
stdout carries data only; everything for humans goes to stderr through one rich Console (which
honours NO_COLOR). Library errors name parameters; `app.as_flags` words them as flags."""

import os

# One BLAS thread for NumPy: a generation step's small matrix products gain nothing from a second
# thread, and OpenBLAS's spinning threads slow each step many times over whenever another process
# wants the cores (measured: batch-64 steps 2 ms vs 30-50 ms on 2 busy cores). It must be set
# before NumPy is first imported; a user's own setting wins. Torch's threads are not affected.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from ..device import keep_freed_memory  # noqa: E402

# Every command reuses freed memory instead of faulting in fresh pages (see device.py).
keep_freed_memory()

from . import train, pretrain, sample, forecast, checkpoints, serve  # noqa: E402  (registers the commands, in --help's order)
from .app import app, main  # noqa: E402

__all__ = ["app", "main", "train", "pretrain", "sample", "forecast", "checkpoints", "serve"]
