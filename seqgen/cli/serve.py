"""`seqgen serve`: the HTTP server (seqgen/serve), started with uvicorn."""

from __future__ import annotations

import errno
import signal
import socket
import threading
from pathlib import Path

import typer

from ..errors import MissingPackage, SeqgenError, UsageError
from .app import app, parse_duration, say

# Seconds running requests get to finish once the server is asked to stop.
GRACE = 5.0


@app.command()
def serve(
    checkpoints: list[Path] = typer.Argument(
        ..., metavar="CHECKPOINT...", help="Checkpoints to serve; each is named by its file name without the extension."
    ),
    host: str = typer.Option(
        "127.0.0.1", help="Address to listen on (0.0.0.0 for every interface: set --api-key then)."
    ),
    port: int = typer.Option(8000, help="Port to listen on."),
    api_key: str | None = typer.Option(
        None,
        envvar="SEQGEN_API_KEY",
        help="Require this key on every request (Authorization: Bearer KEY). \\[env: SEQGEN_API_KEY]",
        show_envvar=False,
    ),
    max_tokens: int = typer.Option(4096, help="Most items one request may generate."),
    max_streams: int = typer.Option(
        256, help="Most streams generating at once per model (a completion with n counts n); more get 503."
    ),
    max_sessions: int = typer.Option(256, help="Most sessions kept at once; more get 429."),
    session_ttl: str = typer.Option("10m", help="A session idle this long is dropped (90s, 10m, 1h)."),
    max_body: int = typer.Option(1_000_000, help="Largest request body, in bytes; larger gets 413."),
    timeout: float = typer.Option(
        30.0, help="Seconds a client has to send its request body (and idle keep-alive connections are kept)."
    ),
    stream_interval: float = typer.Option(
        0.05,
        help="Streamed answers: the shortest time in seconds between two events; what is made meanwhile goes in the next (0: an event per item).",
    ),
    chat_template: Path | None = typer.Option(
        None,
        help="A Jinja chat template (Hugging Face's convention: messages, add_generation_prompt) for /v1/chat/completions; default: 'ROLE: content' lines. Needs jinja2.",
    ),
) -> None:
    """Serve checkpoints over HTTP: completions, sessions that stay alive, a playground at /."""
    try:
        import uvicorn

        from ..serve.app import Limits, create_app
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
    template = _template(chat_template) if chat_template is not None else None
    listening = _listen(host, port)  # before anything is loaded or said: a taken port is one line
    web = create_app([str(p) for p in checkpoints], limits, api_key, template)
    names = ", ".join(web.state.server.models)
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        say(f"warning: listening on {host} with no --api-key: anyone who can reach it can use it", "yellow")
    say(f"serving {names} on http://{host}:{port}/ (Ctrl-C to stop)")
    # uvicorn stops taking connections on Ctrl-C or SIGTERM and lets running requests finish for
    # up to GRACE s; then the engines cancel what still runs, so that each client gets its last
    # event (`cancelled`) before uvicorn's own limit would cut the connection; the app's shutdown
    # stops the engines. Then uvicorn raises the signal again for the handler it found, which
    # here ends the command as a success: being asked to stop is how a server's work ends.
    config = uvicorn.Config(
        web, log_level="warning", timeout_keep_alive=int(max(1, timeout)), timeout_graceful_shutdown=GRACE + 2
    )
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _stopping_server(config, web.state.server).run(sockets=[listening])
    except Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        listening.close()
    say("stopped")


def _template(path: Path):
    """The chat template in `path`, or one line saying why it cannot be used."""
    try:
        import jinja2  # noqa: F401
    except ImportError:
        from ..extras import install_hint

        raise MissingPackage(f"--chat-template needs jinja2: {install_hint('chat')}") from None
    from ..serve.chat import load_template

    return load_template(path)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one line saying why there cannot be one."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise UsageError(f"--host {host}: not an address this machine can listen on ({e})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        reason = "the port is in use (give another with --port)" if e.errno == errno.EADDRINUSE else e.strerror
        raise SeqgenError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock


def _stopping_server(config, app_server):
    """uvicorn's server, which on being asked to stop cancels what still runs after GRACE s."""
    import uvicorn  # the serve extra: imported once the command runs

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            if not self.should_exit:
                timer = threading.Timer(GRACE, app_server.cancel_streams)
                timer.daemon = True
                timer.start()
            super().handle_exit(sig, frame)

    return Server(config)


class Stopped(Exception):
    """Ctrl-C or SIGTERM, once the server has shut down."""


def _stopped(signum, frame) -> None:
    raise Stopped()
