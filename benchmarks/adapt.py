"""Models that keep learning as they read (issue 34, points 1 and 2).

    python benchmarks/adapt.py [--grid] [--prompts] [--corpora [--minutes 5]]

1. Dynamic evaluation on the shipped tinyshakespeare model: `seqgen eval CHECKPOINT --adapt
   --json` (the command line, as a user runs it), static and adapted loss on the same stream, the
   last 10% of tinyshakespeare. Target: adapted at least 0.05 nats/char below static.
2. `--grid`: how the defaults of seqgen/adapt.py were chosen: the update, its step size and its
   window, each on the first `--grid-chars` characters of the same validation stream.
3. `--prompts`: what `sample --adapt` does to a prime: passages of the validation tail, the
   first part of each the prime, the rest scored after it with the checkpoint's weights and with
   weights adapted to the prime (1, 2, 3 and 5 passes).
4. `--corpora`: the code and prose corpora of benchmarks/corpora.py (no model of them is
   shipped): `seqgen train FILE --max-time M` with defaults, then `seqgen eval --adapt`.
   Target: adapted at least 0.03 nats/char below static.

Run nothing else meanwhile if the timings matter; the losses do not depend on the load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from quality import seqgen  # noqa: E402

CHECKPOINT = ROOT / "checkpoints" / "tinyshakespeare.safetensors"


def dynamic_evaluation(checkpoint: Path, data: str | None, target: float, label: str, folder: str) -> dict:
    args = ["eval", str(checkpoint), *([data] if data else []), "--adapt", "--json"]
    out, seconds = seqgen(*args, cwd=folder)
    report = json.loads(out)
    gain = report["stream_loss"] - report["adapted_loss"]
    met = "met" if gain >= target else "NOT met"
    print(
        f"{label:<16} {report['characters']:>9,}  {report['stream_loss']:.4f}  {report['adapted_loss']:.4f}  "
        f"{-gain:+.4f}  {seconds:6.0f}s  gain >= {target}: {met}",
        flush=True,
    )
    return report


def header() -> None:
    print(f"{'model':<16} {'val chars':>9}  static  adapted   diff    time  target")


def validation(checkpoint: Path):
    """The shipped checkpoint's validation stream and training part, as `seqgen eval` reads them."""
    from seqgen.checkpoint import load_checkpoint
    from seqgen.data.tokenizers import tokenizer_for
    from seqgen.evaluate import _training_part, _validation_tail, checkpoint_val_fraction, resolve_data

    ckpt = load_checkpoint(checkpoint)
    path, fraction, tokenizer = resolve_data(ckpt, None), checkpoint_val_fraction(ckpt), tokenizer_for(ckpt.data)
    tail = np.asarray(_validation_tail(ckpt, tokenizer, path, "utf-8", fraction).streams[0])
    return ckpt, tail, _training_part(ckpt, tokenizer, path, "utf-8", fraction)


def static_loss(ckpt, ids: np.ndarray) -> float:
    from seqgen.data import Dataset
    from seqgen.generate.generator import torch_model_from_checkpoint
    from seqgen.train import evaluate_loss

    stream = Dataset(kind="text", name="v", description="", streams=[ids], splits=[1], vocab=ckpt.vocab)
    return evaluate_loss(torch_model_from_checkpoint(ckpt).model, stream, warmup=0, pieces=1)


def grid(checkpoint: Path, chars: int) -> None:
    from seqgen.adapt import AdaptConfig, dynamic_loss

    ckpt, tail, train = validation(checkpoint)
    ids = tail[: chars + 1]
    static = static_loss(ckpt, ids)
    print(f"\nthe first {chars:,} characters of the validation stream: static {static:.4f} nats/char")
    print(f"{'method':<6} {'lr':>7} {'window':>6} {'decay':>6}  adapted   diff   time")
    settings = [("sgd", lr, 50, 0.0) for lr in (0.03, 0.1, 0.3)]
    settings += [("rms", lr, 50, 0.0) for lr in (1e-4, 3e-4, 4e-4, 6e-4, 1e-3)]
    settings += [("rms", 1.5e-4, 20, 0.0), ("rms", 6e-4, 100, 0.0)]
    settings += [("rms", 4e-4, 50, d) for d in (1e-3, 1e-2)]
    for method, lr, window, decay in settings:
        started = time.perf_counter()
        loss = dynamic_loss(ckpt, ids, AdaptConfig(method=method, lr=lr, window=window, decay=decay), train)
        print(
            f"{method:<6} {lr:>7g} {window:>6} {decay:>6g}  {loss:.4f}  {loss - static:+.4f}  "
            f"{time.perf_counter() - started:4.0f}s",
            flush=True,
        )


def prompts(checkpoint: Path, count: int = 8, prime: int = 1500, after: int = 500) -> None:
    from seqgen.adapt import AdaptConfig, adapt_to_prime
    from seqgen.generate import Generator

    ckpt, tail, _ = validation(checkpoint)
    starts = np.linspace(1, len(tail) - prime - after - 1, count).astype(int)
    passes = (0, 1, 2, 3, 5)
    print(
        f"\n{count} passages of the validation tail: a prime of {prime} characters, then the loss (nats/char) "
        f"of the next {after}"
    )
    print("passes  " + "  ".join(f"{p:>6}" for p in passes))
    losses = {p: [] for p in passes}
    for start in starts:
        ids = tail[start : start + prime + after + 1]
        for p in passes:
            model = ckpt if p == 0 else adapt_to_prime(ckpt, ids[:prime], AdaptConfig(passes=p))
            logits = Generator.from_checkpoint(model).feed(ids[None, :-1])[0, prime - 1 :].astype(np.float64)
            top = logits.max(1, keepdims=True)
            logp = logits - top - np.log(np.exp(logits - top).sum(1, keepdims=True))
            losses[p].append(-logp[np.arange(len(logp)), ids[prime:]].mean())
    print("mean    " + "  ".join(f"{np.mean(losses[p]):.4f}" for p in passes), flush=True)


def corpora(minutes: float, folder: str) -> None:
    from corpora import code_text, prose_text

    print(f"\ncorpora of benchmarks/corpora.py, `seqgen train FILE --max-time {minutes:g}m` with defaults:")
    header()
    for name, text in (("code", code_text()), ("prose", prose_text())):
        path = Path(folder) / f"{name}.txt"
        path.write_text(text, encoding="utf-8")
        ckpt = Path(folder) / f"{name}.safetensors"
        seqgen("train", str(path), "--max-time", f"{minutes:g}m", "--quiet", "--out", str(ckpt), cwd=folder)
        steps = json.loads(seqgen("info", str(ckpt), "--json", cwd=folder)[0])["training"]["steps"]
        # The gain depends on how far training got: the steps say that, the load decided them.
        dynamic_evaluation(ckpt, str(path), 0.03, f"{name}, {steps} steps", folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--grid", action="store_true", help="measure the grid the defaults were chosen from")
    parser.add_argument("--grid-chars", type=int, default=20_000)
    parser.add_argument("--prompts", action="store_true", help="measure adapting to a prime")
    parser.add_argument("--corpora", action="store_true", help="train and measure the code and prose corpora")
    parser.add_argument("--minutes", type=float, default=5.0)
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory() as folder:
        print("dynamic evaluation (`seqgen eval CHECKPOINT --adapt`, defaults), the last 10% as one stream, nats/char:")
        header()
        dynamic_evaluation(args.checkpoint, None, 0.05, args.checkpoint.stem, folder)
        if args.grid:
            grid(args.checkpoint, args.grid_chars)
        if args.prompts:
            prompts(args.checkpoint)
        if args.corpora:
            corpora(args.minutes, folder)


if __name__ == "__main__":
    main()
