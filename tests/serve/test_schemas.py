"""Every OpenAI parameter is honoured or refused by name: a 400 "unsupported_parameter" naming it when it asks
for something, and a normal answer when it is sent with the value that asks for nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tuneval.models import load_model
from tuneval.serve.api import ServeSettings, create_app
from tuneval.serve.bank import AdapterBank
from tuneval.serve.schemas import ChatRequest, CompletionRequest

COMPLETION = {"model": "tiny", "prompt": "hello", "max_tokens": 2, "temperature": 0}
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2, "temperature": 0}
BOTH = [("frequency_penalty", 0.5), ("presence_penalty", -1), ("logit_bias", {"5": 100}), ("top_k", 5),
        ("min_p", 0.1), ("repetition_penalty", 1.2), ("min_tokens", 2), ("ignore_eos", True),
        ("use_beam_search", True), ("prompt_logprobs", 1), ("stream_options", {"include_usage": True})]
REFUSED = (
    [("/v1/completions", name, value) for name, value in BOTH + [("best_of", 2), ("suffix", "end")]]
    + [("/v1/chat/completions", name, value) for name, value in BOTH + [
        ("response_format", {"type": "json_object"}), ("tools", [{"type": "function", "function": {"name": "f"}}]),
        ("tool_choice", "auto"), ("parallel_tool_calls", False), ("functions", [{"name": "f"}]),
        ("function_call", "auto"), ("audio", {"voice": "alloy"}), ("modalities", ["text", "audio"]),
        ("prediction", {"type": "content", "content": "x"}), ("reasoning_effort", "low"), ("verbosity", "low"),
        ("web_search_options", {}), ("store", True), ("top_logprobs", 2)]]
)
HARMLESS = {
    "/v1/completions": {"frequency_penalty": 0, "presence_penalty": 0.0, "logit_bias": {}, "top_k": -1, "min_p": 0,
                        "repetition_penalty": 1.0, "best_of": 1, "suffix": "", "seed": 1234, "user": "u1",
                        "logprobs": None, "echo": False, "stream_options": None, "some_vendor_field": 1},
    "/v1/chat/completions": {"response_format": {"type": "text"}, "tools": [], "tool_choice": "none",
                             "parallel_tool_calls": True, "functions": [], "function_call": "none",
                             "modalities": ["text"], "store": False, "metadata": {"k": "v"}, "service_tier": "auto",
                             "seed": 7, "user": "u1", "logprobs": False, "audio": None},
}


@pytest.fixture(scope="module")
def client(lively_llama):
    bank = AdapterBank(load_model(str(lively_llama)), base_name="tiny")
    with TestClient(create_app(bank, ServeSettings())) as c:
        yield c


@pytest.mark.parametrize("route,name,value", REFUSED, ids=[f"{r.split('/')[-1]}-{n}" for r, n, _ in REFUSED])
def test_parameters_that_ask_for_something_are_refused_by_name(client, route, name, value):
    body = {**(COMPLETION if route == "/v1/completions" else CHAT), name: value}
    r = client.post(route, json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "unsupported_parameter" and error["param"] == name and f"'{name}'" in error["message"]


@pytest.mark.parametrize("route", sorted(HARMLESS))
def test_default_values_ask_for_nothing(client, route):
    base = COMPLETION if route == "/v1/completions" else CHAT
    plain = client.post(route, json=base)
    given = client.post(route, json={**base, **HARMLESS[route]})
    assert plain.status_code == given.status_code == 200, given.text
    assert given.json()["choices"] == plain.json()["choices"]


def test_stream_options_shape():
    assert CompletionRequest(**COMPLETION, stream=True, stream_options={"include_usage": True}).include_usage
    assert not CompletionRequest(**COMPLETION, stream=True, stream_options={"include_usage": False}).include_usage
    assert not ChatRequest(**CHAT, stream=True).include_usage
    with pytest.raises(ValueError, match="continuous_usage_stats"):
        CompletionRequest(**COMPLETION, stream=True, stream_options={"continuous_usage_stats": True})
    assert ChatRequest(**CHAT, stream=True, stream_options={"include_obfuscation": False}).unsupported() is None
