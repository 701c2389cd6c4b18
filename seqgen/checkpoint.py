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
from .kinds import Kind, kind_named

FORMAT_NAME = "seqgen-checkpoint"
# The newest version this seqgen reads. A checkpoint is written as version 1 unless it needs
# version 2 (text in tokens other than characters, `data.tokenizer`), so that a seqgen from
# before tokenizers refuses such a file with its "upgrade seqgen" message instead of misreading it.
FORMAT_VERSION = 2
# The largest JSON header we accept; a real one is a few hundred KB at most (vocabulary included).
MAX_HEADER = 64 * 1024 * 1024


@dataclass(frozen=True)
class DataDescription:
    """What a checkpoint says about the data it was trained on, with every default for what older
    checkpoints left out in this one place: the source, the tokens (a char model's `vocab`, or
    another tokenizer's `tokenizer` dict, read by `data.tokenizers.tokenizer_for`), or a series'
    scaling (`mean`, `std`), what it predicts (`target`), its `channels` (columns modelled
    jointly), its `series` (each with its name, scaling, last time and prime) and default `prime`."""

    kind: str
    name: str = ""
    description: str = ""
    source: dict = field(default_factory=dict)
    val_fraction: float = 0.1  # what checkpoints from before it was stored were trained with
    vocab: list | None = None
    tokenizer: dict | None = None
    mean: float | list | None = None
    std: float | list | None = None
    typical_scale: float | None = None
    target: str = "level"  # written only when it is not the values themselves
    channels: list[str] | None = None
    series: list[dict] = field(default_factory=list)
    prime: list[float] | None = None

    @classmethod
    def from_dict(cls, data: dict) -> "DataDescription":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**known)

    @property
    def is_sine(self) -> bool:
        return self.source.get("type") == "sine"

    @property
    def from_file(self) -> bool:
        return self.source.get("type") == "file"

    @property
    def columns(self) -> list[str]:
        """The CSV columns the model trained on (none for data that was not a table)."""
        return list(self.source.get("columns") or [])

    @property
    def frequency(self) -> list | None:
        """The step of a dated series, as `data.times.Frequency`'s arguments (None without times)."""
        return self.source.get("frequency")


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
            raise CheckpointError(
                f"{self.path} is a forecaster (made by 'seqgen pretrain' or fine-tuned from one), which only forecasts: "
                f"seqgen forecast {self.path} DATA"
            )
        return from_dict(ModelConfig, self.meta["model"])

    @property
    def data(self) -> dict:
        """The data section as stored (see `described` for it with its defaults)."""
        return self.meta["data"]

    @property
    def described(self) -> DataDescription:
        """What the checkpoint says about its data, typed, with the defaults older files need."""
        return DataDescription.from_dict(self.meta["data"])

    @property
    def kind(self) -> str:
        return self.meta["data"]["kind"]

    @property
    def data_kind(self) -> Kind:
        """What the model's kind of data does and refuses (seqgen/kinds.py)."""
        return kind_named(self.kind)

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


def save_checkpoint(
    path: str | Path, meta: dict, weights: dict[str, np.ndarray], training: dict[str, np.ndarray] | None = None
) -> None:
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


def check_checkpoint_file(path: str | Path) -> None:
    """Raise CheckpointError, in one line, if `path` is not a file there to read (before anything
    slow or binding is done: a server says so before it takes its port)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint (train one with 'seqgen train')")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify a checkpoint. Raises CheckpointError with a one-line reason."""
    path = Path(path)
    check_checkpoint_file(path)
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
