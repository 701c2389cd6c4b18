"""Mixed precision: the training step's arithmetic in bfloat16 (or float16 on CUDA), the weights,
optimizer state and checkpoints in float32.

`auto` decides by a rule, not by timing a probe, so that the same command and seed give the same
weights run after run on one machine: a timed probe would flip between choices when the machine
is busy. The rule comes from measurements on this project's 2-core Xeon with AMX (a 2x384 text
model, batch 32 x 128, autocast on the CPU): an LSTM step took 120 ms in bfloat16 against 255 ms
in float32 (2.1x), a GRU step 260 ms against 285 ms (1.1x: most of PyTorch's GRU runs outside the
bfloat16 kernels), so `auto` takes bfloat16 for an LSTM text model where the CPU has bfloat16
units, and float32 otherwise. A series model keeps float32: bfloat16 carries 3 significant digits,
too few for the values a forecast is scored on.

A precision asked for by name must have the hardware's units and a kernel for the run's cell,
or it is a one-line usage error before any work. On a CPU without bfloat16 units (an AVX2-only
AMD EPYC, or any CPU under ONEDNN_MAX_CPU_ISA=AVX2) oneDNN has no bfloat16 LSTM kernel, and
PyTorch raised deep inside the first step; its GRU and Elman cells run there, but emulated, slower
than float32. So the units are checked, and one forward and backward pass of a tiny model of the
run's cell is tried (`runs_in`): a kernel that is missing shows only when it is asked for.
"""

from __future__ import annotations

import contextlib
import functools

import torch

from ..errors import UsageError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Below this width the matrix products are too small for the bfloat16 units to pay for the casts.
MIN_BF16_HIDDEN = 128


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic units (AVX-512 BF16 or AMX), as oneDNN sees them."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device, cell: str, hidden: int, is_text: bool) -> str:
    """The precision a run trains in: "fp32", "bf16" or "fp16" (see the module's docstring)."""
    if precision not in PRECISIONS:
        raise UsageError(f"`precision` must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise UsageError(
            "`precision` fp16 is for CUDA devices; on this device use fp32 (or bf16 where the CPU has bfloat16 units)"
        )
    if precision != "auto":
        if precision != "fp32" and not hardware_runs(device, precision, cell):
            raise UsageError(
                f"`precision` {precision}: this {_hardware(device)} has no {_NAMES[precision]} units or "
                f"no {_NAMES[precision]} kernel for the {cell.upper()} cell; use `precision` fp32"
            )
        return precision
    if not is_text or cell != "lstm" or hidden < MIN_BF16_HIDDEN:
        return "fp32"
    return "bf16" if hardware_runs(device, "bf16", cell) else "fp32"


_NAMES = {"bf16": "bfloat16", "fp16": "float16"}


def hardware_runs(device: torch.device, precision: str, cell: str) -> bool:
    """Whether `device` has the units for `precision` ("bf16" or "fp16") and a kernel for `cell`."""
    if precision == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        return False
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return False
    return runs_in(device, precision, cell)


def _hardware(device: torch.device) -> str:
    return "CPU" if device.type == "cpu" else f"{device.type} device"


@functools.lru_cache(maxsize=None)
def runs_in(device: torch.device, precision: str, cell: str) -> bool:
    """Whether a training step of `cell` runs under autocast in `precision` on `device`: a tiny
    model's forward and backward pass, tried once per process (a few milliseconds)."""
    from ..model.network import CELLS

    try:
        model = CELLS[cell](4, 8, num_layers=2, batch_first=True).to(device)
        with autocast(device, precision):
            out, _ = model(torch.randn(2, 3, 4, device=device))
        out.float().sum().backward()
        return True
    except RuntimeError:  # oneDNN's "could not create a primitive descriptor", an unsupported dtype
        return False


def autocast(device: torch.device, precision: str):
    """The context a training step's forward pass and loss run in."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def grad_scaler(device: torch.device, precision: str):
    """float16's gradients underflow without loss scaling; bfloat16 has float32's range and needs none."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)
