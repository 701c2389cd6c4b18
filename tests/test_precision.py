"""Mixed precision: bfloat16 arithmetic in training, float32 weights and checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from seqgen import Generator, ModelConfig, TrainConfig, Trainer, UsageError, load_checkpoint, load_data
from seqgen.train import precision as precision_module
from seqgen.train.precision import hardware_runs, resolve_precision

CPU = torch.device("cpu")
# Training in bfloat16 needs the units (AVX-512 BF16 or AMX on x86); an AVX2-only CPU has none.
needs_bf16 = pytest.mark.skipif(
    not hardware_runs(CPU, "bf16", "lstm"),
    reason="this CPU has no bfloat16 units for an LSTM (test_no_bf16_units_means_one_line_and_exit_2_before_any_work checks the error)",
)


def test_auto_takes_bf16_only_for_an_lstm_text_model_on_bfloat16_hardware(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(precision_module, "runs_in", lambda device, precision, cell: True)
    assert resolve_precision("auto", CPU, "lstm", 384, is_text=True) == "bf16"
    assert resolve_precision("auto", CPU, "gru", 384, is_text=True) == "fp32"  # measured 1.1x: not worth it
    assert resolve_precision("auto", CPU, "lstm", 64, is_text=True) == "fp32"  # too small to gain
    assert resolve_precision("auto", CPU, "lstm", 384, is_text=False) == "fp32"  # series values need float32
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", CPU, "lstm", 384, is_text=True) == "fp32"  # falls back without the units
    with pytest.raises(UsageError, match="no bfloat16 units"):  # asked for by name: an error, not a slow emulation
        resolve_precision("bf16", CPU, "gru", 32, is_text=False)
    with pytest.raises(UsageError, match="fp16 is for CUDA"):
        resolve_precision("fp16", CPU, "lstm", 384, is_text=True)


def test_bfloat16_units_without_a_kernel_for_the_cell_are_refused_too(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(precision_module, "runs_in", lambda device, precision, cell: cell != "lstm")
    assert resolve_precision("auto", CPU, "lstm", 384, is_text=True) == "fp32"
    assert resolve_precision("bf16", CPU, "gru", 384, is_text=True) == "bf16"
    with pytest.raises(UsageError, match="kernel for the LSTM cell"):
        resolve_precision("bf16", CPU, "lstm", 384, is_text=True)


def test_no_bf16_units_means_one_line_and_exit_2_before_any_work(text_file, tmp_path):
    """As on an AVX2-only CPU: oneDNN capped at AVX2 has no bfloat16 LSTM kernel (on x86)."""
    capped = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import torch; from seqgen.train.precision import hardware_runs; "
            "print(hardware_runs(torch.device('cpu'), 'bf16', 'lstm'))",
        ],
        capture_output=True,
        text=True,
        env=capped,
    )
    if probe.stdout.strip() != "False":
        pytest.skip("this CPU runs bfloat16 even with oneDNN capped at AVX2 (not x86?)")
    out = tmp_path / "m.safetensors"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqgen",
            "train",
            str(text_file),
            "--precision",
            "bf16",
            "--cell",
            "lstm",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=capped,
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--precision bf16" in result.stderr and "--precision fp32" in result.stderr
    assert not out.exists()


def train(text_file, out, steps, precision="bf16", resume=None):
    config = TrainConfig(batch_size=4, window=16, steps=steps, eval_every=3, precision=precision)
    model = ModelConfig(cell="lstm", layers=1, hidden=32, embed=8)
    resumed = load_checkpoint(out) if resume else None
    return Trainer(load_data(str(text_file)), model, config, out, resume=resumed).run()


@needs_bf16
def test_a_bf16_run_saves_float32_weights_and_resumes_exactly(text_file, tmp_path):
    whole, split = tmp_path / "whole.safetensors", tmp_path / "split.safetensors"
    train(text_file, whole, 6)
    train(text_file, split, 3)
    train(text_file, split, 6, resume=True)
    a, b = load_checkpoint(whole), load_checkpoint(split)
    assert a.meta["progress"]["precision"] == "bf16" and b.meta["progress"]["precision"] == "bf16"
    assert all(w.dtype == np.float32 for w in a.weights.values())
    for name in a.weights:
        np.testing.assert_array_equal(a.weights[name], b.weights[name])
    gen = Generator.from_checkpoint(whole, seed=0)  # the NumPy backend reads the float32 weights
    gen.feed("To be")
    assert len(gen.decode(np.array(list(gen.generate(10)))[:, 0])) == 10


@needs_bf16
def test_a_resumed_run_keeps_its_precision_unless_another_is_named(text_file, tmp_path, monkeypatch):
    out = tmp_path / "m.safetensors"
    train(text_file, out, 3, precision="bf16")
    train(text_file, out, 6, precision="auto", resume=True)  # auto alone would say fp32 for 32 units
    assert load_checkpoint(out).meta["progress"]["precision"] == "bf16"
    train(text_file, out, 9, precision="fp32", resume=True)
    assert load_checkpoint(out).meta["progress"]["precision"] == "fp32"


def test_a_bf16_run_resumed_where_bf16_cannot_run_says_so_and_how_to_go_on(text_file, tmp_path, monkeypatch):
    """The default full-size text model trains in bf16 where the CPU has the units; resumed on
    one without them (an AVX2-only CPU), it must not crash inside oneDNN."""
    from seqgen.checkpoint import save_checkpoint

    out = tmp_path / "m.safetensors"
    train(text_file, out, 3, precision="fp32")
    ckpt = load_checkpoint(out)  # as a run trained in bf16 elsewhere would have saved it
    meta = {k: v for k, v in ckpt.meta.items() if k not in ("format", "format_version", "checksum")}
    meta["train"]["precision"] = meta["progress"]["precision"] = "bf16"
    save_checkpoint(out, meta, ckpt.weights, ckpt.training)
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: False)
    with pytest.raises(UsageError, match="trained in bf16.*give `precision` fp32"):
        train(text_file, out, 6, precision="auto", resume=True)
    train(text_file, out, 6, precision="fp32", resume=True)  # as the message says
    assert load_checkpoint(out).meta["progress"]["precision"] == "fp32"


def test_an_fp16_run_resumed_without_cuda_is_a_one_line_usage_error(text_file, tmp_path):
    from seqgen.checkpoint import save_checkpoint

    out = tmp_path / "m.safetensors"
    train(text_file, out, 3, precision="fp32")
    ckpt = load_checkpoint(out)  # as a run trained in fp16 on a GPU would have saved it
    meta = {k: v for k, v in ckpt.meta.items() if k not in ("format", "format_version", "checksum")}
    meta["train"]["precision"] = meta["progress"]["precision"] = "fp16"
    save_checkpoint(out, meta, ckpt.weights, ckpt.training)
    for asked in ([], ["--precision", "auto"]):  # auto keeps the precision a run began with
        result = subprocess.run(
            [sys.executable, "-m", "seqgen", "train", "--resume", str(out), "--steps", "6", *asked],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "trained in fp16" in result.stderr and "--device cuda" in result.stderr


def test_a_resumed_fp16_run_keeps_its_loss_scale(text_file, tmp_path, monkeypatch):
    from seqgen.train import trainer as trainer_module

    # float16 runs on CUDA only; a CPU scaler stands in for its loss scale here.
    monkeypatch.setattr(
        trainer_module, "grad_scaler", lambda device, precision: torch.amp.GradScaler("cpu", init_scale=8.0)
    )
    out = tmp_path / "m.safetensors"
    train(text_file, out, 3, precision="fp32")  # the stand-in scaler runs in any precision
    assert load_checkpoint(out).meta["progress"]["grad_scaler"]["scale"] == 8.0
    monkeypatch.setattr(trainer_module, "grad_scaler", lambda device, precision: torch.amp.GradScaler("cpu"))
    config = TrainConfig(batch_size=4, window=16, steps=6, eval_every=3, precision="fp32")
    resumed = Trainer(
        load_data(str(text_file)),
        ModelConfig(cell="lstm", layers=1, hidden=32, embed=8),
        config,
        out,
        resume=load_checkpoint(out),
    )
    assert resumed.scaler.get_scale() == 8.0  # not a fresh scaler's 65536


@needs_bf16
def test_bf16_training_lands_near_fp32(text_file, tmp_path):
    fp32 = train(text_file, tmp_path / "a.safetensors", 30, precision="fp32").best_val
    bf16 = train(text_file, tmp_path / "b.safetensors", 30, precision="bf16").best_val
    assert abs(fp32 - bf16) < 0.1 * fp32  # the same recipe: a loss within 10%


def test_a_full_size_text_gets_an_lstm_with_dropout_where_bfloat16_is_fast():
    from seqgen.config import defaults_for

    model, train = defaults_for("text", size=1_000_000, bf16=True)
    assert (model.cell, model.hidden, model.dropout) == ("lstm", 384, 0.2) and train.max_time == 300
    model, _ = defaults_for("text", size=1_000_000, bf16=False)
    assert (model.cell, model.dropout) == ("gru", 0.0)
    assert defaults_for("text", size=5_000, bf16=True) == defaults_for("text", size=5_000)  # small texts: as they were


def test_the_readme_and_the_reference_name_the_text_defaults_the_code_takes():
    from pathlib import Path

    from seqgen.config import defaults_for

    root = Path(__file__).resolve().parents[1]
    readme = " ".join((root / "README.md").read_text().split())
    reference = " ".join((root / "docs" / "reference.md").read_text().split())
    fast, _ = defaults_for("text", size=1_000_000, bf16=True)
    other, _ = defaults_for("text", size=1_000_000, bf16=False)
    assert (fast.cell, other.cell) == ("lstm", "gru")
    assert (
        f"with an LSTM {fast.layers}x{fast.hidden} (dropout {fast.dropout:g}, trained in bfloat16) where the CPU "
        f"or GPU has bfloat16 units, a GRU {other.layers}x{other.hidden} elsewhere"
    ) in readme
    assert (
        f"LSTM, {fast.layers} layers x {fast.hidden}, embedding {fast.embed}, dropout {fast.dropout:g}; "
        f"elsewhere GRU, {other.layers} layers x {other.hidden}"
    ) in reference
