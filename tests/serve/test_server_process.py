"""The real thing: `tuneval serve` as a process on a free loopback port, answering over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest

from tuneval.cli import main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_process_answers(lively_llama, llama_adapters, tmp_path):
    port = free_port()
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuneval.cli", "serve", "--model", str(lively_llama), "--adapter",
         f"a={llama_adapters['lora_a']}", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT,
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
        assert [m["id"] for m in httpx.get(f"{url}/v1/models", timeout=10).json()["data"]] == [str(lively_llama), "a"]
        r = httpx.post(f"{url}/v1/completions", timeout=60,
                       json={"model": "a", "prompt": "hello how are you", "max_tokens": 4, "temperature": 0})
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 4 and r.json()["choices"][0]["text"]
        r = httpx.post(f"{url}/v1/completions", timeout=10, content=b"{nope", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "malformed JSON" in r.json()["error"]["message"]
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
    out = (tmp_path / "server.log").read_text()
    assert f"http://127.0.0.1:{port}/v1" in out and "Traceback" not in out


@pytest.mark.parametrize("args,words", [
    (["--adapter", "no-equals-sign"], "expected NAME=RUN"),
    (["--adapter", "a=x", "--adapter", "a=y"], "given twice"),
    (["--max-batch-size", "0"], "must be >= 1"),
])
def test_serve_cli_errors(args, words, capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", "--model", "unused", *args])
    assert e.value.code == 2 and words in capsys.readouterr().err
