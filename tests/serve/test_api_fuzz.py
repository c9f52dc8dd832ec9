"""Fuzzed request bodies (issue 35): whatever JSON or bytes a client sends to the server's routes, the
answer is a 2xx or a 4xx with an OpenAI-style error, never a 500, never a hang, nothing written. An
adapters root is set, so POST /v1/adapters parses and checks paths too. Inputs that found bugs are
kept below as plain tests."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuneval.models import load_model
from tuneval.serve.api import ServeSettings, create_app
from tuneval.serve.bank import AdapterBank

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ROUTES = ["/v1/completions", "/v1/chat/completions", "/v1/adapters"]
KEYS = ["model", "prompt", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stream",
        "stop", "seed", "logprobs", "echo", "best_of", "suffix", "user", "name", "path", "role", "content", "type",
        "text", "adapter", "stream_options"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=16), st.sampled_from(["tiny", "user", "assistant", "system", "text", "../..",
                                                           "/etc", "lora", "\x00", "tiny:x", "a" * 200]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
                      max_leaves=10)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), values, max_size=6),
    st.fixed_dictionaries({"model": st.just("tiny"), "prompt": st.one_of(st.text(max_size=20), values)},
                          optional={"max_tokens": st.integers(-1, 3), "stop": values, "n": st.integers(0, 3),
                                    "temperature": st.one_of(st.floats(-1, 3), scalars), "stream": st.booleans()}),
    st.fixed_dictionaries({"model": st.just("tiny"), "messages": st.lists(st.dictionaries(
        st.sampled_from(["role", "content", "name"]), values, max_size=3), max_size=3)},
        optional={"max_tokens": st.integers(-1, 3), "stream": st.booleans()}),
)


@pytest.fixture(scope="module")
def client(tiny_llama_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    bank = AdapterBank(load_model(str(tiny_llama_dir)), base_name="tiny")
    app = create_app(bank, ServeSettings(adapters_root=root, max_tokens=3, default_max_tokens=2,
                                         default_chat_max_tokens=2, max_prompt_tokens=64, request_timeout=30))
    with TestClient(app, raise_server_exceptions=False) as c:
        c.root = root
        yield c


def _check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["message"] and "\n" not in error["message"] and "Traceback" not in error["message"], error


@FUZZ
@given(route=st.sampled_from(ROUTES), body=bodies)
def test_any_json_body(client, route, body):
    before = sorted(Path(client.root).rglob("*"))
    _check(client.post(route, json=body))
    assert sorted(Path(client.root).rglob("*")) == before


@FUZZ
@given(route=st.sampled_from(ROUTES), raw=st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode),
                                                    st.sampled_from([b"", b"null", b"[]", b"1e999", b'{"a":' * 50,
                                                                     b'"x"', b"\xff\xfe{}", b"NaN"])),
       content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]))
def test_any_bytes_body(client, route, raw, content_type):
    _check(client.post(route, content=raw, headers={"content-type": content_type} if content_type else {}))


@FUZZ
@given(name=st.text(max_size=40))
def test_any_adapter_name_to_unload(client, name):
    _check(client.delete("/v1/adapters/" + quote(name, safe="")))


# ---- the inputs that found bugs, kept as plain tests ------------------------------------------------
