"""Forecast metrics from seqgen.metrics, each checked against numbers worked out by hand."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqgen import DataError, UsageError
from seqgen.metrics import (
    backtest_origins,
    coverage,
    crps_gaussian,
    crps_samples,
    detect_season,
    mae,
    mase,
    naive_scale,
    quantiles,
    rmse,
    score,
    seasonal_naive,
)


def test_point_errors():
    actual, forecast = [1, 2, 3, 4], [2, 2, 1, 4]  # errors 1, 0, -2, 0
    assert mae(actual, forecast) == pytest.approx(0.75)
    assert rmse(actual, forecast) == pytest.approx(math.sqrt(5 / 4))


def test_forecast_and_actual_must_line_up():
    with pytest.raises(UsageError, match="`forecast` has shape"):
        mae([1, 2, 3], [1, 2])


def test_seasonal_naive_repeats_the_last_season():
    history = [1, 2, 3, 4, 5, 6, 7, 8]
    assert seasonal_naive(history, horizon=5, season=3).tolist() == [6, 7, 8, 6, 7]
    assert seasonal_naive(history, horizon=3, season=1).tolist() == [8, 8, 8]
    with pytest.raises(DataError, match="`season` 12 needs at least 12 history values, got 8"):
        seasonal_naive(history, horizon=3, season=12)


def test_naive_scale_is_the_in_sample_seasonal_naive_error():
    assert naive_scale([1, 3, 2, 5, 4, 6], season=2) == pytest.approx(1.5)  # |2-1|, |5-3|, |4-2|, |6-5|
    assert naive_scale([1, 3, 2], season=5) == pytest.approx(1.5)  # too short for a season: lag 1, |3-1|, |2-3|


def test_mase_scales_the_error_by_the_naive_one():
    assert mase([5, 7], [6, 6], history=[1, 3, 2, 5, 4, 6], season=2) == pytest.approx(1 / 1.5)


def test_mase_of_a_constant_history_is_nan():
    assert math.isnan(naive_scale([4, 4, 4, 4], season=1))
    assert math.isnan(mase([4, 5], [4, 4], history=[4, 4, 4, 4], season=1))


def seasonal(period: float, n: int, noise: float, trend: float = 0.0, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    return np.sin(2 * np.pi * t / period) + trend * t + noise * np.random.default_rng(seed).standard_normal(n)


def test_detect_season_of_monthly_data_with_a_trend():
    assert detect_season(seasonal(12, n=120, noise=0.3, trend=0.05)) == 12  # ten years, rising


def test_detect_season_of_daily_data_with_a_weekly_cycle():
    assert detect_season(seasonal(7, n=364, noise=0.5)) == 7


def test_detect_season_of_a_sunspot_like_cycle():
    assert detect_season(seasonal(11, n=300, noise=0.3)) == 11


def test_detect_season_of_weekly_data_with_a_yearly_cycle_is_exact():
    """Noise moves the top of a long period's broad peak (here to lag 50); its multiples put it back."""
    assert detect_season(seasonal(52, n=520, noise=0.5)) == 52


def test_detect_season_prefers_the_period_to_its_multiples():
    """A second harmonic peaks at lag 6 and every cycle again at 24, 36: the season is still 12."""
    t = np.arange(240)
    assert detect_season(np.sin(2 * np.pi * t / 12) + 1.5 * np.sin(2 * np.pi * t / 6)) == 12


def test_detect_season_finds_none_in_noise_or_a_straight_line():
    rng = np.random.default_rng(1)
    assert detect_season(rng.standard_normal(200)) == 1
    assert detect_season(np.arange(100.0)) == 1
    assert detect_season([3.0] * 50) == 1


def test_detect_season_looks_no_further_than_max_season():
    assert detect_season(seasonal(12, n=120, noise=0.1), max_season=10) == 1
    with pytest.raises(UsageError, match="`max_season` must be >= 2, got 1"):
        detect_season([1.0, 2.0, 3.0], max_season=1)


def test_crps_of_three_samples_by_hand():
    """Samples 0, 1, 3 against 2: E|X-y| = 4/3, E|X-X'| = 12/9, CRPS = 4/3 - 2/3 = 2/3 (so is the integral
    of (F - 1{x >= 2})^2: 1/9 + 4/9 + 1/9). The second step's samples all hit it: 0."""
    samples = np.array([[0, 1], [1, 1], [3, 1]])
    assert crps_samples(samples, [2, 1]) == pytest.approx(1 / 3)


def test_crps_of_one_sample_is_its_absolute_error():
    assert crps_samples([[1.0, 4.0, -2.0]], [2.0, 2.0, 2.0]) == pytest.approx(mae([2, 2, 2], [1, 4, -2]))


def test_crps_from_sorted_samples_equals_the_pairwise_definition():
    rng = np.random.default_rng(2)
    samples, actual = rng.standard_normal((50, 4)), rng.standard_normal(4)
    to_actual = np.abs(samples - actual).mean(axis=0)
    between = np.abs(samples[:, None, :] - samples[None, :, :]).mean(axis=(0, 1))
    assert crps_samples(samples, actual) == pytest.approx(np.mean(to_actual - between / 2), rel=1e-12)


def test_crps_gaussian_at_the_mean():
    # z = 0: std * (2 phi(0) - 1/sqrt(pi)) = 2 * (0.7978846 - 0.5641896)
    assert crps_gaussian(3.0, 2.0, 3.0) == pytest.approx(0.4673900, abs=1e-6)


def test_crps_gaussian_far_from_the_mean_is_the_distance_less_std_over_sqrt_pi():
    assert crps_gaussian(0.0, 1.0, 10.0) == pytest.approx(10 - 1 / math.sqrt(math.pi))


def test_crps_gaussian_matches_many_samples_of_the_same_normal():
    mean, std, actual = np.array([0.0, 1.0]), np.array([1.0, 2.0]), np.array([0.5, -1.0])
    samples = mean + std * np.random.default_rng(3).standard_normal((200_000, 2))
    assert crps_gaussian(mean, std, actual) == pytest.approx(crps_samples(samples, actual), rel=1e-2)
    with pytest.raises(UsageError, match="`std` must be > 0"):
        crps_gaussian(0.0, 0.0, 1.0)


def test_quantiles_per_step():
    samples = np.stack([np.arange(11.0), 10 * np.arange(11.0)], axis=1)  # 0..10 and 0..100
    assert np.allclose(quantiles(samples, [0.1, 0.5, 0.95]), [[1, 10], [5, 50], [9.5, 95]])
    with pytest.raises(UsageError, match="`quantiles` levels must lie strictly between 0 and 1, got 1.0"):
        quantiles(samples, [0.5, 1.0])


def test_coverage_counts_the_ends_of_the_interval_as_inside():
    samples = np.tile(np.arange(101.0)[:, None], (1, 5))  # the central 80% is 10..90 at every step
    assert coverage(samples, [10, 50, 90.5, -1, 90], level=0.8) == pytest.approx(3 / 5)


def test_backtest_origins_are_evenly_spaced_and_end_at_the_last_value():
    origins = backtest_origins(n_values=100, horizon=10, count=4, first=50)
    assert origins == [50, 63, 76, 90]
    assert origins[-1] + 10 == 100
    assert backtest_origins(n_values=100, horizon=10, count=1, first=50) == [90]


def test_backtest_origins_give_fewer_when_there_is_no_room():
    assert backtest_origins(n_values=20, horizon=5, count=10, first=12) == [12, 13, 14, 15]
    with pytest.raises(DataError, match="needs at least 35 values, got 30"):
        backtest_origins(n_values=30, horizon=10, count=3, first=25)


def test_score_of_samples():
    """Median 2, 4 for MAE and MASE; mean 3, 4 for RMSE; the 80% interval holds 2 but not 7."""
    samples = np.array([[1, 1], [2, 4], [6, 7]])
    result = score([2, 7], samples, history=[0, 2, 1, 4], season=1)  # naive scale (2 + 1 + 3) / 3 = 2
    assert result == pytest.approx({"mae": 1.5, "rmse": math.sqrt(5), "mase": 0.75, "crps": 10 / 9, "coverage": 0.5})


def test_score_of_a_point_forecast_has_crps_equal_to_mae_and_no_coverage():
    result = score([2, 7], [2, 4], history=[0, 2, 1, 4], season=1)
    assert result["mae"] == result["crps"] == pytest.approx(1.5)
    assert result["mase"] == pytest.approx(0.75)
    assert math.isnan(result["coverage"])


def test_metrics_never_import_torch():
    check = "import sys, seqgen.metrics; print('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", check],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=True,
    )
    assert out.stdout.strip() == "False"
