"""The HTTP API: OpenAI-compatible completions over an adapter bank, plus hot (un)loading.

    GET    /v1/models              the base and every loaded adapter
    POST   /v1/completions         OpenAI completions; `model` names an adapter or the base
    POST   /v1/chat/completions    OpenAI chat completions (the tokenizer's chat template)
    POST   /v1/adapters            {"name", "path"}: load from under --adapters-root
    DELETE /v1/adapters/{name}     unload
    GET    /health                 liveness, for scripts that start the server
    GET    /stats                  batches run and rows per batch so far

Scoring, as lm-evaluation-harness's `local-completions` and vLLM's server do it: a
completions request with `echo: true` and `logprobs: k` gets each prompt token's
log-probability under the adapter `model` names (and the k most likely tokens there), in one
forward pass per batch; `max_tokens: 0` scores without generating. `prompt` may be token ids,
as lm-eval sends it. Generated tokens get log-probs too (completions `logprobs`, chat
`logprobs` + `top_logprobs`), not when streamed. Scoring rows go through the same batcher,
queue and limits as generation. Streams end with a usage chunk when `stream_options:
{"include_usage": true}` asks for it. Parameters the server cannot honour are refused with
a 400 naming them (schemas.py lists them and the no-ops it accepts).

Handlers never take the bank's lock on the event loop (a batch holds it while it
generates): they read lock-free snapshots, and loads/unloads run in a worker thread.
Tokenisation and chat-template rendering run in worker threads too: a 1 MB prompt takes
a noticeable time to tokenise, and on the event loop it would stall every other client
(and /health) meanwhile.

Limits, so one client cannot take the server down: bodies over `max_body_bytes` (413,
counted as they arrive, see guards.py), a bounded batch queue (503 + Retry-After), a
per-request deadline (504), and with `api_key` a bearer key on every route but /health
(401). Every error is JSON, {"error": {"message", "type", "param", "code"}}, with a 4xx
status for anything the client can fix.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuneval.errors import TunevalError
from tuneval.serve.adapters import check_name
from tuneval.serve.bank import AdapterBank, Output, Row, UnknownAdapter
from tuneval.serve.batcher import Batcher, QueueFull
from tuneval.serve.guards import BearerAuth, BodyLimit
from tuneval.serve.logprobs import TokenTexts, chat_logprobs, completion_logprobs
from tuneval.serve.schemas import (
    AdapterLoadRequest,
    ApiError,
    ChatRequest,
    CompletionRequest,
    describe_validation,
)


@dataclass
class ServeSettings:
    adapters_root: Path | None = None  # None: POST /v1/adapters is refused
    max_prompt_tokens: int = 1024
    max_tokens: int = 256  # the most any request may ask for
    default_max_tokens: int = 16  # OpenAI's default for completions
    default_chat_max_tokens: int = 128
    max_batch_size: int = 16
    batch_window_ms: float = 5.0
    max_rows_per_request: int = 16  # prompts x n
    max_body_bytes: int = 1_000_000
    max_queue: int = 256  # rows waiting for a batch; more: 503 + Retry-After
    request_timeout: float = 300.0  # seconds from arrival to the last token; then 504
    api_key: str | None = None  # None: no key asked (loopback only; server.check_options)
    precision: str = "auto"  # the base model's dtype (precision.py); adapters stay fp32 over it
    model_args: Any = None  # a ModelArgs (model_args.py): dtype (wins over precision), revision, remote code, attention


class _Service:
    """What the routes share: the bank, its batcher and the limits; each request's checks, rows and runs."""

    def __init__(self, bank: AdapterBank, settings: ServeSettings):
        self.bank, self.settings = bank, settings
        self.batcher = Batcher(bank, settings.max_batch_size, settings.batch_window_ms / 1000, settings.max_queue)
        self.started = int(time.time())
        # Handlers tokenise in worker threads, concurrently. A fast tokenizer is safe to share as
        # long as no call changes its padding/truncation state; the first plain call may reset a
        # state saved with the tokenizer, so make it here, before any thread exists.
        bank.tokenizer("warm-up")
        self.context = getattr(bank.base.config, "max_position_embeddings", None) if bank.arch == "causal" else None
        self.vocabulary = min(len(bank.tokenizer), bank.base.get_input_embeddings().num_embeddings)

    def resolve(self, model: str) -> str | None:
        bank = self.bank
        if model == bank.base_name:
            return None
        if model in bank:
            return model
        known = [bank.base_name, *(a.name for a in bank.catalogue())]
        raise ApiError(404, f"model '{model}' is not served here (available: {', '.join(known)})",
                       "model_not_found", "model")

    def budget(self, req, prompts: list[list[int]], max_tokens: int, param: str) -> None:
        settings, context = self.settings, self.context
        if len(prompts) * req.n > settings.max_rows_per_request:
            raise ApiError(400, f"{len(prompts)} prompts x n={req.n} is over this server's limit of "
                                f"{settings.max_rows_per_request} completions per request", "too_many_completions", param)
        if max_tokens > settings.max_tokens:
            raise ApiError(400, f"max_tokens={max_tokens} is over this server's limit of {settings.max_tokens}",
                           "max_tokens_too_large", "max_tokens")
        for ids in prompts:
            if len(ids) > settings.max_prompt_tokens:
                raise ApiError(400, f"the prompt is {len(ids)} tokens; this server accepts at most "
                                    f"{settings.max_prompt_tokens}", "context_length_exceeded", param)
            if context and len(ids) + max_tokens > context:
                raise ApiError(400, f"prompt ({len(ids)} tokens) + max_tokens ({max_tokens}) is over the model's "
                                    f"context of {context}", "context_length_exceeded", param)

    @staticmethod
    def rows_for(req, adapter: str | None, prompts: list[list[int]], max_tokens: int,
                 logprobs: int | None = None, score: bool = False) -> list[Row]:
        return [Row(prompt=ids, adapter=adapter, max_new_tokens=max_tokens, temperature=req.temperature,
                    top_p=req.top_p, stop=list(req.stop or []), cancelled=threading.Event(), logprobs=logprobs,
                    score_prompt=score)
                for ids in prompts for _ in range(req.n)]

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [self.bank.tokenizer(t)["input_ids"] for t in texts]

    def completion_prompts(self, req: CompletionRequest) -> tuple[list[list[int]], list[str]]:
        """(token ids, text) of each prompt: strings are tokenised; token ids are checked against the
        vocabulary and, for echo, decoded (as vLLM echoes them)."""
        given = req.prompts()
        if isinstance(given[0], str):
            return self.encode(given), given  # type: ignore[arg-type]
        for ids in given:
            bad = next((t for t in ids if not 0 <= t < self.vocabulary), None)  # type: ignore[union-attr]
            if bad is not None:
                raise ApiError(400, f"token id {bad} is outside the model's vocabulary (0-{self.vocabulary - 1})",
                               "invalid_prompt", "prompt")
        texts = [self.bank.tokenizer.decode(ids) for ids in given] if req.echo else [""] * len(given)
        return given, texts  # type: ignore[return-value]

    def submit(self, rows: list[Row]):
        try:
            return self.batcher.submit(rows)
        except QueueFull as e:
            raise ApiError(503, str(e), "server_overloaded", headers={"Retry-After": str(e.retry_after)}) from None

    def timed_out(self) -> ApiError:
        limit = self.settings.request_timeout
        return ApiError(504, f"the request did not finish within this server's limit of {limit:g} s "
                             "(--request-timeout); ask for fewer tokens or retry later", "timeout")

    async def run(self, rows: list[Row], deadline: float) -> list[Output]:
        futures = self.submit(rows)
        try:
            gathered = asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
            return list(await asyncio.wait_for(gathered, max(0.0, deadline - time.monotonic())))
        except asyncio.TimeoutError:
            raise self.timed_out() from None
        except UnknownAdapter as e:
            raise ApiError(404, str(e), "model_not_found", "model") from None
        except TunevalError as e:
            raise ApiError(400, str(e)) from None
        finally:
            for f, r in zip(futures, rows):
                f.cancel()
                r.cancelled.set()  # a client that went away stops its rows

    def stream(self, rows: list[Row], chunk: Callable[[int, str], dict], final: Callable[[int, Output], dict],
               opening: list[dict], deadline: float,
               usage: Callable[[list[Output]], dict] | None = None) -> StreamingResponse:
        """Server-sent events; past the deadline an error event (code "timeout") ends the stream.
        With `usage`, a last chunk built from every row's output follows the rows' own."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        for i, r in enumerate(rows):
            r.on_text = lambda text, i=i: loop.call_soon_threadsafe(queue.put_nowait, (i, text))
        futures = self.submit(rows)
        for i, f in enumerate(futures):  # done callbacks come after the row's last text: same FIFO
            f.add_done_callback(lambda f, i=i: loop.call_soon_threadsafe(queue.put_nowait, (i, f)))

        async def events() -> AsyncIterator[str]:
            remaining, outs = len(rows), [None] * len(rows)
            try:
                for c in opening:
                    yield _sse(c)
                while remaining:
                    try:
                        i, item = await asyncio.wait_for(queue.get(), max(0.0, deadline - time.monotonic()))
                    except asyncio.TimeoutError:
                        yield _sse(self.timed_out().body())
                        break
                    if isinstance(item, str):
                        yield _sse(chunk(i, item))
                        continue
                    remaining -= 1
                    error = item.exception() if not item.cancelled() else RuntimeError("cancelled")
                    if error is None:
                        outs[i] = item.result()
                        yield _sse(final(i, item.result()))
                    else:
                        status = 404 if isinstance(error, UnknownAdapter) else 400 if isinstance(error, TunevalError) else 500
                        yield _sse(ApiError(status, str(error), "generation_failed").body())
                if usage is not None and all(o is not None for o in outs):
                    yield _sse(usage(outs))  # type: ignore[arg-type]
                yield "data: [DONE]\n\n"
            finally:
                for f, r in zip(futures, rows):
                    f.cancel()
                    r.cancelled.set()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _usage(prompts: list[list[int]], outs: list[Output]) -> dict[str, int]:
    p, c = sum(len(ids) for ids in prompts), sum(len(o.tokens) for o in outs)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _unsupported(req) -> None:
    bad = req.unsupported()
    if bad:
        name, why = bad
        raise ApiError(400, f"'{name}' is not supported by this server ({why})", "unsupported_parameter", name)


def _completion_choice(index: int, row: Row, out: Output, prompt_text: str, req: CompletionRequest,
                       texts: TokenTexts) -> dict[str, Any]:
    """One choice; with echo its text (and its logprobs) start with the prompt's."""
    logprobs = None
    if req.logprobs is not None:
        ids, entries = list(out.tokens), list(out.token_logprobs or [])
        if req.echo:
            ids, entries = row.prompt + ids, [None, *(out.prompt_logprobs or [])] + entries
        logprobs = completion_logprobs(texts, ids, entries)
    text = (prompt_text if req.echo else "") + out.text
    return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": _reason(out)}


def _chat_choice(index: int, out: Output, req: ChatRequest, texts: TokenTexts) -> dict[str, Any]:
    logprobs = chat_logprobs(texts, out.tokens, out.token_logprobs or []) if req.logprobs else None
    return {"index": index, "message": {"role": "assistant", "content": out.text}, "logprobs": logprobs,
            "finish_reason": _reason(out)}


def create_app(bank: AdapterBank, settings: ServeSettings | None = None) -> FastAPI:
    """The app over `bank`: the limits as middleware, errors as JSON, the routes of the module docstring."""
    settings = settings or ServeSettings()
    service = _Service(bank, settings)
    batcher = service.batcher

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            batcher.stop()

    app = FastAPI(title="tuneval serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.bank, app.state.batcher, app.state.settings = bank, batcher, settings
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.api_key is not None:  # added last: runs first, before any body is read
        app.add_middleware(BearerAuth, key=settings.api_key)
    _add_error_handlers(app)
    _add_info_routes(app, service)
    _add_completion_routes(app, service)
    _add_chat_route(app, service)
    _add_adapter_routes(app, service)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as OpenAI-style JSON, 4xx for what the client can fix."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        message, param = describe_validation(list(e.errors()))
        code = "malformed_json" if message.startswith("malformed JSON") else "invalid_request"
        return JSONResponse(ApiError(400, message, code, param).body(), status_code=400)

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception):  # still JSON; the traceback goes to the server log
        return JSONResponse(ApiError(500, f"internal error: {type(e).__name__}", "internal_error").body(), status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
        return JSONResponse(ApiError(e.status_code, str(e.detail), code).body(), status_code=e.status_code)


def _add_info_routes(app: FastAPI, service: _Service) -> None:
    """GET /health, /stats and /v1/models."""
    bank, batcher = service.bank, service.batcher

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": bank.base_name, "adapters": len(bank.catalogue()),
                "precision": bank.loaded.precision, "dtype": bank.loaded.dtype}

    @app.get("/stats")
    async def stats():
        n = batcher.batches
        return {"batches": n, "rows": batcher.rows_done, "mean_batch": batcher.rows_done / n if n else 0.0,
                "queued": batcher.pending(), "max_queue": batcher.max_queue, "rejected": batcher.rejected}

    @app.get("/v1/models")
    async def models():
        data = [{"id": bank.base_name, "object": "model", "created": service.started, "owned_by": "tuneval",
                 "root": bank.base_name, "parent": None, "kind": "base"}]
        for a in bank.catalogue():
            data.append({"id": a.name, "object": "model", "created": int(a.loaded_at), "owned_by": "tuneval",
                         "root": bank.base_name, "parent": bank.base_name, "kind": "adapter",
                         "peft_type": a.peft_type, "params": a.params, "mixable": a.mixable})
        return {"object": "list", "data": data}


def _add_completion_routes(app: FastAPI, service: _Service) -> None:
    """POST /v1/completions, whole or streamed."""
    bank, settings = service.bank, service.settings

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
        deadline = time.monotonic() + settings.request_timeout
        _unsupported(req)
        adapter = service.resolve(req.model)
        score = req.echo and req.logprobs is not None
        if score and bank.arch != "causal":
            raise ApiError(400, "'echo' with logprobs scores the prompt, which needs a decoder-only model; this one "
                                "is seq2seq", "unsupported_parameter", "echo")
        prompts, texts = await asyncio.to_thread(service.completion_prompts, req)
        max_tokens = settings.default_max_tokens if req.max_tokens is None else req.max_tokens
        service.budget(req, prompts, max_tokens, "prompt")
        rows = service.rows_for(req, adapter, prompts, max_tokens, req.logprobs, score)
        rid, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        head = {"id": rid, "object": "text_completion", "created": created, "model": req.model}
        if req.stream:
            chunk = {**head, **({"usage": None} if req.include_usage else {})}
            return service.stream(
                rows,
                lambda i, text: {**chunk, "choices": [{"index": i, "text": text, "logprobs": None, "finish_reason": None}]},
                lambda i, o: {**chunk, "choices": [{"index": i, "text": "", "logprobs": None,
                                                    "finish_reason": _reason(o)}]},
                [], deadline,
                (lambda outs: {**head, "choices": [], "usage": _usage(prompts, outs)}) if req.include_usage else None,
            )
        outs = await service.run(rows, deadline)
        tokens = TokenTexts(bank.tokenizer)
        choices = await asyncio.to_thread(  # decoding every token's text takes a while for long prompts
            lambda: [_completion_choice(i, r, o, texts[i // req.n], req, tokens)
                     for i, (r, o) in enumerate(zip(rows, outs))])
        return {**head, "choices": choices, "usage": _usage(prompts, outs)}



def _add_chat_route(app: FastAPI, service: _Service) -> None:
    """POST /v1/chat/completions, whole or streamed."""
    bank, settings = service.bank, service.settings

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest):
        deadline = time.monotonic() + settings.request_timeout
        _unsupported(req)
        adapter = service.resolve(req.model)
        prompts = [await asyncio.to_thread(render_chat, bank, req)]
        max_tokens = req.max_completion_tokens or req.max_tokens or min(settings.default_chat_max_tokens, settings.max_tokens)
        service.budget(req, prompts, max_tokens, "messages")
        rows = service.rows_for(req, adapter, prompts, max_tokens, (req.top_logprobs or 0) if req.logprobs else None)
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        head = {"id": rid, "created": created, "model": req.model}
        if req.stream:
            chunk = {**head, "object": "chat.completion.chunk", **({"usage": None} if req.include_usage else {})}
            return service.stream(
                rows,
                lambda i, text: {**chunk, "choices": [{"index": i, "delta": {"content": text}, "finish_reason": None}]},
                lambda i, o: {**chunk, "choices": [{"index": i, "delta": {}, "finish_reason": _reason(o)}]},
                [{**chunk, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                                       for i in range(len(rows))]}], deadline,
                (lambda outs: {**chunk, "choices": [], "usage": _usage(prompts, outs)}) if req.include_usage else None,
            )
        outs = await service.run(rows, deadline)
        tokens = TokenTexts(bank.tokenizer)
        choices = await asyncio.to_thread(lambda: [_chat_choice(i, o, req, tokens) for i, o in enumerate(outs)])
        return {**head, "object": "chat.completion", "choices": choices, "usage": _usage(prompts, outs)}


def _add_adapter_routes(app: FastAPI, service: _Service) -> None:
    """POST /v1/adapters (load from under --adapters-root) and DELETE /v1/adapters/{name}."""
    bank, settings = service.bank, service.settings

    @app.post("/v1/adapters", status_code=201)
    async def load_adapter(req: AdapterLoadRequest):
        root = settings.adapters_root
        if root is None:
            raise ApiError(403, "loading adapters over HTTP is off: start the server with --adapters-root DIR",
                           "adapter_loading_disabled")
        try:
            check_name(req.name)  # here, so the error names the field at fault ("name", not "path")
        except TunevalError as e:
            raise ApiError(400, str(e), "invalid_adapter_name", "name") from None
        if req.name == bank.base_name or req.name in bank:
            raise ApiError(409, f"'{req.name}' is already served; unload it first", "adapter_exists", "name")
        try:
            info = await run_in_threadpool(bank.load, req.name, req.path, root)
        except TunevalError as e:
            message = str(e).replace(str(Path(root).resolve()) + "/", "")  # don't show the server's layout
            if "already loaded" in message or "taken by the base" in message:  # a race with another load
                raise ApiError(409, message, "adapter_exists", "name") from None
            raise ApiError(400, message, "invalid_adapter", "path") from None
        return {"id": info.name, "object": "model", "peft_type": info.peft_type, "params": info.params,
                "mixable": info.mixable, "path": req.path}

    @app.delete("/v1/adapters/{name:path}")
    async def unload_adapter(name: str):
        if name == bank.base_name:
            raise ApiError(400, "the base model cannot be unloaded", "base_model", "name")
        try:
            await run_in_threadpool(bank.unload, name)
        except UnknownAdapter:
            raise ApiError(404, f"no adapter named '{name}' is loaded", "model_not_found", "name") from None
        return {"id": name, "object": "model", "deleted": True}


def render_chat(bank: AdapterBank, req: ChatRequest) -> list[int]:
    """Messages -> prompt ids, through the chat template the requested adapter's run saved (it trained
    with it), else the tokenizer's when the model has one; always rendered by apply_chat_template."""
    messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages]
    tok = bank.tokenizer
    own = bank.info(req.model).chat_template if req.model in bank else None
    if bank.arch == "causal" and (own or getattr(tok, "chat_template", None)):
        try:
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, chat_template=own)
        except Exception as e:  # a template that rejects the roles or their order
            raise ApiError(400, f"messages do not fit the model's chat template: {e}", "invalid_messages", "messages") from None
        return tok(text, add_special_tokens=False)["input_ids"]
    if bank.arch == "causal":
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
    else:
        text = "\n".join(m["content"] for m in messages)
    return tok(text)["input_ids"]


def _reason(o: Output) -> str:
    return "length" if o.finish_reason == "length" else "stop"


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
