"""What is inside a checkpoint, as a plain dict: `seqgen info` prints it, scripts read its JSON."""

from __future__ import annotations

from pathlib import Path

from .checkpoint import Checkpoint, load_checkpoint
from .data.tokenizers import stored_tokenizer

VOCAB_PREVIEW = 60
TOKEN_PREVIEW = 20  # learnt word pieces or BPE tokens shown


def checkpoint_info(checkpoint: str | Path | Checkpoint) -> dict:
    """Data, model, training progress and format of a checkpoint."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if ckpt.kind == "forecaster":
        return _forecaster_info(ckpt)
    meta, data, model = ckpt.meta, ckpt.data, ckpt.model_config
    progress = meta.get("progress", {})
    info = {
        "path": ckpt.path,
        "format_version": meta.get("format_version"),
        "data": {
            "kind": data["kind"],
            "name": data.get("name"),
            "description": data.get("description"),
            "val_fraction": data.get("val_fraction"),
        },
        "model": {
            "cell": model.cell,
            "layers": model.layers,
            "hidden": model.hidden,
            "parameters": int(sum(w.size for w in ckpt.weights.values())),
        },
        "training": {
            "steps": progress.get("step"),
            "seconds": progress.get("elapsed"),
            "epochs": progress.get("epoch"),
            "best_val_loss": progress.get("best_val_loss"),
            "best_step": progress.get("best_step"),
            "resumable": bool(ckpt.training),
            # Checkpoints from before mixed precision trained in float32.
            "precision": progress.get("precision", "fp32"),
            # Torch threads of the training step (None: trained before seqgen stored them).
            "threads": progress.get("threads"),
            "best_val_bpc": progress.get("best_val_bpc"),
        },
        "checksum": meta.get("checksum"),
    }
    train = meta.get("train") or {}
    # How it was trained (a stripped or very old checkpoint may not say).
    info["training"]["settings"] = {
        key: train.get(key) for key in ("batch_size", "window", "lr", "weight_decay") if key in train
    }
    info["training"]["settings"]["dropout"] = model.dropout
    tokenizer = stored_tokenizer(data)
    if tokenizer is not None:
        info["model"]["embed"] = model.embed
        info["data"]["tokens"] = tokenizer.kind
        info["data"]["vocab_size"] = len(tokenizer)
        if tokenizer.kind == "char":
            info["data"]["vocab_preview"] = "".join(tokenizer.vocab[:VOCAB_PREVIEW])
        else:  # the tokens learnt from the text, most frequent (word) or first learnt (bpe) first
            info["data"]["token_preview"] = getattr(tokenizer, "learnt", [])[:TOKEN_PREVIEW]
    else:
        info["model"]["head"] = model.head
        info["data"]["target"] = data.get("target", "level")
        if model.calendar:
            info["model"]["calendar"] = list(model.calendar)
        if data.get("channels"):
            info["data"]["channels"] = data["channels"]
        if data.get("series"):
            # Each series was scaled by its own training part; the data's own mean 0, std 1 says nothing.
            info["data"]["series"] = [{"name": e["name"], "mean": e["mean"], "std": e["std"]} for e in data["series"]]
        elif data.get("source", {}).get("scale_each"):
            info["data"]["scale_each"] = True
            info["data"]["typical_scale"] = data.get("typical_scale")
        else:
            info["data"].update(mean=data.get("mean"), std=data.get("std"))
    return info


def _forecaster_info(ckpt: Checkpoint) -> dict:
    """The pretrained forecaster's: its network, its recipe and how far it went."""
    model, progress, train = ckpt.meta["model"], ckpt.meta.get("progress", {}), ckpt.meta.get("train", {})
    return {
        "path": ckpt.path,
        "format_version": ckpt.meta.get("format_version"),
        "data": {"kind": "forecaster", "description": f"synthetic series, seed {train.get('seed')}"},
        "model": {
            "cell": "lstm",
            "layers": model["layers"],
            "hidden": model["hidden"],
            "horizon": model["horizon"],
            "levels": model["levels"],
            "context": model["context"],
            "parameters": int(sum(w.size for w in ckpt.weights.values())),
        },
        "training": {
            "steps": progress.get("step"),
            "seconds": progress.get("seconds"),
            "val_loss": progress.get("val_loss"),
            "settings": train,
        },
        "checksum": ckpt.meta.get("checksum"),
        "finetune": ckpt.meta.get("finetune"),
    }
