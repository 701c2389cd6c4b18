"""Training across processes with torch.distributed, as started by `torchrun`.

Each rank trains on its own contiguous share of every batch of tracks; DistributedDataParallel
averages the gradients, so N processes with a global batch B take the same steps as one
process with batch B. Rank 0 alone validates, writes and reports; the few decisions that must
be the same everywhere (stop now? was the loss finite?) are agreed with one all_reduce a step.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist

from ..errors import UsageError
from ..device import resolve_device, usable_cores


def launched() -> bool:
    """True when torchrun (or another launcher) started this process as one rank of a group."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


@dataclass(frozen=True)
class Group:
    """This process's place in the group; a lone process is rank 0 of 1."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, batch: int) -> tuple[int, int]:
        """(first row, rows) of this rank's contiguous part of a batch of `batch` tracks."""
        if batch % self.world:
            raise UsageError(
                f"`batch_size` {batch} does not split evenly across {self.world} processes; "
                f"give a multiple of {self.world}"
            )
        rows = batch // self.world
        return self.rank * rows, rows

    def agree(self, loss: float, stop: bool, elapsed: float) -> tuple[float, bool, float]:
        """The mean loss over ranks, whether any rank wants to stop, and the longest elapsed time:
        every rank gets the same three values, so they all stop (or fail) at the same step."""
        if self.world == 1:
            return loss, stop, elapsed
        mean = torch.tensor([loss, float(stop)], dtype=torch.float64)
        longest = torch.tensor([elapsed], dtype=torch.float64)
        dist.all_reduce(mean)
        dist.all_reduce(longest, op=dist.ReduceOp.MAX)
        return mean[0].item() / self.world, mean[1].item() > 0, longest[0].item()

    def broadcast(self, value: float) -> float:
        """Rank 0's value, everywhere."""
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(tensor, src=0)
        return tensor.item()

    def gather_rows(self, tensor: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """Every rank's `tensor` joined along `dim` in rank order (for the carried state)."""
        if self.world == 1:
            return tensor
        # gloo gathers CPU tensors only; NCCL, CUDA ones.
        local = tensor.contiguous() if dist.get_backend() == "nccl" else tensor.detach().cpu().contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world)]
        dist.all_gather(parts, local)
        return torch.cat(parts, dim=dim)


def current() -> Group:
    """The group this process belongs to (rank 0 of 1 when torch.distributed is not initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Group()
    return Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def device_for(name: str) -> str:
    """Under torchrun on CUDA, each rank on one machine takes its own GPU."""
    if launched() and name in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return name


@contextmanager
def process_group(device: str) -> Iterator[Group]:
    """Join the group torchrun set up (NCCL on CUDA, gloo on CPU) for the duration of a run."""
    if not launched() or dist.is_initialized():
        yield current()
        return
    # A missing device is one line, before any CUDA call.
    use_cuda = resolve_device(device).type == "cuda"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        yield current()
    except BaseException:
        dist.destroy_process_group()
        raise
    # No rank takes the group down while another still uses it (rank 0 writes the checkpoint
    # after the others are done): tearing down early can abort a rank at exit.
    dist.barrier()
    dist.destroy_process_group()


def end_rank(status: int = 0) -> None:
    """End a rank whose run is over: wait for every rank at a barrier (rank 0 has written the
    checkpoint by then), flush the output, and leave without tearing the process group down.
    With torch 2.13 on gloo a rank aborted at exit ("terminate called without an active
    exception") in about one 3-step run in ten under torchrun, after the checkpoint was written:
    the launcher then reported a failed run. Nothing is left to save, so nothing is lost by not
    unwinding."""
    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def relaunch(nproc: int, argv: list[str]) -> tuple[int, str | None]:
    """Run `python -m seqgen ARGV` (a command line that does not itself ask for processes) as `nproc` ranks on this machine; return the run's exit status
    and what to say of a rank that was killed (see `wait_for_ranks`).

    A small launcher of its own rather than torchrun: a rank that fails has already said why in
    one line, and torchrun would add its banner and a traceback of its own after it.
    """
    if nproc < 1:
        raise UsageError(f"`nproc` must be >= 1, got {nproc}")
    command = [sys.executable, "-m", "seqgen", *argv]
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "WORLD_SIZE": str(nproc),
        "LOCAL_WORLD_SIZE": str(nproc),
    }
    # Each rank's torch threads share the cores with the other ranks'.
    env.setdefault("OMP_NUM_THREADS", str(max(1, usable_cores() // nproc)))
    # Ctrl-C reaches every process of the terminal's group; the ranks agree to stop and rank 0 saves.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    ranks = [subprocess.Popen(command, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(nproc)]
    forward = signal.signal(signal.SIGTERM, lambda signum, frame: [p.send_signal(signum) for p in ranks])
    try:
        return wait_for_ranks(ranks)
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, forward)


def wait_for_ranks(ranks: list[subprocess.Popen], grace: float = 5.0) -> tuple[int, str | None]:
    """Wait for every rank; return the status of the first to fail (0 if none did) and, when it
    was killed from outside (by the out-of-memory killer, say) and so could not say why, a message.
    The other ranks may wait on a lost one for a long time: any still running `grace` seconds
    after a failure are killed.
    """
    first, failed_at = None, None
    while any(p.poll() is None for p in ranks):
        if first is None:
            first = cause(ranks)
            failed_at = time.monotonic() if first is not None else None
        elif time.monotonic() - failed_at > grace:
            for p in ranks:
                if p.poll() is None:
                    p.kill()
        time.sleep(0.05)
    if first is None:
        first = cause(ranks)
    if first is None:
        return 0, None
    code = ranks[first].returncode
    if code > 0:
        return code, None
    name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
    hint = " (out of memory?)" if name == "SIGKILL" else ""
    return 128 - code, f"rank {first} was killed by {name}{hint}"  # 128 + N: the shell's status


def cause(ranks: list[subprocess.Popen]) -> int | None:
    """The rank whose failure ended the run, among those that have failed so far: one killed by a
    signal before one that exited with an error (which may only have lost its peer)."""
    failed = [r for r, p in enumerate(ranks) if p.returncode not in (None, 0)]
    return min(failed, key=lambda r: ranks[r].returncode > 0, default=None)


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on now, for rank 0's rendezvous store."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_leader_first(group: Group) -> Iterator[None]:
    """Let local rank 0 do the body (build the data cache) before the other ranks of its machine,
    which then find the work done instead of repeating it side by side."""
    if group.world > 1 and group.local_rank != 0:
        dist.barrier()
    yield
    if group.world > 1 and group.local_rank == 0:
        dist.barrier()
