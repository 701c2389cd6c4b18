"""What is inside a checkpoint, as a plain dict: `seqgen info` prints it, scripts read its JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

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


def info_rows(details: dict, word: Callable[[str], str] = str) -> list[tuple[str, str]]:
    """What `checkpoint_info` found, as (label, text) rows for people; `word` says a hint's
    `parameters` as the caller names them."""
    data, model, progress = details["data"], details["model"], details["training"]
    if data["kind"] == "forecaster":
        rows = _forecaster_rows(model, progress, details.get("finetune"))
        return rows + [("format", f"seqgen-checkpoint version {details['format_version']}")]
    rows = [("data", f"{data['kind']}: {data['description']}")]
    if data.get("tokens", "char") == "char" and "vocab_size" in data:
        rows.append(("vocabulary", f"{data['vocab_size']} characters: {data['vocab_preview']!r}"))
    elif "vocab_size" in data:
        shown = ", ".join(repr(piece) for piece in data["token_preview"])
        rows.append(
            ("vocabulary", f"{data['vocab_size']} {data['tokens']} tokens" + (f": {shown}, ..." if shown else ""))
        )
    else:
        rows.append(("scaling", _scaling(data, word)))
    rows += [("model", _model_line(model)), ("training", _training_line(progress))]
    settings = progress.get("settings") or {}
    if "batch_size" in settings:
        decay = f", weight decay {settings['weight_decay']:g}" if settings.get("weight_decay") else ""
        rows.append(("settings", f"batch {settings['batch_size']} x {settings['window']}, learning rate "
                     f"{settings['lr']:g}, dropout {settings['dropout']:g}{decay}"))  # fmt: skip
    if progress["best_val_loss"] is not None:
        rows.append(("best validation", _best_line(data, progress)))
    return rows + [("format", f"seqgen-checkpoint version {details['format_version']}")]


def _model_line(model: dict) -> str:
    shape = f"{model['cell'].upper()}, {model['layers']} x {model['hidden']}"
    shape += f", embedding {model['embed']}" if "embed" in model else f", {model['head']} head"
    if model.get("calendar"):
        from .data.calendar import describe

        shape += f"; calendar inputs ({describe(model['calendar'])})"
    return f"{shape}; {model['parameters']:,} parameters"


def _training_line(progress: dict) -> str:
    threads = progress.get("threads")
    return (
        f"{progress['steps']} steps, {progress['seconds'] or 0:.1f}s, {progress['epochs'] or 0:.2f} epochs"
        f", {progress['precision']}"
        + (f", {threads} torch thread{'s' if threads > 1 else ''}" if threads else "")
        + ("" if progress["resumable"] else " (weights only)")
    )


def _best_line(data: dict, progress: dict) -> str:
    tokens = data.get("tokens", "char")
    unit = "MSE of the scaled values," if data["kind"] != "text" else "nats/char" if tokens == "char" else "nats/token"
    bits = (
        f" ({progress['best_val_bpc']:.4g} bits/char)"
        if data["kind"] == "text" and progress.get("best_val_bpc")
        else ""
    )
    return f"{progress['best_val_loss']:.4g} {unit}{bits} at step {progress['best_step']}"


def _forecaster_rows(model: dict, progress: dict, tuned: dict | None) -> list[tuple[str, str]]:
    rows = [("data", "forecaster, pretrained on synthetic series: forecasts a series it has never seen")]
    if tuned:
        rows.append(
            (
                "fine-tuned",
                f"on {tuned.get('data') or 'a series'} ({tuned['series']} series), {tuned['steps']} steps "
                f"at {tuned['lr']:g}; forecasts with both networks",
            )
        )
    rows.append(
        (
            "model",
            f"LSTM, {model['layers']} x {model['hidden']}; quantiles of the next {model['horizon']} "
            f"steps; reads the last {model['context']} values; {model['parameters']:,} parameters",
        )
    )
    rows.append(
        (
            "training",
            f"{progress['steps']} steps of {progress['settings'].get('batch')} series, "
            f"{progress['seconds'] or 0:.0f}s; validation pinball loss {progress['val_loss'] or float('nan'):.4f}",
        )
    )
    return rows


# People are shown this many series' scaling; the JSON lists them all.
SHOWN_SERIES = 10


def _scaling(data: dict, word: Callable[[str], str] = str) -> str:
    """How a series model's values were scaled: one mean and std, each series' own, or each wave's size."""
    of = " (of the steps between values)" if data.get("target") == "diff" else ""
    if data.get("series"):
        entries = data["series"]
        lines = [f"{e['name']!r}: mean {e['mean']:.6g}, std {e['std']:.6g}" for e in entries[:SHOWN_SERIES]]
        if len(entries) > SHOWN_SERIES:
            lines.append(word(f"... and {len(entries) - SHOWN_SERIES} more (`json` lists them all)"))
        return f"per series, each by its own training part{of}:\n" + "\n".join(lines)
    if data.get("channels"):
        lines = [
            f"{name!r}: mean {m:.6g}, std {s:.6g}" for name, m, s in zip(data["channels"], data["mean"], data["std"])
        ]
        return f"channels modelled jointly, each by its own training part{of}:\n" + "\n".join(lines)
    if data.get("scale_each"):
        typical = (
            ""
            if data.get("typical_scale") is None
            else f" (the training waves' typical size {data['typical_scale']:.4g})"
        )
        return f"each stream divided by its own size{typical}"
    return f"mean {data['mean']:.6g}, std {data['std']:.6g}{of}"
