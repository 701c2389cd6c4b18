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
        self._ringing: list = []  # asyncio.Events, or anything else with a set()
        self._scheduled = False

    def ring(self, ready) -> None:  # the engine's thread; `ready`: what to `set()` on the loop
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
    once for everything that arrived since it last looked, not once per piece; a whole answer's
    waiter only when a stream has ended (`ended`)."""

    def __init__(self):
        self._bell = doorbell()
        self._pieces: deque[tuple[int, Piece]] = deque()
        self._ready = asyncio.Event()
        self._signalled = False
        self._end = _EndSignal()

    def deliver(self, piece: Piece, stream: int = 0) -> None:  # the engine's thread
        self._pieces.append((stream, piece))
        if piece.done:
            self._bell.ring(self._end)
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
        self._end.arrived = False
        pieces = []
        while self._pieces:
            pieces.append(self._pieces.popleft())
        return pieces

    async def ended(self) -> None:
        """Wait until a stream's last piece has arrived since the last `drain`. A whole answer
        waits so: woken every step instead, 64 clients' whole answers cost the event loop a task
        switch per client per step, on the core the engine's second thread wants."""
        await self._end.wait(None)

    async def pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if a stream's last piece arrives meanwhile: the end of an answer
        is not held back (with a 0.05 s interval, one client's 300 characters came 1,124 a
        second streamed against 1,336 whole, most of the gap the last event's wait)."""
        await self._end.wait(seconds)


class _EndSignal:
    """Set on the event loop (by the doorbell) when a stream's last piece has arrived."""

    def __init__(self):
        self.arrived = False
        self._waiter: asyncio.Future | None = None

    def set(self) -> None:
        self.arrived = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, seconds: float | None) -> None:
        """Until it is set, or `seconds` have passed (None: no limit)."""
        if self.arrived:
            return
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = None if seconds is None else loop.call_later(seconds, lambda: waiter.done() or waiter.set_result(None))
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()


def finite_or_none(value) -> float | None:
    """A value for JSON, which has no NaN or infinity: those (a model driven out of its range by
    extreme settings) become null."""
    value = float(value)
    return value if np.isfinite(value) else None


class Stops:
    """What ends a row's returned text: the first stop string it made, or a match of a pattern (a
    chat's next turn), both left out of the text. While a row streams, the end of its text that
    may be the beginning of one is held back until it is known not to be."""

    def __init__(self, strings: list[str] | None = None, patterns: list[tuple[str, str]] | None = None):
        """`patterns`: pairs of a regular expression and one matching, at the end of a text, what
        may begin a match of the first."""
        self.strings = list(strings or [])
        self.patterns = [(re.compile(whole), re.compile(begun)) for whole, begun in patterns or []]

    def find(self, text: str, begin: int) -> int | None:
        """Where the stop that ended the row begins: of those in the text after `begin`, the one
        completed first."""
        found = []
        for stop in self.strings:
            at = text.find(stop, begin)
            if at >= 0:
                found.append((at + len(stop), at))
        for pattern, _ in self.patterns:
            match = pattern.search(text, begin)
            if match:
                found.append((match.end(), match.start()))
        return min(found)[1] if found else None

    def held(self, text: str, begin: int) -> int:
        """How many characters at the end of `text` (after `begin`) may begin a stop."""
        most = 0
        for stop in self.strings:
            for k in range(min(len(stop) - 1, len(text) - begin), most, -1):
                if text.endswith(stop[:k]):
                    most = k
                    break
        tail = text[max(begin, len(text) - PatternStopMatcher.KEEP) :]
        for _, begun in self.patterns:
            match = begun.search(tail)
            if match:
                most = max(most, len(tail) - match.start())
        return most


NOT_SPACE = re.compile(r"\S")


@dataclass
class Row:
    """One row's output: its text and the tokens it came in (where each starts in the text, its
    log-probability, the most likely tokens beside it), or its values; and how much has been sent."""

    text: str = ""
    tokens: list[str] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    logprobs: list[float | None] = field(default_factory=list)
    tops: list[list | None] = field(default_factory=list)
    values: list = field(default_factory=list)
    begin: int = 0  # where the generated text begins (after an echoed prompt)
    echoed: int = 0  # tokens of the prompt, echoed
    finish: str | None = None
    end: int | None = None  # where the returned text ends, once the row is over
    start: int | None = None  # where it begins: 0, or a chat's first character that is not a space
    sent: int = 0
    sent_tokens: int = 0
    sent_values: int = 0
    reported: bool = False  # its finish_reason has gone out

    def add(self, text: str, logprob: float | None = None, top: list | None = None) -> None:
        self.offsets.append(len(self.text))
        self.tokens.append(text)
        self.text += text
        self.logprobs.append(logprob)
        self.tops.append(top)

    @property
    def made(self) -> int:
        return len(self.tokens) - self.echoed + len(self.values)

    @property
    def score(self) -> float:
        """The summed log-probability of what the row made (best_of ranks rows by it)."""
        return float(sum(lp for lp in self.logprobs[self.echoed :] if lp is not None))

    def span(self, stops: Stops, strip: bool) -> tuple[int, int] | None:
        """The returned text's [start, end) as far as it can be told: a finished row's all of it;
        a running row's up to what may begin a stop, and only whole tokens. None: nothing yet."""
        if self.finish is not None:
            end = self.end
        else:
            end = len(self.text) - stops.held(self.text, self.begin)
            k = bisect.bisect_right(self.offsets, end) - 1
            if k >= 0 and self.offsets[k] < end < self.offsets[k] + len(self.tokens[k]):
                end = self.offsets[k]
        if self.start is None:
            if not strip:
                self.start = 0
            else:  # a chat's answer begins at its first character that is not a space
                match = NOT_SPACE.search(self.text, self.begin, max(end, self.begin))
                if match:
                    self.start = match.start()
                elif self.finish is not None:
                    self.start = end
                else:
                    return None
        return self.start, max(end, self.start)

    def fresh(self, stops: Stops, strip: bool) -> tuple[str, range]:
        """The text and the tokens not sent yet that may go out now; they count as sent."""
        span = self.span(stops, strip)
        if span is None:
            return "", range(0)
        start, end = span
        low = max(self.sent, start)
        text = self.text[low:end] if end > low else ""
        whole = self.finish is not None and end == len(self.text)  # its last tokens may have no text of their own
        last = max(len(self.tokens) if whole else bisect.bisect_left(self.offsets, end), self.sent_tokens)
        first = self.sent_tokens
        while first < last and self.offsets[first] < start and self.offsets[first] + len(self.tokens[first]) <= start:
            first += 1
        self.sent, self.sent_tokens = max(self.sent, end), max(self.sent_tokens, last)
        return text, range(first, last)

    def fresh_values(self) -> list:
        values = self.values[self.sent_values :]
        self.sent_values = len(self.values)
        return values


class Output:
    """What a request's streams made, a `Row` per row, the streams' rows one after another."""

    def __init__(
        self,
        served: Served,
        sizes: list[int],
        stops: Stops | None = None,
        strip: bool = False,
        echo: list[list[tuple]] | None = None,
    ):
        """`sizes`: each stream's rows; `strip`: the returned text leaves out leading spaces (a
        chat's answer); `echo`: the tokens of each stream's prompt, which its rows' text begins
        with, each as `Row.add` takes it (its text, and perhaps its log-probability and alternatives)."""
        self.served, self.stops, self.strip = served, stops or Stops(), strip
        self.first = [sum(sizes[:k]) for k in range(len(sizes))]
        self.rows = [Row() for _ in range(sum(sizes))]
        for k, size in enumerate(sizes):
            for row in self.rows[self.first[k] : self.first[k] + size]:
                for token in echo[k] if echo else []:
                    row.add(*token)
                row.begin, row.echoed = len(row.text), len(row.tokens)
        self.cancelled = self.lost = False  # a stream the server ended before its rows did

    def add(self, number: int, piece: Piece, stream: Stream) -> None:
        """Take in a piece of stream `number`."""
        rows = self.rows[self.first[number] : self.first[number] + stream.rows]
        # Once per token of every stream: plain lists, not NumPy's per-call cost on a row or two.
        for k, live in enumerate(piece.live.tolist()):
            if not live:
                continue
            if piece.texts is not None:
                logprob = None if piece.logprobs is None else float(piece.logprobs[k])
                rows[k].add(piece.texts[k], logprob, None if piece.top is None else piece.top[k])
            else:
                rows[k].values.append(finite_or_none(piece.items[k]))
        if piece.ended.any():
            for k in np.flatnonzero(piece.ended):
                self._finish(rows[k], "stop" if stream.stopped[k] else "length")
        if piece.done:
            for row in rows:
                if row.finish is None and (stream.cancelled or stream.lost):
                    self.cancelled, self.lost = True, self.lost or stream.lost
                elif row.finish is None:
                    self._finish(row, "length")

    def _finish(self, row: Row, reason: str) -> None:
        row.finish = reason
        cut = self.stops.find(row.text, row.begin) if reason == "stop" else None
        row.end = len(row.text) if cut is None else cut

    @property
    def count(self) -> int:
        return sum(row.made for row in self.rows)

    def why_cancelled(self) -> str:
        if self.lost:
            return "the engine generating this request stopped (it is being restarted): try again"
        return "the server is stopping: the generation was cut short"


class Shape:
    """How an answer's choices look: OpenAI's completions (this class) or chat completions."""

    object = "text_completion"
    chunk_object = "text_completion"

    def __init__(self, served: Served, top: int | None):
        """`top`: log-probabilities with that many alternatives (None: none)."""
        self.served, self.top = served, top
        self.names = served.tokenizer.vocab if served.tokenizer is not None else None

    def choice(
        self, index: int, row: Row, text: str, tokens: range, values: list, finish: str | None, whole: bool
    ) -> dict:
        choice: dict = {"index": index}
        choice[self.served.data_kind.answer_key] = self.served.data_kind.answer(text, values)
        choice["logprobs"] = self.logprobs(row, tokens) if self.top is not None else None
        choice["finish_reason"] = finish
        return choice

    def start(self, rows: int) -> list[dict]:
        """The choices of a streamed answer's first event (none, for completions)."""
        return []

    def logprobs(self, row: Row, tokens: range) -> dict:
        start = row.start or 0
        tops = []
        for k in tokens:
            top = row.tops[k]
            if row.logprobs[k] is None:
                tops.append(None)
                continue
            entry = {self.names[i]: lp for i, lp in (top or [])}
            entry.setdefault(row.tokens[k], row.logprobs[k])
            tops.append(entry)
        return {
            "tokens": [row.tokens[k] for k in tokens],
            "token_logprobs": [row.logprobs[k] for k in tokens],
            "top_logprobs": tops,
            "text_offset": [row.offsets[k] - start for k in tokens],
        }


class ChatShape(Shape):
    object = "chat.completion"
    chunk_object = "chat.completion.chunk"

    def choice(
        self, index: int, row: Row, text: str, tokens: range, values: list, finish: str | None, whole: bool
    ) -> dict:
        logprobs = {"content": self.content_logprobs(row, tokens)} if self.top is not None else None
        if whole:
            return {
                "index": index,
                "message": {"role": "assistant", "content": text},
                "logprobs": logprobs,
                "finish_reason": finish,
            }
        return {
            "index": index,
            "delta": {"content": text} if text else {},
            "logprobs": logprobs,
            "finish_reason": finish,
        }

    def start(self, rows: int) -> list[dict]:
        return [
            {"index": k, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
            for k in range(rows)
        ]

    def content_logprobs(self, row: Row, tokens: range) -> list[dict]:
        made = []
        for k in tokens:
            alternatives = [
                {"token": self.names[i], "logprob": lp, "bytes": list(self.names[i].encode())}
                for i, lp in (row.tops[k] or [])
            ][: self.top]
            made.append(
                {
                    "token": row.tokens[k],
                    "logprob": row.logprobs[k],
                    "bytes": list(row.tokens[k].encode()),
                    "top_logprobs": alternatives,
                }
            )
        return made


@dataclass
class Job:
    """A request's streams (one per prompt), what gathers their output and how to answer."""

    served: Served
    streams: list[Stream]
    inbox: Inbox
    output: Output
    shape: Shape
    meta: dict
    fed: int = 0  # prompt tokens
    stream: bool = False
    usage_chunk: bool = False  # a streamed answer ends with a chunk of usage
    keep: int | None = None  # best_of: of each stream's rows, the `keep` of highest summed log-probability

    def usage(self) -> dict:
        count = self.output.count
        return {"prompt_tokens": self.fed, "completion_tokens": count, "total_tokens": self.fed + count}

    def kept_rows(self) -> list[int]:
        if self.keep is None:
            return list(range(len(self.output.rows)))
        kept = []
        for first, stream in zip(self.output.first, self.streams):
            group = range(first, first + stream.rows)
            kept += sorted(group, key=lambda r: -self.output.rows[r].score)[: self.keep]
        return kept


def make_stream(
    gen,
    fields: dict,
    stops: list[str],
    deliver,
    final: bool = False,
    patterns: list[str] | None = None,
    top: int | None = None,
    bias: np.ndarray | None = None,
    logprobs: bool = False,
    prefill: np.ndarray | None = None,
) -> Stream:
    """`final`: the text ends with this stream (a completion; a session's goes on). A stop string
    with a character the model never makes can never match: it is left out rather than refused,
    as OpenAI's API takes any. `top`: report log-probabilities and that many alternatives."""
    possible = [stop for stop in stops if not gen.tokenizer.unknown(stop)]
    return Stream(
        gen,
        fields["max_tokens"],
        deliver,
        stops=possible,
        logprobs=logprobs or top is not None,
        final=final,
        patterns=list(patterns or []),
        top_logprobs=top or 0,
        bias=bias,
        prefill=prefill,
    )


async def respond(job: Job, interval: float = 0.0):
    """Hand the job's streams to their engine and answer: the whole result, or server-sent events
    at most one per `interval` seconds (each carrying what was made since the last)."""
    submitted = []
    try:
        for stream in job.streams:
            job.served.engine.submit(stream)
            submitted.append(stream)
    except Busy as e:
        for stream in submitted:
            stream.cancel()
        raise RequestError(f"the server is busy ({e}); try again shortly", 503) from None
    job.served.prompt_tokens += job.fed
    if job.stream:
        return StreamingResponse(
            _events(job, interval), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
    done = 0
    try:
        while done < len(job.streams):
            await job.inbox.ended()
            for number, piece in job.inbox.drain():
                job.output.add(number, piece, job.streams[number])
                done += piece.done
    finally:
        for stream in job.streams:
            stream.cancel()  # a no-op once done; otherwise the client went away
    if job.output.cancelled:
        raise RequestError(job.output.why_cancelled(), 503)
    output, shape = job.output, job.shape
    choices = []
    for index, r in enumerate(job.kept_rows()):
        row = output.rows[r]
        text, tokens = row.fresh(output.stops, output.strip)
        choices.append(shape.choice(index, row, text, tokens, row.fresh_values(), row.finish, whole=True))
    return JSONResponse({**job.meta, "object": shape.object, "choices": choices, "usage": job.usage()})


def _event(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"


# The events of all the answers a model streams at once, a second, beyond which each answer's
# events come further apart than the interval asked for. An event cost the server about 60 us and
# an openai SDK client in Python about 200 us (64 clients on one 2-core Intel Xeon, 0.05 s apart:
# 0.13 s more of the server's CPU and 0.37 s more of the clients' than whole answers, a round of
# 2,200 events): 320 a second is 2% of a core here and 6% of the clients'. At 64 streams that is
# 0.2 s apart, 40 characters an event; those 64 clients got 10,400-10,900 characters/s at 0.05 s,
# 11,300-12,000 at 0.1 s and 13,000 at 0.2 s (rounds of benchmarks/serve.py's SDK clients against
# `seqgen serve --stream-interval S`, before this rule).
EVENTS_PER_SECOND = 320


def event_interval(least: float, streams: int) -> float:
    """The time between two events of one of `streams` answers streaming at once: `least` (the
    server's `stream_interval`), longer when they would pass EVENTS_PER_SECOND. An interval of 0
    asks for every item as it comes, whatever the load."""
    return least if least == 0 else max(least, streams / EVENTS_PER_SECOND)


async def _events(job: Job, interval: float):
    output, shape = job.output, job.shape
    meta = {**job.meta, "object": shape.chunk_object}
    if job.usage_chunk:
        meta["usage"] = None  # as OpenAI's: every chunk has it, null but in the last
    done = 0
    last = -interval
    loop = asyncio.get_running_loop()
    job.served.streaming += 1
    try:
        opening = shape.start(len(output.rows))
        if opening:
            yield _event({**meta, "choices": opening})
        while done < len(job.streams):
            pieces = await job.inbox.take()
            # An event per item costs the server (and the client) more than making the item: under
            # load, gather what comes within `interval` of the last event into one.
            wait = last + event_interval(interval, job.served.streaming) - loop.time()
            if wait > 0 and not any(p.done for _, p in pieces):
                await job.inbox.pause(wait)
                pieces += job.inbox.drain()
            last = loop.time()
            for number, piece in pieces:
                output.add(number, piece, job.streams[number])
                done += piece.done
            choices = []
            for index, row in enumerate(output.rows):
                text, tokens = row.fresh(output.stops, output.strip)
                values = row.fresh_values()
                finish = row.finish if row.finish is not None and not row.reported else None
                if text or len(tokens) or values or finish:
                    row.reported = row.reported or finish is not None
                    choices.append(shape.choice(index, row, text, tokens, values, finish, whole=False))
            if choices:
                yield _event({**meta, "choices": choices})
        if output.cancelled:
            # OpenAI's clients raise on an error event: better than a finish_reason that would say
            # the text is whole.
            yield _event({"error": {"message": output.why_cancelled(), "type": "server_error"}})
        elif job.usage_chunk:
            yield _event({**meta, "choices": [], "usage": job.usage()})
        yield "data: [DONE]\n\n"
    finally:
        job.served.streaming -= 1
        for stream in job.streams:
            stream.cancel()
