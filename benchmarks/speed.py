"""Speed benchmark: every figure is a ratio against a baseline measured in the same run.

    python benchmarks/speed.py [--quick]     # about 1 minute on 2 cores; --quick about 10 s

Measures, on one 2x256 character LSTM (vocabulary 65, embedding 64) and the default sine model:
1. one-stream sampling: seqgen's NumPy Generator vs a plain torch.nn.LSTM Python loop, and vs the
   batch-1 bound (the step's matrix products alone, timed with NumPy's BLAS);
2. the same with 64 streams in one batched state;
3. characters/s for the first 1,000 and for characters 9,000-10,000 (no growth with k), and the
   naive way (re-running the network over the whole history for each new character); one stream
   of a bpe model (1,024 tokens, same size) in characters/s beside the char model's;
4. training throughput of seqgen's Trainer vs a plain PyTorch loop (batch 64, window 128); and of
   the default full-size text configuration in the precision `auto` picks on this machine
   (bfloat16 where the CPU has its units) against float32, and against a plain loop in it;
5. sine generation, one stream, vs a plain torch.nn.LSTM loop.
Each timing is the median of several repeats; a share of the bound is the median of per-repeat
ratios, the two timed in turns. Exits non-zero only if something crashes.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as `seqgen sample` runs (see seqgen/cli.py)

import platform
import statistics
from concurrent.futures import ThreadPoolExecutor
import sys
import tempfile
import time
from dataclasses import asdict
from typing import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from seqgen import Generator, ModelConfig, SeqModel, TrainConfig, Trainer, save_checkpoint  # noqa: E402
from seqgen.config import defaults_for  # noqa: E402
from seqgen.data import text_dataset  # noqa: E402
from seqgen.checkpoint import load_checkpoint  # noqa: E402
from seqgen.device import usable_cores  # noqa: E402
from seqgen.model.numpy_backend import ROWS_PER_THREAD, NumpyModel  # noqa: E402
from seqgen.train.precision import autocast, cpu_has_bf16, resolve_precision  # noqa: E402

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
VOCAB = 65


def best_torch_rate(fn, items: int, repeats: int) -> float:
    """The torch baseline at its better thread setting (its default, or one thread)."""
    default = torch.get_num_threads()
    rates = []
    for threads in sorted({1, default}):
        torch.set_num_threads(threads)
        rates.append(median_rate(fn, items, repeats))
    torch.set_num_threads(default)
    return max(rates)


def median_rate(fn, items: int, repeats: int) -> float:
    """Items per second, median over repeats (one untimed warm-up call first)."""
    fn()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rates.append(items / (time.perf_counter() - start))
    return statistics.median(rates)


def paired_rates(fns: list, items: int, repeats: int) -> tuple[list[float], list[float]]:
    """Items per second of each function, timed in turns within every repeat so that a change in
    the machine's load hits all of them alike. Returns (median rates, median ratios to the first)."""
    for fn in fns:
        fn()
    rates: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, rates):
            start = time.perf_counter()
            fn()
            out.append(items / (time.perf_counter() - start))
    ratios = [statistics.median(r / b for r, b in zip(rs, rates[0])) for rs in rates]
    return [statistics.median(rs) for rs in rates], ratios


def share_of(bound_and_ours: tuple[list[float], list[float]]) -> float:
    """seqgen's share of a bound, from `paired_rates([bound, seqgen, ...])`."""
    return bound_and_ours[1][1]


def char_model(seed: int = 0) -> SeqModel:
    torch.manual_seed(seed)
    return SeqModel(ModelConfig(cell="lstm", layers=2, hidden=256, embed=64, vocab_size=VOCAB)).eval()


def checkpoint_of(model: SeqModel, folder: str, kind: str) -> str:
    path = os.path.join(folder, f"{kind}.safetensors")
    data = (
        {"kind": "text", "vocab": [chr(32 + i) for i in range(VOCAB)]}
        if kind == "text"
        else {"kind": "series", "mean": 0.0, "std": 1.0, "source": {"type": "sine"}}
    )
    save_checkpoint(
        path, {"model": asdict(model.config), "data": data}, {k: v.numpy() for k, v in model.state_dict().items()}
    )
    return path


def torch_loop(model: SeqModel, batch: int, steps: int):
    """The plain way: nn.LSTM called on one step at a time, sampling with torch.multinomial."""

    def run():
        with torch.no_grad():
            x, state = torch.zeros(batch, 1, dtype=torch.long), None
            for _ in range(steps):
                logits, state = model(x, state)
                x = torch.multinomial(F.softmax(logits[:, -1], dim=-1), 1)

    return run


def seqgen_loop(ckpt: str, batch: int, steps: int, threads: int | None = None):
    loaded = load_checkpoint(ckpt)
    gen = Generator(NumpyModel(loaded.weights, loaded.model_config, threads=threads), vocab=loaded.vocab, seed=0)

    def run():
        gen.reset(batch)
        gen.feed(" ")
        for _ in gen.generate(steps):
            pass

    return run


def matmul_bound(
    batch: int,
    steps: int,
    threads: int = 1,
    hidden: int = 256,
    embed: int = 64,
    lookup: bool = False,
    gates: int = 4,
    vocab: int = VOCAB,
):
    """Only the matrix products of one step (input and recurrent products of both layers, head).
    With `lookup`, without the first layer's input product, which seqgen replaces by a row lookup
    (the embedding folded into the input weights): the stricter bound.

    With `threads` > 1 the rows are split into that many slices, each stepped on its own thread
    for all the steps without waiting for the others: the bound for the cores seqgen uses.
    `gates` is 4 for an LSTM, 3 for a GRU, 1 for a plain RNN.
    """
    rng = np.random.default_rng(0)
    G = gates * hidden
    shapes = [(embed, G), (hidden, G), (hidden, G), (hidden, G), (hidden, vocab)][1 if lookup else 0 :]
    weights = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    rows = np.linspace(0, batch, threads + 1).astype(int)

    def products(count: int):
        inputs = [rng.standard_normal((count, s[0])).astype(np.float32) for s in shapes]
        outs = [np.empty((count, s[1]), np.float32) for s in shapes]

        def run():
            for _ in range(steps):
                for x, w, o in zip(inputs, weights, outs):
                    np.matmul(x, w, out=o)

        return run

    slices = [products(hi - lo) for lo, hi in zip(rows[:-1], rows[1:])]
    if threads == 1:
        return slices[0]
    pool = ThreadPoolExecutor(threads - 1)

    def run():
        futures = [pool.submit(fn) for fn in slices[1:]]
        slices[0]()
        for f in futures:
            f.result()

    return run


def naive_refeed(model: SeqModel, length: int):
    """Re-run the network over the whole history for every new character."""

    def run():
        with torch.no_grad():
            history = torch.zeros(1, 1, dtype=torch.long)
            for _ in range(length):
                logits, _ = model(history)
                nxt = torch.multinomial(F.softmax(logits[:, -1], dim=-1), 1)
                history = torch.cat([history, nxt], dim=1)

    return run


def step_cost_over_time(ckpt: str, total: int, repeats: int) -> tuple[float, float]:
    """Median chars/s of the first 1,000 and of the last 1,000 steps over `repeats` runs."""
    firsts, lasts = [], []
    for _ in range(repeats):
        gen = Generator.from_checkpoint(ckpt, seed=0)
        gen.feed(" ")
        marks = [time.perf_counter()]
        for k, _ in enumerate(gen.generate(total), start=1):
            if k % 1000 == 0:
                marks.append(time.perf_counter())
        firsts.append(1000 / (marks[1] - marks[0]))
        lasts.append(1000 / (marks[-1] - marks[-2]))
    return statistics.median(firsts), statistics.median(lasts)


def bpe_rows(folder: str, total: int, repeats: int) -> list[tuple]:
    """One stream of a char model and of a bpe model (1,024 tokens) of the same size, in characters
    per second: tokens/s times the characters per token of tinyshakespeare's validation part under
    a BPE learnt on its training part. Weights are random: speed does not depend on them."""
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        return [("bpe vs char: skipped (pip install 'seqgen[bpe]')", float("nan"), "")]
    if not SHAKESPEARE.exists():
        return [("bpe vs char: skipped (no tinyshakespeare)", float("nan"), "")]
    from seqgen.data.tokenizers import learn_tokenizer

    text = SHAKESPEARE.read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    tokenizer = learn_tokenizer("bpe", text[:cut], text[:cut], 1024)
    per_token = (len(text) - cut) / len(tokenizer.encode(text[cut:]))
    torch.manual_seed(0)
    model = SeqModel(ModelConfig(cell="lstm", layers=2, hidden=256, embed=64, vocab_size=len(tokenizer))).eval()
    path = os.path.join(folder, "bpe.safetensors")
    save_checkpoint(
        path,
        {"model": asdict(model.config), "data": {"kind": "text", "tokenizer": tokenizer.to_dict()}},
        {k: v.numpy() for k, v in model.state_dict().items()},
    )
    char_first, _ = step_cost_over_time(checkpoint_of(char_model(), folder, "text"), 2000, repeats)
    first, late = step_cost_over_time(path, total, repeats)
    return [
        ("1 stream, char model (chars/s)", char_first, ""),
        (f"1 stream, bpe 1024 (tokens/s, {per_token:.2f} chars each)", first, ""),
        ("1 stream, bpe 1024 (chars/s)", first * per_token, ""),
        ("  bpe / char, characters per second", first * per_token / char_first, ""),
        (f"  bpe tokens {total - 999:,}-{total:,} / 1-1,000", late / first, within(0.9, 1.1)),
    ]


def training_text(chars: int) -> np.ndarray:
    if SHAKESPEARE.exists():
        return SHAKESPEARE.read_text(encoding="utf-8")[:chars]
    rng = np.random.default_rng(0)
    return "".join(chr(97 + c) for c in rng.integers(0, 26, chars))


BENCH_MODEL = dict(cell="lstm", layers=2, hidden=256, embed=64)


def plain_training(
    text: str, steps: int, model: dict = BENCH_MODEL, batch: int = 64, window: int = 128, precision: str = "fp32"
):
    """A plain PyTorch TBPTT loop (Adam, clipping; under torch.autocast in bfloat16 when asked).
    Returns a function that trains and gives the seconds of steps 2..steps (the first step
    pays one-time costs in either loop)."""
    data = text_dataset(text, "bench", "bench", 0.1)
    ids = torch.as_tensor(data.train_streams[0], dtype=torch.long)
    B, T = batch, window
    length = len(ids) // B
    tracks = ids[: B * length].view(B, length)

    def run() -> float:
        torch.manual_seed(0)
        net = SeqModel(ModelConfig(vocab_size=len(data.vocab), **model))
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        state = None
        for i in range(steps):
            if i == 1:
                start = time.perf_counter()
            chunk = tracks[:, i * T : i * T + T + 1]
            with autocast(torch.device("cpu"), precision):
                out, state = net(chunk[:, :-1], state)
                loss = F.cross_entropy(out.reshape(-1, out.shape[-1]).float(), chunk[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            state = tuple(s.detach().float() for s in state)
            loss.item()
        return time.perf_counter() - start

    return run


def seqgen_training(
    text: str,
    steps: int,
    folder: str,
    model: dict = BENCH_MODEL,
    batch: int = 64,
    window: int = 128,
    precision: str = "fp32",
):
    """seqgen's Trainer on the same model, batch and window, timed over the same steps 2..steps
    (from its own progress events, so setup and the closing validation are not counted)."""
    data = text_dataset(text, "bench", "bench", 0.1)

    def run() -> float:
        stamps = []
        config = TrainConfig(
            batch_size=batch, window=window, steps=steps, eval_every=10**9, warmup=0, precision=precision
        )
        on_event = lambda event: stamps.append(time.perf_counter()) if event["type"] == "step" else None
        trainer = Trainer(data, ModelConfig(**model), config, os.path.join(folder, "t.safetensors"))
        trainer.run(on_event=on_event)
        return stamps[-1] - stamps[0]

    return run


def paired_training(fns: list, chars: int, repeats: int) -> list[list[float]]:
    """chars/s of each training function, run in turns so that a change in the machine's load hits
    all alike; one training step is long and noisy here, so more turns than elsewhere."""
    runs = [[] for _ in fns]
    for _ in range(repeats + 2):
        for fn, sink in zip(fns, runs):
            sink.append(chars / fn())
    return runs


def default_text_rows(text: str, folder: str, steps: int, repeats: int) -> list[tuple]:
    """Training throughput of the default full-size text configuration in the precision `auto`
    picks here, against float32, and seqgen's Trainer against a plain loop in that precision."""
    bf16 = cpu_has_bf16()
    config, train = defaults_for("text", bf16=bf16)
    chosen = resolve_precision("auto", torch.device("cpu"), config.cell, config.hidden, True)
    model = {k: getattr(config, k) for k in ("cell", "layers", "hidden", "embed", "dropout")}
    shape = dict(model=model, batch=train.batch_size, window=train.window)
    chars = train.batch_size * train.window * (steps - 1)
    ours, ours32, plain = paired_training(
        [
            seqgen_training(text, steps, folder, precision=chosen, **shape),
            seqgen_training(text, steps, folder, precision="fp32", **shape),
            plain_training(text, steps, precision=chosen, **shape),
        ],
        chars,
        repeats,
    )
    name = f"{config.cell.upper()} {config.layers}x{config.hidden}"
    return [
        (f"default text ({name}): seqgen, {chosen} (chars/s)", statistics.median(ours), ""),
        (f"default text ({name}): seqgen, fp32 (chars/s)", statistics.median(ours32), ""),
        (f"  {chosen} / fp32", statistics.median(a / b for a, b in zip(ours, ours32)), ""),
        (f"default text: plain loop, {chosen} (chars/s)", statistics.median(plain), ""),
        ("  seqgen / plain (median of pairs)", statistics.median(a / b for a, b in zip(ours, plain)), at_least(1.0)),
    ]


def sine_loops(folder: str, steps: int):
    torch.manual_seed(0)
    model = SeqModel(defaults_for("series")[0]).eval()
    ckpt = checkpoint_of(model, folder, "sine")

    def plain():
        with torch.no_grad():
            x, state = torch.zeros(1, 1), None
            for _ in range(steps):
                y, state = model(x, state)
                x = y[..., 0]  # a likelihood head gives (mean, spread): the mean is fed back

    gen = Generator.from_checkpoint(ckpt)

    def ours():
        gen.reset(1)
        gen.feed([0.0])
        for _ in gen.generate(steps):
            pass

    return plain, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats (a smoke run)")
    args = parser.parse_args()
    n1, n64, reps, train_steps = (300, 50, 1, 3) if args.quick else (2000, 300, 5, 12)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        model = char_model()
        ckpt = checkpoint_of(model, folder, "text")

        torch1 = best_torch_rate(torch_loop(model, 1, n1), n1, reps)
        (bound1, ours1), (_, share1) = paired_rates([matmul_bound(1, n1), seqgen_loop(ckpt, 1, n1)], n1, reps)
        strict1 = share_of(paired_rates([matmul_bound(1, n1, lookup=True), seqgen_loop(ckpt, 1, n1)], n1, reps))
        rows += [
            ("1 stream: torch.nn.LSTM loop (steps/s)", torch1, ""),
            ("1 stream: seqgen, numpy (steps/s)", ours1, ""),
            ("1 stream: matmul bound (steps/s)", bound1, ""),
            ("  seqgen / torch loop", ours1 / torch1, at_least(3)),
            ("  seqgen / bound", share1, at_least(0.5, "")),
            ("  seqgen / bound without the looked-up product", strict1, ""),
        ]

        torch64 = best_torch_rate(torch_loop(model, 64, n64), 64 * n64, reps)
        # seqgen steps 64 streams in slices on all usable cores (up to 4), so its bound uses as many.
        cores = min(usable_cores(), 4, 64 // ROWS_PER_THREAD)
        (bound64, ours64, single64), (_, share64, _) = paired_rates(
            [matmul_bound(64, n64, cores), seqgen_loop(ckpt, 64, n64), seqgen_loop(ckpt, 64, n64, threads=1)],
            64 * n64,
            reps,
        )
        strict64 = share_of(
            paired_rates([matmul_bound(64, n64, cores, lookup=True), seqgen_loop(ckpt, 64, n64)], 64 * n64, reps)
        )
        rows += [
            ("64 streams: torch.nn.LSTM loop (chars/s)", torch64, ""),
            ("64 streams: seqgen, numpy (chars/s)", ours64, ""),
            (f"64 streams: matmul bound, {cores} cores (chars/s)", bound64, ""),
            ("64 streams: seqgen on one thread (chars/s)", single64, ""),
            ("  seqgen / seqgen on one thread", ours64 / single64, ""),
            ("  seqgen / torch loop", ours64 / torch64, at_least(2)),
            ("  seqgen / bound", share64, at_least(0.5, "")),
            ("  seqgen / bound without the looked-up product", strict64, ""),
        ]

        total = 2000 if args.quick else 10_000
        first, late = step_cost_over_time(ckpt, total, reps)
        naive = median_rate(naive_refeed(model, 300), 300, 1)
        rows += [
            ("chars 1-1,000 (chars/s)", first, ""),
            (f"chars {total - 999:,}-{total:,} (chars/s)", late, ""),
            ("  last / first", late / first, within(0.9, 1.1)),
            ("naive re-feed, first 300 chars (chars/s)", naive, ""),
        ]

        rows += bpe_rows(folder, total, reps)

        text = training_text(64 * 128 * (train_steps + 2) * 2)
        plain_runs, our_runs = paired_training(
            [plain_training(text, train_steps), seqgen_training(text, train_steps, folder)],
            64 * 128 * (train_steps - 1),
            reps,
        )
        rows += [
            ("training: plain PyTorch loop (chars/s)", statistics.median(plain_runs), ""),
            ("training: seqgen Trainer (chars/s)", statistics.median(our_runs), ""),
            (
                "  seqgen / plain (median of pairs)",
                statistics.median(o / p for o, p in zip(our_runs, plain_runs)),
                at_least(1.0),
            ),
        ]
        rows += default_text_rows(text, folder, train_steps, reps)

        sine_plain, sine_ours = sine_loops(folder, n1)
        sp, so = best_torch_rate(sine_plain, n1, reps), median_rate(sine_ours, n1, reps)
        rows += [
            ("sine 1 stream: torch.nn.LSTM loop (steps/s)", sp, ""),
            ("sine 1 stream: seqgen, numpy (steps/s)", so, ""),
            ("  seqgen / torch loop", so / sp, at_least(3)),
        ]

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__} "
        f"(OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')})"
    )
    print(f"{'measure':48s} {'value':>10s}  target")
    for name, value, target in rows:
        shown = f"{value:,.2f}" if not value >= 100 else f"{value:,.0f}"
        verdict = "" if not target else f"{target[0]:<17s} {'met' if target[1](value) else 'NOT MET'}"
        print(f"{name:48s} {shown:>10s}  {verdict}")


def at_least(floor: float, unit: str = "x") -> tuple[str, Callable[[float], bool]]:
    return f">= {floor:g}{unit}", lambda value: value >= floor


def within(low: float, high: float) -> tuple[str, Callable[[float], bool]]:
    return f"within {low:g}-{high:g}", lambda value: low <= value <= high


if __name__ == "__main__":
    main()
