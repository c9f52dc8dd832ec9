"""The server under abuse: oversized chunked bodies, a full queue, slow requests, missing keys.

Each test drives the real app (FastAPI's test client, or raw ASGI where the test client
would hide the behaviour: it reads a streamed request body whole before the app sees it).
The process-level checks, over a real socket, are in test_server_process.py.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from tuneval.errors import TunevalError
from tuneval.models import load_model
from tuneval.serve.api import ServeSettings, create_app
from tuneval.serve.bank import AdapterBank

KEY = "k3y-for-tests_0123456789"
BODY = {"model": "tiny", "prompt": "hello how are you", "max_tokens": 4, "temperature": 0}


@pytest.fixture(scope="module")
def bank(lively_llama, llama_adapters) -> AdapterBank:
    bank = AdapterBank(load_model(str(lively_llama)), base_name="tiny")
    bank.load("lora_a", llama_adapters["lora_a"])
    return bank


def serve(bank, **settings):
    return TestClient(create_app(bank, ServeSettings(**settings)))


def _wait_queued(app, n: int) -> None:
    deadline = time.monotonic() + 30
    while app.state.batcher.pending() < n:
        assert time.monotonic() < deadline, "requests never reached the queue"
        time.sleep(0.01)


# --- body limit -------------------------------------------------------------------------


def _asgi_post(app, chunks: int, chunk_bytes: int) -> tuple[int, dict, int]:
    """POST a chunked body (no Content-Length) straight through ASGI; count the chunks the app pulled."""
    pulled = 0
    sent: list[dict] = []
    filler = b"hello " * (chunk_bytes // 6)

    async def receive():
        nonlocal pulled
        pulled += 1
        if pulled > chunks:
            return {"type": "http.disconnect"}
        body = b'{"model": "tiny", "prompt": "' if pulled == 1 else b'"}' if pulled == chunks else filler
        return {"type": "http.request", "body": body, "more_body": pulled < chunks}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/completions", "raw_path": b"/v1/completions", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"test"), (b"content-type", b"application/json"),
                         (b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    return status, body, pulled


def test_chunked_body_over_the_limit_is_refused_without_reading_the_rest(bank):
    app = create_app(bank, ServeSettings(max_body_bytes=1_000_000))
    status, body, pulled = _asgi_post(app, chunks=50, chunk_bytes=100_000)  # 5 MB, no Content-Length
    assert status == 413 and body["error"]["code"] == "body_too_large", body
    assert "over 1000000 bytes" in body["error"]["message"]
    assert pulled <= 12, f"read {pulled} of 50 chunks after the limit was passed"
    status, body, pulled = _asgi_post(app, chunks=3, chunk_bytes=600)  # a small chunked body still works
    assert status == 200 and body["choices"][0]["text"], body
    with TestClient(app) as client:  # and the server answers as before
        assert client.get("/health").status_code == 200
        assert client.post("/v1/completions", json=BODY).status_code == 200


# --- work off the event loop ------------------------------------------------------------


class SlowTokenizer:
    """The bank's tokenizer, but encoding (not decoding) takes `delay` seconds."""

    def __init__(self, tok, delay: float):
        self._tok, self.delay, self.entered = tok, delay, threading.Event()

    def __call__(self, *args, **kwargs):
        self.entered.set()
        time.sleep(self.delay)
        return self._tok(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tok, name)


@pytest.mark.parametrize("path,body", [
    ("/v1/completions", BODY),
    ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}),
])
def test_tokenising_does_not_block_health(bank, monkeypatch, path, body):
    with serve(bank) as client:
        slow = SlowTokenizer(bank.tokenizer, delay=2.0)
        monkeypatch.setattr(bank, "tokenizer", slow)
        results = {}
        t = threading.Thread(target=lambda: results.setdefault("r", client.post(path, json=body)))
        t.start()
        assert slow.entered.wait(30)
        t0 = time.perf_counter()
        assert client.get("/health").status_code == 200
        waited = time.perf_counter() - t0
        t.join(60)
    assert results["r"].status_code == 200, results["r"].text
    assert waited < 1.0, f"/health waited {waited:.2f} s behind a request being tokenised"


# --- bounded queue, timeouts --------------------------------------------------------------


def test_full_queue_answers_503_with_retry_after(bank):
    app = create_app(bank, ServeSettings(max_queue=2))
    results: list = []
    with TestClient(app) as client:
        with bank.lock:  # the batcher cannot run: requests stay queued
            threads = [threading.Thread(target=lambda: results.append(client.post("/v1/completions", json=BODY)))
                       for _ in range(2)]
            for t in threads:
                t.start()
            _wait_queued(app, 2)
            r = client.post("/v1/completions", json=BODY)
            stream = client.post("/v1/completions", json={**BODY, "stream": True})
        for t in threads:
            t.join(60)
        stats = client.get("/stats").json()
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "server_overloaded" and r.json()["error"]["type"] == "server_error"
    assert stream.status_code == 503 and "retry-after" in stream.headers
    assert [x.status_code for x in results] == [200, 200]  # those queued are served once the model is free
    assert stats["rejected"] == 2 and stats["max_queue"] == 2


def test_request_timeout_answers_504_and_drops_the_rows(bank):
    app = create_app(bank, ServeSettings(request_timeout=0.5))
    with TestClient(app) as client:
        with bank.lock:  # nothing can run: the request must give up on its own
            t0 = time.perf_counter()
            r = client.post("/v1/completions", json=BODY)
            waited = time.perf_counter() - t0
            events = client.post("/v1/completions", json={**BODY, "stream": True}).text
        assert r.status_code == 504, r.text
        assert 0.4 < waited < 10
        error = r.json()["error"]
        assert error["code"] == "timeout" and error["type"] == "server_error" and "0.5 s" in error["message"]
        assert '"code": "timeout"' in events and events.rstrip().endswith("data: [DONE]")
        assert client.post("/v1/completions", json=BODY).status_code == 200  # later requests are served
        assert app.state.batcher.rows_done == 1  # the timed-out rows never ran


# --- API key ----------------------------------------------------------------------------


def test_api_key_required_everywhere_but_health(bank, monkeypatch, tmp_path):
    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append(1) or real(a, b))
    with serve(bank, api_key=KEY, adapters_root=tmp_path) as client:
        assert client.get("/health").status_code == 200  # open: start-up scripts poll it
        refused = [
            client.get("/v1/models"),
            client.get("/stats"),
            client.post("/v1/completions", json=BODY),
            client.post("/v1/completions", json=BODY, headers={"Authorization": "Bearer wrong"}),
            client.post("/v1/completions", json=BODY, headers={"Authorization": KEY}),  # no scheme
            client.post("/v1/completions", json=BODY, headers={"Authorization": f"Basic {KEY}"}),
            client.post("/v1/completions", json=BODY, headers={"Authorization": f"Bearer {KEY}x"}),
            client.post("/v1/adapters", json={"name": "x", "path": "a"}),
            client.delete("/v1/adapters/lora_a"),
            client.post("/v1/completions", content=b"x" * 2_000_000),  # refused before the body counts
        ]
        for r in refused:
            assert r.status_code == 401, (r.request.url, r.text)
            assert r.json()["error"]["code"] == "invalid_api_key" and r.headers["www-authenticate"].startswith("Bearer")
        assert "missing API key" in refused[0].json()["error"]["message"]
        assert refused[3].json()["error"]["message"] == "invalid API key"
        assert "lora_a" in bank  # the refused DELETE did nothing
        ok = {"Authorization": f"Bearer {KEY}"}
        assert client.get("/v1/models", headers=ok).status_code == 200
        assert client.post("/v1/completions", json=BODY, headers=ok).status_code == 200
        assert client.post("/v1/completions", json=BODY, headers={"authorization": f"bearer {KEY}"}).status_code == 200
    assert compared  # constant-time compare
    with serve(bank) as client:  # no key configured (loopback): no header needed, as before
        assert client.post("/v1/completions", json=BODY).status_code == 200


@pytest.mark.parametrize("host,settings,words", [
    ("0.0.0.0", {}, "--api-key"),
    ("192.168.1.7", {"adapters_root": "runs"}, "load adapters from --adapters-root"),
    ("::", {}, "not a loopback address"),
    ("127.0.0.1", {"api_key": "has space"}, "printable ASCII"),
    ("127.0.0.1", {"api_key": ""}, "non-empty"),
    ("127.0.0.1", {"max_queue": 0}, "--max-queue"),
    ("127.0.0.1", {"request_timeout": 0}, "--request-timeout"),
    ("127.0.0.1", {"request_timeout": float("inf")}, "finite"),
])
def test_check_options_refuses(host, settings, words):
    from tuneval.serve.server import check_options

    with pytest.raises(TunevalError, match=words.replace("-", r"\-")):
        check_options(host, 8000, "info", ServeSettings(**settings))


def test_check_options_accepts_and_normalises():
    from tuneval.serve.server import check_options

    assert check_options("127.0.0.1", 8000, "WARNING", ServeSettings()) == "warning"
    assert check_options("localhost", 8000, "info", ServeSettings()) == "info"
    assert check_options("::1", 8000, "info", ServeSettings()) == "info"
    assert check_options("0.0.0.0", 8000, "info", ServeSettings(api_key=KEY, adapters_root="runs")) == "info"
    with pytest.raises(TunevalError, match="--log-level 'bogus'"):
        check_options("127.0.0.1", 8000, "bogus", ServeSettings())


# --- adapter errors name the right field ---------------------------------------------------


def test_invalid_adapter_name_is_reported_under_name(bank, tmp_path):
    with serve(bank, adapters_root=tmp_path) as client:
        for name in ("bad name", "../up", "-dash", "a//b"):
            r = client.post("/v1/adapters", json={"name": name, "path": "lora_b"})
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert error["param"] == "name" and error["code"] == "invalid_adapter_name", error
        r = client.post("/v1/adapters", json={"name": "fine", "path": "nothing_here"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "path"
