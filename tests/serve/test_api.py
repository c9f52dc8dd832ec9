"""The HTTP API through FastAPI's test client: answers, streaming, hot (un)loading, batching, errors."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import pytest
from fastapi.testclient import TestClient

from tuneval.models import load_model
from tuneval.serve.api import ServeSettings, create_app, render_chat
from tuneval.serve.bank import AdapterBank, Row
from tuneval.serve.schemas import ChatRequest

PROMPT = "hello how are you"


@pytest.fixture
def root(tmp_path, llama_adapters):
    """An adapters root with two adapters, a run directory, and an adapter outside it."""
    root = tmp_path / "adapters"
    root.mkdir()
    shutil.copytree(llama_adapters["lora_b"], root / "lora_b")
    shutil.copytree(llama_adapters["prompt"], root / "runs" / "p1" / "adapter")
    shutil.copytree(llama_adapters["lora_a"], tmp_path / "outside")
    return root


@pytest.fixture
def served(lively_llama, llama_adapters, root):
    bank = AdapterBank(load_model(str(lively_llama)), base_name="tiny")
    bank.load("lora_a", llama_adapters["lora_a"])
    bank.load("prompt", llama_adapters["prompt"])
    app = create_app(bank, ServeSettings(adapters_root=root, max_prompt_tokens=40, max_tokens=32))
    with TestClient(app) as client:
        yield client, bank, app


def complete(client, model, prompt=PROMPT, **kw):
    return client.post("/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": 6, "temperature": 0, **kw})


def expected_text(bank, adapter, prompt=PROMPT, n=6):
    return bank.generate([Row(bank.tokenizer(prompt)["input_ids"], adapter, n)])[0].text


def test_models_and_completions(served):
    client, bank, _ = served
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == ["tiny", "lora_a", "prompt"]
    texts = {}
    for model in ("tiny", "lora_a", "prompt"):
        r = complete(client, model)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "text_completion" and body["model"] == model
        texts[model] = body["choices"][0]["text"]
        assert texts[model] == expected_text(bank, None if model == "tiny" else model)
        assert body["usage"]["completion_tokens"] == 6 and body["choices"][0]["finish_reason"] == "length"
    assert len(set(texts.values())) == 3  # three models, three answers
    two = complete(client, "lora_a", prompt=[PROMPT, "the meeting is at noon"]).json()["choices"]
    assert [c["index"] for c in two] == [0, 1] and two[0]["text"] == texts["lora_a"]
    assert two[1]["text"] == expected_text(bank, "lora_a", "the meeting is at noon")


def test_chat_completions(served):
    client, bank, _ = served
    body = {"model": "lora_a", "messages": [{"role": "system", "content": "be brief"},
                                            {"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
            "max_tokens": 5, "temperature": 0}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    ids = render_chat(bank, ChatRequest(**body))
    assert bank.tokenizer.decode(ids).startswith("<|im_start|>system\nbe brief<|im_end|>")
    assert choice["message"] == {"role": "assistant", "content": bank.generate([Row(ids, "lora_a", 5)])[0].text}


def _events(response) -> list:
    lines = [line for line in response.text.split("\n\n") if line.strip()]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def test_streaming(served):
    client, _, _ = served
    whole = complete(client, "lora_a", max_tokens=8).json()["choices"][0]["text"]
    r = complete(client, "lora_a", max_tokens=8, stream=True)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _events(r)
    assert len(events) > 2 and "".join(e["choices"][0]["text"] for e in events) == whole
    assert events[-1]["choices"][0]["finish_reason"] == "length"

    body = {"model": "prompt", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 8, "temperature": 0}
    whole = client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
    events = _events(client.post("/v1/chat/completions", json={**body, "stream": True}))
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == whole
    assert events[-1]["choices"][0]["finish_reason"] in ("length", "stop")


def test_stream_options_include_usage(served):
    """OpenAI's last chunk: no choices, the usage of the whole request; every chunk before it has usage null."""
    client, _, _ = served
    completion = {"model": "lora_a", "prompt": [PROMPT, "the meeting"], "max_tokens": 5, "temperature": 0, "n": 2}
    chat = {"model": "tiny", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 5, "temperature": 0}
    for route, body in (("/v1/completions", completion), ("/v1/chat/completions", chat)):
        usage = client.post(route, json=body).json()["usage"]
        events = _events(client.post(route, json={**body, "stream": True, "stream_options": {"include_usage": True}}))
        assert events[-1]["choices"] == [] and events[-1]["usage"] == usage and usage["completion_tokens"] > 0
        assert all(e["usage"] is None and e["choices"] for e in events[:-1])
        plain = _events(client.post(route, json={**body, "stream": True}))
        assert all("usage" not in e and e["choices"] for e in plain)
        r = client.post(route, json={**body, "stream_options": {"include_usage": True}})  # not streamed: refused
        assert r.status_code == 400 and r.json()["error"]["param"] == "stream_options"


def test_hot_load_and_unload(served, llama_adapters):
    client, bank, _ = served
    r = client.post("/v1/adapters", json={"name": "hot", "path": "lora_b"})
    assert r.status_code == 201, r.text
    assert r.json()["peft_type"] == "LORA" and "hot" in [m["id"] for m in client.get("/v1/models").json()["data"]]
    hot = complete(client, "hot").json()["choices"][0]["text"]
    reference = AdapterBank(load_model(bank.loaded.path))
    reference.load("b", llama_adapters["lora_b"])
    assert hot == expected_text(reference, "b")
    assert client.post("/v1/adapters", json={"name": "hot", "path": "lora_b"}).status_code == 409
    r = client.post("/v1/adapters", json={"name": "p1", "path": "runs/p1"})  # a run directory
    assert r.status_code == 201 and r.json()["peft_type"] == "PROMPT_TUNING"
    assert complete(client, "p1").json()["choices"][0]["text"] == complete(client, "prompt").json()["choices"][0]["text"]

    r = client.delete("/v1/adapters/hot")
    assert r.status_code == 200 and r.json()["deleted"] is True
    r = complete(client, "hot")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert client.delete("/v1/adapters/hot").status_code == 404
    assert client.delete("/v1/adapters/tiny").status_code == 400
    assert complete(client, "lora_a").status_code == 200  # the rest still serve


def test_hot_loading_is_off_without_a_root(lively_llama):
    bank = AdapterBank(load_model(str(lively_llama)))
    with TestClient(create_app(bank, ServeSettings())) as client:
        r = client.post("/v1/adapters", json={"name": "x", "path": "lora_b"})
    assert r.status_code == 403 and "--adapters-root" in r.json()["error"]["message"]


def test_path_traversal_and_pickles_refused(served, root, tmp_path, llama_adapters):
    client, bank, _ = served
    os.symlink(tmp_path / "outside", root / "link_out")
    (root / "weights_link").mkdir()
    shutil.copy(llama_adapters["lora_a"] / "adapter_config.json", root / "weights_link")
    os.symlink(tmp_path / "outside" / "adapter_model.safetensors", root / "weights_link" / "adapter_model.safetensors")
    (root / "pickled").mkdir()
    shutil.copy(llama_adapters["lora_a"] / "adapter_config.json", root / "pickled")
    (root / "pickled" / "adapter_model.bin").write_bytes(b"\x80\x04 never unpickled")
    cases = {
        "../outside": "'..'",
        "lora_b/../../outside": "'..'",
        str(tmp_path / "outside"): "absolute",
        "~/outside": "absolute",
        "link_out": "outside the adapters root",
        "weights_link": "outside the adapters root",
        "pickled": "pickled weights",
        "nothing_here": "no such directory",
    }
    for path, reason in cases.items():
        r = client.post("/v1/adapters", json={"name": "evil", "path": path})
        assert r.status_code == 400, (path, r.text)
        message = r.json()["error"]["message"]
        assert reason in message, (path, message)
        assert str(root) not in message  # the server's layout is not echoed back
    assert bank.names() == ["lora_a", "prompt"]


BAD = [
    # (body or raw bytes, status, code, words in the message)
    ({"model": "nope", "prompt": "hi"}, 404, "model_not_found", "'nope'"),
    ({"prompt": "hi"}, 400, "invalid_request", "missing field 'model'"),
    ({"model": "lora_a"}, 400, "invalid_request", "missing field 'prompt'"),
    (b'{"model": "lora_a", "prompt": ', 400, "malformed_json", "malformed JSON"),
    (b"[1, 2]", 400, "invalid_request", "dictionary"),
    ({"model": "lora_a", "prompt": "hi " * 200}, 400, "context_length_exceeded", "at most 40"),
    ({"model": "lora_a", "prompt": "hi", "max_tokens": 33}, 400, "max_tokens_too_large", "limit of 32"),
    ({"model": "lora_a", "prompt": "hi", "max_tokens": 0}, 400, "unsupported_parameter", "send echo: true"),
    ({"model": "lora_a", "prompt": "hi", "max_tokens": -1}, 400, "invalid_request", "max_tokens"),
    ({"model": "lora_a", "prompt": "hi", "max_tokens": "many"}, 400, "invalid_request", "max_tokens"),
    ({"model": "lora_a", "prompt": "hi", "temperature": 5}, 400, "invalid_request", "temperature"),
    ({"model": "lora_a", "prompt": ""}, 400, "invalid_request", "prompt"),
    ({"model": "lora_a", "prompt": "hi", "logprobs": 21}, 400, "invalid_request", "logprobs"),
    ({"model": "lora_a", "prompt": "hi", "logprobs": True}, 400, "invalid_request", "logprobs"),
    ({"model": "lora_a", "prompt": [5, 6, 400]}, 400, "invalid_prompt", "token id 400 is outside"),
    ({"model": "lora_a", "prompt": [[5, 6], [-1]]}, 400, "invalid_prompt", "token id -1 is outside"),
    ({"model": "lora_a", "prompt": [[5, 6], []]}, 400, "invalid_request", "prompt"),
    ({"model": "lora_a", "prompt": [5, "six"]}, 400, "invalid_request", "a list of token ids (integers)"),
    ({"model": "lora_a", "prompt": [[5] * 41]}, 400, "context_length_exceeded", "at most 40"),
    ({"model": "lora_a", "prompt": "hi", "logprobs": 1, "stream": True}, 400, "unsupported_parameter", "not streamed"),
    ({"model": "lora_a", "prompt": ["hi"] * 5, "n": 4}, 400, "too_many_completions", "limit of 16"),
]


@pytest.mark.parametrize("body,status,code,words", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_completion_requests(served, body, status, code, words):
    client, _, _ = served
    if isinstance(body, bytes):
        r = client.post("/v1/completions", content=body, headers={"content-type": "application/json"})
    else:
        r = client.post("/v1/completions", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and words in error["message"] and error["type"] == "invalid_request_error"


def test_bad_chat_and_other_requests(served):
    client, _, _ = served
    cases = [
        (client.post("/v1/chat/completions", json={"model": "lora_a", "messages": []}), 400, "messages"),
        (client.post("/v1/chat/completions", json={"model": "lora_a", "messages": [{"role": "wizard", "content": "x"}]}),
         400, "role"),
        (client.post("/v1/chat/completions", json={"model": "ghost", "messages": [{"role": "user", "content": "x"}]}),
         404, "ghost"),
        (client.post("/v1/chat/completions", json={"model": "lora_a", "messages": [{"role": "user", "content": "x"}],
                                                   "max_completion_tokens": 1000}), 400, "limit of 32"),
        (client.post("/v1/adapters", json={"name": "x"}), 400, "missing field 'path'"),
        (client.post("/v1/adapters", json={"name": "bad name", "path": "lora_b"}), 400, "adapter name"),
        (client.get("/v1/nothing"), 404, "Not Found"),
        (client.post("/v1/completions", content=b"x" * 1_000_001), 413, "over 1000000 bytes"),
    ]
    for r, status, words in cases:
        assert r.status_code == status, r.text
        assert words in r.json()["error"]["message"], r.text


def _hold_and_send(client, bank, app, models):
    """Hold the bank while clients queue requests, then release: they must form one batch."""
    results: dict[str, object] = {}

    def send(model):
        results[model] = complete(client, model)

    with bank.lock:
        threads = [threading.Thread(target=send, args=(m,)) for m in models]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while app.state.batcher.pending() < len(models):
            assert time.monotonic() < deadline, "requests never reached the queue"
            time.sleep(0.01)
    for t in threads:
        t.join(60)
    return results


def test_concurrent_requests_for_different_adapters_share_a_batch(served, llama_adapters):
    client, bank, app = served
    bank.load("lora_b", llama_adapters["lora_b"])
    models = ["tiny", "lora_a", "lora_b", "prompt"]
    results = _hold_and_send(client, bank, app, models)
    assert all(results[m].status_code == 200 for m in models)
    record = app.state.batcher.history[-1]
    assert record.rows == 4 and set(record.adapters) == {"", "lora_a", "lora_b", "prompt"}
    # base + both LoRAs in one PEFT mixed call, the prompt-tuning row in a sub-batch of the same step
    assert ("mixed:lora_a+lora_b+base", 3) in record.plan and ("adapter:prompt", 1) in record.plan
    for m in models:
        assert results[m].json()["choices"][0]["text"] == expected_text(bank, None if m == "tiny" else m)


def test_unloaded_while_queued(served):
    client, bank, app = served
    results = {}
    with bank.lock:
        t = threading.Thread(target=lambda: results.setdefault("r", complete(client, "lora_a")))
        t.start()
        deadline = time.monotonic() + 30
        while app.state.batcher.pending() < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        bank.unload("lora_a")  # the lock is re-entrant: this thread may unload while it holds the batch back
    t.join(60)
    assert results["r"].status_code == 404 and "unloaded" in results["r"].json()["error"]["message"]


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_served_base_follows_the_precision_policy(lively_llama, llama_adapters, precision):
    """bf16 serving (emulated where not native) answers, with a LoRA adapter kept fp32 over the bf16 base."""
    from tuneval.serve.server import build_app

    app = build_app(str(lively_llama), {"lora_a": str(llama_adapters["lora_a"])}, ServeSettings(precision=precision))
    with TestClient(app) as client:
        health = client.get("/health").json()
        assert health["precision"] == precision
        r = client.post("/v1/completions", json={"model": "lora_a", "prompt": PROMPT, "max_tokens": 4})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1
    dtype = next(app.state.bank.loaded.model.parameters()).dtype
    assert str(dtype) == {"bf16": "torch.bfloat16", "fp32": "torch.float32"}[precision]
