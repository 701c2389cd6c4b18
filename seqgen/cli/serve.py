"""`seqgen serve`: the HTTP server (seqgen/serve), started with uvicorn."""

from __future__ import annotations

from pathlib import Path

import typer

from ..checkpoint import check_checkpoint_file
from ..errors import MissingPackage, UsageError
from .app import app, flagged, option, parse_duration, say

CHECKPOINTS = typer.Argument(..., metavar="CHECKPOINT...", help="Checkpoints to serve, each named by its file name.")
KEY_HELP = "Require this key on every request (Authorization: Bearer KEY). \\[env: SEQGEN_API_KEY]"
INTERVAL_HELP = "Streamed answers: the shortest time in seconds between two events (0: an event per item)."
TEMPLATE_HELP = "A Jinja chat template for /v1/chat/completions (needs jinja2). \\[default: 'ROLE: content' lines]"


@app.command()
def serve(
    checkpoints: list[Path] = CHECKPOINTS,
    host: str = option("127.0.0.1", "Address to listen on (0.0.0.0 for every interface: set --api-key then)."),
    port: int = option(8000, "Port to listen on."),
    api_key: str | None = option(None, KEY_HELP, envvar="SEQGEN_API_KEY", show_envvar=False),
    max_tokens: int = option(4096, "Most items one request may generate."),
    max_streams: int = option(256, "Most streams generating at once per model; more get 503."),
    max_sessions: int = option(256, "Most sessions kept at once; more get 429."),
    session_ttl: str = option("10m", "A session idle this long is dropped (90s, 10m, 1h)."),
    max_body: int = option(1_000_000, "Largest request body, in bytes; larger gets 413."),
    timeout: float = option(30.0, "Seconds a client has to send its request body (and idle connections are kept)."),
    stream_interval: float = option(0.05, INTERVAL_HELP),
    chat_template: Path | None = option(None, TEMPLATE_HELP),
) -> None:
    """Serve checkpoints over HTTP: completions, sessions that stay alive, a playground at /."""
    try:
        import uvicorn  # noqa: F401

        from ..serve.app import Limits, create_app
        from ..serve.run import chat_template as read_template, listen, run_server
    except ImportError:
        from ..extras import install_hint

        raise MissingPackage(f"seqgen serve needs Starlette and uvicorn: {install_hint('serve')}") from None
    for name, value in (
        ("--max-tokens", max_tokens),
        ("--max-streams", max_streams),
        ("--max-sessions", max_sessions),
        ("--max-body", max_body),
    ):
        if value < 1:
            raise UsageError(f"{name} must be >= 1, got {value}")
    if not 0 < port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {port}")
    if timeout <= 0:
        raise UsageError(f"--timeout must be > 0, got {timeout}")
    if not 0 <= stream_interval <= 10:
        raise UsageError(f"--stream-interval must be between 0 and 10 seconds, got {stream_interval}")
    limits = Limits(
        max_tokens=max_tokens,
        max_rows=max_streams,
        max_sessions=max_sessions,
        max_body=max_body,
        session_ttl=parse_duration(session_ttl, "--session-ttl"),
        read_timeout=timeout,
        stream_interval=stream_interval,
    )
    for path in checkpoints:  # a mistyped name is told as such, even where the port is taken
        check_checkpoint_file(path)
    with flagged():
        template = read_template(chat_template) if chat_template is not None else None
        listening = listen(host, port)  # before anything is loaded or said: a taken port is one line
    web = create_app([str(p) for p in checkpoints], limits, api_key, template)
    names = ", ".join(web.state.server.models)
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        say(f"warning: listening on {host} with no --api-key: anyone who can reach it can use it", "yellow")
    say(f"serving {names} on http://{host}:{port}/ (Ctrl-C to stop)")
    run_server(web, listening, timeout)
    say("stopped")
