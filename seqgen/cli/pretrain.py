"""`seqgen pretrain`: train the forecaster that forecasts series it has never seen, from synthetic data."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app, check_seed, option, say


THREADS_HELP = "Torch threads, fixed so that a seed gives the same weights (one was measured fastest on busy cores)."


@app.command()
def pretrain(
    out: Path = option(Path("checkpoints/forecaster.safetensors"), "Checkpoint to write.", "--out", "-o"),
    steps: int = option(3000, "Optimizer steps, each on a fresh batch of synthetic series.", min=1),
    batch_size: int = option(256, "Series per step.", min=1),
    hidden: int = option(128, "Units per LSTM layer.", min=1),
    layers: int = option(2, "Stacked LSTM layers.", min=1),
    lr: float = option(1e-3, "Peak learning rate (AdamW, cosine decay to a tenth).", min=0.0),
    seed: int = option(0, "Seed of the synthetic series and the weights.", callback=check_seed),
    threads: int = option(1, THREADS_HELP, min=1),
    force: bool = option(False, "Overwrite OUT if it exists.", "--force"),
) -> None:
    """Pretrain the forecaster on synthetic series (no download, no real data): the model that
    'seqgen forecast pretrained DATA' uses. The shipped one took the defaults (see docs/forecasting.md)."""
    from ..errors import UsageError
    from ..model.forecaster import ForecasterConfig
    from ..train.pretrain import PretrainConfig, pretrain as run

    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give a file name such as {out}/forecaster.safetensors")
    if out.exists() and not force:
        raise UsageError(f"{out} exists; give --force to overwrite it, or another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    config = ForecasterConfig(hidden=hidden, layers=layers)
    progress = run(
        out, config, PretrainConfig(steps=steps, batch=batch_size, lr=lr, seed=seed, threads=threads), log=say
    )
    loss = progress["val_loss"]
    say(
        f"wrote {out}: {progress['step']} steps in {progress['seconds']:.0f} s"
        + (f", validation loss {loss:.4f}" if loss is not None else "")
    )
    if progress.get("interrupted"):
        raise typer.Exit(130)  # as any command stopped by Ctrl-C, after saving what there is


def finetune_command(
    data: Optional[str],
    init: Path,
    out: Optional[Path],
    steps: Optional[int],
    lr: Optional[float],
    seed: Optional[int],
    force: bool,
    not_for_init: list[str],
    fill: str = "error",
) -> None:
    """`seqgen train DATA --init FORECASTER`: fine-tune the forecaster on DATA's series."""
    from ..checkpoint import load_checkpoint
    from ..errors import UsageError
    from ..generate.histories import seasoned_series
    from ..generate.zero_shot import is_forecaster, resolve as resolve_checkpoint
    from ..train.pretrain import FinetuneConfig, finetune

    if not_for_init:
        raise UsageError(
            f"{', '.join(not_for_init)}: --init fine-tunes the pretrained forecaster as it is; "
            "leave out --init to train a model of your own design"
        )
    if data is None:
        raise UsageError("--init fine-tunes the forecaster on your series: give DATA")
    base = load_checkpoint(resolve_checkpoint(init))
    if not is_forecaster(base):
        raise UsageError(
            f"--init {init} is not a pretrained forecaster (it was made by 'seqgen train'); "
            "give 'pretrained' or a checkpoint written by 'seqgen pretrain'"
        )
    series = [(values, season) for _, values, season in seasoned_series(data, fill)]
    out = out or Path("checkpoints") / f"{Path(data).stem if data != '-' else 'stdin'}.safetensors"
    if out.exists() and not force:
        raise UsageError(f"{out} exists; give --force to overwrite it, or another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    defaults = FinetuneConfig()
    config = FinetuneConfig(steps=steps or defaults.steps, lr=lr or defaults.lr, seed=seed or 0)
    progress = finetune(base, series, out, config, data=data)
    say(
        f"wrote {out}: {base.path} fine-tuned on {progress['series']} series for {config.steps} steps "
        f"({progress['seconds']:.1f} s); forecast with: seqgen forecast {out} {data} --horizon 12"
        + (f" --fill {fill}" if fill != "error" else "")
    )
