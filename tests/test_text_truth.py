"""Text training and generation that say what they are: what a validation loss means and whether
more time would help, samples as a model trains, and a warning when greedy or beam output loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from seqgen import ModelConfig, TrainConfig, Trainer, load_checkpoint, load_data
from seqgen.cli import app
from seqgen.generate.loops import find_loop
from seqgen.train.meaning import Yardsticks, band, bits, outlook, yardsticks
from seqgen.train.samples import with_samples

from conftest import TINY_TEXT

runner = CliRunner()
PROSE = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair.\n"
)


def tiny_run(text_file, out, **train) -> Trainer:
    data = load_data(str(text_file))
    config = TrainConfig(batch_size=4, window=16, steps=20, eval_every=10, seed=3, **train)
    return Trainer(data, ModelConfig(hidden=16, embed=8, layers=1), config, out)


# --- what a loss means ---------------------------------------------------------------------------
def test_the_yardsticks_of_a_text_go_from_letters_to_words():
    sticks = yardsticks(PROSE * 3)
    # Knowing the character before helps; knowing the words helps more.
    assert sticks.unigram > sticks.bigram > sticks.words > 0
    assert bits(sticks.unigram) == pytest.approx(4.0, abs=0.5)  # English letters and spaces: about 4 bits


def test_a_loss_is_named_by_the_yardsticks_it_beats():
    sticks = Yardsticks(unigram=3.3, bigram=2.4, words=1.6)
    assert [band(loss, sticks) for loss in (3.5, 2.9, 2.0, 1.4)] == ["unigram", "letters", "words", "fluent"]


def test_the_outlook_reads_the_run_s_own_curve():
    falling = [(t, 3.0 - 0.3 * math.log2(t)) for t in (10, 20, 40, 80, 160)]
    improving = outlook(falling, best=falling[-1][1])
    assert improving.verdict == "improving"
    assert improving.gain == pytest.approx(0.3, abs=0.02)  # the fall over the last doubling of time
    flat = [(t, 2.0 + 0.001 * (t % 20 == 0)) for t in (10, 20, 40, 80, 160)]
    assert outlook(flat, best=2.0).verdict == "levelled"
    rising = [(10, 2.5), (20, 2.0), (40, 2.2), (80, 2.4)]
    assert outlook(rising, best=2.0).verdict == "overfitting"
    assert outlook([(10, 2.5)], best=2.5).verdict == "unknown"


def test_training_on_text_ends_with_what_the_loss_means(text_file, tmp_path):
    result = runner.invoke(
        app,
        [
            "train",
            str(text_file),
            "--out",
            str(tmp_path / "m.safetensors"),
            "--steps",
            "20",
            "--hidden",
            "16",
            "--layers",
            "1",
            "--batch-size",
            "4",
            "--window",
            "16",
            "--eval-every",
            "10",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())  # the table may wrap its cells
    assert "what it means" in said and "a unigram model scores" in said
    assert "training longer" in said and "would" in said
    assert "sample at step" not in said  # --quiet: no samples


# --- samples as it trains ------------------------------------------------------------------------
def test_a_sample_comes_after_each_validation_and_changes_nothing_in_the_run(text_file, tmp_path):
    events = []
    trainer = tiny_run(text_file, tmp_path / "with.safetensors")
    trainer.run(on_event=with_samples(trainer, events.append, every=1))
    samples = [e for e in events if e["type"] == "sample"]
    assert [e["step"] for e in samples] == [e["step"] for e in events if e["type"] == "eval"] == [10, 20]
    assert all(len(e["text"]) >= 200 and set(e["text"]) <= set(TINY_TEXT) for e in samples)
    plain = tiny_run(text_file, tmp_path / "without.safetensors")
    plain.run()
    with_weights, without = (load_checkpoint(tmp_path / f"{k}.safetensors").weights for k in ("with", "without"))
    assert all(np.array_equal(with_weights[k], without[k]) for k in without)


def test_sample_every_n_validations_from_the_command_line(text_file, tmp_path):
    result = runner.invoke(
        app,
        [
            "train",
            str(text_file),
            "--out",
            str(tmp_path / "m.safetensors"),
            "--steps",
            "40",
            "--hidden",
            "16",
            "--layers",
            "1",
            "--batch-size",
            "4",
            "--window",
            "16",
            "--eval-every",
            "10",
            "--sample-every",
            "2",
            "--log-every",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    assert [line.split()[3] for line in result.stderr.splitlines() if line.startswith("sample at step")] == [
        "20:",
        "40:",
    ]


# --- loops ---------------------------------------------------------------------------------------
def test_a_loop_at_the_end_of_a_text_is_found():
    loop = find_loop("Once upon a time, " + "the of " * 20)
    assert loop is not None and loop.cycle in ("the of ", "of the ", " the of", "he of t") and loop.start <= 18
    assert loop.repeats >= 19
    assert find_loop(PROSE) is None
    assert find_loop("the " * 5) is None  # too short to call a loop


@pytest.mark.parametrize("choice", (["--greedy"], ["--beam", "3"]))
def test_greedy_or_beam_output_that_loops_is_warned_about_with_what_to_try(text_checkpoint, choice):
    looping = runner.invoke(app, ["sample", str(text_checkpoint), *choice, "-n", "300", "--prime", "To be"])
    assert looping.exit_code == 0, looping.output
    assert find_loop(looping.stdout.rstrip("\n")) is not None  # a model this small loops at once
    warning = " ".join(looping.stderr.split())
    assert "falls into a loop" in warning and "--repetition-penalty" in warning and "--temperature" in warning
    sampled = runner.invoke(app, ["sample", str(text_checkpoint), "-n", "300", "--prime", "To be", "--seed", "1"])
    assert "loop" not in sampled.stderr
