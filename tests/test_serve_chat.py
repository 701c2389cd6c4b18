"""`POST /v1/chat/completions`: a conversation rendered by a chat template, the answer ending where
the model begins the next turn; a model trained on a short dialogue answers as it learnt."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from seqgen.serve.app import create_app
from seqgen.serve.chat import ChatTemplate

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's note about httpx versus httpx2
    from starlette.testclient import TestClient

DIALOGUE = (
    "USER: hi\nASSISTANT: hello there\nUSER: how are you\nASSISTANT: fine thanks\n"
    "SYSTEM: be brief\nUSER: bye\nASSISTANT: good bye\n"
) * 20

# The default template as a Jinja one, in Hugging Face's convention.
PLAIN_JINJA = (
    "{% for m in messages %}{{ m.role | upper }}: {{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@pytest.fixture(scope="module")
def dialogue_checkpoint(tmp_path_factory) -> Path:
    """A small model that has learnt a three-turn dialogue by heart (two seconds of training)."""
    from seqgen import ModelConfig, TrainConfig, Trainer, load_data

    folder = tmp_path_factory.mktemp("dialogue")
    (folder / "chat.txt").write_text(DIALOGUE, encoding="utf-8")
    out = folder / "chat.safetensors"
    Trainer(
        load_data(str(folder / "chat.txt")),
        ModelConfig(hidden=48, embed=16),
        TrainConfig(batch_size=8, window=48, steps=150, eval_every=50, lr=0.01),
        out,
    ).run()
    return out


@pytest.fixture(scope="module")
def client(dialogue_checkpoint, sine_checkpoint):
    with TestClient(create_app([dialogue_checkpoint, sine_checkpoint])) as c:
        yield c


def chat(client, **body) -> dict:
    response = client.post("/v1/chat/completions", json={"model": "chat", **body})
    assert response.status_code == 200, response.text
    return response.json()


HI = [{"role": "user", "content": "hi"}]


def test_the_default_template_writes_role_lines_and_ends_with_the_assistants_turn():
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert ChatTemplate().render(messages) == "SYSTEM: be brief\nUSER: hi\nASSISTANT:"


def test_the_answer_ends_where_the_model_begins_the_next_turn(client):
    got = chat(client, messages=HI, temperature=0)
    assert got["object"] == "chat.completion" and got["id"].startswith("chatcmpl-")
    choice = got["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "hello there"}
    assert choice["finish_reason"] == "stop" and choice["logprobs"] is None
    assert got["usage"]["prompt_tokens"] == len("USER: hi\nASSISTANT:")
    assert got["usage"]["completion_tokens"] == len(" hello there\nUSER:")


def test_a_conversation_goes_on_from_its_last_message(client):
    messages = [*HI, {"role": "assistant", "content": "hello there"}, {"role": "user", "content": "how are you"}]
    assert chat(client, messages=messages, temperature=0)["choices"][0]["message"]["content"] == "fine thanks"
    parts = [{"role": "user", "content": [{"type": "text", "text": "h"}, {"type": "text", "text": "i"}]}]
    assert chat(client, messages=parts, temperature=0)["choices"][0]["message"]["content"] == "hello there"


def test_a_streamed_answer_is_deltas_that_add_up_to_the_whole(client):
    whole = chat(client, messages=HI, n=2, seed=3, temperature=0.7)
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "chat",
            "messages": HI,
            "n": 2,
            "seed": 3,
            "temperature": 0.7,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as r:
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    events = [json.loads(line) for line in lines[:-1]]
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert [c["delta"] for c in events[0]["choices"]] == [{"role": "assistant", "content": ""}] * 2
    assert events[-1]["choices"] == [] and events[-1]["usage"] == whole["usage"]
    content, finish = ["", ""], [None, None]
    for event in events[1:-1]:
        for c in event["choices"]:
            content[c["index"]] += c["delta"].get("content", "")
            finish[c["index"]] = c["finish_reason"] or finish[c["index"]]
    assert content == [c["message"]["content"] for c in whole["choices"]]
    assert finish == [c["finish_reason"] for c in whole["choices"]]


def test_chat_logprobs_are_openais_content_list(client):
    choice = chat(client, messages=HI, temperature=0, logprobs=True, top_logprobs=2)["choices"][0]
    content = choice["logprobs"]["content"]
    assert "".join(t["token"] for t in content).strip() == choice["message"]["content"]
    for token in content:
        assert len(token["top_logprobs"]) == 2 and token["top_logprobs"][0]["logprob"] == token["logprob"]
        assert token["bytes"] == list(token["token"].encode())


def test_max_completion_tokens_and_stop_are_taken(client):
    short = chat(client, messages=HI, temperature=0, max_completion_tokens=4)["choices"][0]
    assert short == {**short, "message": {"role": "assistant", "content": "hel"}, "finish_reason": "length"}
    assert chat(client, messages=HI, temperature=0, max_tokens=4)["choices"][0]["message"]["content"] == "hel"
    stopped = chat(client, messages=HI, temperature=0, stop=" t")["choices"][0]
    assert (stopped["message"]["content"], stopped["finish_reason"]) == ("hello", "stop")


def test_a_series_model_cannot_chat(client):
    r = client.post("/v1/chat/completions", json={"model": "sine", "messages": HI})
    assert r.status_code == 400 and "series model" in r.json()["error"]["message"]
    r = client.post("/v1/chat/completions", json={"model": "chat", "messages": [{"content": "hi"}]})
    assert r.status_code == 400 and "`role`" in r.json()["error"]["message"]


def test_a_jinja_template_of_ones_own(dialogue_checkpoint, tmp_path):
    pytest.importorskip("jinja2")
    from seqgen.serve.chat import JinjaTemplate

    (tmp_path / "plain.jinja").write_text(PLAIN_JINJA)
    with TestClient(create_app([dialogue_checkpoint], chat_template=tmp_path / "plain.jinja")) as c:
        got = chat(c, messages=HI, temperature=0)["choices"][0]
    assert (got["message"]["content"], got["finish_reason"]) == ("hello there", "stop")
    # The next turn's marker is read from the template: what it writes after an answer.
    chatml = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    assert JinjaTemplate(chatml).stops() == (["<|im_end|>"], [])
    assert JinjaTemplate(PLAIN_JINJA).stops() == (["\nUSER:"], [])
    llama = (
        "{% for m in messages %}{% if m.role == 'user' %}<s>[INST] {{ m.content }} [/INST]"
        "{% else %} {{ m.content }} </s>{% endif %}{% endfor %}"
    )
    assert JinjaTemplate(llama).stops() == (["</s><s>[INST]"], [])


def test_chat_template_without_jinja2_is_one_line_naming_the_extra(dialogue_checkpoint, tmp_path):
    (tmp_path / "plain.jinja").write_text(PLAIN_JINJA)
    code = "import sys; sys.modules['jinja2'] = None; from seqgen.cli import main; main()"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "serve",
            str(dialogue_checkpoint),
            "--chat-template",
            str(tmp_path / "plain.jinja"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "jinja2" in lines[0] and "[chat]" in lines[0], result.stderr
