"""`seqgen serve` driven by clients nobody on this project wrote: the official `openai` SDK and
Simon Willison's `llm` CLI, against a real server on a free port. Each skips when its package is
not installed (both are in the dev extra)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from seqgen.generate import sample
from test_serve import running_server
from test_serve_chat import dialogue_checkpoint  # noqa: F401 (a fixture: a model of a short dialogue)

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def url(text_checkpoint, dialogue_checkpoint):  # noqa: F811
    """A server of two models: `poem` (completions) and `chat` (a dialogue it answers)."""
    with running_server(text_checkpoint, str(dialogue_checkpoint)) as (server, base):
        yield base


@pytest.fixture(scope="module")
def client(url):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


# --- the openai SDK -------------------------------------------------------------------------------
def test_a_completion_through_the_sdk_is_seqgen_sample(client, text_checkpoint):
    got = client.completions.create(model="poem", prompt="To be", max_tokens=40, seed=4)
    assert got.choices[0].text == sample(text_checkpoint, prime="To be", length=40, seed=4)[0]
    assert (got.choices[0].finish_reason, got.usage.completion_tokens) == ("length", 40)


def test_a_streamed_completion_through_the_sdk_ends_with_its_usage(client):
    whole = client.completions.create(model="poem", prompt="To be", max_tokens=60, seed=5)
    chunks = list(
        client.completions.create(
            model="poem", prompt="To be", max_tokens=60, seed=5, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


def test_temperature_zero_through_the_sdk_is_greedy(client, text_checkpoint):
    got = client.completions.create(model="poem", prompt="To be", max_tokens=30, temperature=0)
    assert got.choices[0].text == sample(text_checkpoint, prime="To be", length=30, greedy=True)[0]


def test_the_stop_string_is_left_out_and_logprobs_come_as_the_sdk_reads_them(client):
    kept = client.completions.create(
        model="poem", prompt="T", max_tokens=300, seed=3, stop=["tt"], extra_body={"include_stop_str_in_output": True}
    ).choices[0]
    got = client.completions.create(model="poem", prompt="T", max_tokens=300, seed=3, stop=["tt"], logprobs=2).choices[
        0
    ]
    assert got.finish_reason == "stop" and kept.text == got.text + "tt"
    assert "".join(got.logprobs.tokens) == got.text and got.logprobs.text_offset[0] == 0
    assert all(
        len(top) <= 3 and top[token] == lp
        for token, lp, top in zip(got.logprobs.tokens, got.logprobs.token_logprobs, got.logprobs.top_logprobs)
    )


def test_a_chat_completion_through_the_sdk_whole_and_streamed(client):
    whole = client.chat.completions.create(model="chat", messages=HI, temperature=0)
    assert whole.choices[0].message.role == "assistant"
    assert (whole.choices[0].message.content, whole.choices[0].finish_reason) == ("hello there", "stop")
    chunks = list(
        client.chat.completions.create(
            model="chat", messages=HI, temperature=0, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello there"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage == whole.usage


def test_the_sdk_raises_the_right_exception_for_a_mistake(client):
    openai = pytest.importorskip("openai")
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.completions.create(model="poem", prompt="To", temperature=-1)
    with pytest.raises(openai.NotFoundError, match="no model `nope`"):
        client.models.retrieve("nope")
    # The default template's role names are capitals this model never saw: one line says so.
    with pytest.raises(openai.BadRequestError, match="never seen: 'A', 'E'"):
        client.chat.completions.create(model="poem", messages=HI)
    assert {m.id: m.owned_by for m in client.models.list()} == {"poem": "seqgen", "chat": "seqgen"}


# --- the llm CLI ----------------------------------------------------------------------------------
def llm(url: str, home: Path, *args: str) -> str:
    """`llm ARGS` with its models file in `home` pointing at the server; its output."""
    if subprocess.run([sys.executable, "-c", "import llm"], capture_output=True).returncode:
        pytest.skip("the llm CLI is not installed")
    (home / "extra-openai-models.yaml").write_text(
        f"- model_id: seqgen-poem\n  model_name: poem\n  api_base: {url}/v1\n  completion: true\n"
        f"- model_id: seqgen-chat\n  model_name: chat\n  api_base: {url}/v1\n"
    )
    env = {**os.environ, "LLM_USER_PATH": str(home)}
    done = subprocess.run([sys.executable, "-m", "llm", *args], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_llm_streams_a_completion_from_the_server(url, tmp_path, text_checkpoint):
    """llm streams by default, and always sends stream_options: once a 400 here."""
    out = llm(url, tmp_path, "-m", "seqgen-poem", "To be", "-o", "max_tokens", "40", "-o", "seed", "4")
    assert out == sample(text_checkpoint, prime="To be", length=40, seed=4)[0] + "\n"


def test_llm_at_temperature_zero_gives_the_greedy_text(url, tmp_path, text_checkpoint):
    out = llm(url, tmp_path, "-m", "seqgen-poem", "To be", "-o", "max_tokens", "30", "-o", "temperature", "0")
    assert out == sample(text_checkpoint, prime="To be", length=30, greedy=True)[0] + "\n"


def test_llm_chats_with_a_model_of_a_dialogue(url, tmp_path):
    assert llm(url, tmp_path, "-m", "seqgen-chat", "hi", "-o", "temperature", "0") == "hello there\n"
    assert llm(url, tmp_path, "-m", "seqgen-chat", "hi", "-o", "temperature", "0", "--no-stream") == "hello there\n"
