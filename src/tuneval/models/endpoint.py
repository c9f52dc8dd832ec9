"""A model served elsewhere, behind an OpenAI-compatible API, as a model to evaluate.

Named as lm-evaluation-harness names its API models (`--model NAME --model-args k=v,...`):

  local-completions         POST /v1/completions       (vLLM, TGI, llama.cpp's server, tuneval serve)
  local-chat-completions    POST /v1/chat/completions  (the server applies the chat template)
  openai-completions        the same, https://api.openai.com by default, a key required
  openai-chat-completions

`base_url` is the endpoint's URL (`http://host:8000/v1/completions`) or its root
(`http://host:8000/v1`, the path is added). `model` is the served model's name: the base, or a
LoRA adapter's name on a server that serves several (vLLM `--lora-modules name=...`, tuneval
serve `--adapters name=...`).

How requests are made (lm-eval's `local-completions` rules):
- Log-likelihoods (multiple-choice tasks) need a completions endpoint that echoes the prompt's
  log-probabilities: the request is {"prompt", "echo": true, "logprobs": 1, "max_tokens": 1,
  "temperature": 0} as lm-eval sends it, and the continuation's tokens are read back. With
  `tokenizer=` (a local directory, an embedded name or a hub id) prompts go as token ids
  tokenized exactly as lm-eval's HF model does it, so the continuation starts at a known token;
  without one, prompts go as text and the continuation is the tokens from the first one that
  starts at or after the context's end (the server's `text_offset`). Chat endpoints have no
  log-probabilities of a prompt: multiple-choice tasks are refused there.
- Generation is greedy (temperature 0, the task's stop strings as `stop`, seed as given). With a
  tokenizer a completions prompt is built as tuneval builds it for a local model (the chat
  template applied here, prompts cut to fit `max_length`), so a server running the same weights
  gives the same predictions; a chat endpoint gets the messages and applies its own template.

The key is read from the environment variable `api_key_env` names (OPENAI_API_KEY, as lm-eval),
sent as a bearer token, and never written anywhere: results record the URL, the served model and
what the server says about itself (`describe`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from tuneval.errors import TunevalError
from tuneval.models.http import Client, EndpointError, RequestCache
from tuneval.typed import build_dataclass, checked

KINDS = {  # name -> (API, default URL, whether a key is required)
    "local-completions": ("completions", None, False),
    "local-chat-completions": ("chat", None, False),
    "openai-completions": ("completions", "https://api.openai.com/v1/completions", True),
    "openai-chat-completions": ("chat", "https://api.openai.com/v1/chat/completions", True),
}
PATHS = {"completions": "/completions", "chat": "/chat/completions"}


@dataclass
class EndpointArgs:
    """`--model-args` of an endpoint model (lm-eval's names where it has them)."""

    model: str | None = None  # the served model's name (required)
    base_url: str | None = None  # the endpoint's URL, or the server's /v1 root
    tokenizer: str | None = None  # a local tokenizer: prompts as token ids, exactly as lm-eval's HF model
    tokenized_requests: bool = True  # with a tokenizer: send token ids (False: text)
    num_concurrent: int = checked(1, ge=1, le=256)  # requests in flight
    max_retries: int = checked(3, ge=0, le=20)  # after the first try, on timeouts, 429 and 5xx
    timeout: float = checked(300.0, gt=0)  # seconds per request
    max_length: int = checked(2048, ge=8)  # the served context: prompts are cut from the left to fit it
    seed: int = 1234  # sent with every request, as lm-eval does
    api_key_env: str = "OPENAI_API_KEY"  # the environment variable holding the key

    def check(self):
        if not self.model:
            yield "model", "name the served model: model=NAME (GET /v1/models lists them)"


def is_endpoint(model: str) -> bool:
    return model in KINDS


def parse_model_args(text: str | dict | EndpointArgs | None, where: str = "--model-args") -> EndpointArgs:
    """`k=v,k=v` (lm-eval's --model_args) or a mapping -> EndpointArgs; unknown keys are refused."""
    if isinstance(text, EndpointArgs):
        return text
    if isinstance(text, dict):
        return build_dataclass(EndpointArgs, dict(text), where)
    values: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise TunevalError(f"{where}: '{part}' is not key=value (known keys: "
                               f"{', '.join(f.name for f in fields(EndpointArgs))})")
        values[key.strip()] = value.strip()
    return build_dataclass(EndpointArgs, values, where)


def endpoint_url(kind: str, base_url: str | None) -> str:
    api, default, _ = KINDS[kind]
    url = (base_url or default or "").rstrip("/")
    if not url:
        raise TunevalError(f"--model {kind} needs base_url= in --model-args (e.g. http://localhost:8000/v1"
                           f"{PATHS[api]})")
    if not url.startswith(("http://", "https://")):
        raise TunevalError(f"--model-args base_url={url!r} is not an http(s) URL")
    if url.endswith("/v1"):
        url += PATHS[api]
    return url


class Endpoint:
    """An endpoint model: its URL, client, optional tokenizer and what the server said of itself. The
    requests a task makes of it are built and read in evaluate/remote.py."""

    arch = "causal"

    def __init__(self, kind: str, args: EndpointArgs, cache_file=None):
        api, _, needs_key = KINDS[kind]
        self.kind, self.api, self.args = kind, api, args
        self.url = endpoint_url(kind, args.base_url)
        key = os.environ.get(args.api_key_env) or None
        if needs_key and key is None:
            raise TunevalError(f"--model {kind} needs an API key in the environment variable {args.api_key_env}")
        self.tokenizer = _tokenizer(args.tokenizer) if args.tokenizer else None
        self.client = Client(key, timeout=args.timeout, max_retries=args.max_retries,
                             num_concurrent=args.num_concurrent, cache=RequestCache(cache_file))
        self.server = self.describe()

    @property
    def context_length(self) -> int:
        return self.args.max_length

    @property
    def sends_ids(self) -> bool:
        return self.api == "completions" and self.tokenizer is not None and self.args.tokenized_requests

    def root(self) -> str:
        return self.url[: self.url.rindex("/v1") + 3] if "/v1" in self.url else self.url.rsplit("/", 1)[0]

    def describe(self) -> dict[str, Any]:
        """What the server says about itself (GET /v1/models), checking that it serves `model`."""
        status, body = self.client.get(self.root() + "/models")
        if status in (401, 403):
            raise EndpointError(f"{self.root()}/models: HTTP {status}, the key was refused; set it in "
                                f"{self.args.api_key_env}")
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("data"), list):
            return {"models": None, "note": f"GET /v1/models answered HTTP {status}"}
        ids = [m.get("id") for m in body["data"] if isinstance(m, dict)]
        if self.args.model not in ids:
            raise EndpointError(f"{self.root()}: model '{self.args.model}' is not served there "
                                f"(it serves: {', '.join(map(str, ids[:20])) or 'nothing'})")
        entry = next(m for m in body["data"] if isinstance(m, dict) and m.get("id") == self.args.model)
        return {"models": ids, "model": {k: v for k, v in entry.items() if isinstance(v, (str, int, float, bool))}}

    @property
    def meta(self) -> dict[str, Any]:
        """What results.json records: the endpoint, never the key."""
        args = {k: v for k, v in asdict(self.args).items() if k != "base_url"}
        return {"endpoint": {"kind": self.kind, "url": self.url, "served_model": self.args.model,
                             "model_args": args, "server": self.server}}


def _tokenizer(name: str):
    from tuneval.models.loading import load_tokenizer

    return load_tokenizer(name)


def open_endpoint(kind: str, model_args: Any, cache_file=None) -> Endpoint:
    """The endpoint `kind` (a KINDS name) with `model_args` (EndpointArgs, a mapping or 'k=v,...')."""
    return Endpoint(kind, parse_model_args(model_args), cache_file)
