"""One conversation's turns, read from a user's file into the chat record's messages.

The messages take the shape transformers' chat templates take (OpenAI's, with `arguments` parsed):

- `{"role": "system" | "user", "content": str}`;
- `{"role": "assistant", "content": str}`, and for a tool call `"tool_calls": [{"type": "function",
  "function": {"name": str, "arguments": {...}}}]` (content "" when the turn only calls);
- `{"role": "tool", "content": str}`, a tool's result (keeping `name` and `tool_call_id` when given).

`content` may be a list of parts, `[{"type": "text", "text" | "value": ...}]` (OpenAI's and
LLaMA-Factory v1's shapes): the text parts are joined with "" (as the Hugging Face chat templates
that take parts concatenate them); an image, audio, video or file part is refused in one line.
An assistant turn's LLaMA-Factory v1 `{"type": "tool_call", "value": "<json>"}` part is a call.

A turn's `loss_weight` (or `weight`, OpenAI's and Axolotl's name) is 1 (train on it) or 0
(context); only assistant turns are trained, so a 1 on another turn is an error and a 0 there is
what it would be anyway (LLaMA-Factory writes 0 on every user turn).
"""

from __future__ import annotations

import json
from typing import Any

from tuneval.errors import TunevalError, first_line

ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
                  "function_call": "assistant", "observation": "tool"}  # LLaMA-Factory's tool tags
WEIGHT_KEYS = ("loss_weight", "weight")
_MEDIA = {"image": "an image part: images are", "image_url": "an image part: images are",
          "input_image": "an image part: images are", "audio": "an audio part: audio is",
          "input_audio": "an audio part: audio is", "audio_url": "an audio part: audio is",
          "video": "a video part: video is", "video_url": "a video part: video is",
          "file": "a file part: files are", "input_file": "a file part: files are"}


def type_name(value: Any) -> str:
    return {list: "a list", dict: "an object", bool: "a boolean", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__)


def check_text(value: Any, name: str, where: str, optional: bool = False) -> str | None:
    """A string field; numbers become their text (a csv's or a math set's answers), absent or
    blank optional fields None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if optional:
            return None
        raise TunevalError(f"{where}: field '{name}' is empty")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise TunevalError(f"{where}: field '{name}' must be a string, got {type_name(value)}")
    return value


def read_turns(value: Any, name: str, where: str, keys: tuple[str, str],
               roles: dict[str, str]) -> tuple[list[dict[str, Any]], list[int | None]]:
    """A list of turns `{keys[0]: role, keys[1]: content}` as messages (see the module's docstring),
    `roles` mapping the file's role names to ROLES; and each turn's loss weight (None: not given)."""
    if not isinstance(value, list):
        raise TunevalError(f"{where}: field '{name}' must be a list of turns, got {type_name(value)}")
    if not value:
        raise TunevalError(f"{where}: field '{name}' is empty")
    messages, weights = [], []
    for i, turn in enumerate(value):
        at = f"{name}[{i}]"
        message, weight = _turn(turn, at, where, keys, roles)
        role_at = f"{at}.{keys[0]}"
        if message["role"] == "system" and i > 0:
            raise TunevalError(f"{where}: field '{role_at}' is {turn[keys[0]]!r}, which may only be the first turn")
        if message["role"] == "tool" and not (messages and (messages[-1]["role"] == "tool"
                                                            or messages[-1].get("tool_calls"))):
            raise TunevalError(f"{where}: field '{role_at}' is {turn[keys[0]]!r} (a tool's result), but no "
                               "assistant tool call comes before it")
        messages.append(message)
        weights.append(weight)
    return messages, weights


def _turn(turn: Any, at: str, where: str, keys: tuple[str, str], roles: dict[str, str]) -> tuple[dict, int | None]:
    role_key, content_key = keys
    if not isinstance(turn, dict):
        raise TunevalError(f"{where}: field '{at}' must be an object with '{role_key}' and '{content_key}', "
                           f"got {type_name(turn)}")
    if role_key not in turn:
        raise TunevalError(f"{where}: field '{at}.{role_key}' is missing")
    raw = turn[role_key]
    if not isinstance(raw, str) or raw not in roles:
        raise TunevalError(f"{where}: field '{at}.{role_key}' is {raw!r}, not one of {', '.join(roles)}")
    role, content_at = roles[raw], f"{at}.{content_key}"
    weight = _weight(turn, at, where, role)
    if raw == "function_call":  # sharegpt: the value is the call, as JSON
        if content_key not in turn:
            raise TunevalError(f"{where}: field '{content_at}' is missing")
        return {"role": "assistant", "content": "", "tool_calls": _json_calls(turn[content_key], content_at, where)}, weight
    calls = _calls(turn["tool_calls"], f"{at}.tool_calls", where) if role == "assistant" and turn.get(
        "tool_calls") not in (None, []) else []
    if content_key not in turn and not calls:
        raise TunevalError(f"{where}: field '{content_at}' is missing")
    content, part_calls = _content(turn.get(content_key), content_at, where, role, optional=bool(calls))
    message: dict[str, Any] = {"role": role, "content": content}
    if calls or part_calls:
        message["tool_calls"] = calls + part_calls
    if role == "tool":
        message.update({k: turn[k] for k in ("name", "tool_call_id") if isinstance(turn.get(k), str)})
    return message, weight


def _content(value: Any, at: str, where: str, role: str, optional: bool) -> tuple[str, list[dict]]:
    """A turn's text and the calls among its parts: a string, or a list of parts joined with ""."""
    if not isinstance(value, list):
        return check_text(value, at, where, optional) or "", []
    texts, calls = [], []
    for j, part in enumerate(value):
        pat = f"{at}[{j}]"
        if not isinstance(part, dict):
            raise TunevalError(f"{where}: field '{pat}' must be an object like {{\"type\": \"text\", \"text\": ...}}, "
                               f"got {type_name(part)}")
        kind = part.get("type")
        if kind is None:
            raise TunevalError(f"{where}: field '{pat}.type' is missing")
        if kind == "text":
            key = "text" if "text" in part else "value"
            if key not in part:
                raise TunevalError(f"{where}: field '{pat}.text' is missing")
            if not isinstance(part[key], str):
                raise TunevalError(f"{where}: field '{pat}.{key}' must be a string, got {type_name(part[key])}")
            texts.append(part[key])
        elif kind == "tool_call" and role == "assistant":  # LLaMA-Factory v1
            calls += _json_calls(part.get("value"), f"{pat}.value", where)
        elif isinstance(kind, str) and kind in _MEDIA:
            raise TunevalError(f"{where}: field '{pat}' is {_MEDIA[kind]} not supported for this model")
        else:
            known = "text, tool_call" if role == "assistant" else "text"
            raise TunevalError(f"{where}: field '{pat}.type' is {kind!r}, not one of {known}")
    text = "".join(texts)
    if not text.strip() and not calls and not optional:
        raise TunevalError(f"{where}: field '{at}' is empty")
    return text, calls


def _weight(turn: dict, at: str, where: str, role: str) -> int | None:
    given = [(k, turn[k]) for k in WEIGHT_KEYS if turn.get(k) is not None]
    if not given:
        return None
    key, value = given[0]
    if len(given) == 2 and given[1][1] != value:
        raise TunevalError(f"{where}: field '{at}.loss_weight' is {value!r} and '{at}.weight' is {given[1][1]!r}; "
                           "give one")
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, (int, float)) or value not in (0, 1):
        raise TunevalError(f"{where}: field '{at}.{key}' is {value!r}: a turn is trained (1) or context (0); "
                           "fractional weights are not supported")
    if value and role != "assistant":
        raise TunevalError(f"{where}: field '{at}.{key}' is {value!r} on a {role} turn: only assistant turns are "
                           "trained (give 0 or leave it out)")
    return int(value)


def _json(value: Any, at: str, where: str) -> Any:
    """A value that may be given as JSON text (LLaMA-Factory's `tools` and `function_call`, OpenAI's `arguments`)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError) as e:  # RecursionError: nested past Python's limit
        raise TunevalError(f"{where}: field '{at}' is not valid JSON ({first_line(e)})") from None


def _json_calls(value: Any, at: str, where: str) -> list[dict]:
    """LLaMA-Factory's function_call value: `{"name", "arguments"}` as JSON, or a list of them (parallel calls)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise TunevalError(f"{where}: field '{at}' is empty")
    parsed = _json(value, at, where)
    return _calls(parsed if isinstance(parsed, list) else [parsed], at, where)


def _calls(value: Any, at: str, where: str) -> list[dict]:
    if not isinstance(value, list):
        raise TunevalError(f"{where}: field '{at}' must be a list of tool calls, got {type_name(value)}")
    return [_call(call, f"{at}[{k}]" if len(value) > 1 or at.endswith("tool_calls") else at, where)
            for k, call in enumerate(value)]


def _call(call: Any, at: str, where: str) -> dict:
    """One call, OpenAI's `{"type": "function", "function": {"name", "arguments"}}` or a bare
    `{"name", "arguments" | "parameters"}`, with its arguments as a JSON object."""
    if not isinstance(call, dict):
        raise TunevalError(f"{where}: field '{at}' must be an object with a function name and arguments, "
                           f"got {type_name(call)}")
    fn, fn_at = call, at
    if "function" in call:
        fn, fn_at = call["function"], f"{at}.function"
        if not isinstance(fn, dict):
            raise TunevalError(f"{where}: field '{fn_at}' must be an object with 'name' and 'arguments', "
                               f"got {type_name(fn)}")
    name = fn.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TunevalError(f"{where}: field '{fn_at}.name' " + ("is missing" if name is None else
                                                               f"must be a function name, got {name!r}"))
    key = "arguments" if "arguments" in fn or "parameters" not in fn else "parameters"
    arguments = _json(fn.get(key), f"{fn_at}.{key}", where)
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise TunevalError(f"{where}: field '{fn_at}.{key}' must be a JSON object, got {type_name(arguments)}")
    out: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if isinstance(call.get("id"), str):
        out["id"] = call["id"]
    return out


def read_tools(value: Any, name: str, where: str) -> list[dict] | None:
    """A record's tools: a list (or LLaMA-Factory's JSON text of one) of function schemas, each as
    transformers takes it, `{"type": "function", "function": {"name", "description", "parameters"}}`
    (a bare `{"name", ...}` schema is wrapped so). None when there are none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    value = _json(value, name, where)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise TunevalError(f"{where}: field '{name}' must be a list of tools (function schemas), got {type_name(value)}")
    tools = []
    for k, tool in enumerate(value):
        at = f"{name}[{k}]"
        if not isinstance(tool, dict):
            raise TunevalError(f"{where}: field '{at}' must be a function schema (an object), got {type_name(tool)}")
        fn, fn_at = (tool["function"], f"{at}.function") if "function" in tool else (tool, at)
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"].strip():
            raise TunevalError(f"{where}: field '{fn_at}' has no function name ('name')")
        tools.append({"type": "function", "function": fn})
    return tools or None


def call_text(call: dict) -> str:
    """A call as the JSON a reference shows it: `{"name": ..., "arguments": {...}}`."""
    return json.dumps({"name": call["function"]["name"], "arguments": call["function"]["arguments"]},
                      ensure_ascii=False)
