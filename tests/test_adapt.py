"""Models that keep learning as they read: `seqgen eval --adapt` (dynamic evaluation) and
`seqgen sample --adapt` (a copy of the weights fine-tuned on the prime)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from typer.testing import CliRunner

from seqgen import AdaptConfig, CheckpointError, Generator, UsageError, load_checkpoint
from seqgen.adapt import adapt_to_prime
from seqgen.cli import app
from seqgen.evaluate import evaluate_text
from seqgen.generate import sample
from seqgen.generate.api import start

runner = CliRunner()

# Words the small test model has seen (its vocabulary), in an order it has not: a stream that
# repeats it is easy to learn while reading and hard to know beforehand.
UNSEEN = "the sea of the mind is not the question, "
QUICK = AdaptConfig(lr=3e-3, window=20)


def refused(capsys, monkeypatch, *args) -> str:
    """What `seqgen ARGS` says on stderr when it refuses them (exit status 2, one line, no traceback)."""
    from seqgen.cli.app import main

    monkeypatch.setattr("sys.argv", ["seqgen", *map(str, args)])
    with pytest.raises(SystemExit) as exit:
        main()
    said = capsys.readouterr().err
    assert exit.value.code == 2 and len(said.strip().splitlines()) == 1, said
    return said


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_dynamic_evaluation_learns_a_repetitive_stream_the_model_did_not_know(text_checkpoint, tmp_path):
    path = tmp_path / "refrain.txt"
    path.write_text(UNSEEN * 40)
    static = evaluate_text(text_checkpoint, path, val_fraction=0.5)
    both = evaluate_text(text_checkpoint, path, val_fraction=0.5, adapt=QUICK)
    # The static figures do not depend on asking for the adapted one, which is reported apart.
    assert (both.loss, both.stream_loss, both.windows_loss) == (static.loss, static.stream_loss, static.windows_loss)
    assert static.adapted_loss is None
    assert both.adapted_loss < both.stream_loss - 0.3
    assert both.adapt["method"] == "rms" and both.adapt["window"] == 20


def test_the_sgd_update_learns_too_and_a_decay_holds_it_back(text_checkpoint, tmp_path):
    path = tmp_path / "refrain.txt"
    path.write_text(UNSEEN * 40)
    free = evaluate_text(
        text_checkpoint, path, val_fraction=0.5, adapt=AdaptConfig(method="sgd", lr=0.3, window=20, decay=0)
    )
    held = evaluate_text(
        text_checkpoint, path, val_fraction=0.5, adapt=AdaptConfig(method="sgd", lr=0.3, window=20, decay=0.5)
    )
    assert free.adapted_loss < held.adapted_loss < free.stream_loss


def test_eval_adapt_prints_both_figures_labelled(text_checkpoint, tmp_path):
    path = tmp_path / "refrain.txt"
    path.write_text(UNSEEN * 40)
    result = runner.invoke(
        app,
        [
            "eval",
            str(text_checkpoint),
            str(path),
            "--val-fraction",
            "0.5",
            "--adapt",
            "--adapt-lr",
            "0.003",
            "--adapt-window",
            "20",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "one stream, state carried through" in result.stderr
    assert "adapted loss (dynamic evaluation, rms lr 0.003, windows of 20)" in result.stderr
    import json

    figures = json.loads(result.stdout)
    assert figures["loss"] == figures["stream_loss"] > figures["adapted_loss"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--adapt-lr", "0.1"], "give --adapt too"),
        (["--adapt", "--adapt-lr", "0"], "--adapt-lr must be > 0"),
        (["--adapt", "--adapt-window", "0"], "--adapt-window must be >= 1"),
    ],
)
def test_eval_adapt_options_are_checked(text_checkpoint, args, message, capsys, monkeypatch):
    assert message in refused(capsys, monkeypatch, "eval", text_checkpoint, *args)


def test_adapt_on_a_model_of_numbers_is_one_line(sine_checkpoint, capsys, monkeypatch):
    assert "text models" in refused(capsys, monkeypatch, "eval", sine_checkpoint, "--adapt")
    assert "text models" in refused(capsys, monkeypatch, "sample", sine_checkpoint, "--adapt", "--prime", "1 2 3")


def test_a_prime_adapted_to_is_predicted_better_and_the_checkpoint_is_untouched(text_checkpoint):
    before = digest(text_checkpoint)
    ckpt = load_checkpoint(text_checkpoint)
    trained = {k: v.copy() for k, v in ckpt.weights.items()}
    ids = Generator.from_checkpoint(ckpt).encode(UNSEEN * 6)
    adapted = adapt_to_prime(ckpt, ids, AdaptConfig(lr=3e-3, window=20, passes=3))

    def loss(checkpoint) -> float:  # of the refrain once more, after the prime
        gen = Generator.from_checkpoint(checkpoint)
        logits = gen.feed(ids[None, :])[0, -len(UNSEEN) - 1 : -1].astype(np.float64)
        logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        return -logp[np.arange(len(UNSEEN)), ids[-len(UNSEEN) :]].mean()

    assert loss(adapted) < loss(ckpt) - 0.3
    assert all(np.array_equal(ckpt.weights[k], trained[k]) for k in trained)
    assert digest(text_checkpoint) == before


def test_adapted_sampling_saved_and_loaded_goes_on_like_one_long_call(text_checkpoint, tmp_path):
    state = tmp_path / "state.safetensors"
    prime = UNSEEN * 4
    whole = sample(text_checkpoint, prime=prime, length=120, seed=3, adapt=QUICK)
    first = sample(text_checkpoint, prime=prime, length=60, seed=3, adapt=QUICK, save_state=state)
    second = sample(text_checkpoint, length=60, load_state=state)
    assert first[0] + second[0] == whole[0]
    assert whole != sample(text_checkpoint, prime=prime, length=120, seed=3)  # the weights did change
    # Through the command line too, and with the torch backend, the weights reach the generator.
    args = ["sample", str(text_checkpoint), "--prime", prime, "--adapt", "--seed", "3", "-n"]
    long = runner.invoke(app, [*args, "80"])
    part = runner.invoke(app, [*args, "40", "--save-state", str(state)])
    rest = runner.invoke(app, ["sample", str(text_checkpoint), "-n", "40", "--load-state", str(state)])
    torch = runner.invoke(app, [*args, "80", "--backend", "torch"])
    assert long.exit_code == part.exit_code == rest.exit_code == torch.exit_code == 0, long.output
    assert "adapted a copy of the weights to the prime" in long.stderr
    assert part.stdout + rest.stdout == long.stdout == torch.stdout


def test_a_state_with_adapted_weights_goes_on_only_with_them(text_checkpoint, tmp_path, capsys, monkeypatch):
    state = tmp_path / "state.safetensors"
    sample(text_checkpoint, prime=UNSEEN * 2, length=5, seed=1, adapt=QUICK, save_state=state)
    plain = Generator.from_checkpoint(text_checkpoint)  # the checkpoint's own weights, as a server holds them
    with pytest.raises(CheckpointError, match="weights adapted to its prime"):
        start(plain, load_checkpoint(text_checkpoint), load_state=str(state))
    with pytest.raises(UsageError, match="drop `adapt`"):
        sample(text_checkpoint, length=5, load_state=state, adapt=True)
    assert "--adapt learns from the prime" in refused(capsys, monkeypatch, "sample", text_checkpoint, "--adapt")
    assert "drop --adapt" in refused(capsys, monkeypatch, "sample", text_checkpoint, "--adapt", "--load-state", state)


def test_a_character_absent_from_the_measured_text_takes_a_bounded_step(text_checkpoint):
    """The rms update divides by each weight's gradient scale; the embedding of a character the
    scale was not measured on has none, and must not take a step of lr / 1e-8 when it appears."""
    from seqgen.adapt import Adapter, torch_model, windows_of

    ckpt = load_checkpoint(text_checkpoint)
    gen = Generator.from_checkpoint(ckpt)
    adapter = Adapter(torch_model(ckpt), QUICK)
    adapter.gradient_scale(windows_of(gen.encode(UNSEEN * 10), QUICK.window))
    before = adapter.weights()["embed.weight"]
    adapter.read(gen.encode("the 漢字 of")[:-1], gen.encode("the 漢字 of")[1:])
    moved = np.abs(adapter.weights()["embed.weight"] - before).max()
    assert 0 < moved < 1000 * QUICK.lr
