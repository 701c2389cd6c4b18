"""Chat completions: a conversation rendered into a text model's text by a chat template, and
the answer generated until the model begins the next turn.

The default template writes each message as a line `ROLE: content` (the role in capitals) and
ends with `ASSISTANT:`, the way a play or a chat log is written; the answer ends where the model
starts a new line with a name in capitals and a colon. A user's own template is Jinja, as Hugging
Face's are (`messages`, `add_generation_prompt`); jinja2 is needed only for that.
"""

from __future__ import annotations

import uuid
import time
from functools import partial
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from ..errors import MissingPackage, UsageError
from . import protocol
from .models import Served
from .protocol import RequestError
from .streaming import ChatShape, Inbox, Job, Output, Stops, make_stream

# The next turn of the default template, or of a script: a new line, a name in capitals, a colon.
NEXT_TURN = r"\n[A-Z][A-Z' -]{0,30}:"
# What may begin one, at the end of a text: held back while an answer streams.
NEXT_TURN_BEGUN = r"\n(?:[A-Z][A-Z' -]{0,30})?\Z"


class ChatTemplate:
    """The default template: `ROLE: content` lines, then `ASSISTANT:` for the answer."""

    def render(self, messages: list[dict]) -> str:
        lines = [f"{m['role'].upper()}: {m['content']}" for m in messages]
        return "\n".join(lines + ["ASSISTANT:"])

    def stops(self) -> tuple[list[str], list[tuple[str, str]]]:
        """What ends an answer: strings, and patterns (a regular expression and what may begin a match)."""
        return [], [(NEXT_TURN, NEXT_TURN_BEGUN)]


class JinjaTemplate(ChatTemplate):
    """A user's template in Jinja, with Hugging Face's names: `messages`, `add_generation_prompt`,
    `bos_token` and `eos_token` (empty here), and `raise_exception(message)`."""

    def __init__(self, source: str, name: str = "the chat template"):
        try:
            from jinja2 import TemplateError
            from jinja2.sandbox import ImmutableSandboxedEnvironment
        except ImportError:
            from ..extras import install_hint

            raise MissingPackage(f"a Jinja chat template needs jinja2: {install_hint('chat')}") from None
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        try:
            self.template = env.from_string(source)
        except TemplateError as e:
            raise UsageError(f"{name}: {e}") from None
        self.name, self.errors = name, TemplateError
        self.marker = self._next_turn()

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        try:
            return self.template.render(
                messages=messages, add_generation_prompt=add_generation_prompt, bos_token="", eos_token=""
            )
        except RequestError:
            raise
        except self.errors as e:
            raise RequestError(f"{self.name} cannot render these messages: {e}") from None

    def _next_turn(self) -> str | None:
        """What the template writes between an answer and the user's next message, up to where
        the message begins: what a model that learnt the template makes when its answer is done.
        Found by rendering a conversation with markers for the two."""
        try:
            text = self.render(
                [
                    {"role": "user", "content": "\x01"},
                    {"role": "assistant", "content": "\x02"},
                    {"role": "user", "content": "\x03"},
                ],
                add_generation_prompt=False,
            )
        except RequestError:
            return None
        if "\x02" not in text or "\x03" not in text:
            return None
        between = text[text.index("\x02") + 1 : text.index("\x03")].rstrip()
        if not between:
            return None
        # One that begins a new line (`\nUSER:`) needs the new line to tell it from the answer;
        # one on the answer's own line (`<|im_end|>`, ` </s>`) is enough up to the line's end.
        if between.startswith("\n"):
            return between
        return between.lstrip(" \t").split("\n")[0] or None

    def stops(self) -> tuple[list[str], list[tuple[str, str]]]:
        return ([self.marker] if self.marker else []), []


def _raise(message: str):
    raise RequestError(f"the chat template refused these messages: {message}")


def load_template(path: str | Path) -> JinjaTemplate:
    """A chat template from a Jinja file (or a Hugging Face tokenizer_config.json's `chat_template`)."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read the chat template {path}: {e.strerror}") from None
    if path.suffix == ".json":
        import json

        try:
            source = json.loads(source)["chat_template"]
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"{path} has no `chat_template` string") from None
        if not isinstance(source, str):
            raise UsageError(f"{path}: its `chat_template` is not one template (a string)")
    return JinjaTemplate(source, str(path))


def messages_from(value) -> list[dict]:
    """OpenAI's `messages`, checked: each with a `role` and its text `content` (a string, or a
    list of text parts)."""
    if not isinstance(value, list) or not value:
        raise RequestError('`messages` must be a non-empty list of {"role": ..., "content": ...}')
    messages = []
    for k, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or not message["role"]:
            raise RequestError(f"`messages[{k}]` must be an object with a `role` (a string)")
        content = message.get("content")
        if content is None:
            content = ""
        elif isinstance(content, list):
            if not all(
                isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
            ):
                raise RequestError(f"`messages[{k}].content`: a text model reads text parts only")
            content = "".join(p["text"] for p in content)
        elif not isinstance(content, str):
            raise RequestError(f"`messages[{k}].content` must be a string or a list of text parts")
        messages.append({"role": message["role"], "content": content})
    return messages


async def chat_job(server, served: Served, fields: dict) -> Job:
    """A chat completion as a job for the engine: the conversation rendered and fed, the answer's
    stops, its shape."""
    served.data_kind.check("chat", RequestError, name=served.name)
    template: ChatTemplate = server.chat_template or ChatTemplate()
    text = template.render(messages_from(fields["messages"]))
    length = next(
        (fields[k] for k in ("max_completion_tokens", "max_tokens") if fields[k] is not None),
        protocol.GENERATION["max_tokens"].default,
    )
    fields = {**fields, "max_tokens": length}
    server.check_length(fields)
    server.check_rows(fields["n"])
    stops = protocol.generation_stops(fields, served.data_kind)
    top = protocol.logprobs_count(fields)
    bias = protocol.logit_bias(fields["logit_bias"], len(served.tokenizer))
    strings, patterns = template.stops()
    gen, fed, _, prefill = await run_in_threadpool(served.admit, fields, fields["n"], text)
    inbox = Inbox()
    # The next turn's marker always ends the answer and is never part of it; the request's own
    # stops are kept in the text when it asks.
    stream = make_stream(
        gen,
        fields,
        stops + strings,
        partial(inbox.deliver, stream=0),
        final=True,
        patterns=[whole for whole, _ in patterns],
        top=top,
        bias=bias,
        prefill=prefill,
    )
    cut = ([] if fields["include_stop_str_in_output"] else stops) + strings
    output = Output(served, [fields["n"]], Stops(cut, patterns), strip=True)
    meta = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": served.name}
    return Job(
        served,
        [stream],
        inbox,
        output,
        ChatShape(served, top),
        meta,
        fed=fed,
        stream=fields["stream"],
        usage_chunk=protocol.include_usage(fields),
    )
