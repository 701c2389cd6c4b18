"""`seqgen serve`: the HTTP API over the batching engine, called as a client would."""

from __future__ import annotations

import base64
import threading
import time
import warnings
from contextlib import contextmanager

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from seqgen import SampleConfig
from seqgen.generate import sample
from seqgen.generate.api import follow
from seqgen.generate.generator import Generator
from seqgen.checkpoint import load_checkpoint
from seqgen.serve import Engine, Stream
from seqgen.serve.engine import Piece, ThreadTuner
from seqgen.serve.streaming import EVENTS_PER_SECOND, Inbox, event_interval
from seqgen.serve.remote import ProcessEngine
from seqgen.serve.app import Limits, create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's note about httpx versus httpx2
    from starlette.testclient import TestClient


@pytest.fixture
def client(text_checkpoint, sine_checkpoint):
    with TestClient(create_app([text_checkpoint, sine_checkpoint])) as c:
        yield c


def complete(client, **body):
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


# --- generation ---------------------------------------------------------------------------------
def test_a_completion_is_what_seqgen_sample_gives_for_the_same_seed(client, text_checkpoint):
    got = complete(client, model="poem", prompt="To be", max_tokens=120, seed=7, temperature=0.8, top_k=20)
    expected = sample(text_checkpoint, prime="To be", length=120, seed=7, temperature=0.8, top_k=20)
    assert got["choices"][0]["text"] == expected[0]
    assert got["choices"][0]["finish_reason"] == "length"
    assert got["usage"] == {"prompt_tokens": 5, "completion_tokens": 120, "total_tokens": 125}


def test_n_completions_are_seqgen_samples_num_samples(client, text_checkpoint):
    got = complete(client, model="poem", prompt="Or", max_tokens=60, n=3, seed=2, min_p=0.05)
    expected = sample(text_checkpoint, prime="Or", length=60, num_samples=3, seed=2, min_p=0.05)
    assert [c["text"] for c in got["choices"]] == expected


def test_a_series_completion_returns_numbers(client, sine_checkpoint):
    got = complete(client, model="sine", prompt=[0.0, 0.2, 0.4, 0.55, 0.7], max_tokens=30, seed=1)
    expected = sample(sine_checkpoint, prime=[0.0, 0.2, 0.4, 0.55, 0.7], length=30, seed=1)
    np.testing.assert_array_equal(got["choices"][0]["values"], expected[0])


def test_a_stop_string_ends_the_text_and_is_left_out_of_it(client):
    body = dict(model="poem", prompt="T", max_tokens=400, seed=3, stop=["\n", "fortune"])
    kept = complete(client, **body, include_stop_str_in_output=True)["choices"][0]
    assert kept["text"].endswith("\n") and "\n" not in kept["text"][:-1]
    choice = complete(client, **body)["choices"][0]
    assert choice["text"] == kept["text"][:-1]  # as OpenAI's: the stop string is not part of the answer
    assert choice["finish_reason"] == kept["finish_reason"] == "stop"


def test_logprobs_are_the_chosen_tokens_probabilities(client):
    greedy = complete(client, model="poem", prompt="To be", max_tokens=20, greedy=True, logprobs=True)
    probs = np.exp(greedy["choices"][0]["logprobs"]["token_logprobs"])
    assert len(probs) == 20 and np.all((probs > 0) & (probs <= 1))
    assert "".join(greedy["choices"][0]["logprobs"]["tokens"]) == greedy["choices"][0]["text"]


def test_a_streamed_completion_arrives_in_pieces_that_add_up_to_the_whole(client):
    whole = complete(client, model="poem", prompt="To be", max_tokens=80, seed=5, n=2)
    pieces = {0: "", 1: ""}
    finish = {}
    with client.stream(
        "POST",
        "/v1/completions",
        json={"model": "poem", "prompt": "To be", "max_tokens": 80, "seed": 5, "n": 2, "stream": True},
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    import json

    assert lines[-1] == "data: [DONE]"
    for line in lines[:-1]:
        for choice in json.loads(line[len("data: ") :])["choices"]:
            pieces[choice["index"]] += choice["text"]
            finish[choice["index"]] = choice["finish_reason"]
    assert [pieces[0], pieces[1]] == [c["text"] for c in whole["choices"]]
    assert finish == {0: "length", 1: "length"}


@pytest.mark.parametrize("interval, most", [(0.0, None), (1.0, 3)])
def test_stream_interval_gathers_what_was_made_meanwhile_into_one_event(text_checkpoint, interval, most):
    """With an interval, the first piece goes out at once and what comes within the interval
    after an event waits for the next one; with none, an event per item as it is made."""
    body = {"prompt": "To be", "max_tokens": 300, "seed": 5, "stream": True}
    with TestClient(create_app([text_checkpoint], Limits(stream_interval=interval))) as c:
        with c.stream("POST", "/v1/completions", json=body) as r:
            events = [line for line in r.iter_lines() if line.startswith("data: {")]
        whole = complete(c, **{**body, "stream": False})
    import json

    assert "".join(json.loads(e[6:])["choices"][0]["text"] for e in events) == whole["choices"][0]["text"]
    if most is None:
        assert len(events) > 3
    else:
        assert len(events) <= most  # 300 steps of this model take well under a second


def test_events_come_further_apart_when_many_answers_stream_at_once():
    assert event_interval(0.05, 1) == 0.05  # a lone client gets the interval asked for
    assert event_interval(0.05, EVENTS_PER_SECOND) == 1.0  # the server's events a second are bounded
    assert event_interval(0.0, 1000) == 0.0  # every item as it comes, when asked for


def test_the_last_piece_of_an_answer_is_not_held_back_for_the_interval():
    """Events are at most one per interval, but a stream's end cuts the wait short: a client
    is not kept waiting for an answer that is already whole."""
    import asyncio

    async def main():
        inbox = Inbox()
        last = Piece(np.zeros(1), np.ones(1, bool), None, np.ones(1, bool), True)
        threading.Timer(0.05, inbox.deliver, (last,)).start()  # from another thread, as the engine's
        await asyncio.wait_for(inbox.pause(60), 10)
        assert [piece for _, piece in inbox.drain()] == [last]

    asyncio.run(main())


def test_a_whole_answer_waits_for_its_streams_to_end_not_for_every_step():
    import asyncio

    def piece(done):
        return Piece(np.zeros(1), np.ones(1, bool), None, np.full(1, done), done)

    async def main():
        inbox = Inbox()
        for _ in range(3):
            inbox.deliver(piece(False))
        waiting = asyncio.ensure_future(inbox.ended())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # steps that ended no stream wake nobody
        inbox.deliver(piece(True))
        await asyncio.wait_for(waiting, 10)
        assert [p.done for _, p in inbox.drain()] == [False, False, False, True]

    asyncio.run(main())


# --- batching -----------------------------------------------------------------------------------
def in_a_thread(gen, path):
    return Engine(gen.model)


def in_a_process(gen, path):
    return ProcessEngine(gen.model, load_checkpoint(path).weights, gen.tokenizer)


class TimedModel:
    """Stands in for a NumpyModel whose step takes `seconds[count]` a row on `count` threads."""

    def __init__(self, seconds: dict[int, float]):
        self.seconds, self.threads, self.using = seconds, max(seconds), max(seconds)

    def use_threads(self, count: int) -> None:
        self.using = count


@pytest.mark.parametrize("faster", [1, 2])
def test_the_engine_keeps_the_thread_count_whose_steps_are_faster(faster):
    model = TimedModel({faster: 1.0, 3 - faster: 1.5})
    tuner = ThreadTuner(model)
    assert model.using == 1  # it starts with a core left over
    counts = []
    for _ in range(tuner.WINDOW * tuner.TRIAL_EVERY * 6):
        tuner.stepped(64, 64 * model.seconds[model.using])
        counts.append(model.using)
    settled = counts[len(counts) // 2 :]
    assert settled.count(faster) > 0.85 * len(settled)  # the slower count only in its trials
    tuner.stepped(64, 64.0)
    tuner.stepped(8, 100.0)  # a batch too small to split says nothing about threads
    assert tuner.times == [1.0]


@pytest.mark.parametrize("engine_for", [in_a_thread, in_a_process])
def test_streams_stepped_together_make_what_each_makes_alone(text_checkpoint, engine_for):
    """Continuous batching: streams joining while another is running share its steps of the
    network and still give, seed for seed, what each gives on its own (the server steps them in a
    process of its own)."""
    lengths = [200, 50, 60, 70, 80, 90]
    alone = [sample(text_checkpoint, prime="To", length=n, seed=k, temperature=0.9)[0] for k, n in enumerate(lengths)]
    first = Generator.from_checkpoint(text_checkpoint)
    engine = engine_for(first, text_checkpoint)
    results: dict[int, list[str]] = {k: [] for k in range(6)}
    done = threading.Event()
    streams = []

    def collector(k):
        def deliver(piece):
            results[k].extend(first.vocab[i] for i, live in zip(piece.items, piece.live) if live)
            if k == 0 and len(results[0]) in (5, 10, 15, 20, 25):  # the others join one by one
                engine.submit(streams[len(results[0]) // 5])
            if piece.done and all(s.made == s.length for s in streams):
                done.set()

        return deliver

    for k, n in enumerate(lengths):
        gen = Generator.from_checkpoint(
            text_checkpoint, model=first.model, seed=k, sampling=SampleConfig(temperature=0.9)
        )
        gen.feed("To")
        streams.append(Stream(gen, n, collector(k)))
    engine.submit(streams[0])
    assert done.wait(30)
    engine.close()
    assert ["".join(results[k]) for k in range(6)] == alone
    assert engine.steps == 200  # the others made their 350 items within the first stream's 200 steps


@pytest.mark.parametrize("engine_for", [in_a_thread, in_a_process])
def test_a_prompt_fed_by_the_engine_among_other_streams_gives_what_sample_gives(text_checkpoint, engine_for):
    """A prompt left to the engine (`prefill`) goes in a token per batched step beside streams
    already generating, and still gives what `seqgen sample` gives with that prime and seed, a
    penalty on repeated tokens included (its window is filled from the prompt as `feed` fills it)."""
    settings = dict(temperature=0.9, frequency_penalty=0.5)
    prompts = ["To be, or not", "Whe", "T"]
    alone = [sample(text_checkpoint, prime=p, length=40, seed=k, **settings)[0] for k, p in enumerate(prompts)]
    first = Generator.from_checkpoint(text_checkpoint)
    engine = engine_for(first, text_checkpoint)
    results: dict[int, list[str]] = {k: [] for k in range(4)}
    done = threading.Event()
    left = [4]

    def collector(k):
        def deliver(piece):
            results[k].extend(first.vocab[i] for i, live in zip(piece.items, piece.live) if live)
            if piece.done:
                left[0] -= 1
                if not left[0]:
                    done.set()

        return deliver

    def generator(seed):
        config = SampleConfig(temperature=0.9, frequency_penalty=0.5)
        return Generator.from_checkpoint(text_checkpoint, model=first.model, seed=seed, sampling=config)

    busy = generator(9)
    busy.feed("or")  # generating already when the others join
    engine.submit(Stream(busy, 80, collector(3)))
    for k, prompt in enumerate(prompts):
        gen = generator(k)
        gen.reset(1)
        engine.submit(Stream(gen, 40, collector(k), prefill=gen.encode(prompt)[None, :]))
    assert done.wait(30)
    engine.close()
    assert ["".join(results[k]) for k in range(3)] == alone


def engine_in_a_process(path) -> tuple[Generator, ProcessEngine]:
    first = Generator.from_checkpoint(path)
    return first, in_a_process(first, path)


def run(engine, stream: Stream) -> list:
    """Submit `stream` and wait for its pieces, the last one done."""
    pieces, done = [], threading.Event()

    def deliver(piece):
        pieces.append(piece)
        if piece.done:
            done.set()

    stream.deliver = deliver
    engine.submit(stream)
    assert done.wait(30)
    return pieces


def test_a_generator_comes_back_from_the_engines_process_where_it_left_off(text_checkpoint):
    """The engine's process steps a copy; the server's generator (a session's) carries on from
    the copy's state, random numbers and held-back bytes, as if it had made the items itself."""
    whole = sample(text_checkpoint, prime="To", length=90, seed=3, temperature=0.9)[0]
    first, engine = engine_in_a_process(text_checkpoint)
    gen = Generator.from_checkpoint(text_checkpoint, model=first.model, seed=3, sampling=SampleConfig(temperature=0.9))
    gen.feed("To")
    try:
        pieces = run(engine, Stream(gen, 60, None))
    finally:
        engine.close()
    made = "".join(first.vocab[i] for p in pieces for i, live in zip(p.items, p.live) if live)
    assert made + gen.decode([int(items[0]) for items in gen.generate(30)]) == whole


def test_a_dead_engine_process_ends_its_streams_and_another_takes_over(text_checkpoint):
    first, engine = engine_in_a_process(text_checkpoint)
    gen = Generator.from_checkpoint(text_checkpoint, model=first.model, seed=1)
    gen.feed("To")
    before = gen.snapshot()
    started = threading.Event()
    pieces = []

    def deliver(piece):
        pieces.append(piece)
        started.set()

    stream = Stream(gen, 10**6, deliver)
    engine.submit(stream)
    assert started.wait(30)
    engine._process.kill()  # a crash of the child, from outside
    for _ in range(300):
        if pieces[-1].done:
            break
        time.sleep(0.01)
    assert pieces[-1].done and stream.lost and engine.rows == 0
    assert np.array_equal(gen.snapshot()["state"][0], before["state"][0])  # as before: nothing came back
    fresh = Generator.from_checkpoint(text_checkpoint, model=first.model)
    fresh.feed("To")
    try:
        again = run(engine, Stream(fresh, 5, None))
    finally:
        engine.close()
    assert sum(int(p.live.sum()) for p in again) == 5 and engine.restarts == 1


def test_two_requests_for_one_session_at_once_never_both_run(text_checkpoint):
    """Both requests read their bodies before either runs: the second finds the session taken
    (409) instead of running on a state the first is about to replace."""
    import asyncio

    import httpx

    app = create_app([text_checkpoint])

    async def race(first: tuple, second: tuple) -> list[int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            session = (await c.post("/v1/sessions", json={"prompt": "To", "seed": 1})).json()["id"]
            answers = await asyncio.gather(
                *[c.post(f"/v1/sessions/{session}/{path}", json=body) for path, body in (first, second)]
            )
            return sorted(a.status_code for a in answers)

    generate = ("generate", {"max_tokens": 20})
    try:
        assert asyncio.run(race(generate, generate)) == [200, 409]
        assert asyncio.run(race(("feed", {"prompt": "To"}), generate)) == [200, 409]
    finally:
        app.state.server.close()


def test_concurrent_clients_get_what_they_get_alone(client):
    bodies = [{"model": "poem", "prompt": "Whether", "max_tokens": 150, "seed": k} for k in range(8)]
    alone = [complete(client, **b)["choices"][0]["text"] for b in bodies]
    together: list[str | None] = [None] * 8

    def call(k):
        together[k] = complete(client, **bodies[k])["choices"][0]["text"]

    threads = [threading.Thread(target=call, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone


# --- sessions -----------------------------------------------------------------------------------
def test_a_session_continues_across_calls_as_one_long_generation(client, text_checkpoint):
    created = client.post("/v1/sessions", json={"model": "poem", "prompt": "To be", "seed": 4, "temperature": 0.7})
    assert created.status_code == 201
    sid = created.json()["id"]
    parts = [
        client.post(f"/v1/sessions/{sid}/generate", json={"max_tokens": n}).json()["choices"][0]["text"]
        for n in (30, 50)
    ]
    expected = sample(text_checkpoint, prime="To be", length=80, seed=4, temperature=0.7)[0]
    assert "".join(parts) == expected
    assert client.get(f"/v1/sessions/{sid}").json()["generated"] == 80


def test_feeding_a_session_then_snapshot_and_restore_repeat_the_same_future(client):
    sid = client.post("/v1/sessions", json={"model": "poem", "prompt": "To be", "seed": 1}).json()["id"]
    fed = client.post(f"/v1/sessions/{sid}/feed", json={"prompt": ", or not"}).json()
    assert fed["fed"] == 5 + 8
    state = client.get(f"/v1/sessions/{sid}/snapshot").json()["state"]
    first = client.post(f"/v1/sessions/{sid}/generate", json={"max_tokens": 40}).json()["choices"][0]["text"]
    assert client.get(f"/v1/sessions/{sid}").json()["generated"] == 40
    restored = client.post(f"/v1/sessions/{sid}/restore", json={"state": state})
    assert restored.status_code == 200
    assert (restored.json()["fed"], restored.json()["generated"]) == (13, 0)  # the counts go back with the state
    again = client.post(f"/v1/sessions/{sid}/generate", json={"max_tokens": 40}).json()["choices"][0]["text"]
    assert again == first
    # A state is portable: a new session made from it goes on the same way.
    other = client.post("/v1/sessions", json={"model": "poem", "state": state}).json()
    assert (other["fed"], other["generated"]) == (13, 0)  # it carries its counts too
    assert (
        client.post(f"/v1/sessions/{other['id']}/generate", json={"max_tokens": 40}).json()["choices"][0]["text"]
        == first
    )
    later = client.get(f"/v1/sessions/{other['id']}/snapshot").json()["state"]
    third = client.post("/v1/sessions", json={"model": "poem", "state": later, "prompt": "T"}).json()
    assert (third["fed"], third["generated"]) == (14, 40)
    base64.b64decode(state)  # plain base64 of a state file: `seqgen sample --load-state` reads it


def test_a_deleted_session_is_gone(client):
    sid = client.post("/v1/sessions", json={"model": "poem"}).json()["id"]
    assert client.delete(f"/v1/sessions/{sid}").json()["deleted"] is True
    assert client.post(f"/v1/sessions/{sid}/generate", json={"max_tokens": 5}).status_code == 404


def test_a_series_session_says_its_next_value_after_each_feed(client, sine_checkpoint):
    values = list(np.sin(np.linspace(0, 6, 60)))
    sid = client.post("/v1/sessions", json={"model": "sine", "prompt": values[:40]}).json()["id"]
    said = [client.post(f"/v1/sessions/{sid}/feed", json={"prompt": [v]}).json()["prediction"] for v in values[40:]]
    gen = Generator.from_checkpoint(sine_checkpoint)
    gen.feed(values[:40])
    expected = []
    for v in values[40:]:
        gen.feed([v])
        expected.append(gen.prediction()[0])
    np.testing.assert_allclose(said, expected, rtol=1e-6, atol=1e-7)


def test_follow_forecasts_posted_values(client, sine_checkpoint):
    values = list(np.sin(np.linspace(0, 6, 50)))
    got = client.post("/v1/follow", json={"model": "sine", "values": values, "horizon": 3}).json()
    expected = list(follow(Generator.from_checkpoint(sine_checkpoint), values, horizon=3))
    np.testing.assert_allclose(got["forecasts"], expected, rtol=1e-6, atol=1e-7)


def test_idle_sessions_expire_and_the_number_kept_is_limited(text_checkpoint):
    with TestClient(create_app([text_checkpoint], Limits(max_sessions=2, session_ttl=0.3))) as c:
        first = c.post("/v1/sessions", json={}).json()["id"]
        c.post("/v1/sessions", json={})
        full = c.post("/v1/sessions", json={})
        assert full.status_code == 429 and "delete one" in full.json()["error"]["message"]
        time.sleep(0.5)
        assert c.get(f"/v1/sessions/{first}").status_code == 404
        assert c.post("/v1/sessions", json={}).status_code == 201
        assert c.get("/health").json()["sessions"] == 1


# --- limits and mistakes ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body,status,words",
    [
        ({"model": "poem", "max_tokens": -1}, 400, "`max_tokens` must be >= 0"),
        ({"model": "poem", "temperature": -1}, 400, "`temperature` must be >= 0"),
        ({"model": "poem", "logprobs": 6}, 400, "`logprobs` must be true, false or an integer 0-5"),
        ({"model": "poem", "logit_bias": {"9999": 5}}, 400, "not a token id of this model"),
        ({"model": "poem", "n": 2, "best_of": 1}, 400, "`best_of` must be at least `n`"),
        ({"model": "poem", "best_of": 2, "stream": True}, 400, "cannot stream"),
        ({"model": "poem", "stream_options": {"include_usage": "yes"}}, 400, "include_usage` must be true or false"),
        ({"model": "poem", "top_p": 1.5}, 400, "`top_p` must be in (0, 1]"),
        ({"model": "poem", "prompt": 42}, 400, "`prompt` must be a string or a list"),
        ({"model": "poem", "prompt": "ça"}, 400, "never seen: 'ç'"),
        ({"model": "sine", "prompt": "0 abc 1"}, 400, "`prompt`: 'abc' is not a number"),
        ({"model": "poem", "n": 1000}, 400, "`n` must be between 1 and 64"),
        ({"model": "poem", "max_tokens": 10**6}, 400, "`max_tokens` is at most 4096"),
        ({"model": "sine", "top_k": 3}, 400, "this model generates numbers"),
        ({"model": "nope"}, 404, "no model `nope`"),
        ({}, 400, "give `model`"),
    ],
)
def test_a_bad_request_gets_a_one_line_error_and_the_server_goes_on(client, body, status, words):
    response = client.post("/v1/completions", json=body)
    assert response.status_code == status
    message = response.json()["error"]["message"]
    assert words in message and "\n" not in message
    assert complete(client, model="poem", max_tokens=3)["choices"][0]["text"]


def test_bad_json_a_large_body_and_unknown_paths_get_4xx(text_checkpoint):
    with TestClient(create_app([text_checkpoint], Limits(max_body=200))) as c:
        assert c.post("/v1/completions", content=b"{not json").status_code == 400
        assert (
            c.post("/v1/completions", content=b"[1, 2]").json()["error"]["message"]
            == "the request must be a JSON object"
        )
        assert c.post("/v1/completions", json={"prompt": "x" * 500}).status_code == 413
        assert c.get("/v1/nothing").status_code == 404
        assert c.get("/v1/completions").status_code == 405


def test_a_full_engine_says_busy_with_503(text_checkpoint):
    with TestClient(create_app([text_checkpoint], Limits(max_rows=2))) as c:
        served = next(iter(c.app.state.server.models.values()))
        gen, *_ = served.generator({}, 2, "To")
        running = Stream(gen, 10**6, lambda piece: None)  # two rows: the engine is full
        served.engine.submit(running)
        response = c.post("/v1/completions", json={"max_tokens": 5})
        running.cancel()
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "busy" in response.json()["error"]["message"]


def test_an_api_key_is_required_when_set(text_checkpoint):
    with TestClient(create_app([text_checkpoint], api_key="s3cret")) as c:
        assert c.get("/health").status_code == 401
        assert c.get("/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.post("/v1/completions", json={"max_tokens": 2}, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/").status_code == 200  # the page itself; its calls send the key


def test_health_and_models_describe_what_is_served(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["models"] == ["poem", "sine"]
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert models["poem"]["kind"] == "text" and models["sine"]["kind"] == "series"
    assert models["poem"]["model"]["hidden"] == 32
    assert models["poem"]["max_tokens"] == Limits().max_tokens  # the playground's longest length


# --- the command ---------------------------------------------------------------------------------
@contextmanager
def running_server(checkpoint, *options: str):
    """`seqgen serve CHECKPOINT` in a process of its own, answering /health: (process, base url)."""
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "seqgen", "serve", str(checkpoint), "--port", str(port), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield server, url
    finally:
        server.kill()


def test_seqgen_serve_answers_and_stops_cleanly_on_sigterm(text_checkpoint):
    import signal

    import httpx

    with running_server(text_checkpoint) as (server, url):
        got = httpx.post(f"{url}/v1/completions", json={"prompt": "To be", "max_tokens": 50, "seed": 9}).json()
        assert got["choices"][0]["text"] == sample(text_checkpoint, prime="To be", length=50, seed=9)[0]
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
        assert server.stdout.read() == ""  # stdout is for data; the server says everything on stderr


def test_stopping_the_server_ends_a_running_stream_with_its_last_event(text_checkpoint):
    """A request still running when the server is asked to stop gets an error event and [DONE]
    after the grace period (OpenAI's clients raise on it: the text is not whole), and the server
    exits 0 with no traceback."""
    import json
    import signal

    import httpx

    with running_server(text_checkpoint, "--max-tokens", "1000000") as (server, url):
        events = []
        body = {"prompt": "To", "max_tokens": 1000000, "stream": True}
        with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=30) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(line[6:])
                    if len(events) == 2:
                        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        assert events[-1] == "[DONE]" and "server is stopping" in json.loads(events[-2])["error"]["message"]
        assert "Traceback" not in server.stderr.read()


def test_a_taken_port_is_one_line_and_exit_status_1(text_checkpoint):
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "seqgen", "serve", str(text_checkpoint), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        f"seqgen: error: cannot listen on 127.0.0.1:{port}: the port is in use (give another with --port)"
    ]


def test_more_samples_than_the_server_steps_at_once_is_a_400_not_a_503(text_checkpoint):
    with TestClient(create_app([text_checkpoint], Limits(max_rows=2))) as c:
        r = c.post("/v1/completions", json={"prompt": "To", "max_tokens": 5, "n": 3})
    assert r.status_code == 400 and "`n` is at most 2" in r.json()["error"]["message"]


def test_logprobs_of_a_series_model_are_a_400(client):
    r = client.post("/v1/completions", json={"model": "sine", "max_tokens": 3, "logprobs": True})
    assert r.status_code == 400 and "text models" in r.json()["error"]["message"]
    session = client.post("/v1/sessions", json={"model": "sine"}).json()["id"]
    r = client.post(f"/v1/sessions/{session}/generate", json={"max_tokens": 3, "logprobs": True})
    assert r.status_code == 400


def test_values_beyond_float32_are_refused_and_a_runaway_series_gives_null_not_nan(client):
    r = client.post("/v1/completions", json={"model": "sine", "prompt": [1e200, 2e200], "max_tokens": 3})
    assert r.status_code == 400 and "prompt" in r.json()["error"]["message"]
    r = client.post("/v1/sessions", json={"model": "sine", "prompt": [1e200, 2e200]})
    assert r.status_code == 400 and client.get("/health").json()["sessions"] == 0
    r = client.post(
        "/v1/completions", json={"model": "sine", "prompt": [0.1, 0.2, 0.3], "max_tokens": 5, "noise": 1e300, "seed": 0}
    )
    assert r.status_code == 200
    values = r.json()["choices"][0]["values"]
    assert len(values) == 5 and all(v is None or np.isfinite(v) for v in values)


def test_serve_says_what_is_wrong_with_a_checkpoint_in_one_line(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "seqgen", "serve", str(tmp_path / "missing.safetensors")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "missing.safetensors" in result.stderr


def test_a_missing_checkpoint_is_named_even_where_the_port_is_taken(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = subprocess.run(
            [sys.executable, "-m", "seqgen", "serve", str(tmp_path / "missing.safetensors"), "--port", port],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1 and "missing.safetensors: no such checkpoint" in result.stderr


def test_a_failing_step_ends_its_streams_and_the_engine_goes_on(text_checkpoint):
    first = Generator.from_checkpoint(text_checkpoint)
    engine = Engine(first.model)
    ends = []
    broken = Generator.from_checkpoint(text_checkpoint, model=first.model)
    broken.feed("To")
    broken.last_output = None  # choose() refuses: a stand-in for a bug inside a step
    engine.submit(Stream(broken, 10, lambda piece: ends.append(piece) if piece.done else None))
    for _ in range(200):
        if ends:
            break
        time.sleep(0.01)
    assert ends and ends[0].done
    fine = Generator.from_checkpoint(text_checkpoint, model=first.model, seed=1)
    fine.feed("To")
    made = []
    engine.submit(Stream(fine, 10, lambda piece: made.append(piece)))
    for _ in range(200):
        if made and made[-1].done:
            break
        time.sleep(0.01)
    engine.close()
    assert sum(int(p.live.sum()) for p in made) == 10


def test_a_model_of_several_series_follows_values_in_their_own_series_scale(tmp_path):
    """Posted values of the second series are forecast in its scale, not in the first one's."""
    from seqgen.cli import app as cli
    from typer.testing import CliRunner

    months = np.datetime64("2000-01", "M") + np.arange(120)
    rows = [f"{m},{50 + 10 * np.sin(k / 1.9):.3f},{2000 + 100 * np.cos(k / 1.9):.3f}" for k, m in enumerate(months)]
    (tmp_path / "sales.csv").write_text("month,shop,web\n" + "\n".join(rows) + "\n")
    out = tmp_path / "both.safetensors"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            str(tmp_path / "sales.csv"),
            "--out",
            str(out),
            "--steps",
            "30",
            "--hidden",
            "8",
            "--layers",
            "1",
            "--target",
            "level",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    web = [float(row.split(",")[2]) for row in rows[-30:]]
    with TestClient(create_app([out])) as c:
        got = c.post("/v1/follow", json={"model": "both", "values": web, "horizon": 2, "seed": 0}).json()
        named = c.post(
            "/v1/follow", json={"model": "both", "values": web, "horizon": 2, "seed": 0, "series": "web"}
        ).json()
    assert got["forecasts"] == named["forecasts"]
    assert all(1500 < value < 2500 for value in np.ravel(got["forecasts"][-1]))
