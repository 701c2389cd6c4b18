"""`GET /metrics`: the server's counters in Prometheus's text exposition format (version 0.0.4),
as llama.cpp's server has them.

Written by hand rather than with prometheus_client: the format is a few lines of plain text,
every figure already lives in the engines and here, and the serve extra stays two packages.
prometheus_client's registry would only mirror those figures, and its multi-process mode (the
engines step in child processes) is more than a handful of numbers sent back with each step needs.
"""

from __future__ import annotations

import math
import threading
from collections import Counter

# Seconds; a batched step of the shipped model takes about a millisecond alone and tens of
# milliseconds with 256 rows on a busy core.
STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Histogram:
    """Observations counted into cumulative buckets (Prometheus's histogram), with their sum.
    Observed from an engine's thread, read by a scrape on the event loop."""

    def __init__(self, bounds: tuple[float, ...] = STEP_BUCKETS):
        self.bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        k = next((i for i, bound in enumerate(self.bounds) if value <= bound), len(self.bounds))
        with self._lock:
            self._counts[k] += 1
            self._sum += value

    def snapshot(self) -> tuple[list[int], float]:
        """Cumulative counts per bound (the last is +Inf: every observation) and the sum."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for count in counts:
            running += count
            cumulative.append(running)
        return cumulative, total

    @property
    def count(self) -> int:
        return self.snapshot()[0][-1]


class Requests:
    """Requests answered, by endpoint (the route's path, `/v1/sessions/{id}`, so that ids do not
    make a series each) and status."""

    def __init__(self, routes: list):
        self.routes = routes
        self.counts: Counter[tuple[str, int]] = Counter()

    def endpoint(self, scope) -> str:
        from starlette.routing import Match  # here: the engines use this module and need only NumPy

        partial = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return route.path
            if match == Match.PARTIAL and partial is None:  # the path, another method (a 405)
                partial = route.path
        return partial or "other"

    def count(self, scope, status: int) -> None:
        self.counts[(self.endpoint(scope), status)] += 1


class CountRequests:
    """ASGI middleware that counts each answer into `requests` as it starts."""

    def __init__(self, app, requests: Requests):
        self.app, self.requests = app, requests

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = None

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.requests.count(scope, status)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except BaseException:
            if status is None:  # Starlette's outermost handler answers it with a 500
                self.requests.count(scope, 500)
            raise


def exposition(server, requests: Requests | None) -> str:
    """Every metric of `server` (an app.Server) in the text format."""
    out: list[str] = []
    models = list(server.models.values())

    def family(name: str, kind: str, help: str, samples: list[tuple[dict, float]]) -> None:
        out.append(f"# HELP {name} {help}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels(given)} {number(value)}" for given, value in samples)

    per_model = lambda value: [({"model": m.name}, value(m)) for m in models]  # noqa: E731
    if requests is not None:
        family(
            "seqgen_requests_total",
            "counter",
            "HTTP requests answered, by endpoint and status.",
            [({"endpoint": e, "status": str(s)}, n) for (e, s), n in sorted(requests.counts.items())],
        )
    family(
        "seqgen_tokens_generated_total",
        "counter",
        "Items generated: tokens of a text model, values of a series model.",
        per_model(lambda m: m.engine.made),
    )
    family(
        "seqgen_prompt_tokens_total",
        "counter",
        "Prompt items fed before generating (completions and chat).",
        per_model(lambda m: m.prompt_tokens),
    )
    family(
        "seqgen_streams_active",
        "gauge",
        "Requests generating now (a session's generate counts as one).",
        per_model(lambda m: m.engine.streams),
    )
    family(
        "seqgen_rows_active",
        "gauge",
        "Rows generating now (a request with n samples has n).",
        per_model(lambda m: m.engine.rows),
    )
    family(
        "seqgen_queue_length",
        "gauge",
        "Requests waiting to generate: reading their prompt, or handed to the engine before its next step.",
        per_model(lambda m: m.preparing + m.engine.waiting),
    )
    family("seqgen_sessions", "gauge", "Sessions alive.", [({}, len(server.sessions))])
    family(
        "seqgen_engine_restarts_total",
        "counter",
        "Engine processes started again after one ended.",
        per_model(lambda m: m.engine.restarts),
    )
    name = "seqgen_step_seconds"
    out.append(f"# HELP {name} Time of one batched step of every generating row.")
    out.append(f"# TYPE {name} histogram")
    for m in models:
        counts, total = m.engine.step_time.snapshot()
        for bound, count in zip([*m.engine.step_time.bounds, math.inf], counts):
            out.append(f"{name}_bucket{labels({'model': m.name, 'le': number(bound)})} {count}")
        out.append(f"{name}_sum{labels({'model': m.name})} {number(total)}")
        out.append(f"{name}_count{labels({'model': m.name})} {counts[-1]}")
    return "\n".join(out) + "\n"


def labels(given: dict) -> str:
    if not given:
        return ""
    # The format's escapes in a label value: backslash, double quote, new line.
    escaped = (str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in given.values())
    return "{" + ",".join(f'{k}="{v}"' for k, v in zip(given, escaped)) + "}"


def number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
