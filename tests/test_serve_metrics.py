"""`/metrics` (Prometheus's text format), `/tokenize` and `/detokenize`, as llama.cpp's server has them."""

from __future__ import annotations

import re
import warnings

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from seqgen.serve.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's note about httpx versus httpx2
    from starlette.testclient import TestClient


@pytest.fixture(scope="module")
def client(text_checkpoint, sine_checkpoint):
    with TestClient(create_app([text_checkpoint, sine_checkpoint])) as c:
        yield c


def scrape(client, **headers) -> dict[str, float]:
    """Every sample of /metrics by its name and labels, as written: `name{label="value"}`."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in response.text.splitlines():
        if line.startswith("#"):
            assert re.fullmatch(r"# (HELP \w+ .+|TYPE \w+ (counter|gauge|histogram))", line), line
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


def test_tokenize_and_detokenize_are_each_others_inverse(client):
    tokens = client.post("/tokenize", json={"model": "poem", "content": "To be, or not"}).json()["tokens"]
    assert len(tokens) == len("To be, or not") and all(isinstance(t, int) for t in tokens)  # a character model
    assert client.post("/detokenize", json={"model": "poem", "tokens": tokens}).json() == {"content": "To be, or not"}
    pieces = client.post("/tokenize", json={"model": "poem", "content": "To", "with_pieces": True}).json()
    assert pieces == {"tokens": [{"id": tokens[0], "piece": "T"}, {"id": tokens[1], "piece": "o"}]}
    assert client.post("/detokenize", json={"model": "poem", "tokens": []}).json() == {"content": ""}


def test_a_token_id_from_tokenize_is_what_logit_bias_takes(client):
    [e] = client.post("/tokenize", json={"model": "poem", "content": "e"}).json()["tokens"]
    got = client.post(
        "/v1/completions",
        json={"model": "poem", "prompt": "To", "max_tokens": 6, "seed": 1, "logit_bias": {str(e): 100}},
    ).json()
    assert got["choices"][0]["text"] == "eeeeee"


def test_llama_cpp_clients_fields_are_ignored_and_named(client):
    response = client.post(
        "/tokenize", json={"model": "poem", "content": "To", "add_special": True, "parse_special": False}
    )
    assert response.status_code == 200
    assert response.headers["x-seqgen-ignored-fields"] == "add_special, parse_special"


@pytest.mark.parametrize(
    "path, body, message",
    [
        ("/tokenize", {"model": "sine", "content": "1 2"}, "sine is a series model: it reads numbers, not tokens"),
        ("/detokenize", {"model": "sine", "tokens": [1]}, "sine is a series model"),
        ("/tokenize", {"model": "poem"}, "`content`: give the text to tokenize"),
        ("/tokenize", {"model": "poem", "content": 5}, "`content` must be a string, got int"),
        ("/tokenize", {"model": "poem", "content": "ça"}, "`content` has characters poem has never seen: 'ç'"),
        ("/detokenize", {"model": "poem", "tokens": [0, -1]}, "`tokens` must be a list of token ids of poem"),
        ("/detokenize", {"model": "poem", "tokens": [0, 1.0]}, "`tokens` must be a list of token ids of poem"),
        ("/detokenize", {"model": "poem", "tokens": [True]}, "`tokens` must be a list of token ids of poem"),
        ("/detokenize", {"model": "poem", "tokens": [10_000]}, "`tokens` must be a list of token ids of poem"),
        ("/tokenize", {"model": "nope", "content": "a"}, "no model `nope`"),
    ],
)
def test_bad_input_is_a_one_line_error_object(client, path, body, message):
    response = client.post(path, json=body)
    assert response.status_code == (404 if "nope" in str(body) else 400)
    error = response.json()["error"]
    assert error["message"].startswith(message) and error["type"] == "invalid_request_error"


def test_skip_and_replace_read_what_the_model_knows(client):
    skip = client.post("/tokenize", json={"model": "poem", "content": "çTo", "unknown": "skip"}).json()["tokens"]
    assert client.post("/detokenize", json={"model": "poem", "tokens": skip}).json()["content"] == "To"
    replace = client.post("/tokenize", json={"model": "poem", "content": "ç", "unknown": "replace"}).json()["tokens"]
    assert client.post("/detokenize", json={"model": "poem", "tokens": replace}).json()["content"] == " "


def test_metrics_count_requests_tokens_and_steps(text_checkpoint, sine_checkpoint):
    with TestClient(create_app([text_checkpoint, sine_checkpoint])) as client:
        made = 0
        for stream in (False, True):
            response = client.post(
                "/v1/completions", json={"model": "poem", "prompt": "To", "max_tokens": 30, "n": 2, "stream": stream}
            )
            assert response.status_code == 200
        made += 2 * 30 * 2
        values = client.post("/v1/completions", json={"model": "sine", "max_tokens": 12}).json()
        assert client.post("/v1/completions", json={"model": "poem", "max_tokens": -1}).status_code == 400
        client.get("/v1/sessions/nobody")
        metrics = scrape(client)

    assert metrics['seqgen_requests_total{endpoint="/v1/completions",status="200"}'] == 3
    assert metrics['seqgen_requests_total{endpoint="/v1/completions",status="400"}'] == 1
    assert metrics['seqgen_requests_total{endpoint="/v1/sessions/{id}",status="404"}'] == 1  # one series for every id
    assert metrics['seqgen_tokens_generated_total{model="poem"}'] == made
    assert metrics['seqgen_tokens_generated_total{model="sine"}'] == values["usage"]["completion_tokens"] == 12
    assert metrics['seqgen_prompt_tokens_total{model="poem"}'] == 2 * len("To")
    for gauge in ("seqgen_streams_active", "seqgen_rows_active", "seqgen_queue_length"):
        assert metrics[gauge + '{model="poem"}'] == 0  # every request has been answered
    # Every step of the engine is in the histogram: one per item a request made and one per
    # token of its prompt (the engine feeds a short prompt), the requests here one after another.
    steps = metrics['seqgen_step_seconds_count{model="poem"}']
    assert steps == 2 * (30 + len("To"))
    buckets = [v for k, v in metrics.items() if k.startswith('seqgen_step_seconds_bucket{model="poem"')]
    assert buckets == sorted(buckets) and buckets[-1] == steps
    assert metrics['seqgen_step_seconds_sum{model="poem"}'] > 0


def test_with_an_api_key_metrics_need_it_and_count_the_refusals(text_checkpoint):
    with TestClient(create_app([text_checkpoint], api_key="k")) as client:
        assert client.get("/metrics").status_code == 401
        metrics = scrape(client, authorization="Bearer k")
    assert metrics['seqgen_requests_total{endpoint="/metrics",status="401"}'] == 1
