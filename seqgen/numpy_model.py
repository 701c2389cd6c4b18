"""The network in plain NumPy, reading PyTorch's weight layout: the fast inference backend and a
reference implementation of the LSTM, GRU and Elman cells that tests hold PyTorch to.

Weights are rearranged once at load time so that each step is a few matrix products and
elementwise operations: the input-to-hidden product of a text model's first layer is folded
into the embedding table (a lookup replaces a matrix product), and the biases are pre-summed.
"""

from __future__ import annotations

import numpy as np

from .config import ModelConfig

# State: [h, c] for an LSTM, [h] otherwise; each array is (layers, batch, hidden), as in PyTorch.
NumpyState = list


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    # tanh form: no overflow warnings for large negative inputs, one transcendental call.
    out = np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


class NumpyModel:
    """Inference-only twin of `SeqModel`: same weights, same outputs (to float tolerance)."""

    def __init__(self, weights: dict[str, np.ndarray], config: ModelConfig, dtype=np.float32):
        self.config = config
        self.dtype = dtype
        f = lambda name: np.asarray(weights[name], dtype=np.float64)  # rearrange in float64, then cast
        self.w_ih, self.b_x, self.w_hh, self.b_h = [], [], [], []
        for layer in range(config.layers):
            w_ih, w_hh = f(f"rnn.weight_ih_l{layer}").T, f(f"rnn.weight_hh_l{layer}").T
            b_ih, b_hh = f(f"rnn.bias_ih_l{layer}"), f(f"rnn.bias_hh_l{layer}")
            if config.cell == "gru":
                b_x, b_h = b_ih, b_hh  # the n gate needs b_hh inside r * (W_hn h + b_hn)
            else:
                b_x, b_h = b_ih + b_hh, np.zeros_like(b_hh)
            if layer == 0 and config.is_text:
                w_ih = f("embed.weight") @ w_ih  # (vocab, gates): embedding lookup and input product in one
            self.w_ih.append(w_ih.astype(dtype))
            self.b_x.append(b_x.astype(dtype))
            self.w_hh.append(np.ascontiguousarray(w_hh, dtype=dtype))
            self.b_h.append(b_h.astype(dtype))
        self.w_out = np.ascontiguousarray(f("head.weight").T, dtype=dtype)
        self.b_out = f("head.bias").astype(dtype)
        self._cell = {"lstm": self._lstm, "gru": self._gru, "rnn": self._rnn}[config.cell]

    def init_state(self, batch_size: int) -> NumpyState:
        c = self.config
        count = 2 if c.cell == "lstm" else 1
        return [np.zeros((c.layers, batch_size, c.hidden), dtype=self.dtype) for _ in range(count)]

    def forward(self, x: np.ndarray, state: NumpyState | None = None) -> tuple[np.ndarray, NumpyState]:
        """x: (batch, time) token ids or values -> (outputs, new state); the input state is not changed."""
        x = np.asarray(x)
        batch, steps = x.shape
        state = [s.copy() for s in (state if state is not None else self.init_state(batch))]
        inputs = None
        for layer in range(self.config.layers):
            proj = self._input_projection(layer, x if layer == 0 else inputs)  # (batch, time, gates)
            inputs = np.empty((batch, steps, self.config.hidden), dtype=self.dtype)
            for t in range(steps):
                inputs[:, t] = self._cell(layer, proj[:, t], state)
        y = inputs @ self.w_out + self.b_out
        return (y if self.config.is_text else y[..., 0]), state

    def _input_projection(self, layer: int, inputs: np.ndarray) -> np.ndarray:
        if layer > 0:
            return inputs @ self.w_ih[layer] + self.b_x[layer]
        if self.config.is_text:
            return self.w_ih[0][inputs] + self.b_x[0]
        return inputs[..., None].astype(self.dtype) * self.w_ih[0][0] + self.b_x[0]

    def _lstm(self, layer: int, gx: np.ndarray, state: NumpyState) -> np.ndarray:
        h, c = state[0][layer], state[1][layer]
        gates = gx + h @ self.w_hh[layer]
        n = self.config.hidden
        i, f, g, o = sigmoid(gates[:, :n]), sigmoid(gates[:, n : 2 * n]), np.tanh(gates[:, 2 * n : 3 * n]), sigmoid(gates[:, 3 * n :])
        c[...] = f * c + i * g
        h[...] = o * np.tanh(c)
        return h

    def _gru(self, layer: int, gx: np.ndarray, state: NumpyState) -> np.ndarray:
        h = state[0][layer]
        gh = h @ self.w_hh[layer] + self.b_h[layer]
        n = self.config.hidden
        r = sigmoid(gx[:, :n] + gh[:, :n])
        z = sigmoid(gx[:, n : 2 * n] + gh[:, n : 2 * n])
        candidate = np.tanh(gx[:, 2 * n :] + r * gh[:, 2 * n :])
        h[...] = (1 - z) * candidate + z * h
        return h

    def _rnn(self, layer: int, gx: np.ndarray, state: NumpyState) -> np.ndarray:
        h = state[0][layer]
        h[...] = np.tanh(gx + h @ self.w_hh[layer])
        return h
