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
"""

from __future__ import annotations

import contextlib

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
        raise UsageError("`precision` fp16 is for CUDA devices; on this device use bf16 or fp32")
    if precision != "auto":
        return precision
    if not is_text or cell != "lstm" or hidden < MIN_BF16_HIDDEN:
        return "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"


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
