"""`seqgen serve` read as OpenAI's API: what clients send is taken, and fields mean what they
mean there (temperature 0, stops left out, logprobs, several prompts, models, Retry-After)."""

from __future__ import annotations

import json
import os
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from seqgen.generate import sample
from seqgen.serve.app import Limits, create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's note about httpx versus httpx2
    from starlette.testclient import TestClient


@pytest.fixture
def client(text_checkpoint, sine_checkpoint):
    with TestClient(create_app([text_checkpoint, sine_checkpoint])) as c:
        yield c


def complete(client, **body) -> dict:
    response = client.post("/v1/completions", json={"model": "poem", **body})
    assert response.status_code == 200, response.text
    return response.json()


def streamed(client, path: str = "/v1/completions", **body) -> list:
    """The events of a streamed answer: JSON objects, then the string "[DONE]"."""
    with client.stream("POST", path, json={"model": "poem", **body, "stream": True}) as r:
        assert r.status_code == 200, r.read()
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


# --- what clients send ---------------------------------------------------------------------------
def test_unknown_fields_are_ignored_and_named_in_a_header(client):
    r = client.post(
        "/v1/completions",
        json={
            "model": "poem",
            "prompt": "To",
            "max_tokens": 5,
            "seed": 1,
            "tempreature": 9,
            "frobnicate": True,
            "suffix": "!",
        },
    )
    assert r.status_code == 200
    assert r.headers["x-seqgen-ignored-fields"] == "frobnicate, suffix, tempreature"
    assert r.json()["choices"][0]["text"] == sample_text(client, "To", 5, seed=1)
    # seqgen's own endpoints still refuse a misspelt field
    r = client.post("/v1/sessions", json={"model": "poem", "tempreature": 1})
    assert r.status_code == 400 and "unknown field `tempreature`" in r.json()["error"]["message"]


def sample_text(client, prompt: str, length: int, **settings) -> str:
    return complete(client, prompt=prompt, max_tokens=length, **settings)["choices"][0]["text"]


def test_include_usage_ends_a_stream_with_a_chunk_of_usage(client):
    whole = complete(client, prompt="To be", max_tokens=30, seed=2, n=2, user="someone")
    events = streamed(client, prompt="To be", max_tokens=30, seed=2, n=2, stream_options={"include_usage": True})
    *chunks, last, done = events
    assert done == "[DONE]" and last["choices"] == [] and last["usage"] == whole["usage"]
    assert all(chunk["usage"] is None for chunk in chunks)
    texts = ["", ""]
    for chunk in chunks:
        for choice in chunk["choices"]:
            texts[choice["index"]] += choice["text"]
    assert texts == [c["text"] for c in whole["choices"]]


def test_echo_puts_the_prompt_before_the_completion(client):
    plain = sample_text(client, "To be", 20, seed=4)
    echoed = complete(client, prompt="To be", max_tokens=20, seed=4, echo=True, logprobs=0)["choices"][0]
    assert echoed["text"] == "To be" + plain
    logprobs = echoed["logprobs"]
    assert logprobs["tokens"][:5] == list("To be") and logprobs["text_offset"][:6] == [0, 1, 2, 3, 4, 5]
    assert logprobs["token_logprobs"][0] is None and all(lp < 0 for lp in logprobs["token_logprobs"][1:])


def test_echo_with_no_tokens_scores_a_text_as_generating_it_would(client):
    """How evaluation harnesses score a text: each token's log-probability given those before it."""
    made = complete(client, prompt="To", max_tokens=8, temperature=0, logprobs=2)["choices"][0]
    scored = complete(client, prompt="To" + made["text"], max_tokens=0, temperature=0, echo=True, logprobs=2)[
        "choices"
    ][0]
    assert scored["text"] == "To" + made["text"] and scored["finish_reason"] == "length"
    np.testing.assert_allclose(scored["logprobs"]["token_logprobs"][2:], made["logprobs"]["token_logprobs"], rtol=1e-9)
    for mine, theirs in zip(scored["logprobs"]["top_logprobs"][2:], made["logprobs"]["top_logprobs"]):
        assert mine.keys() == theirs.keys()


def test_logit_bias_on_token_ids_bans_or_forces_tokens(client, text_checkpoint):
    from seqgen.checkpoint import load_checkpoint
    from seqgen.data.tokenizers import tokenizer_for

    vocab = tokenizer_for(load_checkpoint(text_checkpoint).data).vocab
    greedy = sample_text(client, "To be", 30, temperature=0)
    common = vocab.index(max(set(greedy), key=greedy.count))
    banned = sample_text(client, "To be", 30, temperature=0, logit_bias={str(common): -100})
    assert vocab[common] not in banned
    forced = sample_text(client, "To be", 10, seed=3, logit_bias={str(vocab.index("q")): 100})
    assert forced == "q" * 10


def test_best_of_keeps_the_samples_of_highest_summed_log_probability(client):
    every = complete(client, prompt="Or", max_tokens=25, seed=8, n=4, logprobs=0)["choices"]
    scores = {c["text"]: sum(c["logprobs"]["token_logprobs"]) for c in every}
    best = complete(client, prompt="Or", max_tokens=25, seed=8, n=2, best_of=4)
    assert [c["text"] for c in best["choices"]] == sorted(scores, key=scores.get, reverse=True)[:2]
    assert [c["index"] for c in best["choices"]] == [0, 1] and best["choices"][0]["logprobs"] is None
    assert best["usage"]["completion_tokens"] == 4 * 25  # every sample made counts, as OpenAI's


# --- OpenAI's meanings ---------------------------------------------------------------------------
def test_temperature_zero_is_greedy(client, text_checkpoint):
    expected = sample(text_checkpoint, prime="To be", length=40, greedy=True)[0]
    assert sample_text(client, "To be", 40, temperature=0, top_p=0.9) == expected
    assert sample_text(client, "To be", 40, temperature=0, seed=5) == expected


def test_a_stop_the_model_cannot_make_is_taken_and_never_matches(client):
    plain = complete(client, prompt="To", max_tokens=40, seed=6)["choices"][0]
    for stop in ("</s>", ["<|endoftext|>", "###"]):
        got = complete(client, prompt="To", max_tokens=40, seed=6, stop=stop)["choices"][0]
        assert (got["text"], got["finish_reason"]) == (plain["text"], "length")


def test_a_streamed_answer_leaves_the_stop_string_out_too(text_checkpoint):
    """With an event per token, the first "t" waits until the next token shows whether it began "tt"."""
    body = dict(prompt="T", max_tokens=300, seed=3, stop=["tt", "qu"])
    with TestClient(create_app([text_checkpoint], Limits(stream_interval=0))) as client:
        whole = complete(client, **body)["choices"][0]
        events = streamed(client, **body, logprobs=1)
    text = "".join(c["text"] for e in events[:-1] for c in e["choices"])
    tokens = "".join(t for e in events[:-1] for c in e["choices"] for t in c["logprobs"]["tokens"])
    assert whole["finish_reason"] == "stop" and text == whole["text"] == tokens
    assert "tt" not in text and text.endswith("ard")  # this seed's text goes on "ardtta"


def test_a_streaming_row_holds_back_what_may_begin_a_stop_until_it_is_known():
    from seqgen.serve.streaming import Row, Stops

    stops, row = Stops(["tt", "qu"]), Row()
    sent = []
    for token in ("o", "a", "t", "x", "q", "i", "t"):
        row.add(token)
        sent.append(row.fresh(stops, strip=False)[0])
    assert sent == ["o", "a", "", "tx", "", "qi", ""]
    row.add("t")  # "tt": the row ends, and the text before the stop goes out
    row.finish, row.end = "stop", stops.find(row.text, 0)
    assert row.fresh(stops, strip=False)[0] == "" and row.text[: row.end] == "oatxqi"


def test_logprobs_as_an_integer_gives_that_many_alternatives_and_offsets(client):
    choice = complete(client, prompt="To be", max_tokens=30, temperature=0, logprobs=3)["choices"][0]
    logprobs, text = choice["logprobs"], choice["text"]
    assert "".join(logprobs["tokens"]) == text
    for token, logprob, top, offset in zip(
        logprobs["tokens"], logprobs["token_logprobs"], logprobs["top_logprobs"], logprobs["text_offset"]
    ):
        assert text[offset : offset + len(token)] == token
        assert len(top) <= 4 and top[token] == logprob  # the chosen token, and up to 3 others
        assert logprob == max(top.values())  # greedy: the chosen token is the most likely
        assert sum(np.exp(list(top.values()))) <= 1 + 1e-9


def test_a_list_of_prompts_gives_choices_prompt_by_prompt(client):
    got = complete(client, prompt=["To be", "Or"], max_tokens=20, n=2, seed=9)
    alone = [complete(client, prompt=p, max_tokens=20, n=2, seed=9)["choices"] for p in ("To be", "Or")]
    assert [c["index"] for c in got["choices"]] == [0, 1, 2, 3]
    assert [c["text"] for c in got["choices"]] == [c["text"] for choices in alone for c in choices]
    assert got["usage"]["prompt_tokens"] == 5 + 2


def test_models_have_created_and_owned_by_and_each_its_own_url(client, text_checkpoint):
    listed = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert listed["poem"]["created"] == int(os.stat(text_checkpoint).st_mtime)
    assert listed["poem"]["owned_by"] == "seqgen"
    assert client.get("/v1/models/poem").json() == listed["poem"]
    missing = client.get("/v1/models/nope")
    assert missing.status_code == 404 and "no model `nope`" in missing.json()["error"]["message"]


def test_finish_reasons_are_openais(client):
    reasons = {
        c["finish_reason"] for c in complete(client, prompt="T", max_tokens=60, n=8, seed=1, stop="e")["choices"]
    }
    assert reasons <= {"stop", "length"} and "stop" in reasons


def test_a_full_session_store_says_when_a_place_frees(text_checkpoint):
    with TestClient(create_app([text_checkpoint], Limits(max_sessions=2, session_ttl=100))) as c:
        c.post("/v1/sessions", json={})
        time.sleep(1.2)
        c.post("/v1/sessions", json={})
        full = c.post("/v1/sessions", json={})
    # The older one expires first: its 100 s, less the 1.2 s (and a little) it has been idle.
    assert full.status_code == 429 and 95 <= int(full.headers["retry-after"]) <= 99


def test_the_page_has_an_icon(client):
    r = client.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml") and b"<svg" in r.content
