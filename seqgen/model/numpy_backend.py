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

A stream's numbers do not depend on which other streams share its step, nor on the CPU's BLAS
kernels: a server batches the streams of many clients, and a seed must give the same text alone
or in company. A float32 matrix product cannot promise that: a BLAS sums a row's products in an
order that may depend on how many rows the call has and where the row sits. OpenBLAS's AVX-512
kernels happened not to, which hid it; its Haswell kernels, which every AVX2-only CPU gets, give
a row other bits in 40 of the 64 positions of a 64-row product. So every matrix product here is
exact, and no order of its sums can matter (see ExactWeights): the left side, a cell's output
within [-1, 1], is rounded to multiples of 2^-INPUT_BITS (integers once scaled), the weights are
integers times a power of two per column, and the product is taken in float64, where every
partial sum of integers that small is exact. What is left is the rounding of the inputs (to
2^-21) and of the weights (to 21 bits of their column's largest for 384 inputs, 24 for 64, 20 for
1,024), far below what float32 training resolves, and one rounding of each result to float32.
It holds on any BLAS, any CPU and any thread count, and a whole sequence (`forward`) gives the
bits that stepping it gives. It costs float64 arithmetic:
benchmarks/kernels.py measures it beside the float32 product it replaced.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..config import ModelConfig
from ..device import usable_cores
from .heads import head_for
from .inputs import input_for

# State: [h, c] for an LSTM, [h] otherwise; each array is (layers, batch, hidden), as in PyTorch.
NumpyState = list
# Streams are independent, so a batch of them can be stepped in slices on several cores at once
# (NumPy releases the GIL in its matrix products and elementwise loops). Each slice gets at least
# this many streams: below that, handing work to another thread costs more than it saves.
ROWS_PER_THREAD = 16
# Work buffers are kept for this many batch sizes (and slices of them).
KEPT_BUFFERS = 12
# The left side of a product, a cell's output within [-1, 1], is rounded to multiples of
# 2^-INPUT_BITS: integers of at most INPUT_BITS + 1 bits for |x| <= INPUT_LIMIT (see ExactWeights).
INPUT_BITS = 21
INPUT_LIMIT = 2.0
# Products of at most this many rows are taken a row at a time: measured on a 2-core AMD EPYC
# (OpenBLAS 0.3.31, SkylakeX and Haswell kernels alike), a whole exact product with (384 x 1536)
# weights took 168 us for two rows one by one against 285 as a matrix product, and 326 against
# 282 for four.
ROWS_ONE_BY_ONE = 3
# Every partial sum must stay below 2^SUM_BITS in magnitude to be exact in float64.
SUM_BITS = 52


class NumpyModel:
    """Inference-only twin of `SeqModel`: same weights, same outputs (to float tolerance)."""

    def __init__(
        self, weights: dict[str, np.ndarray], config: ModelConfig, dtype=np.float32, threads: int | None = None
    ):
        """`threads`: how many cores a large batch may be stepped on (default: all usable, up to 4)."""
        self.config = config
        self.dtype = dtype
        self.threads = max(1, threads if threads is not None else min(usable_cores(), 4))
        self.using = self.threads  # of them, how many a step takes now (see `use_threads`)
        self.reader, self.output = input_for(config), head_for(config)
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
            if layer == 0:
                w_ih = self.reader.fold(weights, w_ih, b_x)  # for tokens, a table: lookup, product and bias in one
            # The first layer's inputs are a token's row of that table or a few values (see model/inputs.py).
            self.w_ih.append(np.ascontiguousarray(w_ih, dtype=dtype) if layer == 0 else ExactWeights(w_ih))
            self.b_x.append(b_x.astype(dtype))
            self.w_hh.append(ExactWeights(w_hh))
            self.b_h.append(None if b_h is None else b_h.astype(dtype))
        self.w_out, self.b_out = ExactWeights(f("head.weight").T), f("head.bias").astype(dtype)
        self.width = len(self.b_out)
        self.gates = len(order)
        self._cell = {"lstm": self._lstm, "gru": self._gru, "rnn": self._rnn}[config.cell]
        self._buffers: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        self._slices: dict[tuple[int, int], list[slice]] = {}
        # One model may serve several threads (a server's batching thread and its request
        # threads): steps share work buffers, so one at a time; whole sequences use their own.
        self._stepping = threading.Lock()

    def use_threads(self, count: int) -> None:
        """Step large batches on `count` threads from now on (1 to `threads`). The outputs are the
        same bits on any count (every product is exact), so it may change between any two steps."""
        self.using = max(1, min(count, self.threads))

    def init_state(self, batch_size: int) -> NumpyState:
        c = self.config
        count = 2 if c.cell == "lstm" else 1
        return [np.zeros((c.layers, batch_size, c.hidden), dtype=self.dtype) for _ in range(count)]

    # --- whole sequences ------------------------------------------------------------------
    def forward(self, x: np.ndarray, state: NumpyState | None = None) -> tuple[np.ndarray, NumpyState]:
        """x: (batch, time) token ids or values, or (batch, time, inputs) with calendar inputs ->
        (outputs, new state); the input state is not changed. The same bits as stepping x."""
        x = np.asarray(x)
        batch, steps = x.shape[:2]
        state = [s.copy() for s in (state if state is not None else self.init_state(batch))]
        buffers = self._new_buffers(batch)
        inputs = x.reshape(batch * steps, *x.shape[2:])
        everything = self._new_buffers(batch * steps)
        for layer in range(self.config.layers):
            proj = everything["gx"]  # (batch * time, gates): all input products at once
            if layer == 0:
                self.reader.first_layer(self.w_ih[0], self.b_x[0], inputs, proj)
            else:
                self.w_ih[layer].product(inputs, proj, everything)
                proj += self.b_x[layer]
            proj = proj.reshape(batch, steps, -1)
            outputs = np.empty((batch, steps, self.config.hidden), dtype=self.dtype)
            for t in range(steps):
                outputs[:, t] = self._cell(layer, proj[:, t], state, buffers)
            inputs = outputs.reshape(batch * steps, -1)
        y = everything["out"]
        self.w_out.product(inputs, y, everything)
        y += self.b_out
        return self.output.per_step(y.reshape(batch, steps, -1), self.config.channels), state

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
        out = self._buffers_for(batch)["out"]
        slices = self._slices_for(batch)
        if len(slices) == 1:
            self._step_rows(x, state, self._buffers_for(batch), out)
        else:
            # Slices of the state are views, so each thread updates its own rows of it in place.
            jobs = [
                (x[s], [a[:, s] for a in state], self._buffers_for(s.stop - s.start, i + 1), out[s])
                for i, s in enumerate(slices)
            ]
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="seqgen-step")
            futures = [self._pool.submit(self._step_rows, *job) for job in jobs[1:]]
            self._step_rows(*jobs[0])
            for future in futures:
                future.result()
        return self.output.per_step(out, self.config.channels), state  # as `SeqModel` shapes them

    def _slices_for(self, batch: int) -> list[slice]:
        """The row slices a step of `batch` streams is cut into (one when it is too small to share)."""
        slices = self._slices.get((batch, self.using))
        if slices is None:
            parts = max(1, min(self.using, batch // ROWS_PER_THREAD))
            bounds = np.linspace(0, batch, parts + 1).astype(int)
            slices = self._slices[batch, self.using] = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
        return slices

    def _step_rows(self, x: np.ndarray, state: NumpyState, buffers: dict, out: np.ndarray) -> None:
        gx = buffers["gx"]
        row = self.reader.one_row(self.w_ih[0], x)  # one token: a view of the table's row, no copy
        if row is None:
            self.reader.first_layer(self.w_ih[0], self.b_x[0], np.asarray(x), gx)
            row = gx
        h = self._cell(0, row, state, buffers)
        for layer in range(1, self.config.layers):
            self.w_ih[layer].product(h, gx, buffers)
            gx += self.b_x[layer]
            h = self._cell(layer, gx, state, buffers)
        self.w_out.product(h, out, buffers)
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
        return {
            "gx": empty(batch, G),
            "gates": empty(batch, G),
            "tmp": empty(batch, H),
            "out": empty(batch, self.width),
            **ExactWeights.work_buffers(batch, H, max(G, self.width)),
        }

    # --- the cells: gx is the input product plus bias; state is updated in place ------------
    def _lstm(self, layer: int, gx: np.ndarray, state: NumpyState, buffers: dict) -> np.ndarray:
        H = self.config.hidden
        h, c = state[0][layer], state[1][layer]
        gates, tmp = buffers["gates"], buffers["tmp"]
        self.w_hh[layer].product(h, gates, buffers)
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
        self.w_hh[layer].product(h, gh, buffers)
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
        self.w_hh[layer].product(h, gates, buffers)
        gates += gx
        np.tanh(gates, out=h)
        return h


class ExactWeights:
    """A weight matrix (inner x columns) kept for exact products: integers of at most `bits` bits
    (float64) and a power of two per column that scales them back (see the module's docstring)."""

    def __init__(self, weights: np.ndarray):
        inner, self.columns = weights.shape
        # |inputs| <= INPUT_LIMIT gives integers of at most INPUT_BITS + 1 bits, so every partial
        # sum of `inner` products stays below 2^SUM_BITS with integer weights of `bits` bits.
        input_bits = INPUT_BITS + int(np.log2(INPUT_LIMIT))
        self.bits = SUM_BITS - input_bits - max(1, int(np.ceil(np.log2(max(inner, 2)))))
        largest = np.abs(weights).max(axis=0)
        exponents = np.frexp(largest)[1]  # largest < 2^exponent (and 0 for an all-zero column)
        scale = np.ldexp(1.0, exponents - self.bits)
        # Transposed: BLAS packs it faster for a few rows, and a row alone is a matrix-vector product.
        self.integers = np.ascontiguousarray(np.rint(weights / scale).T)
        self.scale = scale / 2.0**INPUT_BITS  # from integer sums back to the product: a power of two

    @staticmethod
    def work_buffers(rows: int, inner: int, columns: int) -> dict[str, np.ndarray]:
        """Float64 work space for products of up to `rows` rows of `inner` values."""
        return {"scaled": np.empty((rows, inner)), "sums": np.empty((rows, columns))}

    def product(self, x: np.ndarray, out: np.ndarray, work: dict[str, np.ndarray]) -> None:
        """out = x @ weights, the same bits for a row whatever other rows the call has, as long as
        every |x| <= INPUT_LIMIT (a cell's output is within 1; larger inputs still give the right
        numbers, but their last bits may then depend on the BLAS's order of sums)."""
        rows = len(x)
        scaled, sums = work["scaled"][:rows], work["sums"][:rows, : self.columns]
        np.multiply(x, 2.0**INPUT_BITS, out=scaled)
        np.rint(scaled, out=scaled)
        # Integers: exact in any order, so the fastest way for the row count may be taken. A few
        # rows are faster one by one than through a matrix product's packing (see ROWS_ONE_BY_ONE).
        if rows <= ROWS_ONE_BY_ONE:
            for row in range(rows):
                np.matmul(self.integers, scaled[row], out=sums[row])
        else:
            np.matmul(self.integers, scaled.T, out=sums.T)
        np.multiply(sums, self.scale, out=out)  # a power of two: exact, then one rounding to out's float32


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
