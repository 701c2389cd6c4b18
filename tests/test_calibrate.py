"""Interval calibration: after training, a series model's spread is scaled so that its 80%
intervals several steps ahead cover 80% of the validation tail (never narrowed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqgen import Generator, ModelConfig, TrainConfig, Trainer, load_checkpoint
from seqgen.calibrate import calibrate, user_series
from seqgen.checkpoint import Checkpoint
from seqgen.data import series_dataset
from seqgen.data.load import TableOptions
from seqgen.data.transforms import with_target
from seqgen.generate.forecast import forecast
from seqgen.generate.generator import stored_scale


def noisy_cycle(n: int = 400, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    return 5 + np.sin(2 * math.pi * t / 12) + np.random.default_rng(seed).normal(0, 0.3, n)


def cycle_data():
    return series_dataset(noisy_cycle(), "cycle", "cycle", 0.2)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """A small model of the noisy cycle for a point and a Gaussian head, trained (and so calibrated)."""
    paths = {}
    for head in ("point", "gaussian"):
        paths[head] = tmp_path_factory.mktemp(head) / "cycle.safetensors"
        Trainer(
            cycle_data(),
            ModelConfig(hidden=24, head=head),
            TrainConfig(batch_size=8, window=40, steps=300, eval_every=100, lr=1e-2),
            paths[head],
        ).run()
    return paths


def with_progress(path, **changes) -> Checkpoint:
    ckpt = load_checkpoint(path)
    ckpt.meta["progress"].update(changes)
    return ckpt


def test_training_stores_the_factor_and_generation_uses_it(models):
    for path in models.values():
        ckpt = load_checkpoint(path)
        progress = ckpt.meta["progress"]
        found = progress["calibration"]
        assert progress["interval_scale"] == found["scale"] >= 1.0
        assert found["scale"] == pytest.approx(max(1.0, progress.get("spread_ratio") or 1.0, found["fitted"]), abs=1e-4)
        assert (
            found["coverage"] >= 0.8 or found["scale"] > found["fitted"]
        )  # the factor that reaches 80%, or a wider one
        assert Generator.from_checkpoint(ckpt).spread_scale == progress["interval_scale"]


def test_a_spread_four_times_too_narrow_is_found_and_widened(models):
    # A point model's paths get noise the size of its one-step validation error; claim an error
    # four times smaller than it was, and the tail's forecasts must ask for about four times the noise.
    ckpt = load_checkpoint(models["point"])
    true_mse = ckpt.meta["progress"]["best_val_loss"]
    honest = calibrate(ckpt, cycle_data())
    narrow = calibrate(with_progress(models["point"], best_val_loss=true_mse / 16), cycle_data())
    assert narrow.coverage_before < 0.5 <= 0.8 <= narrow.coverage
    assert narrow.fitted == pytest.approx(4 * honest.fitted, rel=0.35)


def test_a_spread_too_wide_is_measured_but_never_narrowed(models):
    ckpt = load_checkpoint(models["point"])
    wide = calibrate(
        with_progress(models["point"], best_val_loss=ckpt.meta["progress"]["best_val_loss"] * 9), cycle_data()
    )
    assert wide.coverage_before > 0.9 and wide.fitted < 0.6
    assert wide.scale == 1.0


def test_the_same_seed_gives_the_same_calibration(models):
    ckpt = load_checkpoint(models["gaussian"])
    assert calibrate(ckpt, cycle_data(), seed=3) == calibrate(ckpt, cycle_data(), seed=3)


def test_calibrated_intervals_cover_about_80_percent_of_new_data_twelve_steps_ahead(models):
    fresh = noisy_cycle(3000, seed=5)
    for head, path in models.items():
        inside = []
        for origin in range(200, 2988, 97):
            made = forecast(path, fresh[origin - 100 : origin], 12, samples=200, quantiles=(0.1, 0.9), seed=origin)
            low, high = made.quantiles
            inside.append((low <= fresh[origin : origin + 12]) & (fresh[origin : origin + 12] <= high))
        assert 0.68 <= np.mean(inside) <= 0.93, (head, np.mean(inside))


def test_a_checkpoint_from_before_calibration_widens_by_its_one_step_ratio():
    assert stored_scale({"spread_ratio": 1.3}) == 1.3
    assert stored_scale({"spread_ratio": 0.7}) == 1.0  # never narrowed
    assert stored_scale({}) == 1.0
    assert stored_scale({"spread_ratio": 1.3, "interval_scale": 1.1}) == 1.1


def test_nothing_to_calibrate_for_sine_waves_or_a_tail_too_short(models, tmp_path):
    from seqgen.data import SineConfig, load_data

    ckpt = load_checkpoint(models["gaussian"])
    assert calibrate(ckpt, load_data(None, sine=SineConfig(waves=4, length=200))) is None
    short = series_dataset(noisy_cycle(40), "short", "short", 0.03)  # a validation tail of one value
    assert calibrate(ckpt, short) is None


def test_the_series_calibrated_are_the_users_values_whatever_the_model_reads(tmp_path):
    values = 100 + np.cumsum(np.random.default_rng(0).normal(1, 1, 200))
    level = series_dataset(values, "walk", "walk", 0.1)
    [(index, name, got, split)] = user_series(level)
    assert (index, name, split) == (0, None, 180)
    np.testing.assert_allclose(got, values, rtol=1e-6)
    diff = with_target(level, "diff")
    [(_, _, got, split)] = user_series(diff)
    assert split == 180 and len(got) == 200  # differences start at the second value; the split stays at the values'
    np.testing.assert_allclose(got, values, rtol=1e-6)
    table = tmp_path / "stores.csv"
    table.write_text(
        "store,day,sales\n"
        + "".join(
            f"{store},2024-01-{day + 1:02d},{10 * (k + 1) + day % 7}\n"
            for k, store in enumerate("ab")
            for day in range(30)
        )
    )
    stores = TableOptions(id_column="store").dataset(table.read_text(), "stores", str(table), 0.2)
    found = user_series(stores)
    assert [(i, n, s) for i, n, _, s in found] == [(0, "a", 24), (1, "b", 24)]
    np.testing.assert_array_equal(found[1][2][:3], [20, 21, 22])


def test_a_resumed_run_keeps_the_calibration_of_the_weights_it_has_not_replaced(models, tmp_path):
    # A resumed run stopped (Ctrl-C) before it found better weights still holds the calibrated
    # factor of the weights it keeps, not the one-step ratio of an uncalibrated checkpoint.
    path = tmp_path / "cycle.safetensors"
    path.write_bytes(models["gaussian"].read_bytes())
    before = load_checkpoint(path).meta["progress"]
    Trainer(
        cycle_data(),
        ModelConfig(hidden=24, head="gaussian"),
        TrainConfig(batch_size=8, window=40, steps=600, eval_every=100, lr=1e-2),
        path,
        resume=load_checkpoint(path),
    ).run(should_stop=lambda: True)
    after = load_checkpoint(path).meta["progress"]
    assert after["best_step"] == before["best_step"]
    assert after["calibration"] == before["calibration"] and after["interval_scale"] == before["interval_scale"]


def test_a_run_resumed_on_other_data_does_not_keep_the_old_calibration(models, tmp_path):
    path = tmp_path / "cycle.safetensors"
    path.write_bytes(models["gaussian"].read_bytes())
    more = series_dataset(np.concatenate([noisy_cycle(), noisy_cycle(100, seed=1)]), "cycle", "cycle", 0.2)
    Trainer(
        more,
        ModelConfig(hidden=24, head="gaussian"),
        TrainConfig(batch_size=8, window=40, steps=600, eval_every=100, lr=1e-2),
        path,
        resume=load_checkpoint(path),
    ).run(should_stop=lambda: True)
    assert load_checkpoint(path).meta["progress"]["calibration"] is None  # its tail is another one
