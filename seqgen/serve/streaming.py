"""Between the engine's thread and HTTP: pieces arrive in an `Inbox` on the event loop, are
gathered per row in an `Output`, and go out as one JSON answer or as server-sent events, shaped
as OpenAI's completions or chat completions (a `Shape`)."""

from __future__ import annotations

import asyncio
import bisect
import json
import re
import threading
import weakref
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from starlette.responses import JSONResponse, StreamingResponse

from .engine import Busy, PatternStopMatcher, Piece, Stream
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
    """Pieces from the engine's thread, waited for on the event loop, each with the number of the
    stream it is from (a request of several prompts has a stream per prompt). The loop is woken
    once for everything that arrived since it last looked, not once per piece."""

    def __init__(self):
        self._bell = doorbell()
        self._pieces: deque[tuple[int, Piece]] = deque()
        self._ready = asyncio.Event()
        self._signalled = False

    def deliver(self, piece: Piece, stream: int = 0) -> None:  # the engine's thread
        self._pieces.append((stream, piece))
        if not self._signalled:
            self._signalled = True
            self._bell.ring(self._ready)

    async def take(self) -> list[tuple[int, Piece]]:
        """Every piece that has arrived, waiting for one if none has."""
        await self._ready.wait()
        return self.drain()

    def drain(self) -> list[tuple[int, Piece]]:
        """Every piece that has arrived (perhaps none), without waiting."""
        self._ready.clear()
        self._signalled = False
        pieces = []
        while self._pieces:
            pieces.append(self._pieces.popleft())
        return pieces


