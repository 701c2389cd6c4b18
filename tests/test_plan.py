"""Run planning: the library's documented path trains the model `seqgen train` trains."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_TEXT
from seqgen import ModelConfig, TrainConfig, Trainer, load_checkpoint, load_data, plan_run
from seqgen.errors import UsageError

SEQGEN = [sys.executable, "-m", "seqgen"]
RUN = dict(steps=12, seed=3, threads=1)


def trending_csv(folder: Path) -> Path:
    """Six years of a monthly series that rises with a yearly swing: `target` auto differences it."""
    months = [f"{2000 + k // 12}-{k % 12 + 1:02d}-01" for k in range(72)]
    values = [100 + 2.0 * k + 8 * np.sin(2 * np.pi * k / 12) for k in range(72)]
    path = folder / "sales.csv"
    path.write_text("month,sales\n" + "".join(f"{m},{v:.3f}\n" for m, v in zip(months, values)))
    return path


def train_with_the_cli(data: Path | None, out: Path) -> None:
    args = [] if data is None else [str(data)]
    flags = ["--steps", str(RUN["steps"]), "--seed", str(RUN["seed"]), "--threads", str(RUN["threads"]), "--quiet"]
    if data is None:
        flags += ["--sine-waves", "16", "--sine-length", "300"]
    result = subprocess.run(
        [*SEQGEN, "train", *args, *flags, "--out", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kind", ["text", "trending csv", "sine"])
def test_the_documented_library_path_writes_the_weights_seqgen_train_writes(tmp_path, kind):
    from seqgen import SineConfig

    data = {"text": lambda: _text(tmp_path), "trending csv": lambda: trending_csv(tmp_path), "sine": lambda: None}[
        kind
    ]()
    sine = SineConfig(waves=16, length=300) if data is None else None
    train_with_the_cli(data, tmp_path / "cli.safetensors")

    plan = plan_run(data, out=tmp_path / "library.safetensors", sine=sine, **RUN)
    Trainer.from_plan(plan).run()

    cli, library = load_checkpoint(tmp_path / "cli.safetensors"), load_checkpoint(tmp_path / "library.safetensors")
    assert cli.model_config == library.model_config
    assert cli.weights.keys() == library.weights.keys()
    for name, weights in cli.weights.items():
        np.testing.assert_array_equal(weights, library.weights[name], err_msg=name)


def _text(folder: Path) -> Path:
    path = folder / "poem.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


def test_a_plan_holds_the_measured_defaults_for_its_data(tmp_path):
    text = plan_run(_text(tmp_path), out=tmp_path / "poem.safetensors")
    assert (text.model.cell, text.model.layers, text.model.hidden) == ("gru", 1, 128)  # a small text's
    assert text.model.vocab_size == len(text.data.vocab)
    assert any("a small text" in note for note in text.notes)

    series = plan_run(trending_csv(tmp_path), out=tmp_path / "sales.safetensors")
    assert series.data.target == "diff" and series.model.head == "gaussian"
    assert series.train.window < TrainConfig().window  # fitted to 72 values


def test_a_plan_changes_nothing_it_is_given(tmp_path):
    data = load_data(str(_text(tmp_path)))
    model = ModelConfig(hidden=16, embed=8)
    given = replace(model)
    trainer = Trainer(data, model, TrainConfig(batch_size=2, window=16, steps=1), tmp_path / "t.safetensors")
    assert model == given and model.vocab_size == 0
    assert trainer.model_config.vocab_size == len(data.vocab)


def test_a_plan_refuses_what_it_cannot_do_before_reading_any_data(tmp_path):
    with pytest.raises(UsageError, match="`hiden` is not an option"):
        plan_run(tmp_path / "never read.txt", hiden=64)
    with pytest.raises(UsageError, match="`calendar` must be one of"):
        plan_run(tmp_path / "never read.txt", calendar="weekly")
    with pytest.raises(UsageError, match="`target` applies to numeric series"):
        plan_run(_text(tmp_path), target="diff")
    (tmp_path / "poem.safetensors").write_text("a finished model")
    with pytest.raises(UsageError, match="already exists; pass `force`"):
        plan_run(_text(tmp_path), out=tmp_path / "poem.safetensors")
