"""Training lowers the loss, resumes exactly, and a briefly trained sine model stays on the wave."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from seqgen import Generator, ModelConfig, SineConfig, TrainConfig, Trainer, load_checkpoint, load_data
from seqgen.errors import UsageError
from seqgen.train import threads as threads_module
from seqgen.train.threads import measure_threads


def test_text_training_lowers_validation_loss(text_file, tmp_path):
    data = load_data(str(text_file))
    out = tmp_path / "m.safetensors"
    trainer = Trainer(
        data,
        ModelConfig(hidden=48, embed=16),
        TrainConfig(batch_size=4, window=32, steps=60, eval_every=20, lr=1e-2),
        out,
    )
    first = trainer.validate()
    result = trainer.run()
    assert result.best_val < first - 0.5  # from about ln(vocab) towards the text's real entropy
    log = [json.loads(line) for line in (tmp_path / "m.metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [20, 40, 60]
    assert "val_bpc" in log[0]


def test_sine_training_lowers_mse(tmp_path):
    data = load_data(None, sine=SineConfig(waves=32, length=300))
    trainer = Trainer(
        data,
        ModelConfig(hidden=32),
        TrainConfig(batch_size=16, window=50, steps=80, eval_every=40),
        tmp_path / "s.safetensors",
    )
    first = trainer.validate()
    result = trainer.run()
    assert result.best_val < first / 5


def test_checkpoint_keeps_best_weights_and_metadata(text_file, tmp_path):
    data = load_data(str(text_file))
    out = tmp_path / "m.safetensors"
    Trainer(
        data,
        ModelConfig(cell="gru", hidden=16, embed=8),
        TrainConfig(batch_size=2, window=16, steps=10, eval_every=5),
        out,
    ).run()
    ckpt = load_checkpoint(out)
    assert ckpt.model_config.cell == "gru" and ckpt.vocab == data.vocab
    assert ckpt.meta["progress"]["step"] == 10
    assert set(ckpt.weights) == set(dict(torch.nn.Module.state_dict(__import__("seqgen").SeqModel(ckpt.model_config))))


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(text_file, tmp_path, weight_decay):
    data = load_data(str(text_file))
    model_cfg = dict(hidden=24, embed=8, dropout=0.1)
    config = TrainConfig(batch_size=4, window=16, steps=24, eval_every=8, seed=3, weight_decay=weight_decay)

    whole = tmp_path / "whole.safetensors"
    Trainer(data, ModelConfig(**model_cfg), config, whole).run()

    part = tmp_path / "part.safetensors"
    calls = iter(range(10_000))
    Trainer(data, ModelConfig(**model_cfg), config, part).run(should_stop=lambda: next(calls) >= 13)
    assert load_checkpoint(part).meta["progress"]["step"] == 13
    torch.manual_seed(999)  # a different global random state must not matter: it is restored
    Trainer(data, ModelConfig(**model_cfg), config, part, resume=load_checkpoint(part)).run()

    a, b = load_checkpoint(whole), load_checkpoint(part)
    assert a.meta["progress"]["step"] == b.meta["progress"]["step"] == 24
    for name in a.weights:
        np.testing.assert_array_equal(a.weights[name], b.weights[name])


def test_weight_decay_shrinks_the_matrices_and_a_resumed_run_keeps_it(text_file, tmp_path):
    data = load_data(str(text_file))
    norms = {}
    for decay in (0.0, 0.5):
        out = tmp_path / f"decay{decay}.safetensors"
        config = TrainConfig(batch_size=2, window=16, steps=30, eval_every=30, lr=1e-2, weight_decay=decay)
        Trainer(data, ModelConfig(hidden=16, embed=8), config, out).run()
        ckpt = load_checkpoint(out)
        assert ckpt.meta["train"]["weight_decay"] == decay
        norms[decay] = sum(float(np.square(w).sum()) for w in ckpt.weights.values() if w.ndim == 2)
    assert norms[0.5] < norms[0.0]
    with pytest.raises(UsageError, match="`weight_decay` must be a finite number"):
        TrainConfig(weight_decay=float("nan")).check()
    with pytest.raises(UsageError, match="weight decay was 0.5, not 0"):
        Trainer(
            data,
            ModelConfig(hidden=16, embed=8),
            TrainConfig(batch_size=2, window=16, steps=40),
            tmp_path / "decay0.5.safetensors",
            resume=load_checkpoint(tmp_path / "decay0.5.safetensors"),
        )


def test_same_seed_same_weights(text_file, tmp_path):
    data = load_data(str(text_file))
    runs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.safetensors"
        Trainer(
            data, ModelConfig(hidden=16, embed=8), TrainConfig(batch_size=2, window=16, steps=8, eval_every=4), out
        ).run()
        runs.append(load_checkpoint(out).weights)
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name], runs[1][name])


def fake_pass(seconds_by_threads: dict[int, float], clock: dict):
    """A training pass that takes the given time on each thread count, on a fake clock."""

    def run() -> None:
        clock["now"] += seconds_by_threads[torch.get_num_threads()]

    return run


@pytest.mark.parametrize(
    "two, one, chosen",
    [(0.5, 1.0, 2), (1.0, 1.0, 2), (1.1, 1.0, 1), (10.0, 1.0, 1)],
    ids=["two threads faster", "a tie: two", "two threads slower", "busy cores, unread: one"],
)
def test_on_idle_cores_several_threads_are_kept_unless_they_are_slower(two, one, chosen):
    clock = {"now": 0.0}
    before = torch.get_num_threads()
    try:
        quiet = lambda: 2.0  # both cores idle
        assert (
            measure_threads(fake_pass({2: two, 1: one}, clock), 2, clock=lambda: clock["now"], idle=quiet).threads
            == chosen
        )
        assert torch.get_num_threads() == chosen  # left on the count it chose
        assert measure_threads(fake_pass({1: one}, clock), 1, clock=lambda: clock["now"], idle=quiet) == (1, "one core")
    finally:
        torch.set_num_threads(before)


def test_a_probe_on_busy_cores_ends_after_its_first_timed_pair():
    clock, calls = {"now": 0.0}, []

    def run() -> None:
        calls.append(torch.get_num_threads())
        clock["now"] += 10.0 if torch.get_num_threads() > 1 else 1.0

    before = torch.get_num_threads()
    try:
        assert measure_threads(run, 2, clock=lambda: clock["now"], idle=lambda: None) == (1, "slower")  # no /proc/stat
    finally:
        torch.set_num_threads(before)
    assert calls == [2, 1, 2, 1]  # an untimed pair, then one timed pair was enough


@pytest.mark.parametrize(
    "idle, tried",
    [(0.1, False), (0.9, False), (1.6, True)],
    ids=["two busy processes", "one busy process", "a light load"],
)
def test_cores_other_processes_keep_busy_are_not_timed_at_all(idle, tried):
    calls = []
    before = torch.get_num_threads()
    try:
        threads, why = measure_threads(lambda: calls.append(torch.get_num_threads()), 2, idle=lambda: idle)
    finally:
        torch.set_num_threads(before)
    assert bool(calls) == tried and ((threads, why) == (1, "busy") if not tried else threads in (1, 2))


def test_idle_cores_are_read_where_the_system_counts_them():
    from seqgen.device import idle_cores

    idle = idle_cores(0.05)
    if idle is None:
        pytest.skip("no /proc/stat here")
    assert 0.0 <= idle <= len(os.sched_getaffinity(0)) + 1e-9


def test_threads_asked_for_win_over_the_environment_and_bad_counts_are_usage_errors(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads_module.threads_asked(2) == 2
    assert threads_module.threads_asked(None) == 3  # OMP_NUM_THREADS is a choice too: no probe
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads_module.threads_asked(None) is None  # to be measured
    with pytest.raises(UsageError, match="`threads` must be >= 1"):
        TrainConfig(threads=0).check()
    with pytest.raises(UsageError, match="may use .* cores; give at most that"):
        threads_module.threads_asked(os.cpu_count() + 64)  # threads beyond the cores crawl


def test_the_probe_trains_nothing_and_the_count_is_stored_and_resumed(text_file, tmp_path, monkeypatch):
    """A run whose count was measured trains what a run told that count trains, bit for bit (the
    probe's passes leave no trace), stores it, and a resumed run takes it without measuring."""
    from seqgen.train import trainer as trainer_module

    data = load_data(str(text_file))
    model = ModelConfig(hidden=32, embed=8, dropout=0.2, layers=2)  # dropout: the probe must put the random state back
    config = TrainConfig(batch_size=4, window=16, steps=6, eval_every=3, seed=3)
    probes = []

    def measure(pass_, most, clock=time.perf_counter, idle=None):
        for _ in range(3):
            pass_()  # real forward and backward passes of the run's model
        probes.append(most)
        torch.set_num_threads(1)
        return threads_module.ThreadChoice(1, "slower")

    monkeypatch.setattr(trainer_module, "measure_threads", measure)
    before = torch.get_num_threads()
    try:
        Trainer(data, model, replace_config(config, threads=1), tmp_path / "told.safetensors").run()
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        torch.set_num_threads(2)
        Trainer(data, model, config, tmp_path / "measured.safetensors").run()
        assert probes == [2] and torch.get_num_threads() == 2  # measured once; the caller's count put back
        told, measured = (
            load_checkpoint(tmp_path / "told.safetensors"),
            load_checkpoint(tmp_path / "measured.safetensors"),
        )
        assert measured.meta["progress"]["threads"] == 1
        for name in told.weights:
            np.testing.assert_array_equal(told.weights[name], measured.weights[name], err_msg=name)
        longer = replace_config(config, steps=9)
        Trainer(data, model, longer, tmp_path / "measured.safetensors", resume=measured).run()
        assert probes == [2]  # the resumed run took its stored count
        assert load_checkpoint(tmp_path / "measured.safetensors").meta["progress"]["threads"] == 1
    finally:
        torch.set_num_threads(before)


def replace_config(config: TrainConfig, **changes) -> TrainConfig:
    from dataclasses import replace

    return replace(config, **changes)


def test_brief_sine_training_free_runs_close_to_the_wave_for_a_period(tmp_path):
    data = load_data(
        None, sine=SineConfig(waves=64, length=400, period_min=30, period_max=30, amp_min=1, amp_max=1), seed=1
    )
    out = tmp_path / "sine.safetensors"
    Trainer(
        data,
        ModelConfig(hidden=32, layers=1),
        TrainConfig(batch_size=32, window=60, steps=300, eval_every=100, lr=1e-2, input_noise=0.02),
        out,
    ).run()
    gen = Generator.from_checkpoint(out)
    t = np.arange(160)
    wave = np.sin(2 * math.pi * t / 30 + 0.7)
    gen.feed(wave[:100])
    generated = np.array([v[0] for v in gen.generate(30)])
    rmse = float(np.sqrt(np.mean((generated - wave[100:130]) ** 2)))
    assert rmse < 0.2, rmse


def test_a_short_series_that_overfits_stops_early_and_keeps_its_best_weights(tmp_path):
    from seqgen.data import series_dataset

    walk = np.cumsum(np.random.default_rng(0).normal(size=300))  # 270 values to learn: soon memorised
    data = series_dataset(walk, "walk", "walk", val_fraction=0.1)
    out = tmp_path / "walk.safetensors"
    config = TrainConfig(batch_size=8, window=30, steps=3000, eval_every=20, lr=1e-2, patience=5)
    result = Trainer(data, ModelConfig(hidden=64), config, out).run()
    assert result.stopped_by == "early" and result.steps < 1000
    assert result.best_step <= result.steps - 5 * 20  # five evaluations above the best, then the stop
    assert load_checkpoint(out).meta["progress"]["best_step"] == result.best_step


def test_patience_zero_never_stops_early(tmp_path):
    from seqgen.data import series_dataset

    walk = np.cumsum(np.random.default_rng(0).normal(size=300))
    data = series_dataset(walk, "walk", "walk", val_fraction=0.1)
    config = TrainConfig(batch_size=8, window=30, steps=400, eval_every=20, lr=1e-2, patience=0)
    result = Trainer(data, ModelConfig(hidden=64), config, tmp_path / "w.safetensors").run()
    assert result.stopped_by == "limit" and result.steps == 400


def test_a_short_series_is_trained_on_every_value_over_the_epochs(tmp_path, monkeypatch):
    from seqgen.data import series_dataset

    values = np.sin(np.arange(287) / 3.0) + np.arange(287) / 100  # 258 to train on, as yearly sunspots
    data = series_dataset(values, "short", "short", val_fraction=0.1)
    trainer = Trainer(
        data,
        ModelConfig(hidden=8),
        TrainConfig(batch_size=32, window=100, steps=40, eval_every=40),
        tmp_path / "short.safetensors",
    )
    assert trainer.batch == 2  # 258 values hold two tracks of one window plus one
    seen = np.zeros(trainer.tracks.shape, dtype=bool)
    read = trainer._rows

    def record(rows, start, stop):
        seen[rows, start:stop] = True
        return read(rows, start, stop)

    monkeypatch.setattr(trainer, "_rows", record)
    trainer.run()
    assert seen.all()  # one window of 100 per track and epoch, at another offset each time


def test_a_series_model_with_no_prime_continues_from_the_end_of_its_data(tmp_path, series_file):
    from seqgen.generate.api import default_prime

    data = load_data(str(series_file))
    out = tmp_path / "wave.safetensors"
    Trainer(data, ModelConfig(hidden=8), TrainConfig(batch_size=4, window=50, steps=4, eval_every=4), out).run()
    values = np.loadtxt(series_file)
    prime = default_prime(load_checkpoint(out))
    np.testing.assert_allclose(prime, values[-100:], atol=1e-5)  # the last 100 values, not the 100 before the tail


def test_a_resumed_run_reports_the_speed_of_its_own_steps(text_file, tmp_path):
    data = load_data(str(text_file))
    config = TrainConfig(batch_size=4, window=16, steps=12, eval_every=4)
    out = tmp_path / "m.safetensors"
    calls = iter(range(10_000))
    Trainer(data, ModelConfig(hidden=16, embed=8), config, out).run(should_stop=lambda: next(calls) >= 8)
    resumed = Trainer(data, ModelConfig(hidden=16, embed=8), config, out, resume=load_checkpoint(out))
    elapsed_before = resumed.elapsed
    result = resumed.run()
    # 4 steps of 4 x 16 characters, over the training time of those steps alone (not the time
    # before the resume, nor this session's evaluations and saves)
    assert result.steps == 12
    assert math.isclose(result.items_per_sec * (result.elapsed - elapsed_before), 4 * 4 * 16, rel_tol=1e-9)


def test_a_small_text_gets_defaults_sized_to_it():
    from seqgen.config import defaults_for

    small_model, small_train = defaults_for("text", size=5_000)
    model, train = defaults_for("text")
    assert small_model.hidden < model.hidden and small_train.eval_every < train.eval_every
    assert small_train.max_time < train.max_time and small_train.patience == train.patience  # early stopping kept
    assert defaults_for("text", size=2_000_000) == (model, train)
    assert defaults_for("series", size=300)[1].eval_every < defaults_for("series")[1].eval_every  # a short series too


def test_a_yearly_series_of_a_hundred_values_gets_one_small_layer(tmp_path):
    from seqgen.config import SMALL_SERIES, defaults_for

    small, _ = defaults_for("series", size=100)
    full, _ = defaults_for("series", size=SMALL_SERIES)
    assert (small.layers, small.hidden) == (1, 16) and (full.layers, full.hidden) == (2, 64)
    assert small.head == full.head == "gaussian"
    data = tmp_path / "flow.csv"
    data.write_text("year,flow\n" + "".join(f"{1871 + i},{900 + 80 * math.sin(i / 3):.1f}\n" for i in range(90)))
    out = tmp_path / "flow.safetensors"
    result = subprocess.run(
        [sys.executable, "-m", "seqgen", "train", str(data), "--out", str(out), "--steps", "20"],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "a short series (90 values)" in result.stderr and "LSTM 1 x 16" in result.stderr
    model = load_checkpoint(out).model_config
    assert (model.layers, model.hidden) == (1, 16)


def test_a_run_stopped_before_its_first_validation_says_so(capsys):
    from seqgen.train.display import TrainDisplay
    from seqgen.train import TrainResult

    display = TrainDisplay(quiet=True, kind="text", config=TrainConfig(eval_every=20))
    display.summary(TrainResult("m.safetensors", 7, 1.0, None, 0, 100.0, "interrupt"), "text")
    assert "none yet (the first comes at step 20)" in capsys.readouterr().err


def test_the_summary_says_when_the_time_limit_came_before_the_steps(capsys):
    from seqgen.calibrate import Calibration
    from seqgen.train.display import TrainDisplay
    from seqgen.train import TrainResult

    display = TrainDisplay(quiet=True, kind="series", config=TrainConfig(steps=2500, max_time=50.0))
    cut = TrainResult(
        "m.safetensors",
        165,
        50.2,
        0.07,
        80,
        4000.0,
        "limit",
        limit="max_time",
        calibration=Calibration(1.3, 0.9, 1.3, 0.83, 0.87, 5, 6),
    )
    display.summary(cut, "series")
    said = " ".join(capsys.readouterr().err.split())
    assert "stopped at the time limit 50 s, after 165 of 2500 steps" in said
    assert (
        "spread x1.30 (the one-step error ratio x1.30; the tail asked for x0.90, and the spread is never narrowed)"
        in said
    )
    display.summary(TrainResult("m.safetensors", 2500, 20.0, 0.07, 80, 4000.0, "limit", limit="steps"), "series")
    assert "time limit" not in capsys.readouterr().err


def test_free_run_training_asks_for_the_point_head_it_needs(tmp_path, series_file):
    import os
    import subprocess
    import sys

    def train(*args):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "seqgen",
                "train",
                str(series_file),
                "--steps",
                "20",
                "--hidden",
                "8",
                "--layers",
                "1",
                "--eval-every",
                "10",
                "--quiet",
                "--free-run",
                "5",
                *args,
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "NO_COLOR": "1"},
        )

    refused = train("--out", "g.safetensors")  # a file's default head is gaussian
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "works only with --head point" in refused.stderr and "this model's head is gaussian" in refused.stderr
    assert "trains a point head" not in refused.stderr
    done = train("--head", "point", "--out", "p.safetensors")  # what the message says to do works
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(tmp_path / "p.safetensors").meta["train"]["free_run"] == 5


def test_a_step_limited_schedule_does_not_depend_on_how_long_steps_take():
    from seqgen.train.trainer import Schedule

    both = Schedule(TrainConfig(steps=2500, max_time=50.0, warmup=0), total_steps=2500)
    assert both.lr(500, elapsed=5.0) == both.lr(500, elapsed=45.0)  # a quiet machine and a busy one
    by_time = Schedule(TrainConfig(max_time=300.0, warmup=0), total_steps=None)
    assert by_time.lr(500, elapsed=30.0) > by_time.lr(500, elapsed=270.0)
