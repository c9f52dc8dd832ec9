"""A scripted OpenAI-compatible server on a loopback port, for the endpoint client's failure paths.

`FakeServer(script)` answers GET /v1/models with `models`, and each POST with the next step of
`script` (the last step repeats): "ok" (a completion; with echo, made-up log-probabilities over
the prompt's characters), "401", "429", "500", "404", "garbage" (HTML), "no-logprobs"
(logprobs null), "hang" (answer after `hang_s`), "drop" (close the connection). Every request's
body and headers are kept in `seen`.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def echo_logprobs(prompt, generated: str = "x") -> dict:
    """Characters as tokens (a text prompt) or ids as tokens: token i's logprob is -(i % 3) - 0.5, and
    it is the top choice unless i % 4 == 3."""
    tokens = [str(t) for t in prompt] if isinstance(prompt, list) else list(prompt)
    tokens.append(generated)
    values, tops, offsets, at = [], [], [], 0
    for i, tok in enumerate(tokens):
        lp = -(i % 3) - 0.5
        values.append(None if i == 0 else lp)
        tops.append(None if i == 0 else {tok: lp, "other": lp + (0.25 if i % 4 == 3 else -1.0)})
        offsets.append(at)
        at += len(tok)
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}


class FakeServer:
    def __init__(self, script: list[str], models: tuple[str, ...] = ("m",), hang_s: float = 3.0):
        self.script, self.models, self.hang_s = list(script), models, hang_s
        self.seen: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def step(self) -> str:
        with self.lock:
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body, content_type: str = "application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake",
                                                             "max_model_len": 2048} for m in server.models]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.seen.append({"body": body, "headers": dict(self.headers)})
                server.answer(self, server.step(), body)

        return Handler

    def answer(self, h, step: str, body: dict) -> None:
        if step == "drop":
            h.close_connection = True
            h.connection.shutdown(2)
            return
        if step == "hang":
            time.sleep(self.hang_s)
        if step in ("401", "429", "500", "404"):
            h._send(int(step), {"error": {"message": f"scripted {step}", "type": "x", "param": None, "code": None}})
            return
        if step == "garbage":
            h._send(200, b"<html>not an API</html>", "text/html")
            return
        prompt = body.get("prompt", "")
        text = "x"
        logprobs = None
        if body.get("echo"):
            text = (prompt if isinstance(prompt, str) else "") + "x"
            if step != "no-logprobs":
                logprobs = echo_logprobs(prompt)
        if "messages" in body:
            h._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi. there"},
                                       "finish_reason": "stop"}], "usage": {"completion_tokens": 2}})
            return
        h._send(200, {"choices": [{"index": 0, "text": f"{text} echo of {str(prompt)[-12:]}. more", "logprobs": logprobs,
                                   "finish_reason": "length"}], "usage": {"completion_tokens": 3}})
