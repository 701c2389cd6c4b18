"""What the hardware and torch's kernels allow, for the figures docs/results.md quotes beside the speed
table (a context for benchmarks/speed.py, not a test of seqgen):

    python benchmarks/kernels.py      # about 30 s on 2 cores

1. one matrix product of a 64-stream step, (64 x 256) times (256 x 1024), on one core: NumPy's
   BLAS against torch's, in microseconds and GFLOP/s;
2. a training step of the default-sized text model (2 x 384, batch 32, window 128) in float32 and
   under torch.autocast in bfloat16, for the LSTM and the GRU;
3. which kernel takes most of that step's time for each cell (torch.profiler);
4. the NumPy backend's exact product (float64 on small integers, model/numpy_backend.py) against
   a float32 product of the same shapes, (rows x 384) times (384 x 1536), and a whole step of the
   shipped text model (LSTM 2x384) for 1, 8 and 64 streams on one core.
With --exact, only 4 (about 10 s).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from seqgen import ModelConfig, SeqModel  # noqa: E402

VOCAB, BATCH, WINDOW = 65, 32, 128


def median_seconds(fn, calls: int, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def one_product() -> None:
    rng = np.random.default_rng(0)
    a, w = rng.random((64, 256), dtype=np.float32), rng.random((256, 1024), dtype=np.float32)
    out = np.empty((64, 1024), np.float32)
    ta, tw, tout = torch.from_numpy(a), torch.from_numpy(w), torch.from_numpy(out)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    flops = 2 * 64 * 256 * 1024
    for name, fn in (("numpy", lambda: np.matmul(a, w, out=out)), ("torch", lambda: torch.mm(ta, tw, out=tout))):
        seconds = median_seconds(fn, 2000)
        print(
            f"(64x256)(256x1024) product, one core, {name}: {seconds * 1e6:7.1f} us  {flops / seconds / 1e9:6.1f} GFLOP/s"
        )
    torch.set_num_threads(threads)


def train_step(model: SeqModel, optimizer: torch.optim.Optimizer, x: torch.Tensor, bf16: bool) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out, _ = model(x[:, :-1], None)
        loss = F.cross_entropy(out.reshape(-1, VOCAB).float(), x[:, 1:].reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def training_steps() -> None:
    x = torch.randint(0, VOCAB, (BATCH, WINDOW + 1), generator=torch.Generator().manual_seed(0))
    for cell in ("lstm", "gru"):
        torch.manual_seed(0)
        model = SeqModel(ModelConfig(vocab_size=VOCAB, cell=cell, layers=2, hidden=384, embed=64))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        seconds = {}
        for bf16 in (False, True):
            seconds[bf16] = median_seconds(lambda: train_step(model, optimizer, x, bf16), 2, repeats=3)
        print(
            f"{cell} 2x384 training step: float32 {seconds[False] * 1e3:5.0f} ms, bfloat16 autocast "
            f"{seconds[True] * 1e3:5.0f} ms ({seconds[False] / seconds[True]:.2f}x); "
            f"float32 {BATCH * WINDOW / seconds[False]:,.0f} characters/s"
        )
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            train_step(model, optimizer, x, False)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        top = max(events, key=lambda e: e.self_cpu_time_total)
        fused = sum(e.self_cpu_time_total for e in events if "rnn_layer" in e.key)  # oneDNN's whole-layer kernels
        print(
            f"{cell} step's largest kernel: {top.key} ({top.self_cpu_time_total / total:.0%} of the CPU time); "
            f"oneDNN RNN layer kernels, forward and backward: {fused / total:.0%}"
        )


def exact_products() -> None:
    from seqgen.checkpoint import load_checkpoint
    from seqgen.model.numpy_backend import ExactWeights, NumpyModel

    rng = np.random.default_rng(0)
    weights = rng.standard_normal((384, 1536)) * 0.05
    exact, single = ExactWeights(weights), weights.astype(np.float32)
    for rows in (1, 2, 8, 64):
        x = np.tanh(rng.standard_normal((rows, 384))).astype(np.float32)
        out = np.empty((rows, 1536), np.float32)
        work = ExactWeights.work_buffers(rows, 384, 1536)
        timed = {
            name: median_seconds(fn, 200)
            for name, fn in (
                ("exact", lambda: exact.product(x, out, work)),
                ("float32", lambda: np.matmul(x, single, out=out)),
            )
        }
        print(
            f"(rows {rows:2} x 384)(384 x 1536), one core: exact {timed['exact'] * 1e6:7.1f} us, "
            f"float32 {timed['float32'] * 1e6:7.1f} us ({timed['exact'] / timed['float32']:.2f}x)"
        )
    ckpt = load_checkpoint(Path(__file__).resolve().parents[1] / "checkpoints" / "tinyshakespeare.safetensors")
    model = NumpyModel(ckpt.weights, ckpt.model_config, threads=1)
    for streams in (1, 8, 64):
        state, x = model.init_state(streams), np.zeros(streams, dtype=np.int64)
        seconds = median_seconds(lambda: model.step(x, state), 200 if streams < 64 else 50)
        print(
            f"shipped text model ({ckpt.model_config.cell} {ckpt.model_config.layers}x{ckpt.model_config.hidden}), "
            f"{streams:2} streams, one core: {seconds * 1e3:.3f} ms a step"
        )


def main() -> None:
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}")
    if "--exact" not in sys.argv:
        one_product()
        training_steps()
    exact_products()


if __name__ == "__main__":
    main()
