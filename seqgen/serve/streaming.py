"""Between the engine's thread and HTTP: pieces arrive in an `Inbox` on the event loop, are
gathered per row in an `Output`, and go out as one JSON answer or as server-sent events."""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections import deque

import numpy as np
from starlette.responses import JSONResponse, StreamingResponse

from ..generate.api import check_stop
from .engine import Busy, Piece, Stream
from .models import Served
from .protocol import RequestError


class Doorbell:
    """Wakes an event loop from the engine's thread once for all the inboxes that got pieces since
    it last looked. A call into the loop from another thread is a system call; one per stream per
    step costs more than the rest of the step's work for that stream."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._lock = threading.Lock()
        self._ringing: list[asyncio.Event] = []
        self._scheduled = False

    def ring(self, ready: asyncio.Event) -> None:  # the engine's thread
        with self._lock:
            self._ringing.append(ready)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._answer)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            pass

    def _answer(self) -> None:
        with self._lock:
            ringing, self._ringing, self._scheduled = self._ringing, [], False
        for ready in ringing:
            ready.set()


_doorbells: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def doorbell() -> Doorbell:
    """The running event loop's doorbell."""
    loop = asyncio.get_running_loop()
    bell = _doorbells.get(loop)
    if bell is None:
        bell = _doorbells[loop] = Doorbell(loop)
    return bell


class Inbox:
    """Pieces from the engine's thread, waited for on the event loop. The loop is woken once for
    everything that arrived since it last looked, not once per piece."""

    def __init__(self):
        self._bell = doorbell()
        self._pieces: deque[Piece] = deque()
        self._ready = asyncio.Event()
        self._signalled = False

    def deliver(self, piece: Piece) -> None:  # the engine's thread
        self._pieces.append(piece)
        if not self._signalled:
            self._signalled = True
            self._bell.ring(self._ready)

    async def take(self) -> list[Piece]:
        """Every piece that has arrived, waiting for one if none has."""
        await self._ready.wait()
        return self.drain()

    def drain(self) -> list[Piece]:
        """Every piece that has arrived (perhaps none), without waiting."""
        self._ready.clear()
        self._signalled = False
        pieces = []
        while self._pieces:
            pieces.append(self._pieces.popleft())
        return pieces


def finite_or_none(value) -> float | None:
    """A value for JSON, which has no NaN or infinity: those (a model driven out of its range by
    extreme settings) become null."""
    value = float(value)
    return value if np.isfinite(value) else None


class Output:
    """What a stream made, per row: items (text pieces or values), log-probabilities, the reason
    each row ended."""

    def __init__(self, served: Served, rows: int):
        self.served, self.rows = served, rows
        self.items: list[list] = [[] for _ in range(rows)]
        self.logprobs: list[list[float]] = [[] for _ in range(rows)]
        self.finish: list[str | None] = [None] * rows

    def add(self, piece: Piece, stream: Stream) -> list[int]:
        """Take in a piece; returns the rows it changed."""
        changed = []
        for row in np.flatnonzero(piece.live):
            item = piece.items[row]
            self.items[row].append(piece.texts[row] if self.served.is_text else finite_or_none(item))
            if piece.logprobs is not None:
                self.logprobs[row].append(float(piece.logprobs[row]))
            changed.append(int(row))
        for row in np.flatnonzero(piece.ended):
            self.finish[row] = "stop" if stream.stopped[row] else "length"
        if piece.done:
            self.finish = [reason or ("cancelled" if stream.cancelled else "length") for reason in self.finish]
        return changed

    def choice(self, row: int, since: int = 0, logprobs: bool = False) -> dict:
        items = self.items[row][since:]
        choice = {"index": row}
        if self.served.is_text:
            choice["text"] = "".join(items)
        else:
            choice["values"] = items
        if logprobs:
            choice["logprobs"] = {"tokens": items if self.served.is_text else None,
                                  "token_logprobs": self.logprobs[row][since:]}
        choice["finish_reason"] = self.finish[row]
        return choice

    @property
    def count(self) -> int:
        return sum(len(items) for items in self.items)


def make_stream(gen, fields: dict, stops: list[str], inbox: Inbox, final: bool = False) -> Stream:
    """`final`: the text ends with this stream (a completion; a session's goes on)."""
    for stop in stops:
        check_stop(gen, stop)  # a string the model can never make is the caller's mistake: 400
    return Stream(gen, fields["max_tokens"], inbox.deliver, stops=stops, logprobs=bool(fields["logprobs"]), final=final)


async def respond(served: Served, stream: Stream, inbox: Inbox, fields: dict, meta: dict, output: Output,
                  interval: float = 0.0):
    """Hand `stream` to its engine and answer: the whole result, or server-sent events at most one
    per `interval` seconds (each carrying what was made since the last)."""
    try:
        served.engine.submit(stream)
    except Busy as e:
        raise RequestError(f"the server is busy ({e}); try again shortly", 503) from None
    if fields["stream"]:
        return StreamingResponse(_events(stream, inbox, meta, output, fields["logprobs"], interval),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    try:
        while True:
            pieces = await inbox.take()
            for piece in pieces:
                output.add(piece, stream)
            if any(p.done for p in pieces):
                break
    finally:
        stream.cancel()  # a no-op once done; otherwise the client went away
    fed = meta.pop("_fed", 0)
    return JSONResponse({**meta, "choices": [output.choice(r, logprobs=bool(fields["logprobs"]))
                                             for r in range(output.rows)],
                         "usage": {"prompt_tokens": fed, "completion_tokens": output.count,
                                   "total_tokens": fed + output.count}})


async def _events(stream: Stream, inbox: Inbox, meta: dict, output: Output, logprobs: bool, interval: float):
    meta = {k: v for k, v in meta.items() if not k.startswith("_")}
    sent = [0] * output.rows
    done = False
    last = -interval
    loop = asyncio.get_running_loop()
    try:
        while not done:
            pieces = await inbox.take()
            # An event per item costs the server (and the client) more than making the item: under
            # load, gather what comes within `interval` of the last event into one.
            wait = last + interval - loop.time()
            if wait > 0 and not any(p.done for p in pieces):
                await asyncio.sleep(wait)
                pieces += inbox.drain()
            last = loop.time()
            changed: set[int] = set()
            for piece in pieces:
                changed.update(output.add(piece, stream))
                if piece.ended.any() or piece.done:
                    changed.update(int(r) for r in np.flatnonzero(piece.ended))
                done = done or piece.done
            if done:
                changed.update(range(output.rows))
            choices = []
            for row in sorted(changed):
                choice = output.choice(row, sent[row], bool(logprobs))
                if not done and output.finish[row] is None:
                    choice["finish_reason"] = None
                sent[row] = len(output.items[row])
                choices.append(choice)
            if choices:
                yield f"data: {json.dumps({**meta, 'choices': choices})}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        stream.cancel()

