"""Online learning on a live stream (issue 34, point 3): `follow` with and without `learn`.

    python benchmarks/learn.py [--seeds 0 1] [--grid]

A default series model (LSTM 2x64, Gaussian head: what `seqgen train` picks for a series of a few
thousand values) is trained briefly (`plan_run` + `Trainer.from_plan`, `--train-steps`) on the
pre-shift behaviour: a sine of period 25 around 0 with amplitude 1, plus noise. Each stream then
continues that behaviour for `SHIFT` values and changes: the level jumps by 1.5 (`level`), the
period becomes 40 (`period`), the amplitude 2.5 (`amplitude`), or all three at once (`all`). The
same stream is followed by the frozen model and by the learning one (seqgen.learn defaults, or
the `--grid`'s settings); the figure is the mean absolute one-step error over the `AFTER` values
after the shift. Target: the learner's at least 30% below the frozen's on every stream, at a cost
per value under 5 ms (the whole follow, learning included, over the stream's length).

Run nothing else meanwhile if the timings matter; the errors do not depend on the load.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHIFT, AFTER = 300, 200
KINDS = ("level", "period", "amplitude", "all")
NOISE = 0.05


def wave(t: np.ndarray, level: float = 0.0, period: float = 25.0, amplitude: float = 1.0) -> np.ndarray:
    return level + amplitude * np.sin(2 * math.pi * t / period)


def stream(kind: str, seed: int) -> np.ndarray:
    """`SHIFT` values of the trained behaviour, then `AFTER` + 100 of the shifted one. The phase
    runs on across the shift, so only the behaviour named changes."""
    rng = np.random.default_rng(1000 + seed)
    t = np.arange(SHIFT + AFTER + 100)
    changed = {
        "level": dict(level=1.5),
        "period": dict(period=40.0),
        "amplitude": dict(amplitude=2.5),
        "all": dict(level=1.5, period=40.0, amplitude=2.5),
    }[kind]
    before = wave(t[:SHIFT])
    # A period change keeps the phase continuous: the shifted wave starts where the old one was.
    phase = 2 * math.pi * SHIFT / 25.0
    p = changed.get("period", 25.0)
    after_t = t[SHIFT:] - SHIFT
    after = changed.get("level", 0.0) + changed.get("amplitude", 1.0) * np.sin(phase + 2 * math.pi * after_t / p)
    return np.concatenate([before, after]) + NOISE * rng.standard_normal(len(t))


def train(folder: Path, seed: int, steps: int) -> Path:
    from seqgen import Trainer
    from seqgen.train import plan_run

    source = folder / f"pre{seed}.txt"
    rng = np.random.default_rng(seed)
    t = np.arange(3000)
    source.write_text("\n".join(f"{v:.6f}" for v in wave(t) + NOISE * rng.standard_normal(len(t))))
    out = folder / f"pre{seed}.safetensors"
    plan = plan_run(str(source), out=out, force=True, steps=steps, seed=seed, eval_every=max(steps // 4, 1))
    Trainer.from_plan(plan).run()
    return out


def follow_errors(ckpt_path: Path, values: np.ndarray, config=None) -> tuple[np.ndarray, float]:
    """One-step absolute errors (error[i] of the forecast of values[i + 1]) and seconds per value."""
    from seqgen import Generator, load_checkpoint
    from seqgen.generate import follow
    from seqgen.learn import OnlineLearner

    ckpt = load_checkpoint(ckpt_path)
    gen = Generator.from_checkpoint(ckpt, seed=0)
    learner = OnlineLearner(ckpt, gen, config) if config is not None else None
    started = time.perf_counter()
    forecasts = np.array([f[0] for f in follow(gen, values, learn=learner)])
    seconds = (time.perf_counter() - started) / len(values)
    return np.abs(forecasts[:-1] - values[1:]), seconds


def after_shift(errors: np.ndarray) -> float:
    return float(errors[SHIFT - 1 : SHIFT - 1 + AFTER].mean())


def run(seeds: list[int], steps: int, configs: dict) -> None:
    import torch

    from seqgen.learn import LearnConfig

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"pre-shift model: default series model trained {steps} steps; shift at value {SHIFT}, error over {AFTER}")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            path = train(Path(tmp), seed, steps)
            for kind in KINDS:
                values = stream(kind, seed)
                frozen, frozen_cost = follow_errors(path, values)
                line = f"seed {seed} {kind:9s} frozen {after_shift(frozen):.4f} ({frozen_cost * 1e3:.2f} ms/value)"
                for name, settings in configs.items():
                    learnt, cost = follow_errors(path, values, LearnConfig(**settings))
                    gain = 1 - after_shift(learnt) / after_shift(frozen)
                    line += f" | {name} {after_shift(learnt):.4f} ({gain:+.0%}, {cost * 1e3:.2f} ms/value)"
                print(line, flush=True)


GRID = {
    "lr1e-3,steps1": {"lr": 1e-3, "steps": 1},
    "lr3e-3,steps1": {"lr": 3e-3, "steps": 1},
    "lr1e-2,steps1": {"lr": 1e-2, "steps": 1},
    "default (lr3e-3,steps3)": {},
    "steps1,every5": {"steps": 1, "every": 5},
    "w25,steps1": {"window": 25, "steps": 1},
    "w100,steps1": {"window": 100, "steps": 1},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--grid", action="store_true", help="also try other settings around the defaults")
    args = parser.parse_args()
    run(args.seeds, args.train_steps, GRID if args.grid else {"learning": {}})


if __name__ == "__main__":
    main()
