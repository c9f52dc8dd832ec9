"""Dataset formats users already have, normalised to the two kinds of record training and
generative evaluation take.

- A chat record, `{"messages": [{"role": "system" | "user" | "assistant" | "tool", "content": str}, ...]}`
  (the turns' shapes, tool calls included, in data/turns.py): at most one system turn, first; at
  least one assistant turn; always ending with one (the reference when evaluating). Optional keys:
  `prompt_turns` (from `prompt_completion`: how many leading messages are the prompt; as in TRL,
  the loss covers the completion only), `tools` (the function schemas offered, passed to the chat
  template as `tools=`) and `loss_weights` (one 0/1 per message, when the file gave per-turn weights).
- A text record, `{"text": str}`: continued pre-training text, packed into blocks.

Formats and their fields (`columns` renames any of them to the file's own column names):

| format              | fields                                                                          |
|---------------------|---------------------------------------------------------------------------------|
| `alpaca`            | instruction, output; optional input, system                                     |
| `messages`          | messages: OpenAI/TRL turns, `{role, content}`, `tool_calls`; optional tools      |
| `sharegpt`          | conversations: `{from: human/gpt/system/function_call/observation, value}`;      |
|                     | optional system, tools (LLaMA-Factory)                                          |
| `prompt_completion` | prompt, completion: both strings, or both lists of turns (TRL); optional tools  |
| `text`              | text                                                                            |
| `columns`           | prompt, response; optional system (named only through `columns`)                |

Each record keeps its row's `_where`, and a bad row fails in one line naming file, line and field
(`data.jsonl:3: field 'messages[2].role' is 'bot', not one of system, user, assistant, tool`), so
nothing reaches the tokenizer that a chat template would choke on half-way through a run.
"""

from __future__ import annotations

import random
from typing import Any

from tuneval.data.turns import ROLES, SHAREGPT_ROLES, call_text, check_text, read_tools, read_turns, type_name
from tuneval.errors import TunevalError

# required fields, optional fields
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "alpaca": (("instruction", "output"), ("input", "system")),
    "messages": (("messages",), ("tools",)),
    "sharegpt": (("conversations",), ("system", "tools")),
    "prompt_completion": (("prompt", "completion"), ("tools",)),
    "text": (("text",), ()),
    "columns": (("prompt", "response"), ("system",)),
}
FORMATS = tuple(FIELDS)


def detect_format(row: dict[str, Any]) -> str | None:
    """The format a row's fields suggest, or None; for telling a user which format they have."""
    present = {k for k, v in row.items() if k != "_where" and v is not None}
    if isinstance(row.get("messages"), list):
        return "messages"
    if isinstance(row.get("conversations"), list):
        return "sharegpt"
    if {"instruction", "output"} <= present:
        return "alpaca"
    if {"prompt", "completion"} <= present:
        return "prompt_completion"
    if isinstance(row.get("text"), str):
        return "text"
    return None


def to_records(rows: list[dict[str, Any]], format: str | None = None, *, columns: dict[str, str] | None = None,
               where_hint: str = "data") -> list[dict[str, Any]]:
    """Each row as a chat or text record (see the module's docstring).

    `format` None means `columns` when a mapping is given, else what the first row looks like.
    `where_hint` names the data in errors that are not about one row (the recipe key or the
    path), and names a row that has no `_where` ("<where_hint> row N").
    """
    if not rows:
        raise TunevalError(f"{where_hint}: no rows")
    format = _resolve_format(rows[0], format, columns, where_hint)
    names = _column_names(format, columns, where_hint)
    convert = _CONVERT[format]
    records = []
    for i, row in enumerate(rows):
        where = row.get("_where") or f"{where_hint} row {i}"
        record = convert(_Row(row, names, where, format))
        record["_where"] = where
        records.append(record)
    return records


def generation_pair(record: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """(prompt messages, reference) for generative evaluation: the last assistant turn is the
    reference; a tool call's reference text is the call as JSON, `{"name": ..., "arguments": {...}}`,
    one line per call after any text (reference_calls gives the calls themselves)."""
    if "messages" not in record:
        raise TunevalError(f"{record.get('_where', 'data')}: a text record has no reference to generate; "
                           "evaluate text data by loss (perplexity)")
    last = record["messages"][-1]
    reference = "\n".join([last["content"]] * bool(last["content"]) + [call_text(c) for c in last.get("tool_calls", [])])
    return record["messages"][:-1], reference


def reference_calls(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The calls of a chat record's last assistant turn, `{"name", "arguments"}` each ([] for a text answer)."""
    return [dict(c["function"]) for c in record["messages"][-1].get("tool_calls", [])]


def has_tools(record: dict[str, Any]) -> bool:
    """Whether a chat record offers tools or calls one: what needs a chat template that writes them."""
    return bool(record.get("tools")) or any(m.get("tool_calls") for m in record.get("messages", []))


def trained_turns(record: dict[str, Any]) -> list[int]:
    """The indices of the assistant turns a chat record trains on: from `prompt_turns` on, and not
    given a loss weight of 0."""
    weights, start = record.get("loss_weights"), record.get("prompt_turns", 0)
    return [i for i, m in enumerate(record["messages"])
            if m["role"] == "assistant" and i >= start and (weights is None or weights[i])]


def turn_counts(record: dict[str, Any]) -> dict[str, int]:
    """What a run records of a chat record's turns: assistant turns, those trained on, those kept
    as context by a loss weight of 0, tool calls and tool results."""
    messages, weights = record["messages"], record.get("loss_weights") or [1] * len(record["messages"])
    assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    return {"assistant": len(assistant), "trained": len(trained_turns(record)),
            "weight_0": sum(1 for i in assistant if not weights[i]),
            "tool_calls": sum(len(m.get("tool_calls", [])) for m in messages),
            "tool_results": sum(m["role"] == "tool" for m in messages)}


def split_validation(records: list[Any], share: float, seed: int, *,
                     where_hint: str = "data") -> tuple[list[Any], list[Any], dict[str, Any]]:
    """Hold out a seeded `share` of the rows as validation (at least one, and at least one left to
    train on); both parts keep the file's order. The info dict is what a run records, so the same
    file, share and seed give the same split again."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
        raise TunevalError(f"data.validation_share must be a number between 0 and 1 (exclusive), got {share!r}")
    n = len(records)
    if n < 2:
        raise TunevalError(f"{where_hint}: data.validation_share needs at least 2 rows to split, got {n}")
    n_validation = min(n - 1, max(1, round(n * share)))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held = set(order[:n_validation])
    train = [r for i, r in enumerate(records) if i not in held]
    validation = [r for i, r in enumerate(records) if i in held]
    info = {"validation_from": "train", "validation_share": share, "seed": seed, "rows": n,
            "train_rows": len(train), "validation_rows": len(validation)}
    return train, validation, info


def _resolve_format(first: dict[str, Any], format: str | None, columns: dict[str, str] | None, where_hint: str) -> str:
    if format is None:
        format = "columns" if columns else detect_format(first)
        if format is None:
            raise TunevalError(f"{where_hint}: cannot tell the data format from the first row's fields "
                               f"({_field_list(first)}); name it with format ({', '.join(FORMATS)}) or map "
                               "columns: {prompt: <column>, response: <column>}")
    if format not in FIELDS:
        raise TunevalError(f"{where_hint}: unknown data format '{format}' (known: {', '.join(FORMATS)})")
    if format == "columns" and not columns:
        raise TunevalError(f"{where_hint}: format 'columns' needs columns: {{prompt: <column>, response: <column>}}")
    return format


def _column_names(format: str, columns: dict[str, str] | None, where_hint: str) -> dict[str, str]:
    """The format's field -> the file's column, identity unless `columns` renames it."""
    required, optional = FIELDS[format]
    names = {f: f for f in required + optional}
    if columns is None:
        return names
    if not isinstance(columns, dict):
        raise TunevalError(f"{where_hint}: columns must be a mapping like {{prompt: question, response: answer}}, "
                           f"got {type(columns).__name__}")
    for field, column in columns.items():
        if field not in names:
            raise TunevalError(f"{where_hint}: columns.{field}: '{field}' is not a field of format '{format}' "
                               f"(fields: {', '.join(names)}); columns map a field to your column, e.g. "
                               f"{{{required[0]}: my_column}}")
        if not isinstance(column, str) or not column:
            raise TunevalError(f"{where_hint}: columns.{field} must be a column name, got {column!r}")
        names[field] = column
    return names


def _field_list(row: dict[str, Any]) -> str:
    return ", ".join(k for k in row if k != "_where") or "none"


class _Row:
    """One row being read, with the format's field names mapped to the file's columns."""

    def __init__(self, row: dict[str, Any], names: dict[str, str], where: str, format: str):
        self.row, self.names, self.where, self.format = row, names, where, format

    def fail(self, field: str, problem: str) -> TunevalError:
        return TunevalError(f"{self.where}: field '{field}' {problem}")

    def missing(self, field: str) -> TunevalError:
        """Name the format the row does look like, since a wrong `format` is the usual cause."""
        looks = detect_format(self.row)
        if looks is not None and looks != self.format:
            hint = f"; the row looks like format '{looks}'"
        else:
            hint = f"; the row's fields are {_field_list(self.row)} (map them with columns: {{...}})"
        return self.fail(field, f"is missing{hint}")

    def get(self, field: str, optional: bool = False) -> Any:
        column = self.names[field]
        if column not in self.row:
            if optional:
                return None
            raise self.missing(column)
        return self.row[column]

    def text(self, field: str, optional: bool = False) -> str | None:
        """A string field; numbers become their text (a csv's or a math set's answers), absent or
        blank optional fields None."""
        return check_text(self.get(field, optional), self.names[field], self.where, optional)


def _conversation(messages: list[dict[str, str]], name: str, where: str) -> list[dict[str, str]]:
    """Something to learn and a reference to score: an assistant turn, and the last turn one."""
    if not any(m["role"] == "assistant" for m in messages):
        raise TunevalError(f"{where}: field '{name}' has no assistant turn")
    if messages[-1]["role"] != "assistant":
        raise TunevalError(f"{where}: field '{name}' ends with a {messages[-1]['role']} turn, not an assistant turn")
    return messages


def _chat(system: str | None, user: str, assistant: str) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system is not None else []
    return {"messages": messages + [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def _alpaca(r: _Row) -> dict[str, Any]:
    instruction, context = r.text("instruction"), r.text("input", optional=True)
    user = f"{instruction}\n\n{context}" if context is not None else instruction
    return _chat(r.text("system", optional=True), user, r.text("output"))


def _record(messages: list[dict[str, Any]], weights: list[int | None], tools: list[dict] | None, name: str,
            where: str) -> dict[str, Any]:
    """A chat record: its messages, its `tools` when it has any, and `loss_weights` (one per
    message: 1 on the assistant turns trained, 0 elsewhere) when any turn gave one."""
    record: dict[str, Any] = {"messages": _conversation(messages, name, where)}
    if tools:
        record["tools"] = tools
    if any(w is not None for w in weights):
        record["loss_weights"] = [int(m["role"] == "assistant") if w is None else w for m, w in zip(messages, weights)]
    return record


def _messages(r: _Row) -> dict[str, Any]:
    name = r.names["messages"]
    turns, weights = read_turns(r.get("messages"), name, r.where, ("role", "content"), {k: k for k in ROLES})
    return _record(turns, weights, read_tools(r.get("tools", optional=True), r.names["tools"], r.where), name, r.where)


def _sharegpt(r: _Row) -> dict[str, Any]:
    name = r.names["conversations"]
    turns, weights = read_turns(r.get("conversations"), name, r.where, ("from", "value"), SHAREGPT_ROLES)
    system = r.text("system", optional=True)
    if system is not None:
        if turns[0]["role"] == "system":
            raise r.fail(r.names["system"], f"and {name}[0] both give a system prompt; keep one")
        turns.insert(0, {"role": "system", "content": system})
        weights.insert(0, None)
    return _record(turns, weights, read_tools(r.get("tools", optional=True), r.names["tools"], r.where), name, r.where)


def _prompt_completion(r: _Row) -> dict[str, Any]:
    """TRL's prompt/completion: plain strings, or conversational lists of turns."""
    p_name, c_name = r.names["prompt"], r.names["completion"]
    prompt, completion = r.get("prompt"), r.get("completion")
    if not isinstance(prompt, list) and not isinstance(completion, list):
        record = _chat(None, r.text("prompt"), r.text("completion"))
        return {**record, "prompt_turns": 1}
    if not isinstance(prompt, list) or not isinstance(completion, list):
        plain, listed = (p_name, c_name) if isinstance(completion, list) else (c_name, p_name)
        raise r.fail(plain, f"must be a list of turns like '{listed}' (both plain strings or both conversational), "
                            f"got {type_name(r.get('prompt' if plain == p_name else 'completion'))}")
    head, head_weights = read_turns(prompt, p_name, r.where, ("role", "content"), {k: k for k in ROLES})
    tail, tail_weights = read_turns(completion, c_name, r.where, ("role", "content"),
                                    {"assistant": "assistant", "tool": "tool"})
    tools = read_tools(r.get("tools", optional=True), r.names["tools"], r.where)
    return {**_record(head + tail, head_weights + tail_weights, tools, c_name, r.where), "prompt_turns": len(head)}


def _columns(r: _Row) -> dict[str, Any]:
    return _chat(r.text("system", optional=True), r.text("prompt"), r.text("response"))


def _text(r: _Row) -> dict[str, Any]:
    return {"text": r.text("text")}


_CONVERT = {"alpaca": _alpaca, "messages": _messages, "sharegpt": _sharegpt,
            "prompt_completion": _prompt_completion, "text": _text, "columns": _columns}
