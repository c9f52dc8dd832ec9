"""POST JSON to an OpenAI-compatible server: N requests in flight, retries, a per-request timeout,
and a cache of answered requests that makes a rerun resume.

Retries (tenacity, as lm-evaluation-harness's API models use it): a connection error, a timeout,
429 and 5xx are tried again with exponential backoff (0.5 s doubling, at most 30 s, or the
server's Retry-After when it sends one), `max_retries` times; any other 4xx is the client's
fault and fails at once. Every failure is one line naming the URL (EndpointError). The key
goes in the Authorization header only: it is never part of a cache key, a message or a result.

The cache (`RequestCache`) is a JSON-lines file: one {"key", "response"} line per answered
request, appended and flushed as each answer arrives, keyed by the SHA-256 of the URL and the
request body. A run that was stopped (the server went away, Ctrl-C, a killed job) is rerun with
the same --out and only the unanswered requests go out again; a half-written last line is
skipped.
"""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from tuneval.console import progress
from tuneval.errors import TunevalError, first_line

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class EndpointError(TunevalError):
    """An endpoint that cannot be used: unreachable, refusing, or answering what is not the API."""


class _Retryable(Exception):
    def __init__(self, message: str, wait_s: float | None = None):
        super().__init__(message)
        self.wait_s = wait_s


class RequestCache:
    """Answered requests, keyed by URL + body, kept in a JSON-lines file (None: in memory only)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.answers: dict[str, Any] = {}
        self.lock = threading.Lock()
        if self.path is not None and self.path.is_file():
            text = self.path.read_text(encoding="utf-8")
            if text and not text.endswith("\n"):  # a kill mid-line: the next answer starts a line of its own
                with self.path.open("a", encoding="utf-8") as f:
                    f.write("\n")
            for line in text.splitlines():
                try:
                    item = json.loads(line)
                    self.answers[item["key"]] = item["response"]
                except (ValueError, KeyError, TypeError):  # a line cut short by a kill: asked again
                    continue

    @staticmethod
    def key(url: str, body: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps([url, body], sort_keys=True).encode()).hexdigest()

    def get(self, key: str) -> Any:
        return self.answers.get(key)

    def put(self, key: str, response: Any) -> None:
        with self.lock:
            self.answers[key] = response
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"key": key, "response": response}) + "\n")


class Client:
    """One server: its headers, timeout and retries, and the cache every answer goes into."""

    def __init__(self, api_key: str | None, *, timeout: float, max_retries: int, num_concurrent: int,
                 cache: RequestCache | None = None):
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.http = httpx.Client(headers=headers, timeout=timeout, follow_redirects=False)  # the key goes to this URL only
        self.timeout, self.max_retries, self.num_concurrent = timeout, max_retries, num_concurrent
        self.cache = cache or RequestCache()
        self.sent = 0

    def get(self, url: str) -> tuple[int, Any]:
        """(status, JSON body or None): for GET /v1/models and /health, no retries."""
        try:
            r = self.http.get(url)
        except httpx.HTTPError as e:
            raise EndpointError(f"{url}: cannot reach the server ({first_line(e) or type(e).__name__})") from None
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, None

    def post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        """The server's JSON answer to `body`, from the cache when it was answered before."""
        key = RequestCache.key(url, body)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        retrying = Retrying(stop=stop_after_attempt(self.max_retries + 1), wait=_backoff, reraise=True,
                            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)))
        try:
            answer = retrying(self._post_once, url, body)
        except _Retryable as e:
            raise EndpointError(f"{url}: {e} (after {self.max_retries + 1} tries)") from None
        self.cache.put(key, answer)
        return answer

    def _post_once(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        self.sent += 1
        try:
            r = self.http.post(url, json=body)
        except httpx.TimeoutException:
            raise _Retryable(f"no answer within {self.timeout:g} s (timeout=)") from None
        except httpx.HTTPError as e:
            raise _Retryable(f"cannot reach the server ({first_line(e) or type(e).__name__})") from None
        if r.status_code in RETRY_STATUS:
            raise _Retryable(f"HTTP {r.status_code}: {_server_message(r)}", _retry_after(r))
        if 300 <= r.status_code < 400:
            raise EndpointError(f"{url}: HTTP {r.status_code}, redirected to {r.headers.get('Location', '?')}: "
                                "give that URL as base_url (redirects are not followed, so the key stays with this one)")
        if r.status_code == 401 or r.status_code == 403:
            raise EndpointError(f"{url}: HTTP {r.status_code}, the key was refused ({_server_message(r)}); "
                                "set it in the environment variable api_key_env= names (OPENAI_API_KEY by default)")
        if r.status_code >= 400:
            raise EndpointError(f"{url}: HTTP {r.status_code}: {_server_message(r)}")
        try:
            answer = r.json()
        except ValueError:
            raise EndpointError(f"{url}: the answer is not JSON ({r.text[:80]!r}): is this an OpenAI-compatible "
                                "server?") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list) or not answer["choices"]:
            raise EndpointError(f"{url}: the answer has no 'choices' ({json.dumps(answer)[:120]}): is this an "
                                "OpenAI-compatible server?")
        return answer

    def map(self, url: str, bodies: list[dict[str, Any]], description: str) -> list[dict[str, Any]]:
        """Answers to `bodies` in order, `num_concurrent` in flight; the first failure stops the rest
        (answers already in are kept in the cache)."""
        answers: list[Any] = [None] * len(bodies)
        with progress(description, len(bodies)) as shown, ThreadPoolExecutor(self.num_concurrent) as pool:
            futures = {pool.submit(self.post, url, b): i for i, b in enumerate(bodies)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in done:
                    if f.exception() is not None:
                        for p in pending:
                            p.cancel()
                        raise f.exception()
                    answers[futures[f]] = f.result()
                    shown.advance()
        return answers


def _backoff(state) -> float:
    e = state.outcome.exception() if state.outcome else None
    if isinstance(e, _Retryable) and e.wait_s is not None:
        return min(e.wait_s, 60.0)
    return min(0.5 * 2 ** (state.attempt_number - 1), 30.0)


def _retry_after(r: httpx.Response) -> float | None:
    try:
        return float(r.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _server_message(r: httpx.Response) -> str:
    """The server's own error message (OpenAI's {"error": {"message"}} or FastAPI's {"detail"}), one line."""
    try:
        body = r.json()
    except ValueError:
        return first_line(Exception(r.text)) if r.text else r.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else error or body.get("detail") or body.get("message")
        if message:
            return first_line(Exception(str(message)))
    return json.dumps(body)[:200]
