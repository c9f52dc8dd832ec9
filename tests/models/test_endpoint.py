"""Endpoint models: lm-eval's --model-args, the URL, what the server says of itself, and the key kept out."""

from __future__ import annotations

import pytest

from tests.models.fake_openai import FakeServer
from tuneval.errors import TunevalError
from tuneval.models.endpoint import EndpointArgs, endpoint_url, is_endpoint, open_endpoint, parse_model_args


def test_model_args_parse_like_lm_evals():
    a = parse_model_args("base_url=http://h:8000/v1/completions, model=org/m ,num_concurrent=8,timeout=2.5,"
                         "tokenized_requests=false")
    assert a == EndpointArgs(model="org/m", base_url="http://h:8000/v1/completions", num_concurrent=8, timeout=2.5,
                             tokenized_requests=False)
    assert parse_model_args({"model": "m", "max_retries": "0"}).max_retries == 0
    with pytest.raises(TunevalError, match="'oops' is not key=value"):
        parse_model_args("model=m,oops")
    with pytest.raises(TunevalError, match="max_length"):
        parse_model_args("model=m,max_length=0")


def test_urls():
    assert endpoint_url("local-completions", "http://h:1/v1/") == "http://h:1/v1/completions"
    assert endpoint_url("local-chat-completions", "http://h:1/v1") == "http://h:1/v1/chat/completions"
    assert endpoint_url("local-completions", "http://h:1/v1/completions") == "http://h:1/v1/completions"
    assert endpoint_url("openai-chat-completions", None) == "https://api.openai.com/v1/chat/completions"
    assert is_endpoint("local-completions") and not is_endpoint("smollm2-135m-instruct")


def test_what_results_record(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abc")
    with FakeServer(["ok"], models=("base", "lora-a")) as s:
        ep = open_endpoint("openai-completions", f"base_url={s.url},model=lora-a")
    meta = ep.meta["endpoint"]
    assert meta["kind"] == "openai-completions" and meta["url"] == s.url + "/completions"
    assert meta["server"]["models"] == ["base", "lora-a"] and meta["server"]["model"]["max_model_len"] == 2048
    assert "sk-abc" not in repr(ep.meta) and "api_key" not in repr(meta["model_args"]).replace("api_key_env", "")


def test_a_server_without_a_model_list_is_still_used():
    with FakeServer(["ok"]) as s:
        s.httpd.RequestHandlerClass.do_GET = lambda h: h._send(404, {"detail": "Not Found"})
        ep = open_endpoint("local-completions", f"base_url={s.url},model=anything")
    assert ep.server == {"models": None, "note": "GET /v1/models answered HTTP 404"}
