"""The shapes of the server's requests: each field's type, range and default, checked before any
work, so that a bad request gets one line saying what is wrong (HTTP 400) and nothing else runs.

Requests follow OpenAI's legacy completions API where it has a name for the thing (`prompt`,
`max_tokens`, `temperature`, `top_p`, `stop`, `n`, `stream`, `logprobs`, `seed`); seqgen's own
settings keep their command-line names with underscores (`top_k`, `min_p`, `penalty_window`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class RequestError(Exception):
    """A request the server will not run: `status` (4xx) and a one-line message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


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
    "temperature": Field(NUMBER, None, positive),
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
    "unknown": Field((str,), "error", lambda v: None if v in ("error", "skip", "replace") else
                     "must be error, skip or replace"),
}
GENERATION = {
    "max_tokens": Field((int,), 256, at_least(0)),
    "stop": Field((str, list), None),
    "stream": Field((bool,), False),
    "logprobs": Field((bool, int), False, lambda v: None if v in (True, False, 0, 1) else
                      "true or false (the probability of each chosen token; top alternatives are not reported)"),
}
COMPLETION = {"model": Field((str,), None), "prompt": Field((str, list), None),
              "n": Field((int,), 1, between(1, 64)), **SAMPLING, **GENERATION}
SESSION = {"model": Field((str,), None), "prompt": Field((str, list), None), "state": Field((str,), None),
           **SAMPLING}
FEED = {"prompt": Field((str, list), None)}
GENERATE = dict(GENERATION)
RESTORE = {"state": Field((str,), None)}
FOLLOW = {"model": Field((str,), None), "values": Field((list,), None), "horizon": Field((int,), 1, between(1, 10_000)),
          "samples": Field((int,), 0, between(0, 10_000)), "quantiles": Field((list,), None),
          "series": Field((str,), None), "seed": SAMPLING["seed"]}


def parse(body: Any, spec: dict[str, Field], what: str = "the request") -> dict:
    """The fields of a JSON object checked against `spec`, defaults filled in."""
    if not isinstance(body, dict):
        raise RequestError(f"{what} must be a JSON object")
    unknown = sorted(set(body) - set(spec))
    if unknown:
        raise RequestError(f"unknown field `{unknown[0]}`; known: {', '.join(sorted(spec))}")
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
    return fields


def stops(value: str | list | None) -> list[str]:
    """`stop` as a list of strings: one string, or a list of up to 4 (as OpenAI's API takes)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if len(items) > 4 or not all(isinstance(s, str) and s for s in items):
        raise RequestError("`stop` must be a non-empty string or a list of at most 4 of them")
    return items


def generation_stops(fields: dict, is_text: bool) -> list[str]:
    """A generating request's stop strings, once its text-only fields are checked against the model."""
    items = stops(fields["stop"])
    if items and not is_text:
        raise RequestError("`stop` applies to text models")
    if fields["logprobs"] and not is_text:
        raise RequestError("`logprobs` applies to text models (a series model's values have no probabilities)")
    return items


def numbers(value: Any, name: str) -> list[float]:
    """A list of finite numbers."""
    if not isinstance(value, list) or not all(isinstance(v, NUMBER) and not isinstance(v, bool) for v in value):
        raise RequestError(f"`{name}` must be a list of numbers")
    if not all(math.isfinite(v) for v in value):
        raise RequestError(f"`{name}` must hold finite numbers only")
    return [float(v) for v in value]


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", bool: "true or false"}
    return " or ".join(dict.fromkeys(names[k] for k in kinds))
