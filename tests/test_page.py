"""The playground page at `/`, driven in a real headless Chromium against a real server.

Skipped unless Playwright (`pip install playwright`) and a Chromium are installed: `chromium` on
the PATH (Debian: `apt-get install chromium`), or SEQGEN_CHROMIUM naming the executable.
`playwright install` is not needed: the tests launch that executable.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("playwright")

if os.environ.get("SEQGEN_CHROMIUM"):
    CHROMIUM = shutil.which(os.environ["SEQGEN_CHROMIUM"])
    if not CHROMIUM:
        pytest.skip(f"SEQGEN_CHROMIUM={os.environ['SEQGEN_CHROMIUM']} is not an executable", allow_module_level=True)
else:
    CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
    if not CHROMIUM:
        pytest.skip("no Chromium (put `chromium` on the PATH or set SEQGEN_CHROMIUM)", allow_module_level=True)

import uvicorn  # noqa: E402 (after the skip when no browser is installed)
from playwright.sync_api import Error as PlaywrightError  # noqa: E402 (after the skip when no browser is installed)
from playwright.sync_api import expect, sync_playwright  # noqa: E402 (after the skip when no browser is installed)

from seqgen.serve.app import create_app  # noqa: E402 (after the skip when no browser is installed)

TIMEOUT = 15_000  # ms: generous for a shared machine; a passing run takes a fraction of it


class LiveServer:
    """uvicorn serving `create_app(...)` on a free port of 127.0.0.1, in a background thread."""

    def __init__(self, checkpoints, api_key=None, chat_template=None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.key = api_key
        config = uvicorn.Config(
            create_app(checkpoints, api_key=api_key, chat_template=chat_template), log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def complete(self, **body) -> dict:
        return self.post("/v1/completions", body)

    def chat(self, **body) -> dict:
        return self.post("/v1/chat/completions", body)

    def post(self, path: str, body: dict) -> dict:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        response = httpx.post(self.url + path, json=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM)
        except PlaywrightError as e:
            pytest.skip(f"Chromium at {CHROMIUM} does not start under Playwright: {e}")
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(text_checkpoint, sine_checkpoint):
    with LiveServer([text_checkpoint, sine_checkpoint]) as s:
        yield s


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def generate(page, prime: str, seed: int | None = None, length: int | None = None) -> None:
    page.fill("#prompt", prime)
    if seed is not None:
        page.fill("#seed", str(seed))
    if length is not None:
        page.fill("#length", str(length))
    page.click("#go")


def finished(page) -> str:
    """Wait until the status line says how much was made (on failure it shows what it said)."""
    status = page.locator("#status")
    expect(status).to_have_text(re.compile(r"^\d+ (characters|values) in [\d.]+ s$"), timeout=TIMEOUT)
    expect(status).not_to_have_class("error")
    return status.text_content()


INKED = """() => {
    const c = document.getElementById("chart");
    const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
    return n;
}"""


def test_text_streams_in_and_matches_a_direct_completion(page, server):
    page.goto(server.url + "/")
    expect(page.locator("#model option")).to_have_count(2)
    assert page.locator("#model option").all_inner_texts() == ["poem (text)", "sine (series)"]
    assert page.input_value("#model") == "poem"
    with page.expect_request("**/v1/completions") as request:
        generate(page, "To be", seed=11, length=150)
    finished(page)
    temperature = float(page.input_value("#temperature"))
    sent = request.value.post_data_json
    assert sent == {
        "model": "poem",
        "prompt": "To be",
        "max_tokens": 150,
        "seed": 11,
        "temperature": temperature,
        "stream": True,
    }
    expected = server.complete(model="poem", prompt="To be", max_tokens=150, seed=11, temperature=temperature)
    text = expected["choices"][0]["text"]
    assert page.text_content("#out") == text
    assert page.text_content("#shown-prompt") == "To be"
    assert page.text_content("#status").startswith("150 characters in ")


def test_a_series_model_draws_a_chart(page, server):
    page.goto(server.url + "/")
    expect(page.locator("#model option")).to_have_count(2)
    page.select_option("#model", "sine")
    expect(page.locator("#chart")).to_be_visible()
    expect(page.locator("#text")).to_be_hidden()
    assert page.evaluate(INKED) == 0
    generate(page, "0 0.3 0.6 0.8 0.95 1", seed=3, length=80)
    finished(page)
    assert page.text_content("#status").startswith("80 values in ")
    box = page.locator("#chart").bounding_box()
    assert box["width"] > 500 and box["height"] > 200
    assert page.evaluate(INKED) > 1000  # the prime and the continuation, 2 px lines across the canvas


def test_with_an_api_key_the_page_says_401_until_the_key_is_typed(browser, page, text_checkpoint):
    refused = "a valid API key is needed: send `Authorization: Bearer KEY`"
    with LiveServer([text_checkpoint], api_key="s3cret") as server:
        page.goto(server.url + "/")
        status = page.locator("#status")
        expect(status).to_have_text(refused)
        expect(status).to_have_class("error")
        generate(page, "To", seed=1, length=20)  # no key: the model list still cannot load
        expect(status).to_have_text(refused)
        assert page.locator("#model option").count() == 0 and page.text_content("#out") == ""
        page.fill("#key", "wrong")
        page.press("#key", "Tab")  # the key field's change event reloads the model list
        expect(status).to_have_text(refused)
        page.fill("#key", "s3cret")
        page.press("#key", "Tab")
        expect(page.locator("#model option")).to_have_count(1)
        expect(status).to_have_text("")  # the 401 message goes once the key works
        generate(page, "To", seed=1, length=20)
        finished(page)
        expected = server.complete(
            prompt="To", max_tokens=20, seed=1, temperature=float(page.input_value("#temperature"))
        )
        assert page.text_content("#out") == expected["choices"][0]["text"]

        # Enter in the key field submits the form while the model list is still reloading.
        other = browser.new_page()
        try:
            other.set_default_timeout(TIMEOUT)
            other.goto(server.url + "/")
            expect(other.locator("#status")).to_have_text(refused)
            other.fill("#prompt", "To")
            other.fill("#seed", "1")
            other.fill("#length", "20")
            other.fill("#key", "s3cret")
            other.press("#key", "Enter")
            finished(other)
            assert other.text_content("#out") == expected["choices"][0]["text"]
        finally:
            other.close()


def test_a_bad_prime_shows_the_servers_one_line_error(page, server):
    page.goto(server.url + "/")
    expect(page.locator("#model option")).to_have_count(2)
    status = page.locator("#status")
    generate(page, "ça", seed=1, length=20)
    expect(status).to_have_class("error")
    expect(status).to_have_text(re.compile("never seen: 'ç'"))
    assert "\n" not in status.text_content()
    assert page.text_content("#out") == ""

    page.select_option("#model", "sine")
    generate(page, "0 0.5 abc 1", seed=1, length=20)
    expect(status).to_have_text("`prompt`: 'abc' is not a number (this model continues numbers)")
    expect(status).to_have_class("error")

    generate(page, "0 0.5 1", seed=1, length=20)  # and the next good request works
    finished(page)


def test_ctrl_enter_generates_and_so_does_cmd_enter_on_a_mac(page, server):
    page.goto(server.url + "/")
    expect(page.locator("#model option")).to_have_count(2)
    page.fill("#prompt", "To be")
    page.fill("#seed", "4")
    page.fill("#length", "30")
    with page.expect_request("**/v1/completions"):
        page.press("#prompt", "Control+Enter")
    finished(page)
    first = page.text_content("#out")
    assert page.input_value("#prompt") == "To be"  # the key generated: it did not type a new line
    page.fill("#seed", "5")
    with page.expect_request("**/v1/completions") as request:
        page.press("#seed", "Meta+Enter")
    finished(page)
    assert request.value.post_data_json["seed"] == 5
    assert page.text_content("#out") != first


def chat_answers(page) -> list[str]:
    return page.locator("#chat-log .message.assistant .content").all_text_contents()


# The tests' small model knows no capitals: its chat template writes roles in lower case.
LOWER_CASE = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}assistant:"


@pytest.fixture(scope="module")
def chat_server(text_checkpoint, tmp_path_factory):
    pytest.importorskip("jinja2")
    template = tmp_path_factory.mktemp("template") / "lower.jinja"
    template.write_text(LOWER_CASE, encoding="utf-8")
    with LiveServer([text_checkpoint], chat_template=template) as s:
        yield s


def test_the_chat_tab_streams_an_answer_and_carries_the_conversation_on(page, chat_server):
    server = chat_server
    page.goto(server.url + "/")
    expect(page.locator("#model option")).to_have_count(1)
    page.click("#tab-chat")
    expect(page.locator("#message")).to_be_visible()
    expect(page.locator("#prompt")).to_be_hidden()
    expect(page.locator("#go")).to_have_text("Send")
    expect(page.locator("#chat-note")).to_be_hidden()  # a text model can chat
    page.fill("#seed", "7")
    page.fill("#length", "40")
    page.fill("#message", "To be")
    with page.expect_request("**/v1/chat/completions") as request:
        page.press("#message", "Control+Enter")
    assert re.match(r"^\d+ characters in ", finished(page))
    temperature = float(page.input_value("#temperature"))
    sent = request.value.post_data_json
    assert sent == {
        "model": "poem",
        "messages": [{"role": "user", "content": "To be"}],
        "max_tokens": 40,
        "seed": 7,
        "temperature": temperature,
        "stream": True,
    }
    expected = server.chat(**{**sent, "stream": False})["choices"][0]["message"]["content"]
    assert chat_answers(page) == [expected]
    assert page.locator("#chat-log .message.user .content").all_text_contents() == ["To be"]
    assert page.input_value("#message") == ""

    page.fill("#message", "or not")
    with page.expect_request("**/v1/chat/completions") as request:
        page.click("#go")
    finished(page)
    assert request.value.post_data_json["messages"] == [
        {"role": "user", "content": "To be"},
        {"role": "assistant", "content": expected},
        {"role": "user", "content": "or not"},
    ]
    assert len(chat_answers(page)) == 2

    page.click("#new-chat")
    expect(page.locator("#chat-log .message")).to_have_count(0)
    page.fill("#message", "To be")
    with page.expect_request("**/v1/chat/completions") as request:
        page.press("#message", "Control+Enter")
    finished(page)
    assert request.value.post_data_json["messages"] == [{"role": "user", "content": "To be"}]
    assert chat_answers(page) == [expected]  # the same seed, the same conversation: the same answer


def test_the_chat_tab_says_a_series_model_cannot_chat(page, server):
    page.goto(server.url + "/")
    expect(page.locator("#model option")).to_have_count(2)
    page.select_option("#model", "sine")
    chats = []
    page.on("request", lambda r: chats.append(r.url) if r.url.endswith("/chat/completions") else None)
    page.click("#tab-chat")
    note = page.locator("#chat-note")
    expect(note).to_be_visible()
    expect(note).to_have_text(re.compile(r"^sine is a series model: it continues numbers and cannot chat\."))
    page.fill("#message", "hello")
    page.press("#message", "Control+Enter")
    status = page.locator("#status")
    expect(status).to_have_class("error")
    expect(status).to_have_text(re.compile("^sine is a series model"))
    assert chats == [] and page.input_value("#message") == "hello"

    # A text model: the note goes. This one never saw the default template's capitals (`USER:`),
    # which the server says; the message goes back to the box, the conversation stays empty.
    page.select_option("#model", "poem")
    expect(note).to_be_hidden()
    page.press("#message", "Control+Enter")
    expect(status).to_have_text(re.compile("the model has never seen: 'A', 'E'"))
    expect(status).to_have_class("error")
    assert len(chats) == 1 and chat_answers(page) == [] and page.input_value("#message") == "hello"
