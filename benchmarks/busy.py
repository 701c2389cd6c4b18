"""Training speed on shared cores: the default `seqgen train` against one torch thread
(OMP_NUM_THREADS=1), on a quiet machine and with N other busy processes on the cores.

    python benchmarks/busy.py                       # sine default, 2 busy processes: about 3 minutes
    python benchmarks/busy.py --data text --seconds 30
    python benchmarks/busy.py --config passive=OMP_WAIT_POLICY=PASSIVE   # add a configuration
    python benchmarks/busy.py --config before=PYTHONPATH=/path/to/older/checkout   # another version

Each figure is a real `seqgen train` process run for --seconds of training time, and its speed is
the checkpoint's items trained over training time (evaluations left out). The busy processes are
Python loops that end on their own after the measurement's time is up (never left behind), started
before each measured run. Every configuration runs --repeats times, interleaved with the others, and
the median is reported; the ratio column compares each with `one thread` under the same load, in
the same run. The machine's own quiet speed varies by the hour: compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
BUSY_LOOP = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"


def configurations(extra: list[str]) -> dict[str, dict[str, str]]:
    found = {"default": {}, "one thread": {"OMP_NUM_THREADS": "1"}}
    for item in extra:
        name, _, assignments = item.partition("=")
        env = dict(pair.split("=", 1) for pair in assignments.split(",") if pair)
        found[name] = env
    return found


def data_argument(kind: str, folder: Path) -> list[str]:
    if kind == "sine":
        return []
    if SHAKESPEARE.exists():
        return [str(SHAKESPEARE)]
    path = folder / "text.txt"  # without ../shared: any text of a similar size
    words = "the of and to in that it was he for on are with as his they at be this from".split()
    path.write_text(" ".join(words[(i * 7919) % len(words)] for i in range(200_000)), encoding="utf-8")
    return [str(path)]


def train_speed(
    data: list[str], env: dict[str, str], seconds: float, folder: Path, busy: int
) -> tuple[float, int | None]:
    """Items per second of training time of one `seqgen train` run, with `busy` loops running
    beside it, and the torch thread count it trained on (None where the checkpoint does not say)."""
    out = folder / "busy.safetensors"
    loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=seconds * 3 + 60)]) for _ in range(busy)]
    try:
        command = [
            sys.executable,
            "-m",
            "seqgen",
            "train",
            *data,
            "--max-time",
            f"{seconds}s",
            "--out",
            str(out),
            "--force",
            "--seed",
            "0",
        ]
        # From the scratch folder: `python -m` puts the working folder first on the path, which would
        # hide a PYTHONPATH that points at another checkout.
        subprocess.run(
            command,
            env={**os.environ, **env, "NO_COLOR": "1"},
            check=True,
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    from seqgen import load_checkpoint

    progress = load_checkpoint(out).meta["progress"]
    return progress["items_seen"] / progress["elapsed"], progress.get("threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("sine", "text"), default="sine")
    parser.add_argument("--busy", type=int, default=2, help="busy processes beside the loaded runs")
    parser.add_argument("--seconds", type=float, default=15.0, help="training time of each run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--config", action="append", default=[], help="NAME=VAR=VALUE[,VAR=VALUE]: one more configuration"
    )
    parser.add_argument("--loads", default="quiet,busy", help="quiet, busy or both")
    args = parser.parse_args()
    configs = configurations(args.config)
    loads = {"quiet": 0, "busy": args.busy}
    speeds: dict[tuple[str, str], list[float]] = {}
    counts: dict[tuple[str, str], list[int | None]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = data_argument(args.data, folder)
        for load in args.loads.split(","):
            for _ in range(args.repeats):
                for name, env in configs.items():
                    speed, threads = train_speed(data, env, args.seconds, folder, loads[load])
                    speeds.setdefault((load, name), []).append(speed)
                    counts.setdefault((load, name), []).append(threads)
                    print(
                        f"  {load:5} {name:12} {speed:12,.0f} items/s on {threads} threads", file=sys.stderr, flush=True
                    )
    unit = "values/s" if args.data == "sine" else "chars/s"
    print(
        f"{args.data} default training, {args.seconds:g} s a run, median of {args.repeats}; "
        f"busy = {args.busy} other busy processes on {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}"
    )
    print(f"| load | configuration | {unit} | against one thread | threads of each run |")
    print("|---|---|---|---|---|")
    for load in args.loads.split(","):
        one = statistics.median(speeds[(load, "one thread")])
        for name in configs:
            value = statistics.median(speeds[(load, name)])
            runs = ", ".join("?" if c is None else str(c) for c in counts[(load, name)])
            print(f"| {load} | {name} | {value:,.0f} | {value / one:.2f}x | {runs} |")


if __name__ == "__main__":
    main()
