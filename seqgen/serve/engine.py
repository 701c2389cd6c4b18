"""Continuous batching: one thread per model steps every generating stream together.

A request that generates becomes a `Stream`: a `Generator` of its own (its recurrent state, its
random numbers, its sampling settings) and a number of items still to make. The engine's thread
loops: it takes the streams generating now, lets them draw their next items (`choose_together`,
each from its own random numbers), steps the network once for all their rows, hands each stream
its rows of the output (`Generator.took`), and passes the new items on. A stream joins between
two steps and leaves when it is done, so N clients generating at once cost about one batched step
per item, not N. The batch's recurrent state is one array that the model steps in place, gathered
again only when a stream joins or leaves; meanwhile each generator's state is a view of its rows.
What a stream makes depends on its seed alone: its draws come from its own random numbers, and
the NumPy backend gives a row the same bits in any batch (see model/numpy_backend.py).
"""

from __future__ import annotations

import logging
import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..generate.generator import Generator, choose_together
from ..generate.sampling import stop_matcher
from ..model.numpy_backend import ROWS_PER_THREAD
from .metrics import Histogram


log = logging.getLogger("seqgen.serve")


class Busy(Exception):
    """The engine is generating as many rows as it may; the caller should come back later."""


@dataclass
class Piece:
    """What one step gave a stream: an item per row, which rows it counts for, their log-probabilities
    (text, when asked for), which rows ended at it (by a stop string or the length), and for text
    the text each row's token completed."""

    items: np.ndarray
    live: np.ndarray
    logprobs: np.ndarray | None
    ended: np.ndarray
    done: bool
    texts: list[str] | None = None
    # Per row, the most likely tokens (ids) and their log-probabilities, when asked for.
    top: list[list[tuple[int, float]]] | None = None


@dataclass(eq=False)  # streams are told apart by identity: two alike are still two
class Stream:
    """A generator that makes `length` more items, ending a row early where it makes one of `stops`
    (text). `deliver` is called from the engine's thread with each `Piece`, the last one with
    `done` set (also after `cancel`, with no items)."""

    gen: Generator
    length: int
    deliver: Callable[[Piece], None]
    stops: list[str] = field(default_factory=list)
    logprobs: bool = False
    # Regular expressions that end a row where the text matches them (a chat's next turn).
    patterns: list[str] = field(default_factory=list)
    top_logprobs: int = 0  # how many of the most likely tokens to report beside each chosen one
    bias: np.ndarray | None = None  # added to the logits before each choice (OpenAI's logit_bias)
    # Nothing continues the text after the last step (a completion, not a session): a character
    # whose last bytes never came ends it as U+FFFD instead of being held back.
    final: bool = False
    made: int = 0
    cancelled: bool = False
    # Told of a cancel, where the stream is stepped somewhere else (see remote.ProcessEngine).
    on_cancel: Callable[[], None] | None = None
    # The engine that stepped it went away with its state: the generator is as it was before.
    lost: bool = False
    # Token ids (rows, n) for the engine to feed before the stream generates, one column a step
    # in the batch (a prompt; the generator reset with nothing fed). Fed so, a row's numbers are
    # the same bits as fed in one pass (model/numpy_backend.py), so the text is too.
    prefill: np.ndarray | None = None
    prefilled: int = 0  # columns of `prefill` fed

    def __post_init__(self):
        rows = self.gen.batch_size
        self.live = np.ones(rows, dtype=bool)
        self.matchers = [stop_matcher(stop, self.gen.tokenizer, rows) for stop in self.stops]
        self.matchers += [PatternStopMatcher(pattern, rows) for pattern in self.patterns]
        self.stopped = np.zeros(rows, dtype=bool)  # rows that ended on a stop string (not the length)
        # Whether its items have probabilities to report (a series stream ranked for `best_of`
        # has none): asked once, not every step.
        self.scored = self.gen.data_kind.allows("logprobs")

    @property
    def rows(self) -> int:
        return self.gen.batch_size

    def options(self) -> dict:
        """What the stream asks of an engine besides its generator and length (for another process)."""
        return {
            "stops": self.stops,
            "logprobs": self.logprobs,
            "final": self.final,
            "patterns": self.patterns,
            "top_logprobs": self.top_logprobs,
            "bias": self.bias,
            "prefill": self.prefill,
        }

    @property
    def prefilling(self) -> bool:
        return self.prefill is not None and self.prefilled < self.prefill.shape[1]

    def cancel(self) -> None:
        """Leave at the next step (a client that went away); `deliver` gets a last, empty piece."""
        if self.cancelled or not self.live.any():
            return
        self.cancelled = True
        if self.on_cancel is not None:
            self.on_cancel()


class Engine:
    """The batching thread of one model. `submit` a stream; it is stepped with all the others
    until it is done. At most `max_rows` rows generate at once: beyond that `submit` raises `Busy`."""

    def __init__(
        self, model, max_rows: int = 256, name: str = "model", after_step: Callable[[int], None] | None = None
    ):
        """`after_step` is called from the engine's thread with the count of steps after each round
        of deliveries (a step, or streams leaving)."""
        self.model, self.max_rows, self.after_step = model, max_rows, after_step
        self._streams: list[Stream] = []
        self._waiting: list[Stream] = []
        self._wake = threading.Condition()
        self._closing = False
        self.steps = 0  # batched steps taken, for /health and tests
        self.made = 0  # items generated, all rows together (for /metrics)
        self.step_time = Histogram()
        self.last_step = 0.0  # seconds the latest step took
        self.tuner = ThreadTuner(model) if getattr(model, "threads", 1) > 1 and hasattr(model, "use_threads") else None
        self._members: list[Stream] = []  # the streams whose rows self._state holds, in order
        self._state: list[np.ndarray] = []
        self._thread = threading.Thread(target=self._run, name=f"seqgen-engine-{name}", daemon=True)
        self._thread.start()

    @property
    def rows(self) -> int:
        """Rows generating or waiting to join."""
        with self._wake:
            return sum(s.rows for s in self._streams + self._waiting)

    @property
    def streams(self) -> int:
        """Streams generating or waiting to join."""
        with self._wake:
            return len(self._streams) + len(self._waiting)

    @property
    def waiting(self) -> int:
        """Streams submitted that join at the next step."""
        with self._wake:
            return len(self._waiting)

    def submit(self, stream: Stream) -> None:
        if stream.gen.model is not self.model:
            raise ValueError("a stream's generator must use its engine's model")
        with self._wake:
            if self._closing:
                raise Busy("the server is shutting down")
            rows = sum(s.rows for s in self._streams + self._waiting)
            if rows + stream.rows > self.max_rows:
                raise Busy(f"{rows} rows are generating; at most {self.max_rows} at once")
            if stream.length <= 0:
                stream.deliver(Piece(np.zeros(0), np.zeros(0, bool), None, np.zeros(0, bool), True))
                return
            self._waiting.append(stream)
            self._wake.notify()

    def cancel_all(self) -> None:
        """Cancel every stream; the engine goes on taking new ones."""
        with self._wake:
            for stream in self._streams + self._waiting:
                stream.cancel()
            self._wake.notify()

    def close(self, timeout: float | None = None) -> None:
        """Cancel every stream, stop the thread."""
        with self._wake:
            self._closing = True
            for stream in self._streams + self._waiting:
                stream.cancel()
            self._wake.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not (self._streams or self._waiting or self._closing):
                    self._wake.wait()
                self._streams.extend(self._waiting)
                self._waiting.clear()
                if self._closing and not self._streams:
                    return
            for stream in [s for s in self._streams if s.cancelled]:
                self._leave(stream)
            if self._streams:
                try:
                    self._step(list(self._streams))
                except Exception:  # a bug, not a client's mistake: end these streams, keep serving
                    log.exception("the batched step failed; ending the %d streams in it", len(self._streams))
                    for stream in list(self._streams):
                        stream.cancel()
                        self._leave(stream)
            if self.after_step is not None:
                self.after_step(self.steps)

    def _leave(self, stream: Stream) -> None:
        with self._wake:
            if stream in self._streams:
                self._streams.remove(stream)
        self._release(stream)
        ended = np.zeros(stream.rows, dtype=bool)
        stream.deliver(Piece(np.zeros(0), np.zeros(0, bool), None, ended, True))

    def _step(self, streams: list[Stream]) -> None:
        began = time.perf_counter()
        if streams != self._members:
            self._gather(streams)
        feeding = [stream.prefilling for stream in streams]
        making = [stream for stream, fed in zip(streams, feeding) if not fed]
        for stream in making:
            if stream.bias is not None:  # a fresh output each step: the bias is added once
                stream.gen.last_output = stream.gen.last_output + stream.bias
        made = iter(choose_together([s.gen for s in making]))
        chosen = [
            (stream.prefill[:, stream.prefilled], None) if fed else next(made) for stream, fed in zip(streams, feeding)
        ]
        x = np.concatenate([inputs for inputs, _ in chosen])
        output, state = self.model.step(x, self._state)
        if state is not self._state:  # a backend that does not step in place
            self._state = state
            self._point(streams)
        output = output.copy()  # the model's output buffer is reused by its next step
        self.last_step = time.perf_counter() - began
        self.step_time.observe(self.last_step)
        if self.tuner is not None:
            self.tuner.stepped(len(x), self.last_step)
        self.steps += 1
        row = 0
        for stream, (inputs, items), fed in zip(streams, chosen, feeding):
            stream.gen.took(inputs, output[row : row + stream.rows])
            row += stream.rows
            if fed:
                self._fed(stream, inputs)
            else:
                self._pass_on(stream, items)

    @staticmethod
    def _fed(stream: Stream, inputs: np.ndarray) -> None:
        """A column of the stream's prompt went in: as `Generator.feed` leaves a text generator."""
        stream.gen._remember(inputs[:, None])  # the penalty window, as `feed` fills it
        stream.prefilled += 1

    def _gather(self, streams: list[Stream]) -> None:
        """One state for the batch, which the model steps in place; each generator's state becomes
        a view of its rows, so nothing is copied between steps while the batch stays the same."""
        parts = len(streams[0].gen.state)
        self._state = [np.concatenate([s.gen.state[k] for s in streams], axis=1) for k in range(parts)]
        self._members = list(streams)
        self._point(streams)

    def _point(self, streams: list[Stream]) -> None:
        row = 0
        for stream in streams:
            stream.gen.state = [a[:, row : row + stream.rows] for a in self._state]
            row += stream.rows

    @staticmethod
    def _release(stream: Stream) -> None:
        """A leaving stream's state becomes its own again (not a view into the batch's)."""
        stream.gen.state = [np.array(a) for a in stream.gen.state]

    def _pass_on(self, stream: Stream, items: np.ndarray) -> None:
        live = stream.live.copy()
        logprobs = np.log(stream.gen.last_probability) if stream.logprobs and stream.scored else None
        top = most_likely(stream.gen, stream.top_logprobs) if stream.top_logprobs and stream.scored else None
        stream.made += 1
        self.made += int(np.count_nonzero(live))
        texts = items.text
        for matcher in stream.matchers:
            hit = matcher.update(items, texts) & stream.live
            stream.stopped |= hit
            stream.live &= ~hit
        if stream.made >= stream.length:
            if stream.final and texts is not None:
                texts = [
                    text + rest if on else text for text, rest, on in zip(texts, stream.gen.text_end(), stream.live)
                ]
            stream.live[:] = False
        ended = live & ~stream.live
        done = not stream.live.any()
        if done:
            self._release(stream)  # before the client hears of it and perhaps uses its session
        stream.deliver(Piece(items, live, logprobs, ended, done, texts, top))
        if done:
            with self._wake:
                self._streams.remove(stream)


class ThreadTuner:
    """How many threads the engine's steps take, chosen by timing them as the load changes.

        Whether a second thread helps depends on what else wants the cores. With the clients on
        other machines it does: on a quiet 2-core Xeon a step of 64 rows took 4.0 ms on one thread and
        2.9 ms on two. With the clients on the same cores a thread of the step waits for the
        scheduler, and the step waits for it. Both were measured with 64 openai SDK clients on that
        Xeon: whole answers came 13,760 chars/s on two threads against 11,393 on one, streamed
        answers 10,589 against 10,479. So the engine starts on one thread fewer than its model may
        use and, after its first window of `WINDOW` steps and every `TRIAL_EVERY` windows after that,
        tries the other count for a window, then goes back for one more: the other count is kept if
        its window was faster a row than both windows around it (against the one before alone, one
        noisy window put a round of 64 clients on one thread for 140 of its 300 steps, at 4.3 ms a
        step instead of 3.4). The bits a step gives do
    not depend on the count (see model/numpy_backend.py), so trying one changes no stream's text."""

    WINDOW = 16
    TRIAL_EVERY = 8

    def __init__(self, model):
        self.model = model
        self.counts = (max(1, model.threads - 1), model.threads)
        model.use_threads(self.counts[0])
        self.times: list[float] = []  # seconds a row, of the window being timed
        self.windows = 0
        self.before = 0.0  # the median of the window before a trial
        self.trial: tuple[int, float] | None = None  # the count tried and its window's median
        self.phase = "steady"  # or "trying" (a window on the other count), "checking" (one more on this)

    def stepped(self, rows: int, seconds: float) -> None:
        if rows < 2 * ROWS_PER_THREAD:  # one slice, whatever the count: nothing to learn
            return
        self.times.append(seconds / rows)
        if len(self.times) < self.WINDOW:
            return
        median = statistics.median(self.times)
        self.times.clear()
        if self.phase == "trying":
            self.trial = (self.model.using, median)
            self.model.use_threads(self._other(self.model.using))
            self.phase = "checking"
        elif self.phase == "checking":
            count, trial = self.trial
            if trial < min(self.before, median):
                self.model.use_threads(count)
            self.phase = "steady"
        else:
            self.windows += 1
            if self.windows % self.TRIAL_EVERY == 1:  # the first trial after the first window
                self.before = median
                self.model.use_threads(self._other(self.model.using))
                self.phase = "trying"

    def _other(self, count: int) -> int:
        return self.counts[1] if count == self.counts[0] else self.counts[0]


def most_likely(gen: Generator, k: int) -> list[list[tuple[int, float]]]:
    """Each row's `k` most likely tokens under the distribution its last token was drawn from,
    with their log-probabilities, most likely first; tokens the sampling settings ruled out
    (probability 0) are left out."""
    weights = gen._last_choice[1]
    return top_tokens(weights / weights.sum(axis=1, keepdims=True), k)


def top_tokens(probs: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """Each row's `k` most likely tokens of (rows, vocabulary) probabilities, with their
    log-probabilities, most likely first; those of probability 0 left out."""
    k = min(k, probs.shape[1])
    best = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    rows = []
    for row, ids in zip(probs, best):
        ids = ids[np.argsort(-row[ids], kind="stable")]
        rows.append([(int(i), float(np.log(row[i]))) for i in ids if row[i] > 0])
    return rows


class PatternStopMatcher:
    """Ends a row where its text matches a regular expression (a chat's next turn: a newline, a
    speaker's name in capitals and a colon). Only the last characters are searched: a match is
    short, and the row ends at the first."""

    KEEP = 80

    def __init__(self, pattern: str, batch_size: int):
        self.pattern = re.compile(pattern)
        self.tails = [""] * batch_size

    def update(self, tokens: np.ndarray, texts: list[str]) -> np.ndarray:
        hits = np.zeros(len(texts), dtype=bool)
        for k, text in enumerate(texts):
            if text:
                tail = (self.tails[k] + text)[-self.KEEP :]
                self.tails[k] = tail
                hits[k] = self.pattern.search(tail) is not None
        return hits
