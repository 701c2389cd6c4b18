"""Generator state files: where a generation stopped, so that the next call continues it exactly.

A safetensors file holding the recurrent state and the last output (tensors) and, in its
metadata, the random-number state, the batch size and the checksum of the checkpoint it belongs
to, so it is never applied to another model. A few KB for a typical model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .checkpoint import write_atomic
from .errors import CheckpointError

STATE_FORMAT = "seqgen-state"
STATE_VERSION = 1


def save_state(path: str | Path, gen) -> None:
    """Write `gen`'s state (see `Generator.snapshot`) atomically."""
    from safetensors.numpy import save

    snap = gen.snapshot()
    tensors = {f"state.{i}": a for i, a in enumerate(snap["state"])}
    tensors["last_output"] = snap["last_output"]
    meta = {"format": STATE_FORMAT, "format_version": STATE_VERSION, "checkpoint_checksum": gen.checkpoint_checksum,
            "kind": "text" if gen.is_text else "series", "batch_size": gen.batch_size, "rng": snap["rng"]}
    write_atomic(path, save({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                            metadata={"seqgen": json.dumps(meta)}))


def load_state(path: str | Path, gen) -> dict:
    """Read a state file written for `gen`'s checkpoint; returns a snapshot for `gen.restore`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such state file (write one with --save-state)")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {})["seqgen"])
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception:  # safetensors reports damage as several exception types
        raise CheckpointError(f"{path} is not a seqgen state file (written by --save-state)") from None
    if meta.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not a seqgen state file (written by --save-state)")
    if not isinstance(meta.get("format_version"), int) or meta["format_version"] > STATE_VERSION:
        raise CheckpointError(f"{path} has state format version {meta.get('format_version')}, newer than this seqgen reads; upgrade seqgen")
    if meta.get("checkpoint_checksum") != gen.checkpoint_checksum:
        raise CheckpointError(f"{path} was saved from another checkpoint; load it with the checkpoint that wrote it")
    count = sum(1 for name in tensors if name.startswith("state."))
    return {"state": [tensors[f"state.{i}"] for i in range(count)], "last_output": tensors["last_output"],
            "rng": meta["rng"]}
