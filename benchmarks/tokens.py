"""Tokenization benchmark (issue 16): which tokens make the best 5-minute text model per character.

    python benchmarks/tokens.py [--minutes 5] [--corpus shakespeare,prose] [--tokens char,bpe:1024]

For each corpus and each tokenization (char, byte, word at its default vocabulary, bpe at 1024
and 4096 tokens), through the public command line: `seqgen train FILE --tokens T [--vocab-size N]
--max-time M` with every other setting at its default, then `seqgen eval` (the last 10% of the
text as one stream; loss over all its tokens divided by its characters, so vocabularies compare
fairly) and a 300-character sample at temperature 0.8. Corpora: tinyshakespeare (../shared/data)
and the English prose corpus of benchmarks/corpora.py (Python's reference documentation and the
licence texts shipped with Debian). The runs are time-limited: run nothing else meanwhile.
Prints a table (bits/char, steps, characters seen per second of training) and the samples.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from quality import SHAKESPEARE, seqgen  # noqa: E402

TOKENIZATIONS = ["char", "byte", "word", "bpe:1024", "bpe:4096"]


def corpus_file(name: str, folder: str) -> Path | None:
    """The corpus `name` as a file (None when it is not on this machine)."""
    if name == "shakespeare":
        return SHAKESPEARE if SHAKESPEARE.exists() else None
    if name == "prose":
        from corpora import prose_text

        path = Path(folder) / "prose.txt"
        path.write_text(prose_text(), encoding="utf-8")
        return path
    path = Path(name)
    return path if path.exists() else None


def run(corpus: Path, tokens: str, minutes: float, folder: str) -> dict:
    kind, _, size = tokens.partition(":")
    work = Path(folder) / tokens.replace(":", "-")
    work.mkdir()
    ckpt = str(work / "model.safetensors")
    extra = ["--vocab-size", size] if size else []
    seqgen(
        "train",
        str(corpus),
        "--tokens",
        kind,
        *extra,
        "--max-time",
        f"{minutes:g}m",
        "--quiet",
        "--out",
        ckpt,
        cwd=str(work),
    )
    report = json.loads(seqgen("eval", ckpt, str(corpus), "--json", cwd=str(work))[0])
    info = json.loads(seqgen("info", ckpt, "--json", cwd=str(work))[0])
    sample, _ = seqgen("sample", ckpt, "--temperature", "0.8", "--length", "300", "--seed", "1", cwd=str(work))
    training = info["training"]
    return {
        "checkpoint": ckpt,
        "tokens": tokens,
        "bits_per_char": report["bits_per_char"],
        "steps": training["steps"],
        "chars_per_token": report["characters"] / max(report["tokens"], 1),
        "sample": sample,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training time of each run")
    parser.add_argument("--corpus", default="shakespeare,prose", help="shakespeare, prose or a file, comma-separated")
    parser.add_argument("--tokens", default=",".join(TOKENIZATIONS), help="kind[:vocabulary size], comma-separated")
    parser.add_argument("--keep", type=Path, default=None, help="copy each trained checkpoint into this folder")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.corpus.split(","):
            corpus = corpus_file(name, folder)
            if corpus is None:
                print(f"skipping {name}: not on this machine", file=sys.stderr)
                continue
            for tokens in args.tokens.split(","):
                result = run(corpus, tokens, args.minutes, folder)
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(result.pop("checkpoint"), args.keep / f"{name}-{tokens.replace(':', '-')}.safetensors")
                print(f"{name} {tokens}: {result['bits_per_char']:.3f} bits/char", file=sys.stderr)
                rows.append((name, result))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {cpu_name()}; {args.minutes:g}-minute runs, defaults"
    )
    print(f"{'corpus':12s} {'tokens':10s} {'bits/char':>9s} {'chars/token':>11s} {'steps':>6s}")
    for name, r in rows:
        print(f"{name:12s} {r['tokens']:10s} {r['bits_per_char']:9.3f} {r['chars_per_token']:11.2f} {r['steps']:6d}")
    for name, r in rows:
        print(f"\n--- {name}, {r['tokens']} (seed 1, temperature 0.8) ---\n{r['sample'].rstrip()}")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.platform()


if __name__ == "__main__":
    main()
