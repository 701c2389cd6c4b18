"""The built-in family of sine waves, and the per-stream size that scales each wave (and each prime)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import UsageError
from .dataset import Dataset, split_point


@dataclass
class SineConfig:
    """The built-in family of sine waves: random phase, period and amplitude in the given ranges."""

    waves: int = 256
    length: int = 1000
    period_min: float = 20.0
    period_max: float = 100.0
    amp_min: float = 0.5
    amp_max: float = 1.0
    noise: float = 0.0
    # Divide each wave by its own size, measured over its first SCALE_PRIME values, as generation
    # divides each stream by its prime's: the network then sees one amplitude and need not
    # remember the prime's over thousands of free-running steps (which it cannot: it drifts to an
    # amplitude of its own).
    scale_each: bool = True

    def check(self) -> None:
        if self.waves < 1 or self.length < 2:
            raise UsageError("`SineConfig.waves` must be >= 1 and `SineConfig.length` >= 2")
        if not 0 < self.period_min <= self.period_max:
            raise UsageError("sine periods must satisfy 0 < `SineConfig.period_min` <= `SineConfig.period_max`")
        if not 0 < self.amp_min <= self.amp_max:
            raise UsageError("sine amplitudes must satisfy 0 < `SineConfig.amp_min` <= `SineConfig.amp_max`")
        if self.noise < 0:
            raise UsageError("`SineConfig.noise` must be >= 0")


def sine_waves(count: int, length: int, config: SineConfig, rng: np.random.Generator) -> np.ndarray:
    """Return `count` sine waves of `length` steps as a (count, length) float32 array."""
    period = rng.uniform(config.period_min, config.period_max, size=(count, 1))
    amplitude = rng.uniform(config.amp_min, config.amp_max, size=(count, 1))
    phase = rng.uniform(0.0, 2 * math.pi, size=(count, 1))
    t = np.arange(length)[None, :]
    waves = amplitude * np.sin(2 * math.pi * t / period + phase)
    if config.noise > 0:
        waves = waves + rng.normal(0.0, config.noise, size=waves.shape)
    return waves.astype(np.float32)


# How many leading values measure a stream's size when each stream is scaled by its own (the
# length of the prime `seqgen sample` and `seqgen eval` give a sine model).
SCALE_PRIME = 100

# A shorter first feed is not measured (see Generator.feed).
MIN_SCALE_PRIME = 10


def stream_scale(values: np.ndarray) -> np.ndarray:
    """The size of each row of (streams, time) values: the root mean square of its first
    SCALE_PRIME values (a floor keeps a flat start from dividing by zero)."""
    head = np.asarray(values, dtype=np.float64)[:, :SCALE_PRIME]
    return np.maximum(np.sqrt(np.mean(head**2, axis=1)), 1e-3)


def sine_dataset(config: SineConfig, val_fraction: float, seed: int) -> Dataset:
    config.check()
    waves = sine_waves(config.waves, config.length, config, np.random.default_rng(seed))
    typical = None
    if config.scale_each:
        sizes = stream_scale(waves)
        waves, typical = (waves / sizes[:, None]).astype(np.float32), float(sizes.mean())
    split = split_point(config.length, val_fraction, "the sine waves")
    desc = (
        f"{config.waves} sine waves of {config.length} steps, period {config.period_min:g}-{config.period_max:g}, "
        f"amplitude {config.amp_min:g}-{config.amp_max:g}"
        + (f", noise {config.noise:g}" if config.noise else "")
        + (", each scaled by its own size" if config.scale_each else "")
    )
    return Dataset(
        kind="series",
        name="sine",
        description=desc,
        streams=list(waves),
        splits=[split] * config.waves,
        source={"type": "sine", **asdict(config)},
        val_fraction=val_fraction,
        typical_scale=typical,
    )
