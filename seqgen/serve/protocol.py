"""The shapes of the server's requests: each field's type, range and default, checked before any
work, so that a bad request gets one line saying what is wrong (HTTP 400) and nothing else runs.

Requests follow OpenAI's completions and chat completions APIs where they have a name for the
thing (`prompt`, `max_tokens`, `temperature`, `top_p`, `stop`, `n`, `stream`, `logprobs`, `seed`);
seqgen's own settings keep their command-line names with underscores (`top_k`, `min_p`,
`penalty_window`). The OpenAI-style endpoints ignore fields they do not know, as OpenAI-style
servers do (clients and wrappers send defaults of their own); seqgen's own endpoints refuse them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


class RequestError(Exception):
    """A request the server will not run: `status` (4xx) and a one-line message; for a 429 or
    503, `retry_after` says in how many seconds asking again may work."""

    def __init__(self, message: str, status: int = 400, retry_after: int = 1):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


@dataclass(frozen=True)
class Field:
    kinds: tuple[type, ...]
    default: Any = None
    check: Callable[[Any], str | None] | None = None  # returns what is wrong, or None


def at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be >= {low}"


def between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}"


def positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


NUMBER = (int, float)
SAMPLING = {
    "temperature": Field(NUMBER, None, at_least(0)),  # 0: the most likely token every time, as OpenAI's
    "top_k": Field((int,), None, at_least(1)),
    "top_p": Field(NUMBER, None, lambda v: None if 0 < v <= 1 else "must be in (0, 1]"),
    "min_p": Field(NUMBER, None, lambda v: None if 0 < v <= 1 else "must be in (0, 1]"),
    "greedy": Field((bool,), False),
    "repetition_penalty": Field(NUMBER, None, positive),
    "frequency_penalty": Field(NUMBER, None),
    "presence_penalty": Field(NUMBER, None),
    "penalty_window": Field((int,), None, at_least(1)),
    "noise": Field(NUMBER, None, at_least(0)),
    "seed": Field((int,), None, between(0, 2**63 - 1)),
    "unknown": Field(
        (str,), "error", lambda v: None if v in ("error", "skip", "replace") else "must be error, skip or replace"
    ),
}
GENERATION = {
    "max_tokens": Field((int,), 256, at_least(0)),
    "stop": Field((str, list), None),
    "stream": Field((bool,), False),
    # OpenAI's completions: an integer 0-5, the chosen token's log-probability and that many of the
    # most likely tokens beside it; true is 0.
    "logprobs": Field(
        (bool, int),
        None,
        lambda v: (
            None
            if isinstance(v, bool) or 0 <= v <= MOST_LOGPROBS
            else f"must be true, false or an integer 0-{MOST_LOGPROBS}"
        ),
    ),
    "include_stop_str_in_output": Field((bool,), False),  # vLLM's name: keep the stop string in the text
}
MOST_LOGPROBS = 5
MOST_TOP_LOGPROBS = 20  # chat's `top_logprobs`, as OpenAI's
# What OpenAI's clients may send as well, for every generating endpoint of that API.
OPENAI = {
    "model": Field((str,), None),
    "n": Field((int,), 1, between(1, 64)),
    "stream_options": Field((dict,), None),
    "logit_bias": Field((dict,), None),
    "user": Field((str,), None),
}
# Taken and ignored: a left-to-right network has nothing to put before a given ending.
IGNORED = {"suffix": Field((str,), None)}
COMPLETION = {
    **OPENAI,
    "prompt": Field((str, list), None),
    "echo": Field((bool,), False),
    "best_of": Field((int,), None, between(1, 64)),
    **IGNORED,
    **SAMPLING,
    **GENERATION,
}
CHAT = {
    **OPENAI,
    "messages": Field((list,), None),
    **SAMPLING,
    **GENERATION,
    "max_tokens": Field((int,), None, at_least(0)),
    "max_completion_tokens": Field((int,), None, at_least(0)),
    "logprobs": Field((bool,), False),
    "top_logprobs": Field((int,), None, between(0, MOST_TOP_LOGPROBS)),
}
SESSION = {"model": Field((str,), None), "prompt": Field((str, list), None), "state": Field((str,), None), **SAMPLING}
FEED = {"prompt": Field((str, list), None)}
GENERATE = dict(GENERATION)
RESTORE = {"state": Field((str,), None)}
# llama.cpp's /tokenize and /detokenize; its `add_special` and `parse_special` mean nothing to a
# model without special tokens, and are ignored with any other field its clients send.
TOKENIZE = {
    "model": Field((str,), None),
    "content": Field((str,), None),
    "with_pieces": Field((bool,), False),
    "unknown": SAMPLING["unknown"],
}
DETOKENIZE = {"model": Field((str,), None), "tokens": Field((list,), None)}
FOLLOW = {
    "model": Field((str,), None),
    "values": Field((list,), None),
    "horizon": Field((int,), 1, between(1, 10_000)),
    "samples": Field((int,), 0, between(0, 10_000)),
    "quantiles": Field((list,), None),
    "series": Field((str,), None),
    "seed": SAMPLING["seed"],
}


def parse(body: Any, spec: dict[str, Field], what: str = "the request") -> dict:
    """The fields of a JSON object checked against `spec`, defaults filled in; a field `spec`
    does not name is an error."""
    fields, unknown = parse_known(body, spec, what)
    if unknown:
        raise RequestError(f"unknown field `{unknown[0]}`; known: {', '.join(sorted(spec))}")
    return fields


def parse_known(body: Any, spec: dict[str, Field], what: str = "the request") -> tuple[dict, list[str]]:
    """The fields of a JSON object that `spec` names, checked, defaults filled in; and the names
    of the others, sorted."""
    if not isinstance(body, dict):
        raise RequestError(f"{what} must be a JSON object")
    unknown = sorted(set(body) - set(spec))
    fields = {}
    for name, field in spec.items():
        value = body.get(name)
        if value is None:
            fields[name] = field.default
            continue
        # JSON's true is not a number here, and 2.0 is not an int where an int is asked for.
        if isinstance(value, bool) and bool not in field.kinds:
            raise RequestError(f"`{name}` must be {_kind_names(field.kinds)}, got {value!r}")
        if not isinstance(value, field.kinds):
            raise RequestError(f"`{name}` must be {_kind_names(field.kinds)}, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise RequestError(f"`{name}` must be a finite number")
        problem = field.check(value) if field.check else None
        if problem:
            raise RequestError(f"`{name}` {problem}, got {value!r}")
        fields[name] = value
    return fields, unknown


def with_ignored(response, ignored: list[str]):
    """A response (Starlette's), naming the request's fields this server ignored in a header."""
    if ignored:
        response.headers["x-seqgen-ignored-fields"] = ", ".join(ignored)
    return response


def stops(value: str | list | None) -> list[str]:
    """`stop` as a list of strings: one string, or a list of up to 4 (as OpenAI's API takes)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if len(items) > 4 or not all(isinstance(s, str) and s for s in items):
        raise RequestError("`stop` must be a non-empty string or a list of at most 4 of them")
    return items


def generation_stops(fields: dict, kind) -> list[str]:
    """A generating request's stop strings, once its text-only fields are checked against the
    model's `kind` of data (seqgen/kinds.py)."""
    items = stops(fields["stop"])
    if items:
        kind.check("stop", RequestError)
    if logprobs_count(fields) is not None:
        kind.check("logprobs", RequestError)
    if fields.get("logit_bias"):
        kind.check("logit_bias", RequestError)
    return items


def logprobs_count(fields: dict) -> int | None:
    """How many of the most likely tokens to report beside each chosen one; None: no log-probabilities."""
    value = fields.get("logprobs")
    if value is None or value is False:
        return None
    if "top_logprobs" in fields:  # chat: `logprobs` true, `top_logprobs` how many
        return fields["top_logprobs"] or 0
    return 0 if value is True else value


def include_usage(fields: dict) -> bool:
    """Whether a streamed answer ends with a chunk of usage (`stream_options.include_usage`)."""
    options = fields.get("stream_options") or {}
    value = options.get("include_usage", False)
    if not isinstance(value, bool):
        raise RequestError("`stream_options.include_usage` must be true or false")
    return value


# OpenAI's range for a logit bias: -100 bans a token, 100 makes it all but certain.
MOST_BIAS = 100


def logit_bias(value: dict | None, vocab_size: int) -> np.ndarray | None:
    """OpenAI's `logit_bias` (token id, as a string, to a number added to its logit) as one
    number per token of the vocabulary; None when there is none."""
    if not value:
        return None
    bias = np.zeros(vocab_size, dtype=np.float64)
    for key, amount in value.items():
        if not (isinstance(key, str) and key.strip().isdigit() and int(key) < vocab_size):
            raise RequestError(f"`logit_bias`: {key!r} is not a token id of this model (0 to {vocab_size - 1})")
        if isinstance(amount, bool) or not isinstance(amount, NUMBER) or not -MOST_BIAS <= amount <= MOST_BIAS:
            raise RequestError(
                f"`logit_bias`: the bias of token {key} must be a number from -{MOST_BIAS} to {MOST_BIAS}"
            )
        bias[int(key)] = amount
    return bias


def prompts(value: Any, kind) -> list:
    """A completion's prompts: for a text model, a string, a list of token ids, or a list of
    either (a choice per prompt); for a series model, one prompt (numbers). None: the default."""
    if not kind.allows("several prompts") or not isinstance(value, list) or not value:
        return [value]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [value]
    if all(
        isinstance(v, str) or (isinstance(v, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in v))
        for v in value
    ):
        return list(value)
    raise RequestError("`prompt` must be text, a list of token ids, or a list of those")


def numbers(value: Any, name: str) -> list[float]:
    """A list of finite numbers."""
    if not isinstance(value, list) or not all(isinstance(v, NUMBER) and not isinstance(v, bool) for v in value):
        raise RequestError(f"`{name}` must be a list of numbers")
    if not all(math.isfinite(v) for v in value):
        raise RequestError(f"`{name}` must hold finite numbers only")
    return [float(v) for v in value]


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        bool: "true or false",
        dict: "an object",
    }
    return " or ".join(dict.fromkeys(names[k] for k in kinds))
