"""Running the server: a listening socket, uvicorn over the app, and a stop that lets running
requests finish for a grace period, then cancels them so each client hears its last event."""

from __future__ import annotations

import errno
import signal
import socket
import threading
from pathlib import Path

from ..errors import MissingPackage, SeqgenError, UsageError
from ..extras import install_hint

# Seconds running requests get to finish once the server is asked to stop.
GRACE = 5.0


def run_server(web, listening: socket.socket, timeout: float) -> None:
    """Serve `web` on `listening` until Ctrl-C or SIGTERM, which end it as a success."""
    import uvicorn  # the serve extra: imported once a server runs

    # uvicorn stops taking connections on Ctrl-C or SIGTERM and lets running requests finish for
    # up to GRACE s; then the engines cancel what still runs, so that each client gets its last
    # event (`cancelled`) before uvicorn's own limit would cut the connection; the app's shutdown
    # stops the engines. Then uvicorn raises the signal again for the handler it found, which
    # here ends the run as a success: being asked to stop is how a server's work ends.
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


def chat_template(path: Path):
    """The chat template in `path`, or one line saying why it cannot be used."""
    try:
        import jinja2  # noqa: F401
    except ImportError:
        raise MissingPackage(f"`chat_template` needs jinja2: {install_hint('chat')}") from None
    from .chat import load_template

    return load_template(path)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one line saying why there cannot be one."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise UsageError(f"`host` {host}: not an address this machine can listen on ({e})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        reason = "the port is in use (give another with `port`)" if e.errno == errno.EADDRINUSE else e.strerror
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
