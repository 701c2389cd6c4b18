"""Classical forecasts to measure seqgen against: exponential smoothing (AutoETS) and the Theta
method (AutoTheta) from statsforecast, where it is installed (the `bench` extra).

Each gives sample paths read off its prediction intervals on an even grid of levels, as the
pretrained forecaster's are (generate/zero_shot.py), so that they are scored exactly as seqgen's
forecasts are (metrics.score). statsforecast compiles its models the first time they run (a few
seconds, once per process).
"""

from __future__ import annotations

import warnings

import numpy as np

# Interval widths asked of statsforecast: together they give the quantiles 0.05, 0.10, ..., 0.95.
WIDTHS = tuple(range(10, 100, 10))


def available() -> bool:
    try:
        import statsforecast  # noqa: F401
    except ImportError:
        return False
    return True


def classical_paths(history: np.ndarray, horizon: int, season: int, samples: int = 200) -> dict[str, np.ndarray]:
    """{"ETS": paths, "Theta": paths}, each (samples, horizon); empty without statsforecast or
    where a model cannot fit the history (too short for its season)."""
    if not available():
        return {}
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta

    frame = pd.DataFrame({"unique_id": 0, "ds": np.arange(len(history)), "y": np.asarray(history, dtype=float)})
    out = {}
    for name, model in (("ETS", AutoETS(season_length=season)), ("Theta", AutoTheta(season_length=season))):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitted = StatsForecast(models=[model], freq=1, n_jobs=1)
                table = fitted.forecast(df=frame, h=horizon, level=list(WIDTHS))
        except Exception:  # statsforecast refuses short or constant series in several ways
            continue
        column = type(model).__name__
        levels = [0.5 - w / 200 for w in reversed(WIDTHS)] + [0.5] + [0.5 + w / 200 for w in WIDTHS]
        rows = (
            [table[f"{column}-lo-{w}"].to_numpy() for w in reversed(WIDTHS)]
            + [table[column].to_numpy()]
            + [table[f"{column}-hi-{w}"].to_numpy() for w in WIDTHS]
        )
        quantiles = np.sort(np.array(rows, dtype=float), axis=0)  # (levels, horizon)
        grid = np.clip((np.arange(samples) + 0.5) / samples, levels[0], levels[-1])
        out[name] = np.stack([np.interp(grid, levels, quantiles[:, t]) for t in range(horizon)], axis=1)
    return out
