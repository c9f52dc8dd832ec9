"""Request bodies of the OpenAI-compatible API, and the error shape every 4xx uses.

Fields follow OpenAI's names and defaults (`temperature` 1.0, `max_tokens` 16 for
completions) so existing clients work unchanged. Every parameter of OpenAI's completions and
chat completions APIs is either honoured with OpenAI's (and vLLM's) semantics or, when a
request asks for something this server cannot do, refused with a 400 naming it (code
"unsupported_parameter"); a refused parameter sent with its default value (null, 0, false,
`{"type": "text"}`, ...) asks for nothing and passes. Fields OpenAI does not define are
ignored, as vLLM ignores them, except vLLM's own sampling extensions (`top_k`, `min_p`,
`repetition_penalty`, ...), refused like the rest when they ask for something.

Honoured: completions `prompt` as a string, a list of strings, a list of token ids or a list
of lists of token ids; `logprobs` (0-20) and `echo`, with `max_tokens: 0` to score a prompt
without generating; chat `logprobs` + `top_logprobs`; `stream_options.include_usage`.
Accepted as no-ops, each for the reason beside it in `ACCEPTED`: `seed`, `user`, `metadata`,
`store: false`, `service_tier`, `stream_options.include_obfuscation`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

class ApiError(Exception):
    """An error answered as JSON: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, code: str = "invalid_request", param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers  # e.g. Retry-After on a 503, WWW-Authenticate on a 401

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def _stop_list(v: Any) -> list[str]:
    if v is None:
        return []
    items = [v] if isinstance(v, str) else list(v)
    if len(items) > 4:
        raise ValueError("at most 4 stop sequences")
    if any(not isinstance(s, str) or not s for s in items):
        raise ValueError("stop sequences must be non-empty strings")
    return items


# name -> (the values that ask for nothing, why the server cannot do more). Anything else is refused.
_SAMPLING_REFUSED: dict[str, tuple[tuple, str]] = {
    "frequency_penalty": ((0,), "no repetition penalties"),
    "presence_penalty": ((0,), "no repetition penalties"),
    "logit_bias": (({},), "no logit bias"),
    # vLLM's sampling extensions: clients that talk to vLLM send them
    "top_k": ((0, -1), "top_p sampling only"),
    "min_p": ((0,), "top_p sampling only"),
    "repetition_penalty": ((1,), "no repetition penalties"),
    "min_tokens": ((0,), "no minimum length"),
    "ignore_eos": ((False,), "generation always stops at EOS"),
    "use_beam_search": ((False,), "no beam search"),
    "prompt_logprobs": ((), "use echo with logprobs"),
}
_CHAT_REFUSED: dict[str, tuple[tuple, str]] = {
    "response_format": (({"type": "text"},), "no structured output"),
    "tools": (([],), "no tool calling"),
    "tool_choice": (("none",), "no tool calling"),
    "parallel_tool_calls": ((True,), "no tool calling"),
    "functions": (([],), "no function calling"),
    "function_call": (("none",), "no function calling"),
    "audio": ((), "text only"),
    "modalities": ((["text"],), "text only"),
    "prediction": ((), "no predicted outputs"),
    "reasoning_effort": ((), "the models served do not reason on a budget"),
    "verbosity": ((), "no verbosity control"),
    "web_search_options": ((), "no web search"),
    "store": ((False,), "nothing is stored"),
}
# Accepted and ignored, each because it changes nothing a client can observe here:
ACCEPTED = {
    "seed": "OpenAI promises only best-effort determinism for it; greedy answers are deterministic "
            "anyway, and sampled rows share batches, so one request cannot own the generator",
    "user": "an end-user id for the provider's abuse monitoring; the output never depends on it",
    "metadata": "tags for stored completions; nothing is stored (store: true is refused)",
    "service_tier": "a billing and latency tier; this server has one tier",
    "prompt_cache_key": "a routing hint for OpenAI's prompt cache",
    "safety_identifier": "an end-user id for abuse monitoring, as user",
}


def refused(req: BaseModel, table: dict[str, tuple[tuple, str]]) -> tuple[str, str] | None:
    """(name, reason) of the first parameter of `table` the request sends with a value that asks for something."""
    given = req.model_extra or {}
    for name, (harmless, why) in table.items():
        value = given.get(name)
        if value is not None and value not in harmless:
            return name, why
    return None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool | None = None
    # OpenAI pads streamed chunks with random text against length side channels; asking for it or not
    # changes no content, and this server sends no padding.
    include_obfuscation: bool | None = None


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown fields are ignored, but `refused` sees them

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, v):
        return _stop_list(v)

    def unsupported(self) -> tuple[str, str] | None:
        """(parameter, why) for the first parameter asking for what this server cannot do."""
        bad = refused(self, _SAMPLING_REFUSED)
        if bad:
            return bad
        if self.stream_options is not None and not self.stream:
            return "stream_options", "it applies only with stream: true"
        return None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


TokenIds = Annotated[list[StrictInt], Field(min_length=1)]


class CompletionRequest(_Sampling):
    prompt: str | list[str] | TokenIds | list[TokenIds]
    max_tokens: int | None = Field(None, ge=0)  # 0: with echo, score the prompt and generate nothing
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20, strict=True)
    best_of: int | None = None
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, v):
        prompts = [v] if isinstance(v, str) or (v and isinstance(v[0], int)) else v
        if not prompts or any(not p for p in prompts):
            raise ValueError("prompt must be a non-empty string, a list of them, a non-empty list of token ids, "
                             "or a list of those")
        return v

    def unsupported(self) -> tuple[str, str] | None:
        if self.best_of not in (None, 1):
            return "best_of", "one completion per choice (use n)"
        if self.suffix:
            return "suffix", "no insertion"
        if self.max_tokens == 0 and not self.echo:
            return "max_tokens", "max_tokens 0 only scores the prompt: send echo: true with logprobs"
        if self.stream and self.logprobs is not None:
            return "logprobs", "log-probabilities are not streamed: send stream: false"
        if self.stream and self.echo:
            return "echo", "the prompt is not streamed back: send stream: false"
        return super().unsupported()

    def prompts(self) -> list[str] | list[list[int]]:
        """The prompts as a list: of strings, or of token id lists."""
        v = self.prompt
        return [v] if isinstance(v, str) or isinstance(v[0], int) else v  # type: ignore[list-item,return-value]


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20, strict=True)

    def unsupported(self) -> tuple[str, str] | None:
        bad = refused(self, _CHAT_REFUSED)
        if bad:
            return bad
        if self.top_logprobs is not None and not self.logprobs:
            return "top_logprobs", "it needs logprobs: true"
        if self.stream and self.logprobs:
            return "logprobs", "log-probabilities are not streamed: send stream: false"
        return super().unsupported()


class AdapterLoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    path: str = Field(min_length=1, max_length=4096)


def describe_validation(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """One readable sentence from pydantic's error list, and the first field it names."""
    where = {tuple(str(x) for x in e.get("loc", ()) if x != "body")[:1] for e in errors}
    if where == {("prompt",)} and len(errors) > 1:  # one error per shape of the union: say what the shapes are
        return ("'prompt': must be a non-empty string, a list of strings, a list of token ids (integers), "
                "or a list of lists of token ids"), "prompt"
    parts, param = [], None
    for e in errors[:3]:
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        where = ".".join(loc)
        param = param or (loc[0] if loc else None)
        kind = e.get("type", "")
        if kind == "json_invalid":
            detail = (e.get("ctx") or {}).get("error", "")
            return f"malformed JSON body{': ' + str(detail) if detail else ''}", None
        if kind == "missing":
            parts.append(f"missing field '{where}'")
        elif where:
            parts.append(f"'{where}': {e.get('msg', 'invalid')}")
        else:
            parts.append(f"request body: {e.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more, param
