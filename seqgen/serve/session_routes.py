"""The routes of sessions and of following a series: generators kept between calls."""

from __future__ import annotations

import base64
import binascii

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..generate.api import follow
from ..generate.generator import Generator, scaling_for
from ..generate.sampling import SampleConfig
from ..generate.state import state_bytes, state_from_bytes
from . import protocol
from .protocol import RequestError
from .streaming import Inbox, Job, Output, Shape, Stops, finite_or_none, make_stream, respond

SAMPLING_FIELDS = [k for k in protocol.SAMPLING if k not in ("seed", "unknown")]


def session_routes(server) -> list[Route]:
    sessions = server.sessions

    def described(session, status: int = 200, **extra) -> JSONResponse:
        body = session.describe(sessions.ttl)
        if session.served.data_kind.allows("prediction") and session.gen.last_output is not None:
            body["prediction"] = finite_or_none(session.gen.prediction()[0])  # the next value's forecast
        return JSONResponse({**body, **extra}, status_code=status)

    async def create(request: Request):
        fields = await server.body(request, protocol.SESSION)
        served = server.model(fields["model"])
        generated = 0
        if fields["state"] is None:
            gen, fed, _ = await run_in_threadpool(served.generator, fields, 1, fields["prompt"])
        else:
            gen, fed, generated = await run_in_threadpool(_restored, served, fields)
        session = sessions.add(served, gen, fed, fields["unknown"])
        session.generated = generated
        return described(session, 201)

    async def show(request: Request):
        return described(sessions.get(request.path_params["id"], idle=False))

    async def delete(request: Request):
        session = sessions.remove(request.path_params["id"])
        return JSONResponse({"id": session.id, "object": "session", "deleted": True})

    async def feed(request: Request):
        sessions.get(request.path_params["id"])  # a wrong id is a 404 before the body is looked at
        fields = await server.body(request, protocol.FEED)
        # Looked up again after the body's await: another request may have taken the session
        # meanwhile, and from here to `busy` nothing awaits.
        session = sessions.get(request.path_params["id"])
        prime = session.served.prime(fields["prompt"])
        if prime is None:
            raise RequestError("`prompt`: give the text or values to feed")
        session.busy = True
        try:
            fed = await run_in_threadpool(_feed, session, prime)
        finally:
            session.busy = False
        session.fed += fed
        return described(session)

    async def generate(request: Request):
        sessions.get(request.path_params["id"])
        fields = await server.body(request, protocol.GENERATE)
        session = sessions.get(request.path_params["id"])  # as in feed: nothing awaits from here to `busy`
        server.check_length(fields)
        served = session.served
        stops = protocol.generation_stops(fields, served.data_kind)
        top = protocol.logprobs_count(fields)
        inbox = Inbox()
        stream = make_stream(session.gen, fields, stops, inbox.deliver, top=top)
        output = Output(served, [stream.rows], Stops([] if fields["include_stop_str_in_output"] else stops))
        meta = {
            "id": f"cmpl-{session.id[:12]}-{session.generated}",
            "created": int(session.born),
            "model": served.name,
            "session": session.id,
        }
        job = Job(served, [stream], inbox, output, Shape(served, top), meta, stream=fields["stream"])
        session.busy = True
        to_inbox = stream.deliver

        def deliver(piece):
            # Free before the last piece is passed on: a client that asks again as soon as it has
            # its answer must find the session idle.
            if piece.done:
                if not stream.lost:  # else the engine went away with the state: the session is as before
                    session.generated += stream.made
                session.busy = False
            to_inbox(piece)

        stream.deliver = deliver
        try:
            return await respond(job, server.limits.stream_interval)
        except BaseException:
            session.busy = False
            raise

    async def snapshot(request: Request):
        session = sessions.get(request.path_params["id"])
        raw = state_bytes(session.gen, {"fed": session.fed, "generated": session.generated})
        return JSONResponse(
            {
                "id": session.id,
                "object": "session.state",
                "model": session.served.name,
                "state": base64.b64encode(raw).decode("ascii"),
            }
        )

    async def restore(request: Request):
        sessions.get(request.path_params["id"])
        fields = await server.body(request, protocol.RESTORE)
        session = sessions.get(request.path_params["id"])  # not generating now, after the body's await
        if fields["state"] is None:
            raise RequestError("`state`: give a state from GET /v1/sessions/ID/snapshot")
        snap = _snapshot(session.served, session.gen, fields["state"])
        session.gen.restore(snap)
        # The counts go back with the state (a state from elsewhere brings none: they stay).
        session.fed = snap["counts"].get("fed", session.fed)
        session.generated = snap["counts"].get("generated", session.generated)
        return described(session)

    async def follow_values(request: Request):
        fields = await server.body(request, protocol.FOLLOW)
        served = server.model(fields["model"])
        served.data_kind.check("/v1/follow", RequestError, name=served.name)
        values = protocol.numbers(fields["values"] or [], "values")
        if not values:
            raise RequestError("`values`: give at least one value")
        levels = protocol.numbers(fields["quantiles"] or [], "quantiles")
        if any(not 0 < q < 1 for q in levels):
            raise RequestError("`quantiles` must each be between 0 and 1")
        if levels and not fields["samples"]:
            fields["samples"] = 200
        forecasts = await run_in_threadpool(_follow, served, fields, values, levels)
        return JSONResponse(
            {
                "object": "forecast",
                "model": served.name,
                "horizon": fields["horizon"],
                "quantiles": levels,
                "forecasts": forecasts,
            }
        )

    return [
        Route("/v1/sessions", create, methods=["POST"]),
        Route("/v1/sessions/{id}", show, methods=["GET"]),
        Route("/v1/sessions/{id}", delete, methods=["DELETE"]),
        Route("/v1/sessions/{id}/feed", feed, methods=["POST"]),
        Route("/v1/sessions/{id}/generate", generate, methods=["POST"]),
        Route("/v1/sessions/{id}/snapshot", snapshot, methods=["GET"]),
        Route("/v1/sessions/{id}/restore", restore, methods=["POST"]),
        Route("/v1/follow", follow_values, methods=["POST"]),
    ]


def _feed(session, prime) -> int:
    return _feed_prime(session.gen, prime, session.unknown)


def _feed_prime(gen, prime, unknown: str) -> int:
    """Feed a prompt after what was fed before; characters the model does not know are handled
    by `unknown` (an error names them)."""
    if isinstance(prime, str):
        prime = gen.tokenizer.known(prime, unknown)
        if not prime:
            raise RequestError("none of the prompt's characters are known to the model")
        prime = gen.encode(prime)  # counted in tokens
    gen.feed(prime)
    return len(prime)


def _snapshot(served, gen, encoded: str) -> dict:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("`state` is not base64 (give the `state` a snapshot returned)") from None
    return state_from_bytes(raw, gen, "`state`")


def _restored(served, fields: dict) -> tuple[Generator, int, int]:
    """A session from a saved state: the sampling settings it was saved with, unless the request
    gives its own; then the prompt, if any, fed after it. Returns the generator and the items
    fed and generated, counting those the state's own session had (a snapshot carries them)."""
    given = any(fields.get(k) not in (None, False) for k in SAMPLING_FIELDS)
    gen = served.make_generator(fields)
    snap = _snapshot(served, gen, fields["state"])
    if not given and isinstance(snap.get("sampling"), dict):
        saved = SampleConfig(**{k: v for k, v in snap["sampling"].items() if k in SampleConfig.__dataclass_fields__})
        saved.check()
        gen.sampling = saved
    gen.restore(snap)
    fed, generated = snap["counts"].get("fed", 0), snap["counts"].get("generated", 0)
    prime = served.prime(fields["prompt"])
    if prime is not None:
        fed += _feed_prime(gen, prime, fields["unknown"])
    return gen, fed, generated


def _follow(served, fields: dict, values: list[float], levels: list[float]) -> list:
    # A model of several series follows the values in the scale of the series they belong to (or
    # their own), as `seqgen sample` primes, rather than the first series'.
    scaling = scaling_for(served.ckpt, values, fields["series"])
    gen = Generator.from_checkpoint(served.ckpt, model=served.model, seed=fields["seed"], series=scaling)
    made = follow(gen, values, horizon=fields["horizon"], samples=fields["samples"], quantiles=levels)
    return [np.asarray(f, dtype=float).tolist() for f in made]
