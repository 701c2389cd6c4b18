"""`seqgen sample`'s controls and output shapes, through the library and the CLI."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from seqgen import CheckpointError, DataError, Generator, MissingPackage, SampleConfig, UsageError
from seqgen.cli import app
from seqgen.generate import sample
from seqgen.generate.sampling import StopMatcher

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


# --- controls ---------------------------------------------------------------------------------
def test_stop_ends_each_sample_right_after_the_stop_string(text_checkpoint):
    texts = sample(text_checkpoint, length=300, stop="e ", num_samples=4, seed=1)
    assert len(texts) == 4
    for text in texts:
        assert "e " not in text[:-1]  # the first occurrence ends the sample
        assert text.endswith("e ") or len(text) == 300


def test_stop_matcher_finds_overlapping_patterns_like_a_string_search():
    rng = np.random.default_rng(0)
    stop = np.array([0, 0, 1, 0, 0, 2])
    tokens = rng.integers(0, 3, size=(5, 400))
    matcher = StopMatcher(stop, vocab_size=3, batch_size=5)
    found = np.full(5, -1)
    for t in range(400):
        done = matcher.update(tokens[:, t])
        found[(found < 0) & done] = t + 1
    pattern = "".join(map(str, stop))
    for row, end in zip(tokens, found):
        first = "".join(map(str, row)).find(pattern)
        assert end == (first + len(pattern) if first >= 0 else -1)


def test_temperature_is_another_name_for_noise_in_continuous_models(sine_checkpoint):
    noisy = sample(sine_checkpoint, length=50, noise=0.1, seed=3)
    np.testing.assert_array_equal(sample(sine_checkpoint, length=50, temperature=0.1, seed=3), noisy)
    assert not np.array_equal(sample(sine_checkpoint, length=50, seed=3), noisy)
    with pytest.raises(UsageError, match="another name"):
        sample(sine_checkpoint, temperature=0.1, noise=0.2)
    with pytest.raises(UsageError, match="`top_k`"):
        sample(sine_checkpoint, top_k=3)


def test_sine_samples_without_a_prime_each_start_from_a_fresh_wave(sine_checkpoint):
    args = [
        "sample",
        sine_checkpoint,
        "-n",
        "10",
        "--num-samples",
        "3",
        "--format",
        "jsonl",
        "--include-prime",
        "--seed",
        "7",
    ]
    result = invoke(*args)
    assert "will be the same" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    primes = [r["prime"] for r in records]
    assert len(primes) == 3 and primes[0] != primes[1] != primes[2] != primes[0]
    assert records[0]["values"] != records[1]["values"]
    assert invoke(*args).stdout == result.stdout  # --seed still gives the same waves
    one = json.loads(
        invoke("sample", sine_checkpoint, "-n", "10", "--format", "jsonl", "--include-prime", "--seed", "7").stdout
    )
    assert one["prime"] == primes[0]  # the first sample's wave is the one a single sample gets
    np.testing.assert_allclose(one["values"], records[0]["values"], atol=1e-5)
    values = sample(sine_checkpoint, length=10, num_samples=3, seed=7)  # the library, too
    np.testing.assert_allclose(values, [r["values"] for r in records], atol=1e-5)


def test_the_terminal_chart_says_which_of_several_samples_it_draws(sine_checkpoint):
    result = invoke("sample", sine_checkpoint, "-n", "30", "--num-samples", "3", "--noise", "0.1", "--plot")
    assert "sample 1 of 3 drawn (--plot-file draws them all)" in result.stderr


def test_top_p_and_greedy_through_the_library(text_checkpoint):
    greedy = sample(text_checkpoint, prime="To be", length=40, greedy=True, seed=1)
    assert (
        sample(text_checkpoint, prime="To be", length=40, top_p=1e-9, seed=2) == greedy
    )  # the nucleus is one character


def test_several_continuous_streams_without_noise_come_with_a_warning(sine_checkpoint):
    prime = " ".join(f"{np.sin(i / 4):.4f}" for i in range(40))
    same = invoke("sample", sine_checkpoint, "-n", "5", "--num-samples", "2", "--format", "csv", "--prime", prime)
    assert "streams will be the same" in same.stderr
    rows = list(csv.reader(io.StringIO(same.stdout)))[1:]
    assert all(abs(float(r[1]) - float(r[2])) < 1e-5 for r in rows)
    noisy = invoke(
        "sample",
        sine_checkpoint,
        "-n",
        "5",
        "--num-samples",
        "2",
        "--format",
        "csv",
        "--noise",
        "0.05",
        "--seed",
        "1",
        "--prime",
        prime,
    )
    assert "will be the same" not in noisy.stderr
    assert any(r[1] != r[2] for r in list(csv.reader(io.StringIO(noisy.stdout)))[1:])


# --- output shapes ----------------------------------------------------------------------------
def test_csv_output_parses_with_the_csv_module(text_checkpoint, sine_checkpoint):
    rows = list(
        csv.reader(
            io.StringIO(
                invoke(
                    "sample",
                    sine_checkpoint,
                    "-n",
                    "20",
                    "--num-samples",
                    "3",
                    "--format",
                    "csv",
                    "--prime",
                    "0.1 0.2",
                    "--include-prime",
                ).stdout
            )
        )
    )
    assert rows[0] == ["step", "sample_1", "sample_2", "sample_3"]
    assert [int(r[0]) for r in rows[1:]] == list(range(-1, 21))
    assert rows[1][1:] == ["0.1"] * 3
    text_rows = list(
        csv.DictReader(
            io.StringIO(invoke("sample", text_checkpoint, "-n", "60", "--format", "csv", "--seed", "4").stdout)
        )
    )
    assert len(text_rows) == 60 and all(
        len(r["sample_1"]) == 1 for r in text_rows
    )  # newlines and commas survive quoting


def test_jsonl_one_object_per_sample_or_per_step(text_checkpoint, sine_checkpoint):
    lines = invoke(
        "sample",
        text_checkpoint,
        "-n",
        "30",
        "--num-samples",
        "2",
        "--format",
        "jsonl",
        "--seed",
        "5",
        "--prime",
        "To",
        "--include-prime",
    ).stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["sample"] for r in records] == [1, 2]
    assert all(r["prime"] == "To" and len(r["text"]) == 30 for r in records)
    assert records[0]["text"] == sample(text_checkpoint, prime="To", length=30, num_samples=2, seed=5)[0]

    steps = [
        json.loads(line)
        for line in invoke(
            "sample", text_checkpoint, "-n", "25", "--format", "jsonl", "--per-step", "--seed", "5", "--prime", "To"
        ).stdout.splitlines()
    ]
    assert [s["step"] for s in steps] == list(range(1, 26))
    assert all(0 < s["probability"] <= 1 for s in steps)
    assert "".join(s["token"] for s in steps) == sample(text_checkpoint, prime="To", length=25, seed=5)[0]
    values = [
        json.loads(line)
        for line in invoke("sample", sine_checkpoint, "-n", "5", "--format", "jsonl").stdout.splitlines()
    ]
    assert len(values) == 1 and len(values[0]["values"]) == 5


def test_separator_and_output_file(text_checkpoint, tmp_path):
    out = tmp_path / "samples.txt"
    result = invoke(
        "sample",
        text_checkpoint,
        "-n",
        "20",
        "--num-samples",
        "3",
        "--separator",
        "\\n---\\n",
        "--seed",
        "6",
        "--output",
        out,
    )
    assert result.stdout == ""
    parts = out.read_text().rstrip("\n").split("\n---\n")
    assert [len(p) for p in parts] == [20, 20, 20]


def test_format_must_fit_the_model(text_checkpoint, sine_checkpoint):
    for ckpt, args in (
        (sine_checkpoint, ["--format", "text"]),
        (text_checkpoint, ["--format", "values"]),
        (text_checkpoint, ["--per-step"]),
        (sine_checkpoint, ["--stop", "x"]),
    ):
        result = runner.invoke(app, ["sample", str(ckpt), *args])
        assert isinstance(result.exception, UsageError), args


# --- state hand-off ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_two_calls_with_a_state_hand_off_equal_one_long_call(text_checkpoint, sine_checkpoint, tmp_path, backend):
    state = tmp_path / "state.safetensors"
    whole = sample(text_checkpoint, prime="To be", length=200, num_samples=2, seed=9, backend=backend)
    first = sample(text_checkpoint, prime="To be", length=100, num_samples=2, seed=9, backend=backend, save_state=state)
    second = sample(text_checkpoint, length=100, load_state=state, seed=123, backend=backend)  # the saved RNG wins
    assert [a + b for a, b in zip(first, second)] == whole

    whole = sample(sine_checkpoint, length=200, noise=0.05, seed=9, backend=backend)
    first = sample(sine_checkpoint, length=100, noise=0.05, seed=9, backend=backend, save_state=state)
    second = sample(sine_checkpoint, length=100, load_state=state, backend=backend)  # the saved --noise goes on
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-6)


def test_state_hand_off_through_the_cli(text_checkpoint, tmp_path):
    state = tmp_path / "s.safetensors"
    whole = invoke("sample", text_checkpoint, "-n", "80", "--seed", "2", "--temperature", "0.6").stdout
    first = invoke(
        "sample", text_checkpoint, "-n", "40", "--seed", "2", "--temperature", "0.6", "--save-state", state
    ).stdout
    second = invoke("sample", text_checkpoint, "-n", "40", "--load-state", state).stdout  # at the saved temperature
    assert first + second == whole  # the part to be continued has no newline added
    hotter = invoke("sample", text_checkpoint, "-n", "40", "--load-state", state, "--temperature", "3").stdout
    assert hotter != second  # an option given again overrides the saved one
    assert state.stat().st_size < 20_000


def test_a_continuation_changes_only_the_sampling_options_given(text_checkpoint, tmp_path):
    from seqgen.generate.api import sampling_for

    state = tmp_path / "s.safetensors"
    sample(text_checkpoint, length=5, temperature=0.3, top_k=3, seed=1, save_state=state)
    assert sampling_for("text", str(state), top_p=0.9) == SampleConfig(temperature=0.3, top_k=3, top_p=0.9)
    assert sampling_for("text", str(state), greedy=True).greedy
    sample(text_checkpoint, length=5, greedy=True, seed=1, save_state=state)
    assert not sampling_for("text", str(state), temperature=0.5).greedy  # a temperature asks for sampling again


def test_a_continuation_of_a_gaussian_model_keeps_the_settings_not_given(tmp_path):
    from seqgen import ModelConfig, TrainConfig, Trainer
    from seqgen.data import series_dataset
    from seqgen.generate.state import saved_sampling

    model = tmp_path / "g.safetensors"
    values = np.sin(np.arange(300) / 4) + np.random.default_rng(0).normal(0, 0.2, 300)
    Trainer(
        series_dataset(values, "g", "g", 0.1),
        ModelConfig(hidden=8, layers=1, head="gaussian"),
        TrainConfig(batch_size=4, window=20, steps=10, eval_every=10),
        model,
    ).run()
    first, second = tmp_path / "1.safetensors", tmp_path / "2.safetensors"
    invoke("sample", model, "-n", "5", "--temperature", "0.3", "--seed", "1", "--save-state", first)
    invoke("sample", model, "-n", "5", "--load-state", first, "--noise", "0.1", "--save-state", second)
    assert saved_sampling(second) == SampleConfig(temperature=0.3, noise=0.1)  # the temperature goes on
    invoke("sample", model, "-n", "5", "--load-state", second, "--greedy", "--save-state", first)
    assert saved_sampling(first) == SampleConfig(temperature=0.3, noise=0.1, greedy=True)
    invoke("sample", model, "-n", "5", "--load-state", first, "--temperature", "2", "--save-state", second)
    assert saved_sampling(second) == SampleConfig(temperature=2, noise=0.1)  # a temperature samples again


def test_output_and_save_state_cannot_be_one_file(text_checkpoint, tmp_path):
    same = tmp_path / "x"
    result = runner.invoke(app, ["sample", str(text_checkpoint), "-n", "5", "-o", str(same), "--save-state", str(same)])
    assert isinstance(result.exception, UsageError) and "give two files" in str(result.exception)
    assert not same.exists()


def test_save_state_keeps_a_checkpoint_and_checks_its_path_before_generating(text_checkpoint, tmp_path):
    def refused(target, message):
        result = runner.invoke(app, ["sample", str(text_checkpoint), "-n", "5", "--save-state", str(target)])
        assert isinstance(result.exception, UsageError) and message in str(result.exception)
        assert result.stdout == ""  # nothing generated for a run that cannot finish

    precious = tmp_path / "copy.safetensors"
    precious.write_bytes(text_checkpoint.read_bytes())
    refused(precious, "exists and is not a state file")
    assert precious.read_bytes() == text_checkpoint.read_bytes()
    refused(tmp_path / "no" / "s.safetensors", "does not exist")
    refused(tmp_path, "is a directory")
    state = tmp_path / "s.safetensors"
    state.write_bytes(b"")  # an empty file, as mktemp makes, is free to take
    invoke("sample", text_checkpoint, "-n", "5", "--save-state", state)
    invoke(
        "sample", text_checkpoint, "-n", "5", "--load-state", state, "--save-state", state
    )  # a state file is replaced


@pytest.mark.parametrize(
    "args,ending",
    [
        (["-n", "30"], "one"),
        (["-n", "0"], "empty"),
        (["-n", "300", "--stop", "\\n"], "the model's own"),
        (["-n", "30", "--num-samples", "3"], "one"),
    ],
)
def test_text_output_ends_with_exactly_one_newline_unless_empty(text_checkpoint, args, ending):
    out = invoke("sample", text_checkpoint, "--seed", "4", *args).stdout
    if ending == "empty":
        assert out == ""
    else:
        assert out.endswith("\n") and not out.endswith("\n\n")


def test_a_state_belongs_to_its_checkpoint(text_checkpoint, sine_checkpoint, tmp_path):
    state = tmp_path / "s.safetensors"
    sample(text_checkpoint, length=5, save_state=state)
    with pytest.raises(CheckpointError, match="another checkpoint"):
        sample(sine_checkpoint, length=5, load_state=state)
    with pytest.raises(CheckpointError, match="is a directory"):
        sample(text_checkpoint, length=5, load_state=tmp_path)
    (tmp_path / "junk").write_bytes(b"not a state")
    with pytest.raises(CheckpointError, match="not a seqgen state file"):
        sample(text_checkpoint, length=5, load_state=tmp_path / "junk")


# --- pictures ---------------------------------------------------------------------------------
def test_plot_draws_prime_and_continuation_without_a_terminal(sine_checkpoint):
    result = invoke(
        "sample", sine_checkpoint, "-n", "120", "--plot", "--prime", " ".join(str(np.sin(i / 5)) for i in range(60))
    )
    assert len(result.stdout.splitlines()) == 120  # the data is untouched
    assert "░ prime (60)" in result.stderr and "█ generated (120)" in result.stderr
    chart_rows = [line for line in result.stderr.splitlines() if "┤" in line]
    assert len(chart_rows) == 12 and "\x1b[" not in result.stderr
    assert "░" in "".join(row[:40] for row in chart_rows) and "█" in "".join(row[-20:] for row in chart_rows)


def test_plot_file_says_how_to_get_matplotlib_when_missing(sine_checkpoint, tmp_path):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        result = runner.invoke(app, ["sample", str(sine_checkpoint), "-n", "5", "--plot-file", str(tmp_path / "a.png")])
        assert isinstance(result.exception, MissingPackage) and "seqgen[plot]" in str(result.exception)
        assert result.exception.exit_code == 1  # the command was right; the machine lacks a package
        assert result.stdout == ""  # checked before generating anything
    else:
        invoke("sample", sine_checkpoint, "-n", "50", "--plot-file", tmp_path / "a.png")
        assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("name", ["wave.docx", "wave"])
def test_a_plot_file_of_a_type_matplotlib_cannot_write_is_refused_before_any_work(sine_checkpoint, tmp_path, name):
    pytest.importorskip("matplotlib")
    result = runner.invoke(app, ["sample", str(sine_checkpoint), "-n", "5", "--plot-file", str(tmp_path / name)])
    assert isinstance(result.exception, UsageError) and result.stdout == ""
    message = str(result.exception)
    assert message.startswith(f"--plot-file {tmp_path / name}: ") and ".png, " in message and ".svg" in message
    assert "\n" not in message and not (tmp_path / name).exists() and not (tmp_path / f"{name}.png").exists()
    # forecast checks it before it even reads the checkpoint
    result = runner.invoke(app, ["forecast", str(tmp_path / "none.safetensors"), "--plot-file", str(tmp_path / name)])
    assert isinstance(result.exception, UsageError) and str(result.exception) == message


def test_the_matplotlib_hint_fits_a_source_checkout(sine_checkpoint, tmp_path, monkeypatch):
    import sys
    from pathlib import Path

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    result = runner.invoke(app, ["sample", str(sine_checkpoint), "-n", "5", "--plot-file", str(tmp_path / "a.png")])
    root = Path(__file__).resolve().parents[1]  # the tests run from a checkout, with pyproject.toml
    assert isinstance(result.exception, MissingPackage)
    assert f"pip install -e '{root}[plot]'" in str(result.exception) and "pip install matplotlib" in str(
        result.exception
    )


def test_a_prime_with_unseen_characters_can_skip_or_replace_them(text_checkpoint):
    refused = runner.invoke(app, ["sample", str(text_checkpoint), "--prime", "To be #@", "-n", "5"])
    assert isinstance(refused.exception, DataError) and "'#', '@'" in str(refused.exception)
    assert "`unknown` skip leaves them out, `unknown` replace puts ' ' instead" in str(refused.exception)
    skipped = invoke(
        "sample",
        text_checkpoint,
        "--prime",
        "To be #@",
        "--unknown",
        "skip",
        "-n",
        "5",
        "--include-prime",
        "--seed",
        "1",
    )
    assert skipped.stdout.startswith("To be ") and not skipped.stdout.startswith("To be   ")
    replaced = invoke(
        "sample", text_checkpoint, "--prime", "To be #@", "--unknown", "replace", "-n", "5", "--include-prime"
    )
    assert replaced.stdout.startswith("To be   ")  # the written prime is the one the model read
    assert sample(text_checkpoint, prime="To be #@", unknown="skip", length=5, seed=1) == [
        skipped.stdout[len("To be ") :].rstrip("\n")
    ]
    with pytest.raises(UsageError, match="`unknown` must be one of error, skip, replace"):
        sample(text_checkpoint, prime="To be", unknown="drop")


def test_replace_uses_a_character_the_model_knows():
    from seqgen.data.tokenizers import CharTokenizer

    assert CharTokenizer(list("ab \n")).known("a?b", "replace") == "a b"
    assert CharTokenizer(list("ab\n")).known("a?b", "replace") == "a\nb"
    assert CharTokenizer(list("ab")).known("a?b", "replace") == "aab"


def test_min_p_keeps_the_tokens_at_least_that_fraction_as_likely_as_the_best():
    from seqgen.generate.sampling import choose_tokens

    probs = np.array([[0.5, 0.3, 0.15, 0.05]])
    _, weights = choose_tokens(np.log(probs), SampleConfig(min_p=0.2), np.random.default_rng(0))
    # 0.2 x 0.5 = 0.1: the last token (0.05) goes, the others keep their shares of what is left.
    np.testing.assert_allclose(weights / weights.sum(), [[0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0]])


def test_penalties_change_the_logits_of_tokens_in_the_window_as_documented():
    from seqgen.generate.sampling import penalise

    logits = np.array([[1.0, -1.0, 0.5, 2.0]])
    counts = np.array([[2, 1, 0, 0]])
    np.testing.assert_allclose(penalise(logits, counts, SampleConfig(repetition_penalty=2.0)), [[0.5, -2.0, 0.5, 2.0]])
    np.testing.assert_allclose(penalise(logits, counts, SampleConfig(frequency_penalty=0.5)), [[0.0, -1.5, 0.5, 2.0]])
    np.testing.assert_allclose(penalise(logits, counts, SampleConfig(presence_penalty=0.3)), [[0.7, -1.3, 0.5, 2.0]])


def test_the_penalty_window_counts_the_prime_and_each_stream_apart(text_checkpoint):
    gen = Generator.from_checkpoint(
        text_checkpoint, sampling=SampleConfig(frequency_penalty=1.0, penalty_window=5), seed=0
    )
    gen.reset(2)
    gen.feed("To be, or")
    ids = gen.encode(" or")
    assert [gen.decode(row[row >= 0]) for row in gen.recent] == ["e, or"] * 2  # the last 5 characters
    assert gen.counts[0, ids[1]] == 1 and gen.counts.sum(axis=1).tolist() == [5, 5]
    items = gen.step()
    assert gen.recent[:, -1].tolist() == items.tolist() and gen.counts.sum(axis=1).tolist() == [5, 5]


def test_penalised_sampling_is_the_same_on_both_backends_and_continues_exactly(text_checkpoint):
    config = dict(repetition_penalty=1.5, presence_penalty=0.2, min_p=0.05, penalty_window=16)
    runs = []
    for backend in ("numpy", "torch"):
        gen = Generator.from_checkpoint(text_checkpoint, backend=backend, sampling=SampleConfig(**config), seed=3)
        gen.reset(3)
        gen.feed("To be")
        runs.append(np.array(list(gen.generate(40))))
    np.testing.assert_array_equal(runs[0], runs[1])
    gen = Generator.from_checkpoint(text_checkpoint, sampling=SampleConfig(**config), seed=3)
    gen.reset(3)
    gen.feed("To be")
    first = np.array(list(gen.generate(20)))
    saved = gen.snapshot()
    rest = np.array(list(gen.generate(20)))
    other = Generator.from_checkpoint(text_checkpoint, sampling=SampleConfig(**config), seed=99)
    other.restore(saved)
    np.testing.assert_array_equal(np.array(list(other.generate(20))), rest)
    np.testing.assert_array_equal(np.concatenate([first, rest]), runs[0])


def test_a_strong_repetition_penalty_repeats_less():
    from seqgen.generate.sampling import choose_tokens

    rng = np.random.default_rng(0)
    logits = np.array([[2.0, 0.0, 0.0, 0.0]])  # token 0: e^2 / (e^2 + 3) = 0.711
    counts = np.array([[3, 0, 0, 0]])
    plain = np.mean([choose_tokens(logits, SampleConfig(), rng)[0][0] == 0 for _ in range(2000)])
    penalised = np.mean(
        [choose_tokens(logits, SampleConfig(repetition_penalty=3.0), rng, counts)[0][0] == 0 for _ in range(2000)]
    )
    expected = np.exp(2 / 3) / (np.exp(2 / 3) + 3)  # its logit divided by 3: 0.394
    assert abs(plain - 0.711) < 0.03 and abs(penalised - expected) < 0.03


def test_a_penalised_run_split_in_two_by_a_state_file_is_one_run(text_checkpoint, tmp_path):
    state = tmp_path / "s.safetensors"
    options = ["--seed", "4", "--repetition-penalty", "1.4", "--frequency-penalty", "0.3", "--penalty-window", "12"]
    whole = invoke("sample", text_checkpoint, "-n", "60", *options).stdout
    first = invoke("sample", text_checkpoint, "-n", "25", *options, "--save-state", state).stdout
    second = invoke("sample", text_checkpoint, "-n", "35", "--load-state", state).stdout  # the settings go on too
    assert first + second == whole


@pytest.mark.parametrize(
    "settings",
    [
        {"temperature": 0.8},
        {"top_k": 5},
        {"top_p": 0.9, "temperature": 1.3},
        {"min_p": 0.05},
        {"greedy": True},
        {"repetition_penalty": 1.3, "frequency_penalty": 0.2, "penalty_window": 16},
    ],
)
def test_generators_stepped_together_make_what_each_makes_alone(text_checkpoint, settings):
    """What a server does for the streams of many clients: one call weighs every row alike."""
    from seqgen.generate.generator import choose_together

    def made(together: bool) -> list[str]:
        gens = []
        for seed, rows in zip(range(4), (1, 3, 1, 2)):
            gen = Generator.from_checkpoint(
                text_checkpoint, backend="numpy", seed=seed, sampling=SampleConfig(**settings)
            )
            gen.reset(rows)
            gen.feed(np.tile(gen.encode("the "), (rows, 1)))
            gens.append(gen)
        # One generator samples otherwise, so it is weighed apart from the others.
        gens[2].sampling = SampleConfig(temperature=2.0)
        out = [[] for _ in gens]
        for _ in range(40):
            chosen = choose_together(gens) if together else [gen.choose() for gen in gens]
            for gen, (x, items), sink in zip(gens, chosen, out):
                output, gen.state = gen.model.step(x, gen.state)
                gen.took(x, output.copy())
                sink.append(items)
        return ["|".join(gen.decode(row) for row in np.stack(items, axis=1)) for gen, items in zip(gens, out)]

    assert made(True) == made(False)


def test_a_series_named_for_a_text_model_is_refused(text_checkpoint):
    with pytest.raises(UsageError, match="`series` names a series of a model of numbers"):
        sample(text_checkpoint, length=5, series="sales")
