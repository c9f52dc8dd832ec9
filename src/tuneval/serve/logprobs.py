"""Log-probabilities in OpenAI's two response shapes (the numbers come from scoring.py).

Completions (legacy), per choice, as vLLM writes it:

    {"tokens": [str], "token_logprobs": [float | null], "top_logprobs": [{str: float} | null],
     "text_offset": [int]}

With `echo` the prompt's tokens come first; the first prompt token has no context, so its
token_logprob and top_logprobs are null. `top_logprobs` holds the k most likely tokens at each
position, plus the chosen token when it is not among them (so k = 0 gives just the chosen
token); a token is its own text (`tokenizer.decode([id])`), and `text_offset` counts characters
along those texts from the start of the choice's `text`.

Chat: `{"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}]}`
with exactly the k most likely tokens in `top_logprobs`.

-inf (a token the model rules out) is written as -9999.0, as vLLM does: JSON has no infinity.
"""

from __future__ import annotations

from typing import Any

from tuneval.serve.scoring import TokenLogprob

FLOOR = -9999.0


def _finite(x: float) -> float:
    return max(x, FLOOR)


class TokenTexts:
    """Each token id's text, decoded once per response."""

    def __init__(self, tokenizer):
        self.tokenizer, self.cache = tokenizer, {}

    def __call__(self, token: int) -> str:
        text = self.cache.get(token)
        if text is None:
            text = self.cache[token] = self.tokenizer.decode([token])
        return text


def completion_logprobs(texts: TokenTexts, ids: list[int], entries: list[TokenLogprob | None]) -> dict[str, Any]:
    """The completions `logprobs` object for tokens `ids`, with their entries (None: no context)."""
    tokens, token_logprobs, top_logprobs, offsets, at = [], [], [], [], 0
    for token, entry in zip(ids, entries):
        text = texts(token)
        tokens.append(text)
        offsets.append(at)
        at += len(text)
        if entry is None:
            token_logprobs.append(None)
            top_logprobs.append(None)
            continue
        token_logprobs.append(_finite(entry.logprob))
        top: dict[str, float] = {}
        for other, value in entry.top:
            top.setdefault(texts(other), _finite(value))
        if all(other != token for other, _ in entry.top):
            top.setdefault(text, _finite(entry.logprob))
        top_logprobs.append(top)
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top_logprobs, "text_offset": offsets}


def _chat_token(text: str, value: float) -> dict[str, Any]:
    return {"token": text, "logprob": _finite(value), "bytes": list(text.encode("utf-8"))}


def chat_logprobs(texts: TokenTexts, ids: list[int], entries: list[TokenLogprob]) -> dict[str, Any]:
    """The chat `logprobs` object for generated tokens `ids`."""
    content = []
    for token, entry in zip(ids, entries):
        item = _chat_token(texts(token), entry.logprob)
        item["top_logprobs"] = [_chat_token(texts(other), value) for other, value in entry.top]
        content.append(item)
    return {"content": content}
