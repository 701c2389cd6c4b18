"""Completions as OpenAI's API has them: one prompt or several, `n` samples of each (or the
best `n` of `best_of`), the prompt echoed and scored on request."""

from __future__ import annotations

import time
import uuid
from functools import partial

from starlette.concurrency import run_in_threadpool

from . import protocol
from .models import Served
from .protocol import RequestError
from .streaming import Inbox, Job, Output, Shape, Stops, make_stream


async def completion_job(server, served: Served, fields: dict) -> Job:
    """A completion request as a job for the engine: a stream per prompt, each prompt fed."""
    server.check_length(fields)
    stops = protocol.generation_stops(fields, served.data_kind)
    prompts = [served.prompt_text(p) for p in protocol.prompts(fields["prompt"], served.data_kind)]
    rows = samples_per_prompt(server, served, fields, len(prompts))
    top = protocol.logprobs_count(fields)
    # A series model's `logit_bias` was refused with its stops: only a text model gets this far with one.
    bias = protocol.logit_bias(fields["logit_bias"], len(served.tokenizer)) if fields["logit_bias"] else None
    inbox = Inbox()
    streams, echoed, fed = [], [], 0
    for number, prompt in enumerate(prompts):
        # Each prompt from the request's seed: a choice is what its prompt alone would give.
        gen, count, prime, prefill = await run_in_threadpool(served.admit, fields, rows, prompt)
        fed += count
        echoed.append(await run_in_threadpool(echo, served, fields, prime, top) if fields["echo"] else [])
        streams.append(
            make_stream(
                gen,
                fields,
                stops,
                partial(inbox.deliver, stream=number),
                final=True,
                top=top,
                bias=bias,
                logprobs=rows > fields["n"],
                prefill=prefill,
            )
        )
    cut = [] if fields["include_stop_str_in_output"] else stops
    output = Output(served, [rows] * len(prompts), Stops(cut), echo=echoed)
    meta = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": served.name}
    return Job(
        served,
        streams,
        inbox,
        output,
        Shape(served, top),
        meta,
        fed=fed,
        stream=fields["stream"],
        usage_chunk=protocol.include_usage(fields),
        keep=fields["n"] if rows > fields["n"] else None,
    )


def samples_per_prompt(server, served: Served, fields: dict, prompts: int) -> int:
    """How many rows each prompt generates: `n`, or `best_of` to keep the best `n` of."""
    n = fields["n"]
    rows = fields["best_of"] or n
    if rows < n:
        raise RequestError(f"`best_of` must be at least `n` ({n}), got {rows}")
    if rows > n and fields["stream"]:
        raise RequestError("`best_of` above `n` cannot stream: which samples are best is known only at the end")
    if fields["echo"]:
        served.data_kind.check("echo", RequestError)
    server.check_rows(
        rows * prompts,
        "`n`" if rows == n and prompts == 1 else "the samples in all (`best_of`, else `n`, times the prompts)",
    )
    return rows


def echo(served: Served, fields: dict, prime: str, top: int | None) -> list[tuple]:
    """The prompt's tokens as an echo begins the text: with `logprobs`, each with its own.
    Runs the prompt through the network for those: call it off the event loop."""
    tokens = served.token_texts(prime)
    if top is None:
        return [(token,) for token in tokens]
    return [(token, *scored) for token, scored in zip(tokens, served.prompt_logprobs(fields, prime, top))]
