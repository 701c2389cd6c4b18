"""Input sides of the network: what it reads at each step and how that becomes the first
recurrent layer's input, in torch (training) and in NumPy (generation).

The input side is the mirror of the output head (model/heads.py): a text model reads a token id
and looks it up in an embedding; a continuous model reads a step's values (one per channel) and
the places of its time in the calendar's cycles, which the first layer's own input weights
project. An input says how wide the first layer's input is (`size`), which torch layer of its
own it needs (`layer`: the embedding, stored under the name `embed` that checkpoints have always
used; none for values), how a step's inputs are held (`dtype`), and turns them into the first
layer's input product (`first_layer`, NumPy). `input_for(config)` picks the one a configuration
describes.
"""

from __future__ import annotations

import numpy as np

from ..config import ModelConfig


class TokenInput:
    """Token ids, each looked up in an embedding of `config.embed` numbers."""

    dtype = np.int64

    def __init__(self, config: ModelConfig):
        self.vocab_size, self.size = config.vocab_size, config.embed

    def layer(self):
        """The torch layer of the input's own parameters: the embedding."""
        from torch import nn

        return nn.Embedding(self.vocab_size, self.size)

    def read(self, layer, x, steps: bool = True):
        """x: (batch, time) ids, or (batch,) for one step -> what the first recurrent layer reads."""
        return layer(x)

    def noisy(self, x, size: float):
        """Training inputs with noise added: ids take none."""
        return x

    def fold(self, weights: dict, w_ih: np.ndarray, b_x: np.ndarray) -> np.ndarray:
        """The first layer's input weights (inputs x gates, float64) as the NumPy model keeps them:
        here the embedding times them plus the bias, a table with one row per token, so that a
        lookup replaces the embedding, the input product and the bias."""
        return np.asarray(weights["embed.weight"], dtype=np.float64) @ w_ih + b_x

    def first_layer(self, table: np.ndarray, bias: np.ndarray, x: np.ndarray, gx: np.ndarray) -> None:
        """gx = the first layer's input product plus bias for rows of token ids: their rows of the table."""
        np.take(table, x, axis=0, out=gx)

    def one_row(self, table: np.ndarray, x: np.ndarray) -> np.ndarray | None:
        """The input product of a single stream's step, without a copy (a view of the table's row)."""
        if len(x) != 1:
            return None
        token = int(x[0])
        return table[token : token + 1]


class ValueInput:
    """A step's values, one per channel, then two numbers per calendar cycle (data/calendar.py).

    The values are few, so the recurrent layer's own input weights are their projection: a
    separate linear layer in front would add parameters but no expressive power.
    """

    dtype = np.float32

    def __init__(self, config: ModelConfig):
        self.size = config.inputs

    def layer(self):
        return None

    def read(self, layer, x, steps: bool = True):
        """x: (batch, time) values or (batch, time, inputs), (batch,) or (batch, inputs) for one
        step (`steps` False) -> (..., inputs)."""
        return x.unsqueeze(-1) if x.dim() == (2 if steps else 1) else x

    def noisy(self, x, size: float):
        """Training inputs with Gaussian noise of `size` added. Calendar inputs get it too: clean
        beside noisy values, the network leaned on them, and forecast worse (docs/results.md,
        "Calendar inputs")."""
        import torch

        return x + size * torch.randn_like(x)

    def fold(self, weights: dict, w_ih: np.ndarray, b_x: np.ndarray) -> np.ndarray:
        return w_ih

    def first_layer(self, weights: np.ndarray, bias: np.ndarray, x: np.ndarray, gx: np.ndarray) -> None:
        """gx = x @ weights + bias for rows of values: a short sum in a fixed order, whatever the rows."""
        dtype = gx.dtype
        if x.ndim == 2:  # several inputs a step (channels, calendar places)
            np.multiply(x[:, :1].astype(dtype), weights[0], out=gx)
            for k in range(1, x.shape[1]):
                gx += x[:, k : k + 1].astype(dtype) * weights[k]
        else:
            np.multiply(np.asarray(x, dtype=dtype)[:, None], weights[0], out=gx)
        gx += bias

    def one_row(self, weights: np.ndarray, x: np.ndarray) -> None:
        return None


def input_for(config: ModelConfig) -> TokenInput | ValueInput:
    """The input side a model's configuration describes: tokens for a vocabulary, else values."""
    return TokenInput(config) if config.vocab_size > 0 else ValueInput(config)
