"""`POST /tokenize` and `POST /detokenize`, as llama.cpp's server has them: a text model's token
ids for a text, and the text of token ids (what a client counts or builds `logit_bias` with)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import protocol
from .models import Served
from .protocol import RequestError, with_ignored


def token_routes(server) -> list[Route]:
    async def tokenize(request: Request):
        fields, ignored = await server.lenient_body(request, protocol.TOKENIZE)
        served = text_model(server, fields["model"], "tokenize")
        if fields["content"] is None:
            raise RequestError("`content`: give the text to tokenize")
        ids = encode(served, fields["content"], fields["unknown"])
        if fields["with_pieces"]:
            body = {"tokens": [{"id": t, "piece": piece(served, t)} for t in ids]}
        else:
            body = {"tokens": ids}
        return with_ignored(JSONResponse(body), ignored)

    async def detokenize(request: Request):
        fields, ignored = await server.lenient_body(request, protocol.DETOKENIZE)
        served = text_model(server, fields["model"], "detokenize")
        ids = fields["tokens"] or []
        size = len(served.tokenizer)
        if not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < size for t in ids):
            raise RequestError(f"`tokens` must be a list of token ids of {served.name}: integers 0 to {size - 1}")
        return with_ignored(JSONResponse({"content": served.tokenizer.decode(ids) if ids else ""}), ignored)

    return [Route("/tokenize", tokenize, methods=["POST"]), Route("/detokenize", detokenize, methods=["POST"])]


def text_model(server, name: str | None, what: str) -> Served:
    served = server.model(name)
    served.data_kind.check("tokenize", RequestError, name=served.name, endpoint=what)
    return served


def encode(served: Served, text: str, unknown: str) -> list[int]:
    """`text` as the model's token ids; characters it has never seen by `unknown` (error, skip, replace)."""
    missing = served.tokenizer.unknown(text)
    if missing and unknown == "error":
        shown = ", ".join(repr(ch) for ch in missing[:20]) + (
            f" and {len(missing) - 20} more" if len(missing) > 20 else ""
        )
        raise RequestError(
            f'`content` has characters {served.name} has never seen: {shown}; `unknown` "skip" '
            'leaves them out, "replace" puts a character it knows in their place'
        )
    return served.tokenizer.encode(text, unknown).tolist()


def piece(served: Served, token: int) -> str | list[int]:
    """A token's text; a byte token that is part of a character, as its bytes (as llama.cpp does)."""
    raw = getattr(served.tokenizer, "pieces", None)
    if raw is None:
        return served.tokenizer.vocab[token]
    try:
        return raw[token].decode("utf-8")
    except UnicodeDecodeError:
        return list(raw[token])
