"""Sessions: generators that stay alive between requests, each a few kilobytes of recurrent state.

A session is made from a prime (or a saved state), fed more input, asked for more items, saved
and restored; it goes when deleted or after `ttl` seconds without a request. There are at most
`limit` at once, so memory stays bounded whatever clients do.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass, field

from ..generate.generator import Generator
from .models import Served
from .protocol import RequestError


@dataclass
class Session:
    id: str
    served: Served
    gen: Generator
    unknown: str = "error"
    created: float = field(default_factory=time.monotonic)
    born: float = field(default_factory=time.time)  # wall time, for the `created` of its completions
    used: float = field(default_factory=time.monotonic)
    busy: bool = False  # generating: the engine owns its state until it is done
    fed: int = 0
    generated: int = 0

    def describe(self, ttl: float) -> dict:
        now = time.monotonic()
        return {
            "id": self.id,
            "object": "session",
            "model": self.served.name,
            "fed": self.fed,
            "generated": self.generated,
            "age": round(now - self.created, 3),
            "expires_in": round(max(0.0, ttl - (now - self.used)), 3),
        }


class Sessions:
    def __init__(self, limit: int, ttl: float):
        self.limit, self.ttl = limit, ttl
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def add(self, served: Served, gen: Generator, fed: int, unknown: str = "error") -> Session:
        self.sweep()
        if len(self._sessions) >= self.limit:
            raise RequestError(
                f"{self.limit} sessions are open, the most this server keeps; delete one "
                f"(DELETE /v1/sessions/ID) or wait for one to expire",
                429,
                self.next_free(),
            )
        session = Session(uuid.uuid4().hex, served, gen, unknown, fed=fed)
        self._sessions[session.id] = session
        return session

    def next_free(self) -> int:
        """Whole seconds until a session expires and frees a place, if none is deleted first: the
        longest idle one's; a session generating now is not idle, so with every one busy, a full
        time to live."""
        now = time.monotonic()
        idle = [self.ttl - (now - s.used) for s in self._sessions.values() if not s.busy]
        return max(1, math.ceil(min(idle, default=self.ttl)))

    def get(self, session_id: str, idle: bool = True) -> Session:
        """The session, its idle clock restarted; with `idle`, one that is not generating now."""
        session = self._sessions.get(session_id)
        if session is None or self._expired(session):
            self._sessions.pop(session_id, None)
            raise RequestError(f"no session {session_id} (it was deleted, or expired after {self.ttl:g} s idle)", 404)
        if idle and session.busy:
            raise RequestError(f"session {session_id} is generating; wait for that request to end", 409)
        session.used = time.monotonic()
        return session

    def remove(self, session_id: str) -> Session:
        session = self.get(session_id, idle=False)
        if session.busy:
            raise RequestError(f"session {session_id} is generating; wait for that request to end", 409)
        return self._sessions.pop(session_id)

    def sweep(self) -> int:
        """Drop the expired sessions; returns how many went."""
        gone = [s.id for s in self._sessions.values() if self._expired(s)]
        for session_id in gone:
            del self._sessions[session_id]
        return len(gone)

    def _expired(self, session: Session) -> bool:
        return not session.busy and time.monotonic() - session.used > self.ttl

    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(min(max(self.ttl / 4, 0.05), 30.0))
            self.sweep()
