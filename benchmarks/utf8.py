"""Well-formed UTF-8 from briefly trained byte and BPE models (issue 34, point 4).

    python benchmarks/utf8.py [--seconds 20] [--chars 1000] [--seeds 5] [--temperatures 1,2]

Trains a byte model and a BPE model (1024 tokens, the default; needs the 'bpe' extra) for
--seconds each on tinyshakespeare (../shared/data/tinyshakespeare.txt from the repository's
root) through the public command line, every other setting at its default, then samples --chars
characters from each (primed with a newline) for each of --seeds seeds at each temperature and
counts U+FFFD, the character malformed UTF-8 decodes to. The same count is made with the tokens
that cannot continue a character left in (the sampling seqgen did before it ruled them out), to
show what the rule removes: tinyshakespeare is ASCII, so a model soon makes bytes above 0x7F
rare, and a hot temperature (2) brings them back. Target: no U+FFFD in any sample. The runs are
time-limited: run nothing else meanwhile.
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

from seqgen import Generator, load_checkpoint  # noqa: E402
from seqgen.generate import SampleConfig  # noqa: E402

REPLACEMENT = "\ufffd"


class Unmasked(Generator):
    """Sampling as it was before tokens were kept to well-formed UTF-8: every token may come."""

    def _well_formed(self, items, weights):
        return items, weights


def sampled_text(ckpt: str, chars: int, seed: int, temperature: float, kind: type = Generator) -> str:
    """`chars` characters sampled from `ckpt` at `temperature`, primed with a newline."""
    gen = kind.from_checkpoint(ckpt, seed=seed, sampling=SampleConfig(temperature=temperature))
    gen.feed("\n")
    text = ""
    while len(text) < chars:
        text += gen.step().text[0]
    return text[:chars]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="training time of each model")
    parser.add_argument("--chars", type=int, default=1000, help="characters per sample")
    parser.add_argument("--seeds", type=int, default=5, help="samples per model and temperature, seeds 1..N")
    parser.add_argument("--temperatures", default="1,2", help="sampling temperatures, comma-separated")
    args = parser.parse_args()
    if not SHAKESPEARE.exists():
        raise SystemExit(
            f"{SHAKESPEARE} is missing: this benchmark trains on tinyshakespeare; put the file there "
            "(https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt)"
        )
    temperatures = [float(t) for t in args.temperatures.split(",")]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at the start")
    counted = f"U+FFFD in {args.seeds} x {args.chars} chars"
    print(
        f"{'tokens':8s} {'steps':>6s} {'val bits/char':>14s} {'temperature':>12s} {counted:>28s} {'without the rule':>17s}"
    )
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        for tokens in ("byte", "bpe"):
            ckpt = str(Path(folder) / f"{tokens}.safetensors")
            seqgen(
                "train",
                str(SHAKESPEARE),
                "--tokens",
                tokens,
                "--max-time",
                f"{args.seconds:g}s",
                "--quiet",
                "--out",
                ckpt,
                cwd=folder,
            )
            progress = load_checkpoint(ckpt).meta["progress"]
            for temperature in temperatures:
                seeds = range(1, args.seeds + 1)
                masked = [sampled_text(ckpt, args.chars, seed, temperature) for seed in seeds]
                unmasked = [sampled_text(ckpt, args.chars, seed, temperature, Unmasked) for seed in seeds]
                bad = sum(text.count(REPLACEMENT) for text in masked)
                failed |= bad > 0
                print(
                    f"{tokens:8s} {progress['step']:>6d} {progress['best_val_bpc']:>14.3f} {temperature:>12g} {bad:>28d} "
                    f"{sum(text.count(REPLACEMENT) for text in unmasked):>17d}"
                )
            print(f"  sample (seed 1, temperature {temperature:g}): {masked[0][:160]!r}")
    print("target (no U+FFFD in any sample):", "met" if not failed else "NOT met")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
