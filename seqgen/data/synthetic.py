"""Synthetic series for pretraining a forecaster: many kinds of behaviour, drawn from a seed.

The pretrained forecaster (model/forecaster.py) learns only from these, so that its recipe needs
no download and no real series it is judged on can leak into its weights; real series serve only
to check it and to choose this mix. Each series is one of:
- an exponential-smoothing process (level, trend damped or not, seasonality of period m), with
  additive errors, or built in logs and exponentiated so that its seasonal swings and its noise
  grow with its level (multiplicative, as in drug sales or airline passengers);
- a stationary ARMA process, or an AR(2) with complex roots: quasi-cycles of uneven length, as
  sunspots and lynx trappings have;
- a Gaussian process whose kernel is a random sum and product of periodic, smooth, linear and
  noise kernels (the idea of Chronos's KernelSynth), sampled through random Fourier features;
- intermittent demand: mostly zeros, with random positive sizes.
Any of them may get a level shift, occasional outliers, or a random offset and scale, so that
both the sign of the values and their size vary as real data's do.

Everything is NumPy on one `numpy.random.Generator`, so the same seed gives the same series.
"""

from __future__ import annotations

import numpy as np

# Season lengths and how often each is drawn: the classic collections are mostly yearly (no
# season), quarterly and monthly; 7, 24 and 52 stand for daily, hourly and weekly data.
SEASONS = (1, 4, 12, 7, 24, 52)
SEASON_WEIGHTS = (0.4, 0.2, 0.28, 0.04, 0.04, 0.04)
# Shares of each kind of process.
KINDS = ("ets", "arma", "cycle", "gp", "intermittent")
KIND_WEIGHTS = (0.55, 0.12, 0.08, 0.2, 0.05)


def draw_seasons(count: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(SEASONS, size=count, p=SEASON_WEIGHTS)


def synthetic_series(
    count: int, length: int, rng: np.random.Generator, seasons: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`count` series of `length` values (float64, (count, length)) and their season lengths."""
    if seasons is None:
        seasons = draw_seasons(count, rng)
    kinds = rng.choice(len(KINDS), size=count, p=KIND_WEIGHTS)
    out = np.empty((count, length))
    for k, name in enumerate(KINDS):
        rows = np.flatnonzero(kinds == k)
        for m in np.unique(seasons[rows]):
            chosen = rows[seasons[rows] == m]
            out[chosen] = _MAKERS[name](len(chosen), length, int(m), rng)
    out = _disturb(out, rng, kinds == KINDS.index("intermittent"))
    return out, seasons


def _season_profile(count: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """(count, m) seasonal patterns summing to zero: a few harmonics, sometimes with sharp peaks."""
    if m == 1:
        return np.zeros((count, 1))
    phase = np.arange(m) / m
    harmonics = min(m // 2, 4)
    profile = np.zeros((count, m))
    for k in range(1, harmonics + 1):
        amp = rng.gamma(1.0, 1.0, size=(count, 1)) / k ** rng.uniform(0.5, 2.0, size=(count, 1))
        shift = rng.uniform(0, 2 * np.pi, size=(count, 1))
        profile += amp * np.cos(2 * np.pi * k * phase + shift)
    spikes = rng.random(count) < 0.25  # one month far above the rest, as December sales are
    profile[spikes, rng.integers(0, m, size=spikes.sum())] += rng.uniform(1, 4, size=spikes.sum())
    profile -= profile.mean(axis=1, keepdims=True)
    return profile / (profile.std(axis=1, keepdims=True) + 1e-9)


def _noise(count: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-scale errors: Gaussian, or Student-t with heavy tails."""
    heavy = rng.random((count, 1)) < 0.3
    df = rng.uniform(2.5, 8, size=(count, 1))
    t = rng.standard_normal((count, length)) / np.sqrt(rng.chisquare(df * np.ones((1, length))) / df)
    t /= np.sqrt(df / (df - 2))  # unit variance
    return np.where(heavy, t, rng.standard_normal((count, length)))


def _ets(count: int, length: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Exponential smoothing with additive components, in logs for a multiplicative series."""
    multiplicative = rng.random(count) < 0.45
    alpha = rng.uniform(0.05, 1.0, size=count) ** 0.7
    beta = np.where(rng.random(count) < 0.5, 0.0, rng.uniform(0, 0.25, size=count) * alpha)
    phi = np.where(rng.random(count) < 0.5, 1.0, rng.uniform(0.8, 0.98, size=count))
    gamma = rng.uniform(0, 0.2, size=count) * (1 - alpha) if m > 1 else np.zeros(count)
    sigma = np.exp(rng.uniform(np.log(0.005), np.log(0.12), size=count))  # noise against the level
    trend = np.where(rng.random(count) < 0.6, rng.normal(0, 1.5, size=count) * sigma, 0.0)
    season_size = (
        np.where(rng.random(count) < 0.8, rng.uniform(0.5, 6, size=count), 0.0) * sigma if m > 1 else np.zeros(count)
    )
    errors = _noise(count, length, rng) * sigma[:, None]
    seasonal = _season_profile(count, m, rng) * season_size[:, None]
    level, slope = np.zeros(count), trend.copy()
    out = np.empty((count, length))
    for t in range(length):
        s = seasonal[:, t % m]
        e = errors[:, t]
        out[:, t] = level + phi * slope + s + e
        level = level + phi * slope + alpha * e
        slope = phi * slope + beta * e
        seasonal[:, t % m] = s + gamma * e
    # A multiplicative series lives in logs around 0 (a level of 1); an additive one is placed
    # around a level far enough from zero that its scale reads as real data's does.
    base = np.exp(rng.uniform(0, 8, size=count))
    return np.where(multiplicative[:, None], base[:, None] * np.exp(out), base[:, None] * (1 + out))


def _arma(count: int, length: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Stationary ARMA(1..2, 0..1) around a mean, with a seasonal AR term for seasonal data."""
    ar1 = rng.uniform(-0.5, 0.97, size=count)
    ar2 = np.where(rng.random(count) < 0.4, rng.uniform(-0.3, 0.3, size=count), 0.0)
    ar2 = np.clip(ar2, -0.95, 0.97 - np.abs(ar1))  # inside the stationary triangle
    ma = np.where(rng.random(count) < 0.4, rng.uniform(-0.8, 0.8, size=count), 0.0)
    sar = rng.uniform(0.3, 0.95, size=count) if m > 1 else np.zeros(count)
    burn = 100 + 3 * m
    e = _noise(count, length + burn, rng)
    x = np.zeros((count, length + burn))
    for t in range(2, length + burn):
        x[:, t] = ar1 * x[:, t - 1] + ar2 * x[:, t - 2] + e[:, t] + ma * e[:, t - 1]
        if m > 1 and t >= m:
            x[:, t] += sar * (x[:, t - m] - ar1 * x[:, t - m - 1] if t > m else x[:, t - m])
    x = x[:, burn:]
    x /= x.std(axis=1, keepdims=True) + 1e-9
    return _place(x, rng)


def _cycle(count: int, length: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """AR(2) with complex roots: cycles of a period between 5 and 40 steps that drift in length
    and height; half are squared, as counts that never go below zero (sunspots) are."""
    period = rng.uniform(5, 40, size=count)
    radius = rng.uniform(0.85, 0.99, size=count)
    a1, a2 = 2 * radius * np.cos(2 * np.pi / period), -(radius**2)
    e = _noise(count, length + 200, rng)
    x = np.zeros((count, length + 200))
    for t in range(2, length + 200):
        x[:, t] = a1 * x[:, t - 1] + a2 * x[:, t - 2] + e[:, t]
    x = x[:, 200:]
    x /= x.std(axis=1, keepdims=True) + 1e-9
    squared = rng.random(count) < 0.5
    x = np.where(squared[:, None], (x + rng.uniform(0, 1.5, size=(count, 1))) ** 2, x)
    return _place(x, rng) if m == 1 else _place(x + _season_profile(count, m, rng)[:, np.arange(length) % m] * 0.5, rng)


def _gp(count: int, length: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian process with a random composite kernel, sampled by random Fourier features: a
    smooth part (RBF of a random length scale), periodic parts (the season's and another
    period), a linear trend, and white noise, added or multiplied."""
    t = np.arange(length, dtype=np.float64)
    features = 64

    def smooth(scale):  # RBF kernel: frequencies drawn from its spectral density
        w = rng.standard_normal((count, features)) / scale[:, None]
        b = rng.uniform(0, 2 * np.pi, size=(count, features))
        a = rng.standard_normal((count, features))
        return (a[:, :, None] * np.cos(w[:, :, None] * t + b[:, :, None])).sum(axis=1) * np.sqrt(2 / features)

    def periodic(period):
        k = np.arange(1, 6)
        decay = np.exp(-(k[None, :] ** 2) * rng.uniform(0.05, 0.6, size=(count, 1)))
        a = rng.standard_normal((count, 5)) * decay
        b = rng.uniform(0, 2 * np.pi, size=(count, 5))
        angle = 2 * np.pi * k[None, :, None] * t / period[:, None, None] + b[:, :, None]
        return (a[:, :, None] * np.cos(angle)).sum(axis=1)

    x = smooth(np.exp(rng.uniform(np.log(3), np.log(length), size=count))) * rng.uniform(0, 1.5, size=(count, 1))
    if m > 1:
        season = periodic(np.full(count, float(m))) * rng.uniform(0.3, 2.0, size=(count, 1))
        mix = rng.random(count) < 0.3  # a season that grows and shrinks with the smooth part
        x = np.where(mix[:, None], x + season * (1 + 0.5 * np.tanh(x)), x + season)
    other = rng.random(count) < 0.25
    x += np.where(other[:, None], periodic(rng.uniform(3, max(6, length / 3), size=count)), 0.0)
    x += rng.normal(0, 1, size=(count, 1)) * (t - length / 2) / length * rng.uniform(0, 4, size=(count, 1))
    x += rng.standard_normal((count, length)) * rng.uniform(0.02, 0.5, size=(count, 1))
    return _place(x, rng)


def _intermittent(count: int, length: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Demand that is zero most steps: a Bernoulli occurrence times a gamma size."""
    rate = rng.uniform(0.1, 0.7, size=(count, 1))
    size = rng.gamma(rng.uniform(1, 5, size=(count, 1)), rng.uniform(1, 20, size=(count, 1)), size=(count, length))
    return np.round((rng.random((count, length)) < rate) * size)


def _place(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Give a unit-scale series a level and size: most stay positive, as counts and sales are."""
    count = len(x)
    scale = np.exp(rng.uniform(-2, 7, size=(count, 1)))
    lowest = x.min(axis=1, keepdims=True)
    positive = rng.random((count, 1)) < 0.75
    offset = np.where(positive, -lowest + rng.exponential(2.0, size=(count, 1)), rng.normal(0, 3, size=(count, 1)))
    return (x + offset) * scale


def _disturb(x: np.ndarray, rng: np.random.Generator, intermittent: np.ndarray) -> np.ndarray:
    """Level shifts and lone outliers on some series (not on intermittent ones, which are spiky already)."""
    count, length = x.shape
    spread = np.std(np.diff(x, axis=1), axis=1) + 1e-9
    shifted = (rng.random(count) < 0.12) & ~intermittent
    at = rng.integers(length // 4, length, size=count)
    jump = rng.normal(0, 4, size=count) * spread
    x = x + np.where(shifted[:, None] & (np.arange(length) >= at[:, None]), jump[:, None], 0.0)
    outliers = (rng.random((count, length)) < 0.005) & ~intermittent[:, None]
    return x + outliers * rng.normal(0, 6, size=(count, length)) * spread[:, None]


_MAKERS = {"ets": _ets, "arma": _arma, "cycle": _cycle, "gp": _gp, "intermittent": _intermittent}
