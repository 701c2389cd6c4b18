"""`seqgen serve`'s HTTP API: a Starlette app over the batching engines and the session store.

Endpoints (docs/serve.md has every field and an example of each):
- `POST /v1/completions`: generate from a prompt, whole or streamed as server-sent events;
- `POST /v1/sessions`, `GET|DELETE /v1/sessions/{id}`, `POST /v1/sessions/{id}/feed|generate|restore`,
  `GET /v1/sessions/{id}/snapshot`: generators that stay alive between calls;
- `POST /v1/follow`: one-step-ahead (or H-step) forecasts of posted values, for series models;
- `GET /health`, `GET /v1/models` (and `/models`), and the playground page at `/`.
Errors are JSON, `{"error": {"message": "...", "type": "..."}}`, with a 4xx status for the
caller's mistakes; a request's failure never touches another's stream or session.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from ..errors import SeqgenError
from . import protocol
from .models import Served, load_models
from .protocol import RequestError, parse
from .sessions import Sessions
from .streaming import Inbox, Output, make_stream, respond

log = logging.getLogger("seqgen.serve")


@dataclass
class Limits:
    """What protects the server (the options of `seqgen serve` of the same names)."""

    max_tokens: int = 4096
    max_rows: int = 256
    max_sessions: int = 256
    max_body: int = 1_000_000
    session_ttl: float = 600.0
    read_timeout: float = 30.0
    stream_interval: float = 0.05  # the shortest time between two events of a streamed answer


class Server:
    """The state behind the routes: the models, the sessions, the limits."""

    def __init__(self, checkpoints: list[str | Path], limits: Limits | None = None, api_key: str | None = None):
        self.limits = limits or Limits()
        self.api_key = api_key or None
        self.models = load_models(checkpoints, self.limits.max_rows)
        self.sessions = Sessions(self.limits.max_sessions, self.limits.session_ttl)
        self.started = time.time()

    # --- helpers ------------------------------------------------------------------------------
    def model(self, name: str | None) -> Served:
        if name is None:
            if len(self.models) == 1:
                return next(iter(self.models.values()))
            raise RequestError(f"give `model`: this server has {', '.join(self.models)}")
        if name not in self.models:
            raise RequestError(f"no model `{name}`; this server has {', '.join(self.models)}", 404)
        return self.models[name]

    async def body(self, request: Request, spec: dict) -> dict:
        """The request's JSON body checked against `spec` (see protocol.py), read within the
        size and time limits."""
        limit = self.limits.max_body
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestError(f"the request body is {declared} bytes; at most {limit}", 413)
        raw = bytearray()

        async def read():
            async for chunk in request.stream():
                raw.extend(chunk)
                if len(raw) > limit:
                    raise RequestError(f"the request body is over {limit} bytes", 413)

        try:
            await asyncio.wait_for(read(), self.limits.read_timeout)
        except asyncio.TimeoutError:
            raise RequestError(f"the request body did not arrive within {self.limits.read_timeout:g} s", 408) from None
        if not raw.strip():
            body = {}
        else:
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as e:
                raise RequestError(f"the body is not valid JSON ({e})") from None
        return parse(body, spec)

    def check_length(self, fields: dict) -> None:
        if fields["max_tokens"] > self.limits.max_tokens:
            raise RequestError(f"`max_tokens` is at most {self.limits.max_tokens} on this server, got {fields['max_tokens']}")

    # --- routes ------------------------------------------------------------------------------
    async def completions(self, request: Request):
        fields = await self.body(request, protocol.COMPLETION)
        self.check_length(fields)
        served = self.model(fields["model"])
        stops = protocol.generation_stops(fields, served.is_text)
        if fields["n"] > self.limits.max_rows:  # a 503 would say "try again", which could never work
            raise RequestError(f"`n` is at most {self.limits.max_rows} on this server (the most streams it "
                               f"generates at once), got {fields['n']}")
        gen, fed = await run_in_threadpool(served.generator, fields, fields["n"], fields["prompt"])
        inbox = Inbox()
        stream = make_stream(gen, fields, stops, inbox, final=True)
        meta = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
                "model": served.name, "_fed": fed}
        return await respond(served, stream, inbox, fields, meta, Output(served, gen.batch_size),
                             self.limits.stream_interval)

    async def health(self, request: Request):
        return JSONResponse({"status": "ok", "models": list(self.models), "sessions": len(self.sessions),
                             "generating": sum(m.engine.rows for m in self.models.values()),
                             "uptime": round(time.time() - self.started, 1)})

    async def list_models(self, request: Request):
        return JSONResponse({"object": "list", "data": [{**m.info, "max_tokens": self.limits.max_tokens}
                                                        for m in self.models.values()]})

    async def page(self, request: Request):
        return HTMLResponse(resources.files("seqgen.serve").joinpath("page.html").read_text(encoding="utf-8"))

    def cancel_streams(self) -> None:
        """End every request that is generating: each gets its last event (`cancelled`)."""
        for served in self.models.values():
            served.engine.cancel_all()

    def close(self) -> None:
        for served in self.models.values():
            served.close()


def create_app(checkpoints: list[str | Path], limits: Limits | None = None, api_key: str | None = None) -> Starlette:
    """The ASGI app serving `checkpoints` (run it with uvicorn, or `seqgen serve`)."""
    server = Server(checkpoints, limits, api_key)
    sessions = server.sessions

    @asynccontextmanager
    async def lifespan(app):
        sweeper = asyncio.create_task(sessions.sweep_forever())
        try:
            yield
        finally:
            sweeper.cancel()
            server.close()

    routes = [
        Route("/", server.page, methods=["GET"]),
        Route("/health", server.health, methods=["GET"]),
        Route("/models", server.list_models, methods=["GET"]),
        Route("/v1/models", server.list_models, methods=["GET"]),
        Route("/v1/completions", server.completions, methods=["POST"]),
    ]
    from .session_routes import session_routes

    routes += session_routes(server)
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        RequestError: _request_error, SeqgenError: _seqgen_error, 404: _not_found, 405: _not_allowed,
        Exception: _internal_error})
    app.state.server = server
    if server.api_key:
        app.add_middleware(RequireKey, key=server.api_key)
    return app


def error(message: str, status: int, kind: str = "invalid_request_error", headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status, headers=headers)


async def _request_error(request: Request, exc: RequestError):
    headers = {"Retry-After": "1"} if exc.status in (429, 503) else None
    return error(str(exc), exc.status, "server_busy" if exc.status in (429, 503) else "invalid_request_error", headers)


async def _seqgen_error(request: Request, exc: SeqgenError):
    return error(str(exc), 400)


async def _not_found(request: Request, exc):
    return error(f"no such endpoint: {request.method} {request.url.path}", 404, "not_found")


async def _not_allowed(request: Request, exc):
    return error(f"{request.method} is not allowed on {request.url.path}", 405, "method_not_allowed")


async def _internal_error(request: Request, exc: Exception):
    log.exception("internal error on %s %s", request.method, request.url.path)
    return error(f"internal error: {type(exc).__name__}: {exc}", 500, "internal_error")


class RequireKey:
    """Every request but the playground page needs the key, as `Authorization: Bearer KEY` or
    `X-API-Key: KEY`. The page is static and holds nothing of the models; each call it makes
    needs the key like any other client's."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not (scope["path"] == "/" and scope["method"] == "GET"):
            headers = dict(scope["headers"])
            auth = headers.get(b"authorization", b"")
            given = auth[7:] if auth[:7].lower() == b"bearer " else headers.get(b"x-api-key", b"")
            if not hmac.compare_digest(given, self.key):
                response = error("a valid API key is needed: send `Authorization: Bearer KEY`", 401, "unauthorized")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
