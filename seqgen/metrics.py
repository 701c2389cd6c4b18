"""Forecast accuracy: point errors (MAE, RMSE, MASE), probabilistic scores (CRPS, interval coverage),
the seasonal naive baseline, a seasonal period detector and the forecast origins of a backtest.

Pure NumPy, so scoring never imports torch. Arrays are (horizon,) for one forecast and
(n_samples, horizon) for an ensemble of sampled continuations.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import DataError, UsageError

# An autocorrelation peak below this is too weak to call a season, however long the series.
MIN_PEAK = 0.3
# White noise alone has autocorrelations of about 1/sqrt(n): on short series they reach 0.3, and
# anywhere they make bumps on the slope down from lag 0. A peak must be this many of them high
# and stand this many of them above the lowest point before it.
NOISE_SIGMAS = 3.0
# Multiples of the period repeat its peak a little lower, or with noise a little higher: a later
# peak must beat the earliest strong one by this factor to be the season.
MULTIPLE_MARGIN = 1.25
# A long period's peak is broad, so noise moves its top by several lags; the lags within this
# fraction of it are compared on the mean autocorrelation at their multiples, where they part.
REFINE_FRACTION = 0.1


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise UsageError(f"`{name}` must be >= 1, got {value}")


def _pair(actual, forecast) -> tuple[np.ndarray, np.ndarray]:
    actual, forecast = np.asarray(actual, dtype=float), np.asarray(forecast, dtype=float)
    if actual.shape != forecast.shape:
        raise UsageError(f"`forecast` has shape {forecast.shape} but `actual` has {actual.shape}")
    if actual.size == 0:
        raise UsageError("`actual` is empty: there is nothing to score")
    return actual, forecast


def _ensemble(samples, actual) -> tuple[np.ndarray, np.ndarray]:
    samples, actual = np.asarray(samples, dtype=float), np.asarray(actual, dtype=float)
    if samples.ndim != 2 or samples.shape[1:] != actual.shape or samples.shape[0] == 0:
        raise UsageError(f"`samples` must have shape (n_samples, {actual.size}), got {samples.shape}")
    return samples, actual


def mae(actual, forecast) -> float:
    """Mean absolute error."""
    actual, forecast = _pair(actual, forecast)
    return float(np.mean(np.abs(actual - forecast)))


def rmse(actual, forecast) -> float:
    """Root mean squared error."""
    actual, forecast = _pair(actual, forecast)
    return float(np.sqrt(np.mean((actual - forecast) ** 2)))


def seasonal_naive(history, horizon: int, season: int) -> np.ndarray:
    """The last `season` values of `history` repeated over `horizon` steps (season 1: the last value)."""
    _check_positive("horizon", horizon)
    _check_positive("season", season)
    history = np.asarray(history, dtype=float)
    if len(history) < season:
        raise DataError(f"`season` {season} needs at least {season} history values, got {len(history)}")
    return history[len(history) - season + np.arange(horizon) % season]


def naive_scale(history, season: int) -> float:
    """In-sample MAE of the seasonal naive forecast: the denominator of MASE (Hyndman & Koehler 2006).

    A history of `season` values or fewer has no seasonal pair, so the one-step naive forecast stands
    in. A constant history gives nan, not an error: one flat series should not stop a whole backtest.
    """
    _check_positive("season", season)
    history = np.asarray(history, dtype=float)
    if len(history) < 2:
        raise DataError(f"the naive scale needs at least 2 history values, got {len(history)}")
    lag = season if len(history) > season else 1
    scale = float(np.mean(np.abs(history[lag:] - history[:-lag])))
    return scale if scale > 0 else math.nan


def mase(actual, forecast, history, season: int) -> float:
    """Mean absolute scaled error: below 1 beats the in-sample seasonal naive forecast; nan if `history` is flat."""
    return mae(actual, forecast) / naive_scale(history, season)


def _autocorrelation(values: np.ndarray) -> np.ndarray:
    """Autocorrelation at lags 0..n-1 of the linearly detrended values (the biased estimate, via FFT)."""
    t = np.arange(len(values))
    residual = values - np.polyval(np.polyfit(t, values, 1), t)
    spectrum = np.fft.rfft(residual, 2 * len(values))  # zero padding: no wrap-around between lags
    autocovariance = np.fft.irfft(np.abs(spectrum) ** 2)[: len(values)]
    # A constant (or straight) series leaves only rounding error, which has no season to find.
    if autocovariance[0] <= 1e-12 * max(1.0, float(np.mean(values**2))):
        return np.zeros(len(values))
    return autocovariance / autocovariance[0]


def detect_season(values, max_season: int | None = None, min_cycles: int = 2) -> int:
    """The seasonal period of `values`: the strongest autocorrelation peak at lags 2..max_season, or 1.

    The series is detrended by a least-squares line rather than differenced: differencing shrinks a
    period-p wave by 2 sin(pi/p), so long seasons would drown in the noise. A lag counts when it is a
    local maximum above 0.3 (and above 3/sqrt(n), the noise level); of those the earliest wins unless
    a later one is 25% stronger, so a multiple of the period is not taken for it, and the lags within
    10% of it are weighed on their multiples too. `max_season` is capped at len(values) // min_cycles,
    the longest period seen `min_cycles` times.
    """
    _check_positive("min_cycles", min_cycles)
    if max_season is not None and max_season < 2:
        raise UsageError(f"`max_season` must be >= 2, got {max_season}")
    values = np.asarray(values, dtype=float).ravel()
    limit = min(max_season or len(values), len(values) // min_cycles, len(values) - 2)
    if limit < 2:
        return 1
    acf = _autocorrelation(values)
    peaks = _strong_peaks(acf, limit)
    if len(peaks) == 0:
        return 1
    season = int(peaks[0])
    for lag in peaks[1:]:
        if acf[lag] > MULTIPLE_MARGIN * acf[season]:
            season = int(lag)
    return _refine(acf, season, limit)


def _strong_peaks(acf: np.ndarray, limit: int) -> np.ndarray:
    """The lags in 2..limit where the autocorrelation peaks clearly above the noise."""
    noise = NOISE_SIGMAS / math.sqrt(len(acf))
    lags = np.arange(2, limit + 1)
    local_max = (acf[lags] > acf[lags - 1]) & (acf[lags] >= acf[lags + 1])
    prominent = acf[lags] - np.minimum.accumulate(acf)[lags - 1] > noise
    return lags[local_max & prominent & (acf[lags] > max(MIN_PEAK, noise))]


def _refine(acf: np.ndarray, season: int, limit: int) -> int:
    """Of the lags near `season`, the one whose multiples line up best with the autocorrelation peaks."""
    reach = max(1, int(season * REFINE_FRACTION))
    candidates = np.arange(max(2, season - reach), min(limit, season + reach) + 1)
    # The same number of multiples for every candidate: a lag that drops its last, most tapered one
    # would otherwise win by that alone.
    multiples = np.arange(1, max(1, len(acf) // 2 // candidates[-1]) + 1)
    return int(candidates[np.argmax([acf[lag * multiples].mean() for lag in candidates])])


def crps_samples(samples, actual) -> float:
    """Continuous ranked probability score of the samples' empirical distribution, averaged over steps.

    Energy form, E|X - y| - E|X - X'| / 2, with E|X - X'| = 2/n^2 sum_i (2i - n - 1) x_(i) over the
    sorted samples: O(n log n) per step instead of comparing every pair. One sample gives the MAE.
    """
    samples, actual = _ensemble(samples, actual)
    n = samples.shape[0]
    ordered = np.sort(samples, axis=0)
    weights = (2 * np.arange(1, n + 1) - n - 1)[:, None]
    spread = 2.0 / n**2 * np.sum(weights * ordered, axis=0)
    return float(np.mean(np.mean(np.abs(samples - actual), axis=0) - spread / 2))


def crps_gaussian(mean, std, actual) -> float:
    """CRPS of a normal forecast N(mean, std^2) in closed form, averaged over steps."""
    mean, std, actual = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (mean, std, actual)))
    if np.any(std <= 0):
        raise UsageError(f"`std` must be > 0, got {float(np.min(std))}")
    z = (actual - mean) / std
    cdf = 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in z.ravel()]).reshape(z.shape))
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return float(np.mean(std * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))))


def quantiles(samples, levels) -> np.ndarray:
    """Per-step quantiles of the samples (linear interpolation), shape (len(levels), horizon)."""
    levels = np.atleast_1d(np.asarray(levels, dtype=float))
    outside = levels[(levels <= 0) | (levels >= 1)]
    if len(outside):
        raise UsageError(f"`quantiles` levels must lie strictly between 0 and 1, got {float(outside[0])}")
    return np.quantile(np.asarray(samples, dtype=float), levels, axis=0)


def coverage(samples, actual, level: float = 0.8) -> float:
    """Share of actual values inside the central `level` interval of the samples, ends included."""
    if not 0 < level < 1:
        raise UsageError(f"`level` must be between 0 and 1 (exclusive), got {level}")
    samples, actual = _ensemble(samples, actual)
    low, high = quantiles(samples, [(1 - level) / 2, (1 + level) / 2])
    return float(np.mean((low <= actual) & (actual <= high)))


def default_horizon(train: np.ndarray, tail: int, season: int | None = None) -> int:
    """A backtest's horizon: a season of the training values `train` (detected when not given;
    8 steps when there is none), at most half the validation tail of `tail` values so that
    several origins fit in it."""
    if season is None:
        season = detect_season(np.asarray(train).reshape(len(train), -1)[:, 0])
    return max(1, min(season if season > 1 else 8, tail // 2))


def backtest_origins(n_values: int, horizon: int, count: int, first: int) -> list[int]:
    """Up to `count` evenly spaced forecast origins (index of the first forecast value) from `first`
    (at least 1: a forecast needs some history), the last forecast ending at the last value.
    The forecast windows overlap when `count` of them do not fit side by side."""
    for name, value in (("horizon", horizon), ("count", count), ("first", first)):
        _check_positive(name, value)
    last = n_values - horizon
    if last < first:
        raise DataError(
            f"a backtest with `horizon` {horizon} from `first` {first} needs at least "
            f"{first + horizon} values, got {n_values}"
        )
    count = min(count, last - first + 1)
    if count == 1:
        return [last]
    # Integer steps of at least 1 keep the origins distinct and put the last one exactly at `last`.
    return [first + i * (last - first) // (count - 1) for i in range(count)]


def score(actual, samples_or_point, history, season: int, level: float = 0.8) -> dict[str, float]:
    """MAE, RMSE, MASE, CRPS and coverage of one forecast, a point (horizon,) or samples (n, horizon).

    From samples, MAE and MASE score the per-step median (it minimises absolute error) and RMSE the
    mean (it minimises squared error). A point forecast is a one-point distribution: its CRPS is its
    MAE, and it has no interval, so coverage is nan.
    """
    forecast = np.asarray(samples_or_point, dtype=float)
    if forecast.ndim == np.ndim(actual):
        point = {"mae": mae(actual, forecast), "rmse": rmse(actual, forecast)}
        return {**point, "mase": mase(actual, forecast, history, season), "crps": point["mae"], "coverage": math.nan}
    forecast, actual = _ensemble(forecast, actual)
    median = np.median(forecast, axis=0)
    return {
        "mae": mae(actual, median),
        "rmse": rmse(actual, forecast.mean(axis=0)),
        "mase": mase(actual, median, history, season),
        "crps": crps_samples(forecast, actual),
        "coverage": coverage(forecast, actual, level),
    }
