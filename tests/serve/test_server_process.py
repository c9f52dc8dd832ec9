"""The real thing: `tuneval serve` as a process on a free loopback port, answering over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import httpx
import pytest

from tuneval.cli import main

KEY = "process-test-key_0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_chunked(port: int, path: str, total: int, headers: dict[str, str]) -> tuple[int | None, int]:
    """The load test's own chunked-body sender (bench/serve.py), so both send the same bytes."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bench_serve", Path(__file__).parents[2] / "bench" / "serve.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.post_chunked(port, path, total, headers, model="m")


@contextmanager
def running_server(lively_llama, llama_adapters, tmp_path) -> Iterator[str]:
    """`tuneval serve` as a process (the key from TUNEVAL_API_KEY, adapter "a"); its URL once /health answers."""
    port = free_port()
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuneval.cli", "serve", "--model", str(lively_llama), "--adapter",
         f"a={llama_adapters['lora_a']}", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TUNEVAL_API_KEY": KEY},  # the key from the env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # bounded: importing torch on a busy machine is slow, not endless
        while True:
            assert proc.poll() is None, "server exited:\n" + (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "server did not come up:\n" + (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def test_server_process_answers(lively_llama, llama_adapters, tmp_path):
    with running_server(lively_llama, llama_adapters, tmp_path) as url:
        port = int(url.rsplit(":", 1)[1])
        assert httpx.get(f"{url}/v1/models", timeout=10).status_code == 401
        r = httpx.get(f"{url}/v1/models", timeout=10, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert [m["id"] for m in httpx.get(f"{url}/v1/models", timeout=10, headers=AUTH).json()["data"]] == [
            str(lively_llama), "a"]
        body = {"model": "a", "prompt": "hello how are you", "max_tokens": 4, "temperature": 0}
        r = httpx.post(f"{url}/v1/completions", timeout=60, json=body, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 4 and r.json()["choices"][0]["text"]
        r = httpx.post(f"{url}/v1/completions", timeout=10, content=b"{nope",
                       headers={"content-type": "application/json", **AUTH})
        assert r.status_code == 400 and "malformed JSON" in r.json()["error"]["message"]
        # 20 MB chunked (no Content-Length): refused at the 1 MB mark, and the server carries on
        t0 = time.monotonic()
        status, sent = post_chunked(port, "/v1/completions", 20_000_000, AUTH)
        assert status == 413, (status, sent)
        assert time.monotonic() - t0 < 30
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200  # open without the key
        assert httpx.post(f"{url}/v1/completions", timeout=60, json=body, headers=AUTH).json()["choices"][0]["text"]
    out = (tmp_path / "server.log").read_text()
    assert f"http://127.0.0.1:{port}/v1" in out and "Traceback" not in out


def test_lm_eval_local_completions_scores_the_served_adapter(lively_llama, llama_adapters, tmp_path, monkeypatch):
    """lm-eval 0.4.13's `local-completions` model, unchanged, against the live server: its loglikelihoods
    (sum over the continuation, is-greedy) equal a direct forward pass through the adapter."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    from tests.serve.conftest import direct_logprobs

    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # lm-eval's API models send it as the bearer key
    pairs = [("hello how are", " you"), ("the meeting is at", " noon can we move it"), ("book a table", " for two")]
    with running_server(lively_llama, llama_adapters, tmp_path) as url:
        lm = LocalCompletionsAPI(base_url=f"{url}/v1/completions", model="a", tokenizer=str(lively_llama),
                                 tokenizer_backend="huggingface", batch_size=2, max_retries=1, timeout=60)
        results = lm.loglikelihood([Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)],
                                   disable_tqdm=True)
    for (total, is_greedy), (context, continuation) in zip(results, pairs):
        ctx, cont = lm._encode_pair(context, continuation)
        ids = ctx + cont
        ref = direct_logprobs(lively_llama, llama_adapters["lora_a"], ids)
        steps = range(len(ctx), len(ids))
        assert total == pytest.approx(sum(ref[j - 1, ids[j]].item() for j in steps), abs=1e-4)
        assert is_greedy == all(int(ref[j - 1].argmax()) == ids[j] for j in steps)


@pytest.mark.parametrize("args,words", [
    (["--adapter", "no-equals-sign"], "expected NAME=RUN"),
    (["--adapter", "a=x", "--adapter", "a=y"], "given twice"),
    (["--max-batch-size", "0"], "must be >= 1"),
    (["--log-level", "bogus"], "--log-level 'bogus': use one of critical, error, warning, info, debug, trace"),
    (["--host", "0.0.0.0"], "is not a loopback address"),
    (["--host", "0.0.0.0", "--adapters-root", "."], "load adapters from --adapters-root; set --api-key"),
    (["--max-queue", "0"], "--max-queue must be >= 1"),
    (["--request-timeout", "0"], "--request-timeout 0.0: must be > 0"),
])
def test_serve_cli_errors(args, words, capsys, monkeypatch):
    def never(*a, **k):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr("tuneval.models.load_model", never)
    monkeypatch.delenv("TUNEVAL_API_KEY", raising=False)
    with pytest.raises(SystemExit) as e:
        main(["serve", "--model", "unused", *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")


def test_serve_cli_takes_the_key_from_the_env(monkeypatch):
    calls = {}
    monkeypatch.setenv("TUNEVAL_API_KEY", "from-env-key")
    monkeypatch.setattr("tuneval.serve.server.serve", lambda model, adapters, **kw: calls.update(kw))
    with pytest.raises(SystemExit) as e:
        main(["serve", "--model", "unused", "--host", "0.0.0.0", "--max-queue", "8", "--request-timeout", "2.5",
              "--log-level", "WARNING"])
    assert e.value.code == 0
    s = calls["settings"]
    assert (s.api_key, s.max_queue, s.request_timeout, calls["log_level"]) == ("from-env-key", 8, 2.5, "warning")
