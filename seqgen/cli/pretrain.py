"""`seqgen pretrain`: train the forecaster that forecasts series it has never seen, from synthetic data."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app, check_seed, say


@app.command()
def pretrain(
    out: Path = typer.Option(Path("checkpoints/forecaster.safetensors"), "--out", "-o", help="Checkpoint to write."),
    steps: int = typer.Option(5000, min=1, help="Optimizer steps, each on a fresh batch of synthetic series."),
    batch_size: int = typer.Option(256, min=1, help="Series per step."),
    hidden: int = typer.Option(128, min=1, help="Units per LSTM layer."),
    layers: int = typer.Option(2, min=1, help="Stacked LSTM layers."),
    lr: float = typer.Option(1e-3, min=0.0, help="Peak learning rate (AdamW, cosine decay to a tenth)."),
    seed: int = typer.Option(0, callback=check_seed, help="Seed of the synthetic series and the weights."),
    threads: Optional[int] = typer.Option(None, min=1, help="Torch threads. \\[default: torch's own]"),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists."),
) -> None:
    """Pretrain the forecaster on synthetic series (no download, no real data): the model that
    'seqgen forecast pretrained DATA' uses. The shipped one took the defaults (see docs/forecasting.md)."""
    from ..errors import UsageError
    from ..model.forecaster import ForecasterConfig
    from ..train.pretrain import PretrainConfig, pretrain as run

    if out.exists() and not force:
        raise UsageError(f"{out} exists; give --force to overwrite it, or another --out")
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give a file name such as {out}/forecaster.safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    config = ForecasterConfig(hidden=hidden, layers=layers)
    progress = run(out, config, PretrainConfig(steps=steps, batch=batch_size, lr=lr, seed=seed, threads=threads),
                   log=say)
    say(f"wrote {out}: {progress['step']} steps in {progress['seconds']:.0f} s, "
        f"validation loss {progress['val_loss']:.4f}")
