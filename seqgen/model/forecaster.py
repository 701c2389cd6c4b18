"""The pretrained forecaster: one recurrent network that forecasts a series it has never seen.

It reads a series one value at a time (an LSTM, so its state is O(1) whatever the length) and,
after any value, its head gives the quantiles of each of the next HORIZON values at once (a
multi-horizon quantile head, as MQ-RNN's): no sampled value is fed back, so errors do not
compound, and the same history always gives the same forecast.

What makes one network fit series of any size and shape is the encoding, the same in training
and in use (`encode`):
- a positive series whose swings grow with its level is read in logs (`transforms.log_helps`),
  so that multiplicative seasonality becomes additive and every output is exponentiated back;
- every value is measured against a running scale: the mean absolute step so far, weighted
  toward the last ~50 steps (`running_scale`); a forecast is the change from the last value in
  that scale, so the naive forecast is 0, and the training loss is close to MASE;
- the season length (1 for none) is an input, with the position in the season as a sine and
  cosine and the step one season back, so that a monthly series is read as monthly;
- the head adds to its own output three simple forecasts (the last season repeated; the mean
  pattern of the last SEASONS_AVERAGED seasons; the last season repeated and moved by the recent
  trend, or without a season the recent drift), each weighed by a gate the network sets per step
  ahead: patterns that are plain to see need not be relearnt from the state. Measured on 66
  real series before the gates (1,000 pretraining steps): seasonal series such as monthly
  deaths or gas demand came out at two to three times the seasonal naive error.
The network is trained on synthetic series only (data/synthetic.py; train/pretrain.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

# Quantile levels the head predicts; the tails make the CRPS and wide intervals meaningful.
LEVELS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
FEATURES = 13
# Inputs and targets beyond this many scale units are clipped: one outlier must not swamp the state.
CLIP = 10.0
TARGET_CLIP = 50.0
# The second seasonal baseline averages the pattern of this many past seasons.
SEASONS_AVERAGED = 3
# The third baseline continues the recent trend: over the last season against the one before
# it, or without a season over the last DRIFT_STEPS steps.
DRIFT_STEPS = 10
BASELINES = 3
# A fine-tuned forecaster keeps the weights it started from under this prefix.
BASE_PREFIX = "base."
# The running scale's weight on each new step, once there are more steps than 1/SCALE_WEIGHT.
SCALE_WEIGHT = 0.02


@dataclass
class ForecasterConfig:
    hidden: int = 128
    layers: int = 2
    horizon: int = 48
    levels: tuple[float, ...] = field(default=LEVELS)
    context: int = 512  # the most recent values read; training saw series up to this long

    def to_dict(self) -> dict:
        return {**asdict(self), "levels": list(self.levels)}

    @classmethod
    def from_dict(cls, d: dict) -> "ForecasterConfig":
        return cls(**{**d, "levels": tuple(d["levels"])})


def running_scale(y: np.ndarray) -> np.ndarray:
    """(N, T): at each step, the mean absolute step so far, exponentially weighted once there are
    more than 1/SCALE_WEIGHT steps; floored so that a flat stretch does not divide by zero."""
    steps = np.abs(np.diff(y, axis=1))
    n, t = y.shape
    scale = np.empty((n, t))
    mean = np.zeros(n)
    for i in range(1, t):
        weight = max(1.0 / i, SCALE_WEIGHT)
        mean = mean + weight * (steps[:, i - 1] - mean)
        scale[:, i] = mean
    scale[:, 0] = scale[:, 1] if t > 1 else 0.0
    size = np.maximum.accumulate(np.abs(y), axis=1)
    return np.maximum(scale, 1e-3 * size + 1e-8)


def _ewm(y: np.ndarray, weight: float) -> np.ndarray:
    out = np.empty_like(y)
    level = y[:, 0].copy()
    for i in range(y.shape[1]):
        level += max(1.0 / (i + 1), weight) * (y[:, i] - level)
        out[:, i] = level
    return out


def _lagged(y: np.ndarray, seasons: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """y at step t - m + shift for each series' season m, and where that step exists (m > 1)."""
    n, t = y.shape
    index = np.arange(t)[None, :] - seasons[:, None] + shift
    valid = (index >= 0) & (index < t) & (seasons[:, None] > 1)
    return np.take_along_axis(y, np.clip(index, 0, t - 1), axis=1), valid


def encode(y: np.ndarray, seasons: np.ndarray, logged: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The network's inputs (N, T, FEATURES) float32 and the running scale (N, T), for series `y`
    (N, T) already in logs where `logged` says so, with season lengths `seasons` (N,)."""
    n, t = y.shape
    scale = running_scale(y)
    features = np.zeros((n, t, FEATURES))
    step = np.zeros_like(y)
    step[:, 1:] = np.diff(y, axis=1)
    features[..., 0] = step / scale
    features[..., 1] = (y - _ewm(y, 0.3)) / scale
    slow = _ewm(y, 0.05)
    features[..., 2] = (y - slow) / scale
    ahead, valid = _lagged(y, seasons, 1)  # the value one season before the next step
    features[..., 3] = np.where(valid, ahead - y, 0.0) / scale
    back, valid = _lagged(y, seasons, 0)  # the change over the last season
    features[..., 4] = np.where(valid, y - back, 0.0) / scale
    phase = 2 * math.pi * np.arange(t)[None, :] / seasons[:, None]
    seasonal = (seasons > 1)[:, None]
    features[..., 5] = np.where(seasonal, np.sin(phase), 0.0)
    features[..., 6] = np.where(seasonal, np.cos(phase), 0.0)
    features[..., 7] = seasonal
    features[..., 8] = (np.log(seasons) / 4)[:, None]
    features[..., 9] = np.log1p(np.arange(t))[None, :] / 6
    features[..., 10] = logged[:, None]
    features[..., 11] = np.log1p(np.abs(slow) / scale) / 5
    features[..., 12] = (y - np.minimum.accumulate(y, axis=1)) / scale
    return np.clip(features, -CLIP, CLIP).astype(np.float32), scale


def targets(
    y: np.ndarray, scale: np.ndarray, rows: np.ndarray, origins: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """(R, horizon): the change from origin `origins[r]` of series `rows[r]` to each of the next
    `horizon` values, in that origin's scale, and the mask of those that exist."""
    index = origins[:, None] + np.arange(1, horizon + 1)[None, :]
    valid = index < y.shape[1]
    future = y[rows[:, None], np.minimum(index, y.shape[1] - 1)]
    z = (future - y[rows, origins][:, None]) / scale[rows, origins][:, None]
    return np.clip(np.where(valid, z, 0.0), -TARGET_CLIP, TARGET_CLIP).astype(np.float32), valid


def baselines(
    y: np.ndarray, scale: np.ndarray, seasons: np.ndarray, rows: np.ndarray, origins: np.ndarray, horizon: int
) -> np.ndarray:
    """(R, horizon, BASELINES): at forecast origin `origins[r]` of series `rows[r]`, the change to
    each step ahead that the seasonal naive forecasts predict, in that origin's scale: the value
    one season before that step, and that step's place in the mean pattern of the last
    SEASONS_AVERAGED seasons, moved to the level of the last one. Zero without a season or where
    the history is shorter than one season."""
    m = seasons[rows][:, None]  # (R, 1)
    h = np.arange(1, horizon + 1)[None, :]
    t = origins[:, None]
    r = rows[:, None]
    last = y[rows, origins][:, None]
    cumulative = np.concatenate([np.zeros((len(y), 1)), np.cumsum(y, axis=1)], axis=1)
    out = np.zeros((len(rows), horizon, BASELINES))
    back = t + h - m * np.ceil(h / m).astype(int)  # the same place, one season back
    ok = (m > 1) & (back >= 0)
    out[..., 0] = np.where(ok, y[r, np.clip(back, 0, None)] - last, 0.0)
    total, count = np.zeros((len(rows), horizon)), np.zeros((len(rows), horizon))
    level = 0.0
    for k in range(SEASONS_AVERAGED):
        start = t - m * (k + 1) + 1  # the first value of the k-th season back
        # Each season's value less that season's mean: a pattern, free of the level it sat at.
        mean = (cumulative[r, np.clip(start + m, 0, None)] - cumulative[r, np.clip(start, 0, None)]) / m
        valid = ok & (start >= 0)
        total += np.where(valid, y[r, np.clip(back - k * m, 0, None)] - mean, 0.0)
        count += valid
        if k == 0:
            level = mean
    out[..., 1] = np.where(count > 0, total / np.maximum(count, 1) + level - last, 0.0)
    out[..., 2] = _drift(y, cumulative, r, t, m, h, out[..., 0])
    return (out / scale[rows, origins][:, None, None]).clip(-TARGET_CLIP, TARGET_CLIP).astype(np.float32)


def _drift(y, cumulative, r, t, m, h, seasonal) -> np.ndarray:
    """The trend baseline: the last season repeated, each repetition moved by the change between
    the last two seasons' means; without a season, the last value moved by the mean step of the
    last DRIFT_STEPS."""
    start = np.clip(t - 2 * m + 1, 0, None)
    middle = np.clip(t - m + 1, 0, None)
    # (the sum of the last season - the sum of the one before) / m: the change of the seasonal mean
    change = ((cumulative[r, t + 1] - cumulative[r, middle]) - (cumulative[r, middle] - cumulative[r, start])) / m
    seasonal_drift = np.where(t - 2 * m + 1 >= 0, seasonal + change * np.ceil(h / m), 0.0)
    span = np.minimum(t, DRIFT_STEPS)
    step = (y[r, t] - y[r, t - span]) / np.maximum(span, 1)
    return np.where(m > 1, seasonal_drift, step * h)


def build_network(config: ForecasterConfig):
    """The torch module: an LSTM over the encoded inputs, a two-layer head to the quantiles, and
    the gates that weigh the seasonal baselines added to them (see the module's docstring)."""
    import torch
    from torch import nn

    class ForecasterNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = config
            self.lstm = nn.LSTM(FEATURES, config.hidden, config.layers, batch_first=True)
            self.head = nn.Sequential(
                nn.Linear(config.hidden + FEATURES, config.hidden),
                nn.GELU(),
                nn.Linear(config.hidden, config.horizon * len(config.levels)),
            )
            self.gate = nn.Linear(config.hidden + FEATURES, config.horizon * BASELINES)

        def quantiles(self, read: "torch.Tensor", base: "torch.Tensor") -> "torch.Tensor":
            """read (R, hidden + FEATURES): the state and inputs at each origin; base (R, H, BASELINES)."""
            q = self.head(read).view(len(read), config.horizon, len(config.levels))
            gates = torch.sigmoid(self.gate(read)).view(len(read), config.horizon, BASELINES)
            return q + (gates * base).sum(-1, keepdim=True)

    return ForecasterNet()


class NumpyForecaster:
    """The network's forward pass in NumPy, for forecasting without importing torch (a forecast
    is one pass over the history: a few milliseconds)."""

    def __init__(self, config: ForecasterConfig, weights: dict[str, np.ndarray]) -> None:
        self.config = config
        self.w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}

    def last_output(self, x: np.ndarray, base: np.ndarray, starts: np.ndarray | None = None) -> np.ndarray:
        """x (N, T, FEATURES) and the baselines at the last step (N, horizon, BASELINES) -> the
        quantiles after the last step, (N, horizon, levels). `starts` (N,): the step each row's
        history begins at (its steps before are padding; default 0), so that histories of
        several lengths, ending together, go through in one pass."""
        h = x.astype(np.float64)
        for layer in range(self.config.layers):
            h = self._lstm_layer(h, layer, starts)
        last = np.concatenate([h[:, -1], x[:, -1].astype(np.float64)], axis=1)
        w = self.w
        hidden = last @ w["head.0.weight"].T + w["head.0.bias"]
        hidden = 0.5 * hidden * (1 + _erf(hidden / math.sqrt(2)))  # exact GELU, as torch's default
        q = (hidden @ w["head.2.weight"].T + w["head.2.bias"]).reshape(len(x), self.config.horizon, -1)
        gates = _sigmoid(last @ w["gate.weight"].T + w["gate.bias"]).reshape(len(x), self.config.horizon, BASELINES)
        return q + (gates * base).sum(-1, keepdims=True)

    def _lstm_layer(self, x: np.ndarray, layer: int, starts: np.ndarray | None = None) -> np.ndarray:
        w = self.w
        size = self.config.hidden
        inputs = x @ w[f"lstm.weight_ih_l{layer}"].T + w[f"lstm.bias_ih_l{layer}"] + w[f"lstm.bias_hh_l{layer}"]
        recurrent = w[f"lstm.weight_hh_l{layer}"].T
        n, t, _ = x.shape
        h, c = np.zeros((n, size)), np.zeros((n, size))
        out = np.empty((n, t, size))
        first, begun = (0, 0) if starts is None else (int(starts.min()), int(starts.max()))
        out[:, :first] = 0.0
        # 1 where a row's history has begun, 0 before: a row that has not begun stays at the zero
        # state it begins from (times 1.0 leaves the others' bits as they are).
        keep = None if starts is None else (np.arange(t)[None, :] >= starts[:, None]).astype(np.float64)
        for i in range(first, t):
            gates = inputs[:, i] + h @ recurrent
            gate_in, forget, cell, gate_out = np.split(gates, 4, axis=1)
            c = _sigmoid(forget) * c + _sigmoid(gate_in) * np.tanh(cell)
            h = _sigmoid(gate_out) * np.tanh(c)
            if i < begun:
                c *= keep[:, i, None]
                h *= keep[:, i, None]
            out[:, i] = h
        return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))


def _erf(x: np.ndarray) -> np.ndarray:
    from math import erf

    return np.vectorize(erf, otypes=[np.float64])(x)
