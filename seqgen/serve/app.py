"""`seqgen serve`'s HTTP API: a Starlette app over the batching engines and the session store.

Endpoints (docs/serve.md has every field and an example of each):
- `POST /v1/completions`: generate from a prompt (or several), whole or streamed as server-sent events;
- `POST /v1/chat/completions`: a text model answers a conversation rendered by a chat template;
- `POST /v1/sessions`, `GET|DELETE /v1/sessions/{id}`, `POST /v1/sessions/{id}/feed|generate|restore`,
  `GET /v1/sessions/{id}/snapshot`: generators that stay alive between calls;
- `POST /v1/follow`: one-step-ahead (or H-step) forecasts of posted values, for series models;
- `POST /tokenize`, `POST /detokenize`: a text model's token ids, as llama.cpp's server has them;
- `GET /metrics`: counters in Prometheus's text format (metrics.py);
- `GET /health`, `GET /v1/models` (and `/models`), `GET /v1/models/{id}`, and the playground page
  at `/` (with its icon at `/favicon.ico`).
The OpenAI-style endpoints ignore fields they do not know (naming them in the answer's
`x-seqgen-ignored-fields` header), as OpenAI-style servers do; seqgen's own refuse them.
Errors are JSON, `{"error": {"message": "...", "type": "..."}}`, with a 4xx status for the
caller's mistakes; a request's failure never touches another's stream or session.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..errors import SeqgenError
from . import protocol
from .models import Served, load_models
from .protocol import RequestError, parse, with_ignored
from .sessions import Sessions
from .streaming import respond

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

    def __init__(
        self,
        checkpoints: list[str | Path],
        limits: Limits | None = None,
        api_key: str | None = None,
        chat_template=None,
    ):
        """`chat_template`: a Jinja file (or a `chat.JinjaTemplate`) for chat completions; None
        for the default, `ROLE: content` lines."""
        self.limits = limits or Limits()
        self.api_key = api_key or None
        if isinstance(chat_template, (str, Path)):
            from .chat import load_template

            chat_template = load_template(chat_template)
        self.chat_template = chat_template  # before the models: a bad template is told at once
        self.models = load_models(checkpoints, self.limits.max_rows)
        self.sessions = Sessions(self.limits.max_sessions, self.limits.session_ttl)
        self.started = time.time()
        self.requests = None  # the requests answered (a metrics.Requests), once there is an app to count them

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
        size and time limits; a field `spec` does not name is a 400."""
        return parse(await self.json(request), spec)

    async def openai_body(self, request: Request, spec: dict) -> tuple[dict, list[str]]:
        """As `body`, for an endpoint of OpenAI's API: fields it does not know are ignored, as
        OpenAI-style servers do (clients send defaults and options of other servers); they are
        returned, with the known ones this server takes and ignores, to be named in a header."""
        fields, ignored = await self.lenient_body(request, spec)
        if fields.get("user") is not None:
            log.debug("%s: for user %r", request.url.path, fields["user"])
        protocol.include_usage(fields)  # checked before any work
        return fields, ignored

    async def lenient_body(self, request: Request, spec: dict) -> tuple[dict, list[str]]:
        """As `body`, for an endpoint another server defines (OpenAI's, llama.cpp's): the fields
        it ignores are returned (and logged) rather than refused."""
        fields, unknown = protocol.parse_known(await self.json(request), spec)
        ignored = sorted(unknown + [name for name in protocol.IGNORED if fields.get(name) is not None])
        if ignored:
            log.debug("%s: ignoring %s", request.url.path, ", ".join(ignored))
        return fields, ignored

    async def json(self, request: Request):
        """The request's body as JSON, read within the size and time limits."""
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
        return body

    def check_length(self, fields: dict) -> None:
        if fields["max_tokens"] > self.limits.max_tokens:
            raise RequestError(
                f"`max_tokens` is at most {self.limits.max_tokens} on this server, got {fields['max_tokens']}"
            )

    def check_rows(self, rows: int, what: str = "`n`") -> None:
        if rows > self.limits.max_rows:  # a 503 would say "try again", which could never work
            raise RequestError(
                f"{what} is at most {self.limits.max_rows} on this server (the most streams it "
                f"generates at once), got {rows}"
            )

    # --- routes ------------------------------------------------------------------------------

    async def completions(self, request: Request):
        from .completions import completion_job

        fields, ignored = await self.openai_body(request, protocol.COMPLETION)
        served = self.model(fields["model"])
        with preparing(served):
            job = await completion_job(self, served, fields)
        return with_ignored(await respond(job, self.limits.stream_interval), ignored)

    async def chat_completions(self, request: Request):
        from .chat import chat_job

        fields, ignored = await self.openai_body(request, protocol.CHAT)
        served = self.model(fields["model"])
        with preparing(served):
            job = await chat_job(self, served, fields)
        return with_ignored(await respond(job, self.limits.stream_interval), ignored)

    async def health(self, request: Request):
        return JSONResponse(
            {
                "status": "ok",
                "models": list(self.models),
                "sessions": len(self.sessions),
                "generating": sum(m.engine.rows for m in self.models.values()),
                "uptime": round(time.time() - self.started, 1),
            }
        )

    async def list_models(self, request: Request):
        return JSONResponse({"object": "list", "data": [self.describe(m) for m in self.models.values()]})

    async def show_model(self, request: Request):
        return JSONResponse(self.describe(self.model(request.path_params["id"])))

    def describe(self, served: Served) -> dict:
        return {**served.info, "max_tokens": self.limits.max_tokens}

    async def metrics(self, request: Request):
        from .metrics import exposition

        return Response(exposition(self, self.requests), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def page(self, request: Request):
        return HTMLResponse(resources.files("seqgen.serve").joinpath("page.html").read_text(encoding="utf-8"))

    async def icon(self, request: Request):
        return Response(ICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    def cancel_streams(self) -> None:
        """End every request that is generating: each gets its last event (an error event, or a 503)."""
        for served in self.models.values():
            served.engine.cancel_all()

    def close(self) -> None:
        for served in self.models.values():
            served.close()


def create_app(
    checkpoints: list[str | Path], limits: Limits | None = None, api_key: str | None = None, chat_template=None
) -> Starlette:
    """The ASGI app serving `checkpoints` (run it with uvicorn, or `seqgen serve`); see `Server`
    for `chat_template`."""
    server = Server(checkpoints, limits, api_key, chat_template)
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
        Route("/v1/models/{id:path}", server.show_model, methods=["GET"]),
        Route("/v1/completions", server.completions, methods=["POST"]),
        Route("/v1/chat/completions", server.chat_completions, methods=["POST"]),
        Route("/favicon.ico", server.icon, methods=["GET"]),
        Route("/metrics", server.metrics, methods=["GET"]),
    ]
    from .session_routes import session_routes
    from .token_routes import token_routes

    routes += session_routes(server) + token_routes(server)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            RequestError: _request_error,
            SeqgenError: _seqgen_error,
            404: _not_found,
            405: _not_allowed,
            Exception: _internal_error,
        },
    )
    app.state.server = server
    if server.api_key:
        app.add_middleware(RequireKey, key=server.api_key)
    from .metrics import CountRequests, Requests

    server.requests = Requests(routes)
    app.add_middleware(CountRequests, requests=server.requests)  # added last, so outermost: a refused key counts too
    return app


# A wave on a dark square: the playground's tab icon, so that a browser's request for it finds one.
ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#1f2937"/>'
    '<path d="M3 16c4-9 7-9 10 0s6 9 10 0 4-5 6-3" fill="none" stroke="#38bdf8" stroke-width="3" '
    'stroke-linecap="round"/></svg>'
)


@contextmanager
def preparing(served: Served):
    """Counts a request as waiting while its prompt is fed (the queue of /metrics)."""
    served.preparing += 1
    try:
        yield
    finally:
        served.preparing -= 1


def error(message: str, status: int, kind: str = "invalid_request_error", headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status, headers=headers)


async def _request_error(request: Request, exc: RequestError):
    headers = {"Retry-After": str(exc.retry_after)} if exc.status in (429, 503) else None
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
        if scope["type"] == "http" and not (scope["path"] in ("/", "/favicon.ico") and scope["method"] == "GET"):
            headers = dict(scope["headers"])
            auth = headers.get(b"authorization", b"")
            given = auth[7:] if auth[:7].lower() == b"bearer " else headers.get(b"x-api-key", b"")
            if not hmac.compare_digest(given, self.key):
                response = error("a valid API key is needed: send `Authorization: Bearer KEY`", 401, "unauthorized")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
