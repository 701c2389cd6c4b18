"""The network in plain NumPy, reading PyTorch's weight layout: the fast inference backend and a
reference implementation of the LSTM, GRU and Elman cells that tests hold PyTorch to.

Weights are rearranged once at load time so that a step is a few matrix products and in-place
elementwise operations on preallocated buffers:
- a text model's embedding and first input product are folded into one table (a row lookup
  replaces a matrix product), biases are pre-summed where the cell allows;
- sigmoid(z) = (tanh(z/2) + 1) / 2, so the sigmoid gates' weights are pre-halved and all gates go
  through one tanh call; LSTM gates are reordered (i, f, o, g) to make the sigmoid gates one slice.
A step of many streams is cut into slices of rows that threads advance side by side (see
ROWS_PER_THREAD); a single stream runs on the calling thread alone.

A stream's numbers do not depend on which other streams share its step (a server batches the
streams of many clients, and a seed must give the same text alone or in company). OpenBLAS
gives a row of a matrix product the same bits whatever the number of rows, with two exceptions
measured here (tests/test_numpy_backend.py holds them): a product of one row goes another way
(a matrix-vector kernel that sums in another order), and so does a product whose column count
is not a multiple of 16. So a lone stream is stepped as a pair (about 15% slower than one row
on the shipped text model) and the output layer is padded with zero columns to a multiple of 16.

Products of up to 16 rows are cut into blocks of columns (multiples of 16) small enough for
OpenBLAS's small-matrix kernels (rows x columns x inner size at most SMALL_PRODUCT). Above that it packs
the whole weight matrix on every call, which for a few rows costs far more than the arithmetic:
measured on a Xeon with OpenBLAS 0.3.31, one stream of an LSTM 2x384 (recurrent weights of 384 x
1,536) stepped in 1.5 ms whole and 0.3 ms in blocks, and 8 streams of a GRU 2x384 took 177 us per
product whole against 68 in blocks. The blocks give every row the same bits as the whole product
(tests/test_generate.py holds it); where a CPU's OpenBLAS has no such kernels they cost a few
calls more.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..config import ModelConfig
from ..device import usable_cores

# State: [h, c] for an LSTM, [h] otherwise; each array is (layers, batch, hidden), as in PyTorch.
NumpyState = list
# Streams are independent, so a batch of them can be stepped in slices on several cores at once
# (NumPy releases the GIL in its matrix products and elementwise loops). Each slice gets at least
# this many streams: below that, handing work to another thread costs more than it saves.
ROWS_PER_THREAD = 16
# Work buffers are kept for this many batch sizes (and slices of them).
KEPT_BUFFERS = 12
# Output columns are padded to a multiple of this (see the module's docstring).
COLUMN_BLOCK = 16
# OpenBLAS multiplies matrices of at most this many multiply-adds (rows x columns x inner size)
# with its small-matrix kernels, which do not pack the weights first (see the module's docstring).
SMALL_PRODUCT = 1_000_000
# Products of more rows than this stay whole: for them the packing is paid for, and narrow blocks
# were slower (64 rows of an LSTM 2x256: 235 us per product whole, 397 in blocks of 48 columns).
SPLIT_ROWS = 16


class NumpyModel:
    """Inference-only twin of `SeqModel`: same weights, same outputs (to float tolerance)."""

    def __init__(self, weights: dict[str, np.ndarray], config: ModelConfig, dtype=np.float32,
                 threads: int | None = None, invariant: bool = True):
        """`threads`: how many cores a large batch may be stepped on (default: all usable, up to 4);
        `invariant`: step a lone stream as a pair, so that its numbers are those it would get in any
        batch (see the module's docstring; False takes the faster one-row product)."""
        self.config = config
        self.invariant = invariant
        self.dtype = dtype
        self.threads = max(1, threads if threads is not None else min(usable_cores(), 4))
        self._pool: ThreadPoolExecutor | None = None
        H = config.hidden
        f = lambda name: np.asarray(weights[name], dtype=np.float64)  # rearrange in float64, then cast
        order, halve = _gate_layout(config.cell, H)
        self.w_ih, self.b_x, self.w_hh, self.b_h = [], [], [], []
        for layer in range(config.layers):
            w_ih = f(f"rnn.weight_ih_l{layer}")[order].T * halve
            w_hh = f(f"rnn.weight_hh_l{layer}")[order].T * halve
            b_ih, b_hh = f(f"rnn.bias_ih_l{layer}")[order] * halve, f(f"rnn.bias_hh_l{layer}")[order] * halve
            if config.cell == "gru":
                b_x, b_h = b_ih, b_hh  # the n gate needs b_hn inside r * (W_hn h + b_hn)
            else:
                b_x, b_h = b_ih + b_hh, None
            if layer == 0 and config.is_text:
                w_ih = f("embed.weight") @ w_ih + b_x  # (vocab, gates): lookup, input product and bias in one
            self.w_ih.append(np.ascontiguousarray(w_ih, dtype=dtype))
            self.b_x.append(b_x.astype(dtype))
            self.w_hh.append(np.ascontiguousarray(w_hh, dtype=dtype))
            self.b_h.append(None if b_h is None else b_h.astype(dtype))
        w_out, b_out = f("head.weight").T, f("head.bias")
        self.width = len(b_out)
        padded = -(-self.width // COLUMN_BLOCK) * COLUMN_BLOCK
        self.w_out = np.zeros((w_out.shape[0], padded), dtype=dtype)
        self.w_out[:, : self.width] = w_out
        self.b_out = np.zeros(padded, dtype=dtype)
        self.b_out[: self.width] = b_out
        self.gates = len(order)
        self._cell = {"lstm": self._lstm, "gru": self._gru, "rnn": self._rnn}[config.cell]
        self._buffers: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        self._slices: dict[int, list[slice]] = {}
        # One model may serve several threads (a server's batching thread and its request
        # threads): steps share work buffers, so one at a time; whole sequences use their own.
        self._stepping = threading.Lock()

    def init_state(self, batch_size: int) -> NumpyState:
        c = self.config
        count = 2 if c.cell == "lstm" else 1
        return [np.zeros((c.layers, batch_size, c.hidden), dtype=self.dtype) for _ in range(count)]

    # --- whole sequences ------------------------------------------------------------------
    def forward(self, x: np.ndarray, state: NumpyState | None = None) -> tuple[np.ndarray, NumpyState]:
        """x: (batch, time) token ids or values, or (batch, time, inputs) with calendar inputs ->
        (outputs, new state); the input state is not changed."""
        x = np.asarray(x)
        batch, steps = x.shape[:2]
        state = [s.copy() for s in (state if state is not None else self.init_state(batch))]
        buffers = self._new_buffers(batch)
        inputs = x
        for layer in range(self.config.layers):
            proj = self._projection(layer, inputs)  # (batch, time, gates): all input products at once
            inputs = np.empty((batch, steps, self.config.hidden), dtype=self.dtype)
            for t in range(steps):
                inputs[:, t] = self._cell(layer, proj[:, t], state, buffers)
        y = (inputs @ self.w_out + self.b_out)[..., : self.width]
        return self._shaped(y), state

    def _projection(self, layer: int, inputs: np.ndarray) -> np.ndarray:
        if layer > 0:
            return inputs @ self.w_ih[layer] + self.b_x[layer]
        if self.config.is_text:
            return self.w_ih[0][inputs]
        if inputs.ndim == 3:  # several inputs a step: channels, calendar places
            return inputs.astype(self.dtype) @ self.w_ih[0] + self.b_x[0]
        return inputs[..., None].astype(self.dtype) * self.w_ih[0][0] + self.b_x[0]

    # --- one step, in place -----------------------------------------------------------------
    def step(self, x: np.ndarray, state: NumpyState) -> tuple[np.ndarray, NumpyState]:
        """Advance `state` in place by one input per stream (x: (batch,), or (batch,
        inputs) with calendar inputs); returns (outputs, state).

        The outputs are a buffer that the next call reuses: copy them to keep them.
        """
        with self._stepping:
            return self._step(x, state)

    def _step(self, x: np.ndarray, state: NumpyState) -> tuple[np.ndarray, NumpyState]:
        batch = len(x)
        if batch == 1 and self.invariant:
            return self._step_alone(x, state)
        out = self._buffers_for(batch)["out"]
        slices = self._slices_for(batch)
        if len(slices) == 1:
            self._step_rows(x, state, self._buffers_for(batch), out)
        else:
            # Slices of the state are views, so each thread updates its own rows of it in place.
            jobs = [(x[s], [a[:, s] for a in state], self._buffers_for(s.stop - s.start, i + 1), out[s])
                    for i, s in enumerate(slices)]
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="seqgen-step")
            futures = [self._pool.submit(self._step_rows, *job) for job in jobs[1:]]
            self._step_rows(*jobs[0])
            for future in futures:
                future.result()
        return self._outputs(out), state

    def _step_alone(self, x: np.ndarray, state: NumpyState) -> tuple[np.ndarray, NumpyState]:
        """One stream, stepped as two copies of itself (see the module's docstring)."""
        buffers = self._buffers_for(2)
        pair = buffers.setdefault("pair", [np.empty((self.config.layers, 2, self.config.hidden), dtype=self.dtype)
                                           for _ in state])
        for own, twin in zip(state, pair):
            twin[:] = own
        self._step_rows(np.repeat(np.asarray(x), 2, axis=0), pair, buffers, buffers["out"])
        for own, twin in zip(state, pair):
            own[:] = twin[:, :1]
        return self._outputs(buffers["out"][:1]), state

    def _outputs(self, out: np.ndarray) -> np.ndarray:
        return self._shaped(out[:, : self.width])

    def _shaped(self, y: np.ndarray) -> np.ndarray:
        """Outputs as `SeqModel` gives them: logits keep their last axis; a continuous model's are
        (..., head size), or (..., channels, head size) for several channels, with a head size
        of 1 squeezed out."""
        if self.config.is_text:
            return y
        if self.config.channels > 1:
            y = y.reshape(*y.shape[:-1], self.config.channels, -1)
        return y[..., 0] if y.shape[-1] == 1 else y

    def _slices_for(self, batch: int) -> list[slice]:
        """The row slices a step of `batch` streams is cut into (one when it is too small to share)."""
        slices = self._slices.get(batch)
        if slices is None:
            parts = max(1, min(self.threads, batch // ROWS_PER_THREAD))
            bounds = np.linspace(0, batch, parts + 1).astype(int)
            slices = self._slices[batch] = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
        return slices

    def _step_rows(self, x: np.ndarray, state: NumpyState, buffers: dict, out: np.ndarray) -> None:
        gx = buffers["gx"]
        if self.config.is_text and len(x) == 1:
            token = int(x[0])
            h = self._cell(0, self.w_ih[0][token : token + 1], state, buffers)  # a view of the table: no copy
        elif self.config.is_text:
            np.take(self.w_ih[0], x, axis=0, out=gx)
            h = self._cell(0, gx, state, buffers)
        elif np.ndim(x) == 2:  # several inputs a step: channels, calendar places
            _product(np.asarray(x, dtype=self.dtype), self.w_ih[0], gx)
            gx += self.b_x[0]
            h = self._cell(0, gx, state, buffers)
        else:
            np.multiply(np.asarray(x, dtype=self.dtype)[:, None], self.w_ih[0][0], out=gx)
            gx += self.b_x[0]
            h = self._cell(0, gx, state, buffers)
        for layer in range(1, self.config.layers):
            _product(h, self.w_ih[layer], gx)
            gx += self.b_x[layer]
            h = self._cell(layer, gx, state, buffers)
        _product(h, self.w_out, out)
        out += self.b_out

    def _buffers_for(self, batch: int, part: int = 0) -> dict[str, np.ndarray]:
        """Work buffers for `batch` rows; each slice of a split batch has its own (`part` 1, 2, ...)."""
        buffers = self._buffers.get((batch, part))
        if buffers is None:
            # A server's batch changes size as clients come and go: keep the buffers of the last
            # few sizes only, not of every size ever seen.
            while len(self._buffers) >= KEPT_BUFFERS:
                self._buffers.pop(next(iter(self._buffers)))
            buffers = self._buffers[(batch, part)] = self._new_buffers(batch)
        return buffers

    def _new_buffers(self, batch: int) -> dict[str, np.ndarray]:
        H, G = self.config.hidden, self.gates
        empty = lambda *shape: np.empty(shape, dtype=self.dtype)
        return {"gx": empty(batch, G), "gates": empty(batch, G), "tmp": empty(batch, H),
                "out": empty(batch, len(self.b_out))}

    # --- the cells: gx is the input product plus bias; state is updated in place ------------
    def _lstm(self, layer: int, gx: np.ndarray, state: NumpyState, buffers: dict) -> np.ndarray:
        H = self.config.hidden
        h, c = state[0][layer], state[1][layer]
        gates, tmp = buffers["gates"], buffers["tmp"]
        _product(h, self.w_hh[layer], gates)
        gates += gx
        np.tanh(gates, out=gates)
        sig = gates[:, : 3 * H]  # i, f, o: tanh of the halved input, mapped to a sigmoid
        sig *= 0.5
        sig += 0.5
        c *= gates[:, H : 2 * H]
        np.multiply(gates[:, :H], gates[:, 3 * H :], out=tmp)
        c += tmp
        np.tanh(c, out=tmp)
        np.multiply(gates[:, 2 * H : 3 * H], tmp, out=h)
        return h

    def _gru(self, layer: int, gx: np.ndarray, state: NumpyState, buffers: dict) -> np.ndarray:
        H = self.config.hidden
        h = state[0][layer]
        gh, tmp = buffers["gates"], buffers["tmp"]
        _product(h, self.w_hh[layer], gh)
        gh += self.b_h[layer]
        rz = gh[:, : 2 * H]
        rz += gx[:, : 2 * H]
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5
        candidate = gh[:, 2 * H :]
        candidate *= gh[:, :H]  # r * (W_hn h + b_hn)
        candidate += gx[:, 2 * H :]
        np.tanh(candidate, out=candidate)
        np.subtract(h, candidate, out=tmp)  # h' = n + z * (h - n)
        tmp *= gh[:, H : 2 * H]
        np.add(candidate, tmp, out=h)
        return h

    def _rnn(self, layer: int, gx: np.ndarray, state: NumpyState, buffers: dict) -> np.ndarray:
        h = state[0][layer]
        gates = buffers["gates"]
        _product(h, self.w_hh[layer], gates)
        gates += gx
        np.tanh(gates, out=h)
        return h


def _product(x: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """out = x @ w, in blocks of columns that OpenBLAS multiplies with its small-matrix kernels."""
    rows, inner = x.shape
    columns = w.shape[1]
    width = max(COLUMN_BLOCK, SMALL_PRODUCT // max(1, rows * inner) // COLUMN_BLOCK * COLUMN_BLOCK)
    if width >= columns or rows > SPLIT_ROWS:
        np.matmul(x, w, out=out)
        return
    for start in range(0, columns, width):
        np.matmul(x, w[:, start : start + width], out=out[:, start : start + width])


def _gate_layout(cell: str, hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """Row order of PyTorch's stacked gate weights for our layout, and the factor for each row."""
    H = hidden
    block = lambda k: np.arange(k * H, (k + 1) * H)
    if cell == "lstm":  # PyTorch: i, f, g, o -> ours: i, f, o, g
        order = np.concatenate([block(0), block(1), block(3), block(2)])
        halve = np.concatenate([np.full(3 * H, 0.5), np.ones(H)])
    elif cell == "gru":  # r, z, n: r and z are sigmoids
        order = np.arange(3 * H)
        halve = np.concatenate([np.full(2 * H, 0.5), np.ones(H)])
    else:
        order, halve = np.arange(H), np.ones(H)
    return order, halve
