"""Checkpoints: atomic, verified, and never a way to run code."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from seqgen import CheckpointError, load_checkpoint, save_checkpoint


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(
        path, {"model": {"cell": "lstm"}, "data": {"kind": "text"}}, {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    )
    ckpt = load_checkpoint(path)
    np.testing.assert_array_equal(ckpt.weights["w"], np.arange(6).reshape(2, 3))
    assert ckpt.meta["model"] == {"cell": "lstm"} and ckpt.meta["format_version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temporary file left behind


def test_truncated_and_flipped_files_are_reported(text_checkpoint, tmp_path):
    raw = text_checkpoint.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(cut)
    flipped = tmp_path / "flip.safetensors"
    damaged = bytearray(raw)
    damaged[-100] ^= 0x40
    flipped.write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(flipped)


def test_a_pickle_is_rejected_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError, match="not a seqgen checkpoint"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_future_format_version_is_refused(tmp_path):
    import json

    from safetensors.numpy import save_file

    path = tmp_path / "future.safetensors"
    save_file(
        {"model.w": np.zeros(2, np.float32)},
        path,
        metadata={"seqgen": json.dumps({"format": "seqgen-checkpoint", "format_version": 99})},
    )
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(path)


def test_strip_keeps_what_sampling_needs_and_drops_the_resume_state(text_checkpoint, tmp_path):
    from seqgen import Generator
    from seqgen.checkpoint import strip_training_state

    small = strip_training_state(text_checkpoint, tmp_path / "small.safetensors")
    full, stripped = load_checkpoint(text_checkpoint), load_checkpoint(small)
    assert full.training and not stripped.training
    assert small.stat().st_size < text_checkpoint.stat().st_size
    outputs = []
    for ckpt in (full, stripped):
        gen = Generator.from_checkpoint(ckpt, seed=4)
        gen.feed("To be")
        outputs.append(gen.decode([t[0] for t in gen.generate(40)]))
    assert outputs[0] == outputs[1]


def test_saved_files_get_the_usual_permissions(tmp_path):
    import os

    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"data": {"kind": "text"}}, {"w": np.zeros(2, np.float32)})
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_checkpoint_describes_its_data_with_defaults_for_what_older_files_left_out(sine_checkpoint, tmp_path):
    from seqgen.checkpoint import DataDescription

    sine = load_checkpoint(sine_checkpoint).described
    assert sine.kind == "series" and sine.is_sine and sine.target == "level" and sine.series == []
    old = DataDescription.from_dict({"kind": "series", "mean": 1.0, "std": 2.0, "prime": [1.0, 2.0]})
    assert (old.val_fraction, old.target, old.channels, old.columns, old.frequency) == (0.1, "level", None, [], None)
    assert DataDescription.from_dict({"kind": "text", "vocab": ["a"], "a field of a later version": 1}).vocab == ["a"]
