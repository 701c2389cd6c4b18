"""The batching engine in a process of its own, so that it never waits for the event loop's lock.

With the engine as a thread of the server, Python's one lock is shared by it and the event loop
that writes every client's events. Measured with 64 streaming clients on two cores (2-core AMD
EPYC, 2026-12-04): the engine's thread used 76% of a core, the event loop 26% and the clients 9%,
so 0.9 of the two cores stood idle while the engine waited for the lock between its products.

`ProcessEngine` has `Engine`'s interface (`submit`, `close`, `rows`, `steps`) in the server's
process; a child process runs an `Engine` over copies of the submitted generators. A generator
crosses when its stream joins (its state, random numbers, settings and held-back bytes; not the
model or the tokenizer, which the child has copies of) and comes back with its stream's last
piece, so the server's generator (a session's, say) carries on from where the engine left it. What a stream
makes is the same bits as in a thread engine: the same code steps the same state with the same
random numbers. Each step's pieces cross back as one message, not one per stream.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from itertools import count
from multiprocessing.connection import Connection

import numpy as np

from ..generate.generator import Generator
from ..model.numpy_backend import NumpyModel
from .engine import Busy, Engine, Piece, Stream
from .metrics import Histogram


log = logging.getLogger("seqgen.serve")

# Attributes of a generator that stay in their own process: the model (each process has one),
# what never changes while generating (the tokenizer and its vocabulary, the model's settings),
# the detokenizer (its vocabulary too; only its held-back bytes cross) and the weights of the
# last choice (rows x vocabulary; read right after a step, in the engine, never later).
KEPT = ("model", "tokenizer", "vocab", "config", "detokenizer", "_last_choice")


def portable(gen: Generator) -> dict:
    """What a generator is, apart from what each process keeps of its own."""
    state = {k: v for k, v in gen.__dict__.items() if k not in KEPT}
    state["_pending"] = gen.detokenizer.pending() if gen.detokenizer is not None else None
    return state


def take_back(gen: Generator, state: dict) -> None:
    """`gen` (this process's) as the other process left its copy."""
    state = dict(state)
    pending = state.pop("_pending")
    gen.__dict__.update(state)
    if gen.detokenizer is not None:
        gen.detokenizer.set_pending(pending)


def arrived(state: dict, model: NumpyModel, tokenizer) -> Generator:
    """A generator rebuilt in this process around its own model."""
    gen = Generator.__new__(Generator)
    gen.model, gen.config, gen.tokenizer = model, model.config, tokenizer
    gen.vocab = tokenizer.vocab if tokenizer else None
    gen._last_choice = None
    gen.detokenizer = tokenizer.detokenizer(state["batch_size"]) if tokenizer else None
    take_back(gen, state)
    return gen


class ProcessEngine:
    """An `Engine` in a child process, driven from the server's process. `model` is the server's
    own copy (the one its generators feed primes with); the child is given its weights. A child
    that dies (killed, out of memory) ends the streams it held and is started again."""

    def __init__(
        self,
        model: NumpyModel,
        weights: dict[str, np.ndarray],
        tokenizer,
        max_rows: int = 256,
        name: str = "model",
        threads: int = 1,
    ):
        self.model, self.max_rows = model, max_rows
        self._start_args = (weights, model.config, tokenizer, threads)
        self.steps = 0
        self.restarts = 0
        self.made = 0  # items generated, all rows together (for /metrics)
        self.step_time = Histogram()  # the child's steps, as it reports them
        self._streams: dict[int, Stream] = {}
        self._fresh: set[int] = set()  # streams sent to the child that have not made an item yet
        self._ids = count()
        self._lock = threading.Lock()  # the streams, the ids, the child, and writes to the pipe
        self._closing = False
        self._start()
        self._reader = threading.Thread(target=self._read, name=f"seqgen-engine-reader-{name}", daemon=True)
        self._reader.start()

    def _start(self) -> None:
        # A fresh interpreter running this module, not multiprocessing's spawn: that would import
        # the server's main script again in the child, which a script without a main guard runs.
        ours, theirs = socket.socketpair()
        env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "seqgen.serve.remote", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            env=env,
        )
        theirs.close()
        self._conn = Connection(ours.detach())
        self._conn.send(self._start_args)

    @property
    def rows(self) -> int:
        with self._lock:
            return sum(s.rows for s in self._streams.values())

    @property
    def streams(self) -> int:
        with self._lock:
            return len(self._streams)

    @property
    def waiting(self) -> int:
        """Streams sent to the child that have not been stepped yet."""
        with self._lock:
            return len(self._fresh)

    def submit(self, stream: Stream) -> None:
        if stream.gen.model is not self.model:
            raise ValueError("a stream's generator must use its engine's model")
        if stream.length <= 0:
            stream.deliver(Piece(np.zeros(0), np.zeros(0, bool), None, np.zeros(0, bool), True))
            return
        with self._lock:
            if self._closing:
                raise Busy("the server is shutting down")
            rows = sum(s.rows for s in self._streams.values())
            if rows + stream.rows > self.max_rows:
                raise Busy(f"{rows} rows are generating; at most {self.max_rows} at once")
            sid = next(self._ids)
            message = pickle.dumps(
                ("join", sid, portable(stream.gen), stream.length, stream.options()), protocol=pickle.HIGHEST_PROTOCOL
            )
            try:
                self._conn.send_bytes(message)
            except OSError:  # the child has just gone; the reader is starting another
                raise Busy("the engine is restarting") from None
            self._streams[sid] = stream
            self._fresh.add(sid)
            stream.on_cancel = lambda: self._send(("cancel", sid))

    def cancel_all(self) -> None:
        """Cancel every stream; the engine goes on taking new ones."""
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            stream.cancel()

    def _send(self, message: tuple) -> None:
        with self._lock:
            try:
                self._conn.send(message)
            except OSError:  # the child has gone; the reader ends its streams
                pass

    def close(self, timeout: float | None = None) -> None:
        """Cancel every stream, stop the child."""
        with self._lock:
            self._closing = True
        self._send(("close",))
        self._reader.join(timeout)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _read(self) -> None:
        """The server's side of the pipe: each step's pieces to their streams; a child that dies
        is started again (unless the server is closing)."""
        while True:
            try:
                self._read_until_closed()
                break
            except (EOFError, OSError):
                self._end_all()
                with self._lock:
                    if self._closing:
                        break
                    log.error(
                        "the engine's process ended (exit code %s); its streams ended, starting another",
                        self._process.wait(),
                    )
                    self.restarts += 1
                    self._conn.close()
                    self._start()
        self._end_all()

    def _read_until_closed(self) -> None:
        while True:
            message = self._conn.recv()
            if message[0] == "closed":
                return
            _, self.steps, pieces, times = message
            for seconds in times:
                self.step_time.observe(seconds)
            for sid, piece, made, stopped, cancelled, state in pieces:
                try:
                    self._deliver(sid, unpacked(piece), made, np.array(stopped, dtype=bool), cancelled, state)
                except Exception:  # a bug in one stream's delivery must not stop every other's
                    log.exception("passing on a piece failed")

    def _deliver(
        self, sid: int, piece: Piece, made: int, stopped: np.ndarray, cancelled: bool, state: dict | None
    ) -> None:
        with self._lock:
            stream = self._streams[sid]
            self._fresh.discard(sid)
            if piece.done:
                del self._streams[sid]
        self.made += int(np.count_nonzero(piece.live))  # only this thread writes it
        stream.made, stream.stopped = made, stopped
        if piece.done:
            stream.live[:] = False  # a cancel from now on has nothing to stop
        stream.cancelled = stream.cancelled or cancelled
        if state is not None:
            # Before the client hears of it and perhaps uses its session: the generator as the
            # engine left it.
            take_back(stream.gen, state)
        stream.deliver(piece)

    def _end_all(self) -> None:
        """End the streams the child held: their generators stay as they were before (`lost`)."""
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
            self._fresh.clear()
        for stream in streams:
            stream.cancelled = stream.lost = True
            stream.live[:] = False
            stream.deliver(Piece(np.zeros(0), np.zeros(0, bool), None, np.zeros(stream.rows, dtype=bool), True))


def run_child(weights: dict, config, tokenizer, threads: int, conn) -> None:
    """The child process: an `Engine` over copies of the server's generators, fed from `conn`."""
    model = NumpyModel(weights, config, threads=threads)
    outbox: list[tuple] = []  # the pieces of the step being taken; only the engine's thread uses it
    streams: dict[int, Stream] = {}
    counted = [0]  # the steps whose time is in `times`
    times: list[float] = []  # of the steps not reported yet

    # A thread of its own writing to the pipe while the engine goes on was measured level with
    # this (64 clients, three rounds each way): the message is a few kilobytes of lists.
    def flush(steps: int) -> None:  # the engine's thread, after each step
        if steps > counted[0]:  # a round in which streams only left took no step
            times.append(engine.last_step)
            counted[0] = steps
        if outbox:
            # The steps' times go with the next pieces: a step that only fed prompts made none.
            try:
                conn.send(("step", steps, outbox[:], times[:]))
            except OSError:
                pass  # the server has gone; it will not read what is left either
            outbox.clear()
            times.clear()

    engine = Engine(model, max_rows=1 << 30, name="child", after_step=flush)
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                break
            if message[0] == "join":
                _, sid, state, length, options = message
                gen = arrived(state, model, tokenizer)
                stream = Stream(gen, length, None, **options)
                stream.deliver = _collector(sid, stream, outbox, streams)
                streams[sid] = stream
                engine.submit(stream)
            elif message[0] == "cancel":
                stream = streams.get(message[1])
                if stream is not None:
                    stream.cancel()
            elif message[0] == "close":
                break
    finally:
        engine.close()
        flush(engine.steps)
        try:
            conn.send(("closed",))
        except OSError:
            pass


def _collector(sid: int, stream: Stream, outbox: list, streams: dict):
    """A stream's `deliver` in the child: its pieces wait in `outbox` for the step's message; the
    last carries the generator back."""

    def deliver(piece: Piece) -> None:
        state = None
        if piece.done:
            state = portable(stream.gen)
            streams.pop(sid, None)
        outbox.append((sid, packed(piece), stream.made, stream.stopped.tolist(), stream.cancelled, state))

    return deliver


# A piece crosses as plain lists: pickling 64 pieces' small arrays took 0.52 ms a step, as
# lists 0.05 ms (and 0.11 ms to make them arrays again on the other side).
def packed(piece: Piece) -> tuple:
    logprobs = None if piece.logprobs is None else piece.logprobs.tolist()
    return (
        piece.items.dtype.str,
        piece.items.tolist(),
        piece.live.tolist(),
        logprobs,
        piece.ended.tolist(),
        piece.done,
        piece.texts,
        piece.top,
    )


def unpacked(fields: tuple) -> Piece:
    dtype, items, live, logprobs, ended, done, texts, top = fields
    return Piece(
        np.array(items, dtype=dtype),
        np.array(live, dtype=bool),
        None if logprobs is None else np.array(logprobs),
        np.array(ended, dtype=bool),
        done,
        texts,
        top,
    )


if __name__ == "__main__":
    # The server stops its engine itself (a "close" message, or its end of the pipe closing): a
    # Ctrl-C in the terminal, or a SIGTERM to the whole group (systemd, `kill -- -PGID`), reaches
    # this process too and must not end streams the server is still letting finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    channel = Connection(int(sys.argv[1]))
    run_child(*channel.recv(), channel)
