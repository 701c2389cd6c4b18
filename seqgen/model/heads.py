"""Output heads of continuous models: what the network's output at each step means, how it is
scored in training and how the next value is drawn from it in generation.

A head says how many numbers the network outputs per step (`size`), gives the training loss
(`loss`, on torch tensors) and draws the value to feed back (`draw`, in NumPy, with the
generator's random numbers). Today's is `PointHead`, a point forecast; a likelihood head (a
Gaussian or Student-t whose parameters the network outputs) is another class with the same three
members, registered in HEADS and named by `ModelConfig.head`. Text models need no head class:
their output is logits over the vocabulary, and the sampling policy (generate/sampling.py)
chooses from them.
"""

from __future__ import annotations

import numpy as np

from ..config import ModelConfig


class PointHead:
    """The output is the next value itself, trained by mean squared error; generation feeds it
    back as it is, or with Gaussian noise of a given size added (the `noise` sampling setting)."""

    name = "point"
    size = 1

    def loss(self, output, target):
        import torch.nn.functional as F

        return F.mse_loss(output, target)

    def draw(self, output: np.ndarray, rng: np.random.Generator, noise: float | np.ndarray = 0.0) -> np.ndarray:
        """The values to feed back, one per stream (a copy: backends reuse their output buffer)."""
        values = output.astype(np.float64)
        if np.any(noise > 0):
            values += rng.normal(0.0, noise, size=values.shape)
        return values


HEADS = {"point": PointHead}


def head_for(config: ModelConfig) -> PointHead:
    """The head a continuous model's configuration names."""
    return HEADS[config.head]()
