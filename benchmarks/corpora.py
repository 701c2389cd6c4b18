"""Are the text defaults tuned to one corpus? (issue 15, target 3)

    python benchmarks/corpora.py [--minutes 5] [--quick]

On two corpora unlike tinyshakespeare, built from files on this machine (not copied anywhere):
- code: the Python standard library's .py files (sorted paths, test folders left out), about 1 MB;
- prose: Python's reference documentation (the texts of pydoc_data.topics) and the licence texts
  in /usr/share/common-licenses, about 0.7 MB of English;
`seqgen train FILE --max-time 5m` with defaults (through the command line), scored by `seqgen
eval` (the last 10% as one stream), against a plain baseline this script trains for the same
wall time: an embedding of 64, one torch.nn.LSTM layer of 512, a linear output, Adam (lr 2e-3,
clipping at 1), fp32, the same batch and window as seqgen's default for the text, on the same
training part, carrying the state from one window to the next, and scored on the same validation
characters as one stream from a zero state. Run nothing else meanwhile: the runs are time-limited.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from quality import seqgen  # noqa: E402
from seqgen.config import defaults_for  # noqa: E402
from seqgen.data import text_dataset  # noqa: E402
from seqgen.train.precision import cpu_has_bf16  # noqa: E402

LICENCES = Path("/usr/share/common-licenses")


def code_text(limit: int = 1_000_000) -> str:
    """Python standard library source, sorted by path, test folders left out, about `limit` chars."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(stdlib.rglob("*.py")):
        if any(part in ("test", "tests", "idle_test", "site-packages") for part in path.relative_to(stdlib).parts):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        size += len(text)
        if size >= limit:
            break
    return "\n".join(parts)


def prose_text() -> str:
    """Python's reference documentation and the licence texts shipped with Debian."""
    from pydoc_data.topics import topics

    parts = [topics[key] for key in sorted(topics)]
    if LICENCES.is_dir():
        parts += [p.read_text(encoding="utf-8", errors="replace") for p in sorted(LICENCES.iterdir()) if p.is_file()]
    return "\n\n".join(parts)


class Baseline(torch.nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, 64)
        self.lstm = torch.nn.LSTM(64, 512, batch_first=True)
        self.out = torch.nn.Linear(512, vocab)

    def forward(self, x, state=None):
        y, state = self.lstm(self.embed(x), state)
        return self.out(y), state


def baseline(text: str, minutes: float, batch: int, window: int) -> dict:
    """Train the plain LSTM 1x512 for `minutes` of wall time; its validation loss as one stream."""
    data = text_dataset(text, "corpus", "corpus", 0.1)
    train = torch.as_tensor(data.train_streams[0], dtype=torch.long)
    val = torch.as_tensor(data.val_streams[0], dtype=torch.long)
    length = len(train) // batch
    tracks = train[: batch * length].view(batch, length)
    torch.manual_seed(0)
    model = Baseline(len(data.vocab))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    state, start, steps, position = None, time.perf_counter(), 0, 0
    while time.perf_counter() - start < minutes * 60:
        if position + window + 1 > length:
            position, state = 0, None
        chunk = tracks[:, position : position + window + 1]
        out, state = model(chunk[:, :-1], state)
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), chunk[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state = tuple(s.detach() for s in state)
        position += window
        steps += 1
    model.eval()
    total, state = 0.0, None
    with torch.no_grad():
        for at in range(0, len(val) - 1, 1024):
            piece = val[at : at + 1025]
            out, state = model(piece[None, :-1], state)
            total += F.cross_entropy(out[0], piece[1:], reduction="sum").item()
    return {"loss": total / (len(val) - 1), "steps": steps}


def ours(path: Path, minutes: float, folder: str) -> dict:
    ckpt = str(Path(folder) / f"{path.stem}.safetensors")
    seqgen("train", str(path), "--max-time", f"{minutes:g}m", "--quiet", "--out", ckpt, cwd=folder)
    report = json.loads(seqgen("eval", ckpt, str(path), "--json", cwd=folder)[0])
    info = json.loads(seqgen("info", ckpt, "--json", cwd=folder)[0])
    return {
        "loss": report["stream_loss"],
        "windows": report["windows_loss"],
        "steps": info["training"]["steps"],
        "model": info["model"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="0.2-minute runs on 100,000 characters (a smoke run)")
    args = parser.parse_args()
    minutes = 0.2 if args.quick else args.minutes
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, text in (("code", code_text()), ("prose", prose_text())):
            text = text[:100_000] if args.quick else text
            path = Path(folder) / f"{name}.txt"
            path.write_text(text, encoding="utf-8")
            _, train = defaults_for("text", size=len(text), bf16=cpu_has_bf16())
            mine = ours(path, minutes, folder)
            plain = baseline(text, minutes, train.batch_size, train.window)
            print(f"{name}: seqgen {mine['loss']:.4f}, baseline {plain['loss']:.4f}", file=sys.stderr)
            rows.append((name, len(text), mine, plain))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {cpu_name()}; torch {torch.__version__}; "
        f"{minutes:g}-minute runs"
    )
    print(
        f"{'corpus':7s} {'chars':>9s} {'seqgen':>8s} {'windows':>8s} {'steps':>6s} {'LSTM 1x512':>10s} {'steps':>6s}  target"
    )
    for name, size, mine, plain in rows:
        verdict = "met" if mine["loss"] < plain["loss"] else "NOT MET"
        print(
            f"{name:7s} {size:9,d} {mine['loss']:8.4f} {mine['windows']:8.4f} {mine['steps']:6d} "
            f"{plain['loss']:10.4f} {plain['steps']:6d}  seqgen < plain: {verdict}"
        )
    print(
        "(nats per character on the last 10% of each corpus, one stream; windows: 256 from a zero state; "
        f"bits = nats / {math.log(2):.4f})"
    )


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.platform()


if __name__ == "__main__":
    main()
