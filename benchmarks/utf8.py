"""Well-formed UTF-8 from briefly trained byte and BPE models (issue 34, point 4).

    python benchmarks/utf8.py [--seconds 20] [--chars 1000] [--seeds 5]

Trains a byte model and a BPE model (1024 tokens, the default; needs the 'bpe' extra) for
--seconds each on tinyshakespeare (../shared/data/tinyshakespeare.txt from the repository's
root) through the public command line, every other setting at its default, then samples --chars
characters from each (primed with a newline, temperature 1) for each of --seeds seeds and counts
U+FFFD, the character malformed UTF-8 decodes to. The same count is made with the tokens that
cannot continue a character left in (the sampling seqgen did before it ruled them out), to show
what the rule removes. Target: no U+FFFD in any sample. The runs are time-limited: run nothing
else meanwhile.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from quality import SHAKESPEARE, seqgen  # noqa: E402

from seqgen import Generator  # noqa: E402

REPLACEMENT = "\ufffd"


class Unmasked(Generator):
    """Sampling as it was before tokens were kept to well-formed UTF-8: every token may come."""

    def _well_formed(self, items, weights):
        return items, weights


def sampled_text(ckpt: str, chars: int, seed: int, kind: type = Generator) -> str:
    """`chars` characters sampled from `ckpt` (temperature 1, primed with a newline)."""
    gen = kind.from_checkpoint(ckpt, seed=seed)
    gen.feed("\n")
    text = ""
    while len(text) < chars:
        gen.step()
        text += gen.last_text[0]
    return text[:chars]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="training time of each model")
    parser.add_argument("--chars", type=int, default=1000, help="characters per sample")
    parser.add_argument("--seeds", type=int, default=5, help="samples per model, seeds 1..N")
    args = parser.parse_args()
    if not SHAKESPEARE.exists():
        raise SystemExit(f"{SHAKESPEARE} is missing: this benchmark trains on tinyshakespeare; put the file there "
                         "(https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt)")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at the start")
    print(f"{'tokens':8s} {'steps':>6s} {'val bits/char':>14s} {'U+FFFD in ' + str(args.seeds) + ' x ' + str(args.chars) + ' chars':>28s}"
          f" {'without the rule':>17s}")
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        for tokens in ("byte", "bpe"):
            ckpt = str(Path(folder) / f"{tokens}.safetensors")
            seqgen("train", str(SHAKESPEARE), "--tokens", tokens, "--max-time", f"{args.seconds:g}s", "--quiet",
                   "--out", ckpt, cwd=folder)
            from seqgen import load_checkpoint

            progress = load_checkpoint(ckpt).meta["progress"]
            masked = [sampled_text(ckpt, args.chars, seed) for seed in range(1, args.seeds + 1)]
            unmasked = [sampled_text(ckpt, args.chars, seed, Unmasked) for seed in range(1, args.seeds + 1)]
            bad = sum(text.count(REPLACEMENT) for text in masked)
            failed |= bad > 0
            print(f"{tokens:8s} {progress['step']:>6d} {progress['best_val_bpc']:>14.3f} {bad:>28d} "
                  f"{sum(text.count(REPLACEMENT) for text in unmasked):>17d}")
            print(f"  sample (seed 1): {masked[0][:160]!r}")
    print("target (no U+FFFD in any sample):", "met" if not failed else "NOT met")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
