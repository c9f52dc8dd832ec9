"""A task's requests of an endpoint model (models/endpoint.py): log-likelihoods and greedy generation.

These are lm-evaluation-harness's `local-completions` requests, read back the way it reads them:
- log-likelihood: {"prompt": context + continuation, "echo": true, "logprobs": 1, "max_tokens": 1,
  "temperature": 0, "seed"}; the continuation's log-probabilities are summed and it is greedy
  when each of its tokens has the top log-probability at its position (lm-eval's rule). The
  token pair is made by the same `encode_pair` the local scorer uses (evaluate/loglik.py), so a
  server with the same weights gives the same numbers; identical requests go out once.
- generation: one request per example (N in flight, `num_concurrent`), greedy, the task's
  stop strings (OpenAI takes 4; the rest are cut here as for a local model).
"""

from __future__ import annotations

from typing import Any

from tuneval.errors import TunevalError
from tuneval.evaluate.loglik import encode_pair
from tuneval.model_args import ModelArgs
from tuneval.models.endpoint import KINDS, Endpoint, is_endpoint, open_endpoint, parse_model_args
from tuneval.models.http import EndpointError, RequestCache

NO_LOGPROBS = ("does not return the prompt's log-probabilities (echo + logprobs); multiple-choice tasks need "
               "them: serve the model with vLLM or tuneval serve, or score generation tasks only")


def _loglik_body(ep: Endpoint, context: str, continuation: str) -> tuple[dict[str, Any], tuple]:
    """The request for one (context, continuation) and where its continuation lies in the echo:
    ("tokens", start, end) in token positions, or ("chars", start, end) in characters."""
    body = {"model": ep.args.model, "max_tokens": 1, "logprobs": 1, "echo": True, "temperature": 0,
            "seed": ep.args.seed}
    if ep.tokenizer is not None:
        ctx, cont = encode_pair(ep.tokenizer, context, continuation, "causal")
        whole = (ctx + cont)[-ep.context_length:]
        start = len(whole) - len(cont)
        body["prompt"] = whole if ep.args.tokenized_requests else ep.tokenizer.decode(whole)
        return body, ("tokens", start, len(whole))
    n_spaces = len(context) - len(context.rstrip())  # lm-eval moves the context's trailing spaces
    body["prompt"] = context + continuation
    return body, ("chars", len(context) - n_spaces, len(context) + len(continuation))


def _read_loglik(ep: Endpoint, answer: dict[str, Any], span: tuple) -> tuple[float, bool]:
    choice = answer["choices"][0]
    lp = choice.get("logprobs") if isinstance(choice, dict) else None
    if not isinstance(lp, dict) or not isinstance(lp.get("token_logprobs"), list):
        raise EndpointError(f"{ep.url}: {NO_LOGPROBS}")
    values, tops = lp["token_logprobs"], lp.get("top_logprobs") or []
    how, start, end = span
    if how == "chars":
        offsets = lp.get("text_offset")
        if not isinstance(offsets, list) or len(offsets) != len(values):
            raise EndpointError(f"{ep.url}: the answer has no text_offset to find the continuation; give "
                                "tokenizer= in --model-args")
        positions = [i for i, o in enumerate(offsets) if start <= o < end]
    else:
        positions = list(range(start, end))
    if not positions or positions[-1] >= len(values) or any(values[i] is None for i in positions):
        raise EndpointError(f"{ep.url}: the echoed log-probabilities do not cover the continuation "
                            f"({len(values)} tokens back): {NO_LOGPROBS}")
    total, greedy = 0.0, True
    for i in positions:
        total += float(values[i])
        top = tops[i] if i < len(tops) else None
        if not isinstance(top, dict) or not top or values[i] != max(top.values()):
            greedy = False
    return total, greedy


def loglikelihoods(ep: Endpoint, requests: list[tuple[str, str]], description: str):
    """[(sum of the continuation's log-probs, all greedy)] in request order, and counters."""
    if ep.api == "chat":
        raise EndpointError(f"{ep.url}: a chat endpoint gives no log-probabilities of a prompt; multiple-choice "
                            "tasks need --model local-completions (echo + logprobs)")
    made = [_loglik_body(ep, c, x) for c, x in requests]
    keys = [RequestCache.key(ep.url, body) for body, _ in made]  # each body hashed once
    unique: dict[str, dict[str, Any]] = {}
    for key, (body, _) in zip(keys, made):
        unique.setdefault(key, body)
    answers = dict(zip(unique, ep.client.map(ep.url, list(unique.values()), description)))
    results = [_read_loglik(ep, answers[key], span) for key, (_, span) in zip(keys, made)]
    return results, {"requests": len(requests), "http_requests": len(unique)}


def _generation_body(ep: Endpoint, item: dict[str, Any], max_new_tokens: int, until: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": ep.args.model, "temperature": 0, "seed": ep.args.seed}
    stops = [s for s in until if s][:4]
    if stops:
        body["stop"] = stops
    if ep.api == "chat":
        body["messages"] = item["messages"]
        body["max_completion_tokens" if ep.kind.startswith("openai") else "max_tokens"] = max_new_tokens
    else:
        body["prompt"] = item["ids"] if ep.sends_ids and item.get("ids") is not None else item["text"]
        body["max_tokens"] = max_new_tokens
    return body


def _read_text(ep: Endpoint, answer: dict[str, Any]) -> str:
    choice = answer["choices"][0]
    text = None
    if isinstance(choice, dict):
        text = choice.get("text") if ep.api == "completions" else (choice.get("message") or {}).get("content")
    if not isinstance(text, str):
        raise EndpointError(f"{ep.url}: the answer's first choice has no text ({str(choice)[:120]})")
    return text


def generate(ep: Endpoint, inputs: list[dict[str, Any]], *, max_new_tokens: int, until: list[str],
             description: str) -> tuple[list[str], dict[str, int]]:
    """Greedy completions of `inputs` ({"text", "ids", "messages"} each: what the API takes), in order."""
    bodies = [_generation_body(ep, item, max_new_tokens, until) for item in inputs]
    answers = ep.client.map(ep.url, bodies, description)
    tokens = sum(int((a.get("usage") or {}).get("completion_tokens") or 0) for a in answers)
    return [_read_text(ep, a) for a in answers], {"new_tokens": tokens}


def open_model(model: str, adapter, *, precision: str, model_args, merge: bool, requests_file,
               chat_template: bool | str = True):
    """(loaded, model to run) as evaluation uses them: an endpoint (its own `loaded`: tokenizer, arch,
    meta) when `model` names an endpoint kind, else the local model with its adapter (load_result),
    its tokenizer given the template `chat_template` names (--chat-template NAME|FILE), if it names one."""
    from tuneval.methods.loading import load_result
    from tuneval.models import templates

    if isinstance(chat_template, str) and is_endpoint(model):
        raise TunevalError(f"--chat-template {chat_template} renders prompts for a local model; --model {model} "
                           "applies the server's own template")
    templates.resolve(chat_template, "--chat-template")  # a bad name or file fails before the model loads
    if is_endpoint(model):
        if adapter is not None:
            raise TunevalError(f"--adapter loads a local run over a local model; with --model {model} name the "
                               "adapter the server serves in --model-args model=NAME")
        if merge:
            raise TunevalError(f"--merge folds a local adapter into local weights; --model {model} is served elsewhere")
        if isinstance(model_args, ModelArgs):
            if model_args != ModelArgs():
                raise TunevalError(f"--dtype, --revision, ... load a local model; --model {model} takes --model-args")
            model_args = None
        ep = open_endpoint(model, model_args, requests_file)
        return ep, ep
    if model_args is not None and not isinstance(model_args, ModelArgs):
        raise TunevalError(f"--model-args describes an endpoint model ({', '.join(KINDS)}); a local model "
                           "takes --dtype, --revision, --trust-remote-code and --attn-implementation")
    loaded, net = load_result(model, adapter, precision=precision, args=model_args, merge=merge)
    templates.apply(loaded.tokenizer, chat_template, "--chat-template")
    return loaded, net


def label(model: str, adapter, model_args) -> str:
    """What results call the model: a run label, or an endpoint's served model name."""
    from tuneval.methods.loading import run_label

    if is_endpoint(model):
        given = None if isinstance(model_args, ModelArgs) else model_args
        return parse_model_args(given).model or model
    return run_label(model, adapter)
