"""Tool calls in generated text, scored against the reference's calls.

How a generation is read as calls (`parse_tool_calls`):
1. every `<tool_call>...</tool_call>` block (Hermes, Qwen2.5/3, and LLaMA-Factory's ChatML; the
   closing tag may be missing at the end of the text, where generation stopped) holds one call,
   a JSON object `{"name": ..., "arguments": {...}}`;
2. otherwise the whole answer, after a leading `<|python_tag|>` or `[TOOL_CALLS]` marker (Llama 3.1's
   and Mistral's, when the tokenizer kept them), is a JSON object with a "name", or a list of them
   (Llama 3.1's `{"name": ..., "parameters": {...}}`, Mistral's `[{"name": ..., "arguments": ...}]`);
3. otherwise the answer is text: no call.
`arguments` (or `parameters`) given as JSON text (OpenAI's way) is parsed. A block that is not
valid JSON, or has no name, is a call that matches nothing.

Per held-back row (the mean over rows is the metric, with the bootstrap interval every mean metric gets):
- `tool_call_name_match`: the called functions' names equal the reference's (as a multiset: the order
  of parallel calls does not count);
- `tool_call_exact_match`: names and arguments equal, arguments compared as parsed JSON (key order and
  spacing do not count; 1 and 1.0 are the same number, true and 1 are not).
A row whose reference answers in text counts as a match when the model makes no call, so a model
that calls a tool where none is needed loses on it. Peers differ: BFCL's AST checker accepts any of
several allowed values per argument and checks types against the schema; LLaMA-Factory scores only
text (BLEU/ROUGE) of the whole turn. This is the strict single-reference version.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

TOOL_CALL_METRICS = ("tool_call_name_match", "tool_call_exact_match")
_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.S)
_MARKERS = ("<|python_tag|>", "[TOOL_CALLS]")


def _one(value: Any) -> dict[str, Any]:
    """A parsed call, `{"name": str | None, "arguments": Any}` (None name: not a call we could read)."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return {"name": None, "arguments": None}
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):  # OpenAI's arguments, as JSON text
        parsed = _load(arguments)
        arguments = arguments if parsed is None else parsed
    return {"name": value["name"], "arguments": arguments}


def _load(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def parse_tool_calls(text: str) -> list[dict[str, Any]]:
    """The calls a generated assistant turn makes (see the module's docstring), [] for a text answer."""
    blocks = _BLOCK.findall(text or "")
    if blocks:
        return [_one(_load(block.strip())) for block in blocks]
    body = (text or "").strip()
    for marker in _MARKERS:
        if body.startswith(marker):
            body = body[len(marker):].strip()
    if not body.startswith(("{", "[")):
        return []
    value = _load(body)
    if isinstance(value, dict) and "name" in value:
        return [_one(value)]
    if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        return [_one(v) for v in value]
    return []


def _canonical(value: Any) -> Any:
    """JSON with numbers as floats (1 == 1.0) and booleans kept apart from them."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return repr(value)


def _key(call: dict[str, Any]) -> str:
    return json.dumps([call.get("name"), _canonical(call.get("arguments"))], sort_keys=True)


def call_matches(predicted: list[dict[str, Any]], reference: list[dict[str, Any]]) -> tuple[float, float]:
    """(names match, names and arguments match) of one row's calls, each 1.0 or 0.0."""
    if any(c.get("name") is None for c in predicted):
        return 0.0, 0.0
    names = sorted(c["name"] for c in predicted) == sorted(c["name"] for c in reference)
    exact = sorted(map(_key, predicted)) == sorted(map(_key, reference))
    return float(names), float(exact)


def tool_call_items(records: list[dict[str, Any]], _: dict | None = None) -> dict[str, np.ndarray]:
    """Per-row values of both metrics; a record has `prediction` (the generated text) and
    `reference_calls` (the reference turn's `{"name", "arguments"}` calls, [] for a text answer)."""
    pairs = [call_matches(parse_tool_calls(r["prediction"]), r.get("reference_calls") or []) for r in records]
    return {"tool_call_name_match": np.array([p[0] for p in pairs], dtype=float),
            "tool_call_exact_match": np.array([p[1] for p in pairs], dtype=float)}
