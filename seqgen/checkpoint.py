"""Checkpoint files: safetensors with seqgen's JSON metadata, written atomically, read without torch.

Layout: tensors named `model.<param>` hold the weights that generation uses (the best by
validation); tensors named `train.<...>` hold what `resume` needs (latest weights, optimizer
moments, the carried training state, torch's random state). The metadata key `seqgen` holds a
JSON object with the format version, the configurations, the data description (vocabulary or
value scaling), progress counters, metrics and a SHA-256 checksum of every tensor.

Safetensors holds no pickle, so loading can never run code from the file.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import ModelConfig, from_dict
from .errors import CheckpointError
from .files import write_atomic

FORMAT_NAME = "seqgen-checkpoint"
# The newest version this seqgen reads. A checkpoint is written as version 1 unless it needs
# version 2 (text in tokens other than characters, `data.tokenizer`), so that a seqgen from
# before tokenizers refuses such a file with its "upgrade seqgen" message instead of misreading it.
FORMAT_VERSION = 2
# The largest JSON header we accept; a real one is a few hundred KB at most (vocabulary included).
MAX_HEADER = 64 * 1024 * 1024


@dataclass
class Checkpoint:
    """A loaded checkpoint: weights for generation, training state for resuming, and metadata."""

    meta: dict
    weights: dict[str, np.ndarray]
    training: dict[str, np.ndarray] = field(default_factory=dict)
    path: str | None = None

    @property
    def model_config(self) -> ModelConfig:
        if self.kind == "forecaster":  # every command but forecast and info reads a trained model's config
            raise CheckpointError(f"{self.path} is a forecaster (made by 'seqgen pretrain' or fine-tuned from one), which only forecasts: "
                                  f"seqgen forecast {self.path} DATA")
        return from_dict(ModelConfig, self.meta["model"])

    @property
    def data(self) -> dict:
        return self.meta["data"]

    @property
    def kind(self) -> str:
        return self.meta["data"]["kind"]

    @property
    def vocab(self) -> list[str] | None:
        """A char model's characters (None for other tokens: see data.tokenizers.tokenizer_for)."""
        return self.meta["data"].get("vocab")


def tensor_checksum(tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save_checkpoint(path: str | Path, meta: dict, weights: dict[str, np.ndarray],
                    training: dict[str, np.ndarray] | None = None) -> None:
    """Write a checkpoint atomically: a crash at any moment leaves the previous file intact."""
    from safetensors.numpy import save

    tensors = {f"model.{k}": np.ascontiguousarray(v) for k, v in weights.items()}
    tensors.update({f"train.{k}": np.ascontiguousarray(v) for k, v in (training or {}).items()})
    version = 2 if "tokenizer" in meta.get("data", {}) else 1
    meta = {**meta, "format": FORMAT_NAME, "format_version": version, "checksum": tensor_checksum(tensors)}
    payload = save(tensors, metadata={"seqgen": json.dumps(meta, ensure_ascii=False)})
    write_atomic(path, payload)


def strip_training_state(path: str | Path, out: str | Path | None = None) -> Path:
    """Rewrite a checkpoint with only what generation needs (weights and metadata), atomically."""
    ckpt = load_checkpoint(path)
    dropped = {"optimizer", "format", "format_version", "checksum"}
    target = Path(out) if out is not None else Path(path)
    save_checkpoint(target, {k: v for k, v in ckpt.meta.items() if k not in dropped}, ckpt.weights)
    return target


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify a checkpoint. Raises CheckpointError with a one-line reason."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint (train one with 'seqgen train')")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None
    meta = _read_meta(raw, path)
    tensors = _read_tensors(raw, path)
    if tensor_checksum(tensors) != meta.get("checksum"):
        raise CheckpointError(f"{path} is corrupted: its tensors do not match their checksum")
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    training = {k[6:]: v for k, v in tensors.items() if k.startswith("train.")}
    return Checkpoint(meta=meta, weights=weights, training=training, path=str(path))


def _read_meta(raw: bytes, path: Path) -> dict:
    not_ours = f"{path} is not a seqgen checkpoint"
    if len(raw) < 8:
        raise CheckpointError(f"{not_ours} (too short to be a safetensors file)")
    (header_len,) = struct.unpack("<Q", raw[:8])
    if header_len > min(MAX_HEADER, len(raw) - 8):
        raise CheckpointError(f"{not_ours} (no safetensors header; a truncated file or another format)")
    try:
        header = json.loads(raw[8 : 8 + header_len])
        meta = json.loads(header["__metadata__"]["seqgen"])
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{not_ours} (the header carries no seqgen metadata)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{not_ours} (unknown format)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}, newer than this seqgen reads ({FORMAT_VERSION}); upgrade seqgen"
        )
    return meta


def _read_tensors(raw: bytes, path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    try:
        return load(raw)
    except Exception as e:  # safetensors reports damage as several exception types
        raise CheckpointError(f"{path} is truncated or corrupted ({str(e).splitlines()[0][:80]})") from None
