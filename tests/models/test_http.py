"""The endpoint client's transport: retries, one-line failures naming the URL, and the resume cache."""

from __future__ import annotations

import pytest

from tests.models.fake_openai import FakeServer
from tuneval.models.http import Client, EndpointError, RequestCache

BODY = {"model": "m", "prompt": "hello", "max_tokens": 4}


def client(cache=None, retries=2, timeout=5.0, concurrent=1, key=None):
    return Client(key, timeout=timeout, max_retries=retries, num_concurrent=concurrent, cache=cache)


def test_429_and_5xx_are_retried_then_answered():
    with FakeServer(["429", "500", "ok"]) as s:
        answer = client().post(s.url + "/completions", BODY)
    assert answer["choices"][0]["text"].startswith("x")
    assert len(s.seen) == 3


def test_retries_run_out_in_one_line_naming_the_url():
    with FakeServer(["500"]) as s:
        with pytest.raises(EndpointError) as e:
            client(retries=1).post(s.url + "/completions", BODY)
    assert len(s.seen) == 2
    assert str(e.value).startswith(s.url + "/completions: HTTP 500") and "after 2 tries" in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("step,words", [("401", "the key was refused"), ("404", "HTTP 404: scripted 404"),
                                        ("garbage", "not JSON")])
def test_client_errors_fail_at_once(step, words):
    with FakeServer([step]) as s:
        with pytest.raises(EndpointError, match=words):
            client().post(s.url + "/completions", BODY)
    assert len(s.seen) == 1  # not retried


def test_a_server_that_stops_answering_times_out():
    with FakeServer(["hang"], hang_s=2.0) as s:
        with pytest.raises(EndpointError, match=r"no answer within 0.5 s .*after 1 tries"):
            client(retries=0, timeout=0.5).post(s.url + "/completions", BODY)


def test_unreachable_host():
    with FakeServer(["ok"]) as s:
        url = s.url
    with pytest.raises(EndpointError, match=r"^http://127\.0\.0\.1:\d+/v1/completions: cannot reach the server"):
        client(retries=0).post(url + "/completions", BODY)


def test_the_key_goes_in_the_header_only(tmp_path):
    cache = RequestCache(tmp_path / "cache.jsonl")
    with FakeServer(["ok"]) as s:
        client(cache=cache, key="sk-secret-123").post(s.url + "/completions", BODY)
    assert s.seen[0]["headers"]["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret-123" not in (tmp_path / "cache.jsonl").read_text()


def test_a_stopped_run_resumes_from_the_cache(tmp_path):
    bodies = [{**BODY, "prompt": f"p{i}"} for i in range(6)]
    path = tmp_path / "cache.jsonl"
    with FakeServer(["ok", "ok", "ok", "404"]) as s:  # the 4th request fails: the first three are kept
        with pytest.raises(EndpointError):
            client(cache=RequestCache(path)).map(s.url + "/completions", bodies, "scoring")
    assert len(path.read_text().splitlines()) == 3
    with open(path, "a") as f:
        f.write('{"key": "cut sh')  # a line a kill cut short is asked again, not fatal
    with FakeServer(["ok"]) as s2:
        answers = client(cache=RequestCache(path)).map(s2.url + "/completions", bodies, "scoring")
    assert all(a["choices"][0]["text"].endswith(f"of p{i}. more") for i, a in enumerate(answers))
    assert len(s2.seen) == 6  # a new URL: nothing cached for it
    assert len(RequestCache(path).answers) == 9  # 3 + 6 answered, none lost


def test_requests_in_flight_keep_their_order():
    bodies = [{**BODY, "prompt": f"p{i}"} for i in range(12)]
    with FakeServer(["ok"]) as s:
        answers = client(concurrent=4).map(s.url + "/completions", bodies, "scoring")
    assert all(a["choices"][0]["text"].endswith(f"of p{i}. more") for i, a in enumerate(answers))


def test_redirects_are_not_followed_with_the_key():
    with FakeServer(["ok"]) as s:
        def redirect(h):
            h.send_response(307)
            h.send_header("Location", "http://elsewhere.example/v1/completions")
            h.send_header("Content-Length", "0")
            h.end_headers()
        s.answer = lambda h, step, body: redirect(h)
        with pytest.raises(EndpointError, match="HTTP 307, redirected to http://elsewhere.example/v1/completions"):
            client(key="sk-x").post(s.url + "/completions", BODY)
