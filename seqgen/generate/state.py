"""Generator state files: where a generation stopped, so that the next call continues it exactly.

A safetensors file holding the recurrent state and the last output (tensors) and, in its
metadata, the random-number state, the sampling settings, the batch size and the checksum of the
checkpoint it belongs to, so it is never applied to another model. A few KB for a typical model.

A generation whose weights were adapted to its prime (seqgen/adapt.py) goes on only with those
weights: its state file holds them too (tensors `weights.<name>`, as the checkpoint's `model.`
ones; the size of the checkpoint), with how they were adapted and their checksum in the metadata.
Such a file is format version 2, so that a seqgen from before adaptation refuses it ("upgrade
seqgen") instead of continuing with the checkpoint's own weights; other files stay version 1.
Like a checkpoint it is safetensors and JSON: reading one never runs code from it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, UsageError
from ..files import write_atomic
from .sampling import SampleConfig

STATE_FORMAT = "seqgen-state"
STATE_VERSION = 2  # the newest this seqgen reads
WEIGHTS = "weights."


def save_state(path: str | Path, gen) -> None:
    """Write `gen`'s state (see `Generator.snapshot`) atomically."""
    write_atomic(path, state_bytes(gen))


def state_bytes(gen, counts: dict[str, int] | None = None) -> bytes:
    """`gen`'s state as the bytes of a state file (what `save_state` writes; a server hands them
    out, with `counts`: how much its session had fed and generated, restored with the state)."""
    from safetensors.numpy import save

    snap = gen.snapshot()
    tensors = {f"state.{i}": a for i, a in enumerate(snap["state"])}
    tensors["last_output"] = snap["last_output"]
    if "scale" in snap:
        tensors["scale"] = snap["scale"]
    if "level" in snap:
        tensors["level"] = snap["level"]
    if "clock" in snap:
        tensors["clock"] = snap["clock"]
    for name, value in snap.get("head", {}).items():
        tensors[f"head.{name}"] = value
    if "recent" in snap:
        tensors["recent"] = snap["recent"]
    adapted = getattr(gen, "adapted_weights", None)
    meta = {
        "format": STATE_FORMAT,
        "format_version": 1 if adapted is None else 2,
        "checkpoint_checksum": gen.checkpoint_checksum,
        "kind": gen.data_kind.name,
        "batch_size": gen.batch_size,
        "rng": snap["rng"],
        "sampling": asdict(gen.sampling),
    }
    if "scaling" in snap:
        meta["scaling"] = snap["scaling"]
    if counts:
        meta["counts"] = {k: int(v) for k, v in counts.items()}
    if adapted is not None:
        from ..checkpoint import tensor_checksum

        tensors.update({WEIGHTS + name: value for name, value in adapted.items()})
        meta["adapted"] = {**gen.adapted_how, "checksum": tensor_checksum(adapted)}
    if "pending" in snap:
        # Byte tokens: each stream's first bytes of a character still to be completed, in hex.
        meta["pending"] = [held.hex() for held in snap["pending"]]
    return save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata={"seqgen": json.dumps(meta)})


def check_state_target(path: str | Path) -> None:
    """Fail before generating, not after, when `save_state` cannot or must not write to `path`.

    An existing file is replaced only if it is a state file: a checkpoint (even the one being
    sampled) or any other file under that name is kept, since a state file is cheap to remake
    and they are not.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"`save_state` {path} is a directory; give a file name such as {path}/state.safetensors")
    if path.exists() and path.stat().st_size > 0 and _state_meta(path) is None:  # an empty file (mktemp's) is free
        raise UsageError(f"`save_state` {path} exists and is not a state file; it is kept: choose another name")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"`save_state` {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"`save_state` {path}: the folder {folder} is not writable; choose another")


def saved_sampling(path: str | Path):
    """The sampling settings a state file was saved with (a `SampleConfig`), or None if it holds none."""
    meta = _state_meta(Path(path))
    saved = (meta or {}).get("sampling")
    if not isinstance(saved, dict):
        return None
    config = SampleConfig(**{f.name: saved[f.name] for f in fields(SampleConfig) if f.name in saved})
    config.check()
    return config


def _state_meta(path: Path) -> dict | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {})["seqgen"])
    except Exception:  # safetensors reports damage as several exception types
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == STATE_FORMAT else None


def load_state(path: str | Path, gen) -> dict:
    """Read a state file written for `gen`'s checkpoint; returns a snapshot for `gen.restore`."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"`load_state` {path} is a directory: give a state file written by `save_state`")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such state file (write one with `save_state`)")
    return state_from_bytes(path.read_bytes(), gen, str(path))


def state_from_bytes(raw: bytes, gen, label: str = "the state") -> dict:
    """`load_state` for the bytes of a state file; `label` names them in errors."""
    from safetensors.numpy import load

    try:
        tensors = load(raw)
        meta = json.loads(_metadata(raw)["seqgen"])
    except Exception:  # safetensors reports damage as several exception types
        raise CheckpointError(f"{label} is not a seqgen state file (written by `save_state`)") from None
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{label} is not a seqgen state file (written by `save_state`)")
    if not isinstance(meta.get("format_version"), int) or meta["format_version"] > STATE_VERSION:
        raise CheckpointError(
            f"{label} has state format version {meta.get('format_version')}, newer than this seqgen reads; upgrade seqgen"
        )
    if meta.get("checkpoint_checksum") != gen.checkpoint_checksum:
        raise CheckpointError(f"{label} was saved from another checkpoint; load it with the checkpoint that wrote it")
    _check_weights(meta, gen, label)
    count = sum(1 for name in tensors if name.startswith("state."))
    return {
        "state": [tensors[f"state.{i}"] for i in range(count)],
        "last_output": tensors["last_output"],
        "rng": meta["rng"],
        "scale": tensors.get("scale"),
        "level": tensors.get("level"),
        "clock": tensors.get("clock"),
        "head": {k[5:]: v for k, v in tensors.items() if k.startswith("head.")},
        "recent": tensors.get("recent"),
        "sampling": meta.get("sampling"),
        "scaling": meta.get("scaling"),
        "pending": [bytes.fromhex(held) for held in meta["pending"]] if meta.get("pending") else None,
        "counts": _counts(meta.get("counts")),
    }


def _check_weights(meta: dict, gen, label: str) -> None:
    """A state saved with adapted weights continues only on a generator running those weights
    (see `saved_weights`), and one saved without them only on the checkpoint's own."""
    saved = (meta.get("adapted") or {}).get("checksum")
    adapted = getattr(gen, "adapted_weights", None)
    if saved is None and adapted is None:
        return
    from ..checkpoint import tensor_checksum

    if saved is None:
        raise CheckpointError(
            f"{label} was saved without adapted weights; it goes on with the checkpoint's own (drop `adapt`)"
        )
    if adapted is None or tensor_checksum(adapted) != saved:
        raise CheckpointError(
            f"{label} holds weights adapted to its prime; load it with `load_state` in sample() "
            "or seqgen sample, which run those weights"
        )


def saved_weights(path: str | Path, ckpt):
    """The checkpoint a saved generation goes on with: `ckpt` with the adapted weights the state
    file at `path` holds, or None when it holds none (it goes on with `ckpt` itself)."""
    from safetensors import safe_open

    from ..adapt import adapted_checkpoint
    from ..checkpoint import tensor_checksum

    meta = _state_meta(Path(path))
    if meta is None or not meta.get("adapted") or meta.get("checkpoint_checksum") != ckpt.meta.get("checksum"):
        return None  # load_state says what is wrong with such a file
    with safe_open(str(path), framework="numpy") as f:
        weights = {name[len(WEIGHTS) :]: f.get_tensor(name) for name in f.keys() if name.startswith(WEIGHTS)}
    same_shapes = weights.keys() == ckpt.weights.keys() and all(
        weights[k].shape == ckpt.weights[k].shape and weights[k].dtype == ckpt.weights[k].dtype for k in weights
    )
    if not same_shapes or tensor_checksum(weights) != meta["adapted"].get("checksum"):
        raise CheckpointError(f"{path} is corrupted: its adapted weights do not match their checksum")
    how = {k: v for k, v in meta["adapted"].items() if k != "checksum"}
    return adapted_checkpoint(ckpt, weights, how)


def _counts(saved) -> dict[str, int]:
    """A server session's counts kept with its state (none in a state file `save_state` wrote)."""
    if not isinstance(saved, dict):
        return {}
    return {k: v for k, v in saved.items() if k in ("fed", "generated") and isinstance(v, int) and v >= 0}


def _metadata(raw: bytes) -> dict:
    """The metadata of safetensors bytes: an 8-byte little-endian header length, then the JSON header."""
    size = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + size]).get("__metadata__") or {}
