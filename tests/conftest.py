"""Shared helpers: tiny data and tiny trained checkpoints, made fresh for the tests."""

from __future__ import annotations

import math
import os

# On a small shared machine torch's worker threads spin against each other and a one-second
# test takes minutes; one thread per process (subprocesses inherit it) keeps the suite fast.
os.environ.setdefault("OMP_NUM_THREADS", "1")
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare.txt"

TINY_TEXT = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
) * 6


@pytest.fixture(autouse=True, scope="session")
def data_cache(tmp_path_factory) -> Path:
    """Decoded training data goes to the tests' own cache folder, not the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("cache")
    os.environ["XDG_CACHE_HOME"] = str(folder)  # subprocesses inherit it
    return folder / "seqgen"


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "poem.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


@pytest.fixture
def series_file(tmp_path: Path) -> Path:
    t = np.arange(600)
    values = 3.0 + 2.0 * np.sin(2 * math.pi * t / 25)
    path = tmp_path / "wave.txt"
    path.write_text("\n".join(f"{v:.6f}" for v in values) + "\n")
    return path


@pytest.fixture(scope="session")
def text_checkpoint(tmp_path_factory) -> Path:
    """A small text model trained for a few steps (shared by many tests; do not modify)."""
    from seqgen import ModelConfig, TrainConfig, Trainer, load_data

    folder = tmp_path_factory.mktemp("text_ckpt")
    source = folder / "poem.txt"
    source.write_text(TINY_TEXT + "Ünïcödé ✓ 漢字 🙂\n", encoding="utf-8")
    data = load_data(str(source))
    out = folder / "poem.safetensors"
    Trainer(
        data, ModelConfig(hidden=32, embed=16), TrainConfig(batch_size=4, window=32, steps=30, eval_every=10), out
    ).run()
    return out


@pytest.fixture(scope="session")
def sine_checkpoint(tmp_path_factory) -> Path:
    from seqgen import ModelConfig, SineConfig, TrainConfig, Trainer, load_data

    out = tmp_path_factory.mktemp("sine_ckpt") / "sine.safetensors"
    data = load_data(None, sine=SineConfig(waves=16, length=200))
    Trainer(
        data, ModelConfig(hidden=16, layers=1), TrainConfig(batch_size=8, window=50, steps=20, eval_every=10), out
    ).run()
    return out
