"""Text in tokens other than characters (`seqgen train --tokens char|byte|word|bpe`): each
tokenization reads its text back exactly, and training, sampling, stop strings, state files,
eval, info and serve work the same whatever a token is."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from typer.testing import CliRunner

from seqgen import Generator, ModelConfig, TrainConfig, Trainer, load_checkpoint, load_data
from seqgen.cli import app
from seqgen.data.tokenizers import ByteTokenizer, learn_tokenizer, tokenizer_for
from seqgen.evaluate import evaluate_text
from seqgen.generate import sample
from seqgen.generate.sampling import TextStopMatcher
from seqgen.generate.state import state_bytes, state_from_bytes
from seqgen.info import checkpoint_info

from conftest import TINY_TEXT
from test_reliability import assert_one_line_error, env

KINDS = ("char", "byte", "word", "bpe")
# Accents, CJK, an emoji (four UTF-8 bytes) and typographic punctuation, in both the training
# and the validation part.
TEXT = "Ünïcödé café ✓ 漢字 🙂\n" + TINY_TEXT + "naïve “quotes” — 漢字 🙂 and ✓ done\n" * 4
runner = CliRunner()


def needs(kind: str) -> None:
    """BPE is learnt with Hugging Face's tokenizers, an optional extra."""
    if kind == "bpe":
        pytest.importorskip("tokenizers")


def learnt(kind: str):
    needs(kind)
    split = len(TEXT) - round(len(TEXT) * 0.1)
    return learn_tokenizer(kind, TEXT[:split], TEXT, vocab_size=300 if kind in ("word", "bpe") else None)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "poem.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(corpus):
    """A tiny model per tokenization, trained once for the module: trained(kind) -> checkpoint."""
    made: dict[str, Path] = {}

    def train(kind: str) -> Path:
        needs(kind)
        if kind not in made:
            data = load_data(str(corpus), tokens=kind, vocab_size=300 if kind in ("word", "bpe") else None)
            out = corpus.parent / f"{kind}.safetensors"
            Trainer(
                data,
                ModelConfig(hidden=24, embed=8, layers=1),
                TrainConfig(batch_size=4, window=16, steps=12, eval_every=6, seed=1),
                out,
            ).run()
            made[kind] = out
        return made[kind]

    return train


def sample_cli(*args: str) -> str:
    result = runner.invoke(app, ["sample", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


# --- the tokenizers ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_each_tokenization_reads_its_text_back_byte_for_byte(kind):
    tokenizer = learnt(kind)
    ids = tokenizer.encode(TEXT)
    assert tokenizer.decode(ids) == TEXT
    assert tokenizer.characters(ids) == len(TEXT)
    # What a checkpoint stores is JSON; the tokenizer made from it encodes the same way.
    stored = {"vocab": tokenizer.vocab} if kind == "char" else {"tokenizer": tokenizer.to_dict()}
    again = tokenizer_for(json.loads(json.dumps(stored)))
    assert again.kind == kind and list(again.encode(TEXT)) == list(ids)


def test_subword_tokens_are_fewer_than_characters():
    per_token = {kind: len(TEXT) / len(learnt(kind).encode(TEXT)) for kind in ("char", "byte", "word")}
    assert per_token["char"] == 1 and per_token["byte"] < 1 < per_token["word"]
    if "bpe" in KINDS:
        pytest.importorskip("tokenizers")
        assert len(learnt("bpe").encode(TEXT)) < len(TEXT)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_bytes_read_back_any_text(text):
    tokenizer = ByteTokenizer()
    assert tokenizer.decode(tokenizer.encode(text)) == text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_bpe_reads_back_any_text_even_one_it_never_saw(text):
    tokenizer = learnt("bpe")
    assert tokenizer.decode(tokenizer.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=sorted(set(TEXT))))
def test_words_read_back_any_text_over_the_training_alphabet(text):
    tokenizer = learnt("word")
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_the_same_text_learns_the_same_tokens():
    for kind in ("word", "bpe"):
        assert learnt(kind).to_dict() == learnt(kind).to_dict()


def test_streamed_bytes_hold_back_a_character_until_its_last_byte():
    stream = ByteTokenizer().detokenizer(1)
    pieces = [stream.add(np.array([b]))[0] for b in "é🙂!".encode()]
    assert pieces == ["", "é", "", "", "", "🙂", "!"]
    assert stream.end() == [""]
    stream.add(np.array([0xF0]))  # a character that never gets its other three bytes
    assert stream.end() == ["\ufffd"]


def test_a_stop_string_is_found_across_and_inside_tokens():
    matcher = TextStopMatcher("be,", batch_size=2)
    assert list(matcher.update(np.zeros(2), ["To", " to b"])) == [False, False]
    assert list(matcher.update(np.zeros(2), [" b", "e, or"])) == [False, True]  # ends inside the token
    assert list(matcher.update(np.zeros(2), ["", ""])) == [False, False]  # a byte inside a character
    assert list(matcher.update(np.zeros(2), ["e", "be,"])) == [False, True]
    assert list(matcher.update(np.zeros(2), [","] * 2)) == [True, False]


# --- training and sampling -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_a_model_of_each_tokenization_trains_and_stores_its_tokenizer(kind, trained):
    ckpt = load_checkpoint(trained(kind))
    assert checkpoint_info(ckpt)["data"]["tokens"] == kind
    assert ckpt.model_config.vocab_size == len(learnt(kind))
    if kind == "char":  # stored as every checkpoint before tokenizers stored it, which any seqgen reads
        assert "tokenizer" not in ckpt.data and ckpt.meta["format_version"] == 1
    else:
        assert ckpt.data["tokenizer"]["kind"] == kind and ckpt.meta["format_version"] == 2
    assert 0 < ckpt.meta["progress"]["best_val_bpc"] < 16


@pytest.mark.parametrize("kind", KINDS)
def test_the_same_seed_samples_the_same_text_on_both_backends(kind, trained):
    ckpt = trained(kind)
    on_numpy = sample(ckpt, prime="To be", length=80, seed=4, num_samples=2, backend="numpy")
    on_torch = sample(ckpt, prime="To be", length=80, seed=4, num_samples=2, backend="torch")
    assert on_numpy == on_torch
    assert on_numpy != sample(ckpt, prime="To be", length=80, seed=5, num_samples=2)
    assert all(isinstance(text, str) and text for text in on_numpy)


def test_a_checkpoint_samples_without_torch(trained):
    ckpt = trained("bpe")
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
        "from seqgen.generate import sample\n"
        f"print(sample({str(ckpt)!r}, prime='To be', length=30, seed=4, backend='numpy')[0], end='')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == sample(ckpt, prime="To be", length=30, seed=4)[0]


@pytest.mark.parametrize("kind", KINDS)
def test_per_step_jsonl_has_one_object_per_token_with_its_text(kind, trained):
    ckpt = str(trained(kind))
    lines = sample_cli(ckpt, "--prime", "To be", "-n", "40", "--seed", "2", "--format", "jsonl", "--per-step")
    records = [json.loads(line) for line in lines.splitlines()]
    assert [r["step"] for r in records] == list(range(1, 41))
    assert all(0 < r["probability"] <= 1 for r in records)
    whole = sample(ckpt, prime="To be", length=40, seed=2)[0]
    # The tokens' texts are the text, but for a character left incomplete at the very end.
    joined = "".join(r["token"] for r in records)
    assert whole in (joined, joined + "\ufffd")
    if kind != "char":  # a byte inside a character has no text of its own: its id says which it was
        tokenizer = tokenizer_for(load_checkpoint(ckpt).data)
        assert tokenizer.decode([r["id"] for r in records]) in (whole, whole.removesuffix("\ufffd"))


@pytest.mark.parametrize("kind", KINDS)
def test_a_stop_string_spanning_two_tokens_ends_the_sample(kind, trained):
    ckpt = trained(kind)
    gen = Generator.from_checkpoint(ckpt, seed=8)
    gen.feed("To be")
    texts = []
    for _ in range(60):
        texts.append(gen.step().text[0])
    # A stop string made of the end of one token and the start of the next.
    k = next(k for k in range(1, len(texts)) if texts[k - 1] and texts[k])
    stop = texts[k - 1][-1] + texts[k][0]
    first = next(i for i in range(len(texts)) if stop in "".join(texts[: i + 1]))
    stopped = sample(ckpt, prime="To be", length=60, seed=8, stop=stop)[0]
    assert stopped == "".join(texts[: first + 1])  # the sample ends with the token that completes it
    assert stop in stopped and stop not in "".join(texts[:first])
    assert sample_cli(str(ckpt), "--prime", "To be", "-n", "60", "--seed", "8", "--stop", stop) == stopped + (
        "" if stopped.endswith("\n") else "\n"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_beam_search_returns_the_best_continuations_as_text(kind, trained):
    ckpt = trained(kind)
    found = sample(ckpt, prime="To be", length=12, beam=3, num_samples=2)
    assert len(found) == 2 and found[0] != found[1]
    assert found == sample(ckpt, prime="To be", length=12, beam=3, num_samples=2, backend="torch")
    assert sample_cli(
        str(ckpt), "--prime", "To be", "-n", "12", "--beam", "3", "--num-samples", "2", "--separator", "|"
    ) == "|".join(found) + ("" if found[-1].endswith("\n") else "\n")


@pytest.mark.parametrize("kind", KINDS)
def test_a_saved_state_continues_the_text_exactly(kind, trained, tmp_path):
    ckpt = str(trained(kind))
    whole = sample_cli(ckpt, "-n", "70", "--seed", "3")
    gen = Generator.from_checkpoint(ckpt, seed=3)
    gen.feed("\n")  # the default prime
    steps = [(gen.step(), gen.detokenizer.pending()[0])[1] for _ in range(70)]
    # Byte tokens: cut where a character is half made, so that the state carries its first bytes.
    cut = next((k + 1 for k, held in enumerate(steps[:-1]) if held), 30) if kind in ("byte", "bpe") else 30
    assert kind not in ("byte", "bpe") or steps[cut - 1]
    state = tmp_path / "state.safetensors"
    part1 = sample_cli(ckpt, "-n", str(cut), "--seed", "3", "--save-state", str(state))
    part2 = sample_cli(ckpt, "-n", str(70 - cut), "--load-state", str(state))
    assert part1 + part2 == whole


def test_a_state_file_carries_the_first_bytes_of_a_character(trained):
    ckpt = trained("byte")
    gen = Generator.from_checkpoint(ckpt, seed=1)
    gen.feed("To be")
    first, second = "é".encode()
    assert gen.advance(np.array([first])).text == [""]  # held back: half a character
    later = Generator.from_checkpoint(ckpt)
    later.restore(state_from_bytes(state_bytes(gen), later))
    assert later.advance(np.array([second])).text == ["é"]


# --- eval, info, resume, the cache, processes ----------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_eval_reports_bits_per_character_of_the_validation_text(kind, trained):
    ckpt = trained(kind)
    result = evaluate_text(ckpt)
    split = len(TEXT) - round(len(TEXT) * 0.1)
    val = TEXT[split:]
    assert result.characters == len(val) and result.tokenization == kind
    # The total loss of the validation tokens, worked out here by feeding them to a generator,
    # over the characters they spell.
    gen = Generator.from_checkpoint(ckpt)
    tokenizer = gen.tokenizer
    before, ids = tokenizer.encode(TEXT[:split])[-1:], tokenizer.encode(val)
    logits = gen.feed(np.concatenate([before, ids[:-1]])[None, :])[0].astype(np.float64)
    top = logits.max(1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(1, keepdims=True))
    total = -logp[np.arange(len(ids)), ids].sum()
    assert result.tokens == len(ids)
    assert result.loss == pytest.approx(total / len(val), rel=1e-4)
    assert result.bits_per_char == pytest.approx(total / len(val) / math.log(2), rel=1e-4)
    figures = json.loads(runner.invoke(app, ["eval", str(ckpt), "--json"]).stdout)
    assert figures["bits_per_char"] == pytest.approx(result.bits_per_char)


def test_info_names_the_tokens(trained):
    result = runner.invoke(app, ["info", str(trained("word"))], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "word tokens: ' to'" in result.stderr + result.stdout
    assert "bits/char" in result.stderr + result.stdout


def test_a_checkpoint_from_before_tokenizers_reads_as_characters(text_checkpoint):
    ckpt = load_checkpoint(text_checkpoint)
    assert "tokenizer" not in ckpt.data and ckpt.meta["format_version"] == 1
    assert tokenizer_for(ckpt.data).kind == "char" and checkpoint_info(ckpt)["data"]["tokens"] == "char"
    assert len(sample(text_checkpoint, length=20, seed=1)[0]) == 20


@pytest.mark.parametrize("kind", ("byte", "bpe"))
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(kind, corpus, tmp_path):
    needs(kind)
    data = load_data(str(corpus), tokens=kind, vocab_size=300 if kind == "bpe" else None)
    model, config = (
        dict(hidden=16, embed=8, layers=1),
        TrainConfig(batch_size=4, window=16, steps=12, eval_every=4, seed=3),
    )
    whole, part = tmp_path / "whole.safetensors", tmp_path / "part.safetensors"
    Trainer(data, ModelConfig(**model), config, whole).run()
    calls = iter(range(1000))
    Trainer(data, ModelConfig(**model), config, part).run(should_stop=lambda: next(calls) >= 7)
    resumed = result = subprocess.run(
        [sys.executable, "-m", "seqgen", "train", "--resume", str(part), "-q"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    a, b = load_checkpoint(whole), load_checkpoint(part)
    assert b.meta["progress"]["step"] == 12 and b.data["tokenizer"] == a.data["tokenizer"]
    for name in a.weights:
        np.testing.assert_allclose(a.weights[name], b.weights[name], atol=1e-6, err_msg=name)
    assert resumed.stdout == ""


def test_tokens_are_cached_with_how_they_were_learnt(corpus, tmp_path, monkeypatch):
    import seqgen.data.text as text

    first = load_data(str(corpus), tokens="word", vocab_size=100, cache_dir=tmp_path)
    monkeypatch.setattr(text, "learn_tokenizer", lambda *a, **k: pytest.fail("learnt again, not read from the cache"))
    again = load_data(str(corpus), tokens="word", vocab_size=100, cache_dir=tmp_path)
    np.testing.assert_array_equal(first.streams[0], again.streams[0])
    assert again.tokenizer.to_dict() == first.tokenizer.to_dict() and again.splits == first.splits
    monkeypatch.undo()
    other = load_data(str(corpus), tokens="word", vocab_size=60, cache_dir=tmp_path)  # another size: another entry
    assert len(other.tokenizer) < len(first.tokenizer)


def test_two_processes_train_word_tokens_as_one_does(corpus, tmp_path):
    (tmp_path / "poem.txt").write_text(TEXT, encoding="utf-8")
    run = [
        "train",
        "poem.txt",
        "--tokens",
        "word",
        "--vocab-size",
        "80",
        "--hidden",
        "16",
        "--embed",
        "8",
        "--layers",
        "1",
        "--batch-size",
        "4",
        "--window",
        "16",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--seed",
        "3",
        "-q",
    ]
    for out, extra in (("one.safetensors", []), ("two.safetensors", ["--nproc", "2"])):
        result = subprocess.run(
            [sys.executable, "-m", "seqgen", *run, "--out", out, *extra],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env(),
            timeout=180,
        )
        assert result.returncode == 0, result.stderr
    a, b = load_checkpoint(tmp_path / "one.safetensors"), load_checkpoint(tmp_path / "two.safetensors")
    assert b.meta["progress"]["processes"] == 2 and b.data["tokenizer"] == a.data["tokenizer"]
    for name in a.weights:
        np.testing.assert_allclose(b.weights[name], a.weights[name], atol=1e-5, err_msg=name)


# --- serve ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ("byte", "bpe"))
def test_a_served_completion_is_what_seqgen_sample_gives(kind, trained):
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    from seqgen.serve.app import create_app

    ckpt = trained(kind)
    with TestClient(create_app([ckpt])) as client:
        got = client.post("/v1/completions", json={"prompt": "To be", "max_tokens": 50, "seed": 6, "n": 2}).json()
        streamed = client.post("/v1/completions", json={"prompt": "To be", "max_tokens": 50, "seed": 6, "stream": True})
    expected = sample(ckpt, prime="To be", length=50, seed=6, num_samples=2)
    assert [c["text"] for c in got["choices"]] == expected
    assert got["usage"]["prompt_tokens"] == len(tokenizer_for(load_checkpoint(ckpt).data).encode("To be"))
    events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")]
    assert "".join(c["text"] for e in events for c in e["choices"]) == sample(ckpt, prime="To be", length=50, seed=6)[0]


def test_streams_stepped_together_by_the_server_each_make_their_own_text(trained):
    import threading

    from seqgen.generate.api import sampling_for
    from seqgen.serve import Engine, Stream

    ckpt = trained("bpe")
    shared = Generator.from_checkpoint(ckpt).model
    engine = Engine(shared)
    texts: dict[int, list[str]] = {k: [] for k in range(3)}
    finished = [threading.Event() for _ in range(3)]

    def collector(k):
        def deliver(piece):
            texts[k].extend(text for text, live in zip(piece.texts or [], piece.live) if live)
            if piece.done:
                finished[k].set()

        return deliver

    streams = []
    for k in range(3):  # alike sampling settings: the engine chooses their tokens in one call
        gen = Generator.from_checkpoint(ckpt, model=shared, seed=k, sampling=sampling_for("text"))
        gen.feed("To be")
        streams.append(Stream(gen, 40, collector(k), final=True))
    for stream in streams:
        engine.submit(stream)
    assert all(event.wait(30) for event in finished)
    engine.close(timeout=5)
    assert ["".join(texts[k]) for k in range(3)] == [
        sample(ckpt, prime="To be", length=40, seed=k)[0] for k in range(3)
    ]


# --- mistakes ------------------------------------------------------------------------------------
def test_token_options_are_checked_in_one_line(tmp_path, series_file):
    (tmp_path / "poem.txt").write_text(TEXT, encoding="utf-8")

    def train(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "seqgen", "train", *args, "--steps", "2", "-q"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env(),
            timeout=120,
        )

    assert_one_line_error(train("poem.txt", "--tokens", "subword"), 2, "--tokens", "char, byte, word, bpe")
    assert_one_line_error(train("poem.txt", "--tokens", "byte", "--vocab-size", "500"), 2, "--vocab-size", "256 bytes")
    assert_one_line_error(train("poem.txt", "--tokens", "bpe", "--vocab-size", "100"), 2, "--vocab-size", ">= 257")
    assert_one_line_error(train(str(series_file), "--tokens", "word"), 2, "--tokens", "series")
    missing = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['tokenizers'] = None; from seqgen.cli import main; main()",
            "train",
            "poem.txt",
            "--tokens",
            "bpe",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env(),
        timeout=120,
    )
    assert_one_line_error(missing, 1, "tokenizers", "pip install")


@pytest.mark.parametrize("kind", ("byte", "bpe"))
def test_a_briefly_trained_byte_model_writes_no_replacement_character(kind, trained):
    # Twelve steps: a model that still draws bytes almost at random, hot (temperature 2).
    text = sample(trained(kind), prime="To be", length=1500, seed=3, temperature=2.0)[0]
    # (A character cut off by `length` itself ends the text as U+FFFD, as documented.)
    assert len(text) > 300 and "\ufffd" not in text.removesuffix("\ufffd")
