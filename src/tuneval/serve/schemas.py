"""Request bodies of the OpenAI-compatible API, and the error shape every 4xx uses.

Fields follow OpenAI's names and defaults (`temperature` 1.0, `max_tokens` 16 for
completions) so existing clients work unchanged. Unknown fields are ignored as OpenAI
ignores them; options we cannot honour (logprobs, echo, best_of, suffix) are refused with
a reason rather than silently dropped.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


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


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stop: str | list[str] | None = None

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, v):
        return _stop_list(v)


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    echo: bool = False
    logprobs: int | None = None
    best_of: int | None = None
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, v):
        prompts = [v] if isinstance(v, str) else v
        if not prompts or any(not p for p in prompts):
            raise ValueError("prompt must be a non-empty string or a non-empty list of non-empty strings")
        return v

    def unsupported(self) -> str | None:
        if self.echo:
            return "echo"
        if self.logprobs is not None:
            return "logprobs"
        if self.best_of not in (None, 1):
            return "best_of"
        if self.suffix:
            return "suffix"
        return None


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

    def unsupported(self) -> str | None:
        return "logprobs" if self.logprobs else None


class AdapterLoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    path: str = Field(min_length=1, max_length=4096)


def describe_validation(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """One readable sentence from pydantic's error list, and the first field it names."""
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
