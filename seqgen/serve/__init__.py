"""`seqgen serve`: generators kept alive behind an HTTP API, the streams of many clients stepped
as one batch (engine.py), OpenAI's completions and chat completions (completions.py, chat.py),
sessions kept between calls (sessions.py), a playground page at `/`. Needs the `serve` extra
(Starlette and uvicorn), and jinja2 for a chat template of one's own; the engine itself needs
only NumPy."""

from .engine import Busy, Engine, Piece, Stream

__all__ = ["Busy", "Engine", "Piece", "Stream", "create_app"]


def create_app(*args, **kwargs):
    """See `seqgen.serve.app.create_app` (imported on use: Starlette is an optional extra)."""
    from .app import create_app as make

    return make(*args, **kwargs)
