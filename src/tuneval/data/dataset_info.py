"""LLaMA-Factory's dataset registry: `tuneval train --data NAME --dataset-info data/dataset_info.json`.

A dataset_info.json maps dataset names to a description (LLaMA-Factory's data/README.md; its
data/parser.py DatasetAttr reads the same keys). tuneval reads one entry and maps it onto its own
formats (data/formats.py):

| dataset_info.json                                   | tuneval                                            |
|-----------------------------------------------------|----------------------------------------------------|
| `file_name` (a file or folder beside the json)      | the data path (never outside the json's directory) |
| `formatting: alpaca` (the default)                  | format `alpaca`: columns prompt, query, response, system -> instruction, input, output, system |
| alpaca with `columns: {prompt: text}` alone         | format `text` (LLaMA-Factory's pre-training data)  |
| `formatting: sharegpt`                              | format `sharegpt`: columns messages, system, tools -> conversations, system, tools |
| sharegpt `tags` (role_tag, content_tag, user_tag, assistant_tag, observation_tag, function_tag, system_tag) | each turn read as `{from, value}` with the roles human, gpt, observation, function_call, system |
| `formatting: openai`                                | format `messages` (column messages)                |
| a `.txt` file_name                                  | format `text`, one document per line (LLaMA-Factory loads it with datasets' `text` builder) |

As in LLaMA-Factory, a `columns` mapping replaces the defaults (instruction/input/output,
conversations) rather than adding to them. What tuneval does not map is refused in one line naming
the json, the dataset and the key: hub and remote sources (hf_hub_url, ms_hub_url, om_hub_url,
script_url, cloud_file_name; give the hub id as data.dataset instead), subset/folder (hub-only),
a split other than train, num_samples (use data.train_examples), preference and KTO data
(ranking, chosen, rejected, kto_tag), images/videos/audios, and alpaca's history column.

The json and its files are often a stranger's: a file_name is a path under the json's directory,
never absolute, never starting with `~` and never climbing out with `..` (symlinks placed there
are followed, as for a task's data_files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneval.data.formats import FIELDS
from tuneval.errors import TunevalError
from tuneval.io import read_json

ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}  # LF -> tuneval
TAG_DEFAULTS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
SHAREGPT_ROLES = {"user_tag": "human", "assistant_tag": "gpt", "observation_tag": "observation",
                  "function_tag": "function_call", "system_tag": "system"}  # LF tag -> the sharegpt role it stands for
NOT_MAPPED = {
    "hf_hub_url": "tuneval reads local files here; for a hub dataset give its id as data.dataset",
    "ms_hub_url": "ModelScope is not a source tuneval reads",
    "om_hub_url": "Modelers (OpenMind) is not a source tuneval reads",
    "script_url": "tuneval runs no dataset loading scripts",
    "cloud_file_name": "tuneval reads local files only",
    "subset": "a hub dataset's subset; tuneval reads file_name",
    "folder": "a hub dataset's folder; tuneval reads file_name",
    "num_samples": "use data.train_examples (the first N of a seeded shuffle)",
}
REFUSED_COLUMNS = {"chosen": "preference data", "rejected": "preference data", "kto_tag": "KTO data",
                   "images": "images", "videos": "videos", "audios": "audio",
                   "history": "alpaca's history turns (write the rows in sharegpt format instead)"}
KNOWN_KEYS = {"file_name", "formatting", "ranking", "split", "columns", "tags", *NOT_MAPPED}


@dataclass
class Entry:
    """One dataset of the registry as tuneval reads it."""

    name: str
    info: Path  # the dataset_info.json
    path: Path  # file_name, resolved under the json's directory
    format: str  # a tuneval format (data/formats.py)
    columns: dict[str, str] | None  # tuneval field -> the file's column
    turn_tags: dict[str, Any] | None = None  # sharegpt: {role_key, content_key, roles: {file's role: sharegpt role}}
    sample_by: str | None = None  # a .txt file: how it splits into documents

    @property
    def where(self) -> str:
        return f"{self.info}: dataset '{self.name}'"


def read_entry(info: str | Path, name: str) -> Entry:
    """The entry `name` of the dataset_info.json at `info`, mapped (see the module's docstring)."""
    info = Path(info).expanduser()
    registry = _registry(info)
    if name not in registry:
        known = ", ".join(sorted(registry)[:20]) or "none"
        raise TunevalError(f"{info}: no dataset named '{name}' (datasets: {known}{', ...' if len(registry) > 20 else ''})")
    raw = registry[name]
    where = f"{info}: dataset '{name}'"
    if not isinstance(raw, dict):
        raise TunevalError(f"{where}: expected an object with file_name, formatting, columns, ..., got {type(raw).__name__}")
    _refuse(raw, where)
    path = _file(info, raw, where)
    formatting = raw.get("formatting", "alpaca")
    columns = _mapping(raw, "columns", where)
    tags = _mapping(raw, "tags", where)
    if path.suffix.lower() == ".txt":
        return Entry(name, info, path, "text", None, sample_by="line")
    if formatting == "alpaca":
        if tags:
            raise TunevalError(f"{where}: tags describe sharegpt turns; formatting is alpaca")
        fmt, mapped = _alpaca(columns, where)
        return Entry(name, info, path, fmt, mapped)
    if formatting == "sharegpt":
        mapped = _chat_columns(columns, "sharegpt", "conversations", where)
        return Entry(name, info, path, "sharegpt", mapped, _tags(tags, where))
    if formatting == "openai":
        if tags and any(tags.get(k, v) != v for k, v in {"role_tag": "role", "content_tag": "content"}.items()):
            raise TunevalError(f"{where}: tags: formatting openai has turns {{role, content}}; other tag names are not mapped")
        return Entry(name, info, path, "messages", _chat_columns(columns, "messages", "messages", where))
    raise TunevalError(f"{where}: formatting '{formatting}' is not one of alpaca, sharegpt, openai")


def _registry(info: Path) -> dict[str, Any]:
    data = read_json(info, "dataset_info file")
    if not isinstance(data, dict):
        raise TunevalError(f"{info}: expected an object of datasets (name -> description), got {type(data).__name__}")
    return data


def _mapping(raw: dict[str, Any], key: str, where: str) -> dict[str, str]:
    value = raw.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
        raise TunevalError(f"{where}: {key} must map names to column names (strings), got {value!r}")
    return dict(value)


def _refuse(raw: dict[str, Any], where: str) -> None:
    """One line for the first key tuneval does not map."""
    for key in raw:
        if key in NOT_MAPPED:
            raise TunevalError(f"{where}: '{key}' is not mapped ({NOT_MAPPED[key]})")
        if key not in KNOWN_KEYS:
            raise TunevalError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(KNOWN_KEYS))})")
    if raw.get("ranking"):
        raise TunevalError(f"{where}: 'ranking' (preference data for reward modelling, DPO, ORPO) is not mapped: "
                           "tuneval trains supervised fine-tuning only")
    if raw.get("split", "train") != "train":
        raise TunevalError(f"{where}: split '{raw['split']}' is not mapped: a local file has one split, train "
                           "(tuneval holds out data.validation_share of it)")
    for column in _mapping(raw, "columns", where):
        if column in REFUSED_COLUMNS:
            raise TunevalError(f"{where}: columns.{column}: {REFUSED_COLUMNS[column]} are not mapped")


def _file(info: Path, raw: dict[str, Any], where: str) -> Path:
    """file_name under the json's directory: no absolute path, no `~`, no `..` out of it."""
    name = raw.get("file_name")
    if not isinstance(name, str) or not name.strip():
        raise TunevalError(f"{where}: file_name is missing (tuneval reads local files named by file_name)")
    root = os.path.normpath(info.resolve().parent)
    joined = os.path.normpath(os.path.join(root, name))
    if os.path.isabs(name) or name.startswith("~") or os.path.commonpath([joined, root]) != root:
        raise TunevalError(f"{where}: file_name '{name}' is outside the directory of the dataset_info file ({root}); "
                           "it names files beside it only")
    path = Path(joined)
    if not path.exists():
        raise TunevalError(f"{where}: file_name '{name}' not found in {root}")
    return path


def _alpaca(columns: dict[str, str], where: str) -> tuple[str, dict[str, str]]:
    """LF's alpaca columns as tuneval's; with columns given, the ones left out are not read (as in LF)."""
    for key in columns:
        if key not in ALPACA_COLUMNS:
            raise TunevalError(f"{where}: columns.{key} is not a column of formatting alpaca "
                               f"({', '.join(ALPACA_COLUMNS)}); 'messages' and 'tools' need formatting sharegpt")
    given = columns or {"prompt": "instruction", "query": "input", "response": "output"}
    if "response" not in given:
        if set(given) != {"prompt"}:
            raise TunevalError(f"{where}: columns name no 'response'; only {{prompt: <column>}} alone (pre-training "
                               "text) is mapped without one")
        return "text", {"text": given["prompt"]}
    if "prompt" not in given:
        raise TunevalError(f"{where}: columns name a 'response' but no 'prompt'")
    return "alpaca", {ALPACA_COLUMNS[k]: v for k, v in given.items()}


def _chat_columns(columns: dict[str, str], fmt: str, field: str, where: str) -> dict[str, str]:
    """messages, system, tools as the chat format's fields (tools only where the format reads them)."""
    required, optional = FIELDS[fmt]
    mapped = {field: columns.get("messages", "conversations")}
    for key in ("system", "tools"):
        if key in columns:
            if key not in required + optional:
                raise TunevalError(f"{where}: columns.{key} is not mapped for format {fmt} (its fields: "
                                   f"{', '.join(required + optional)})")
            mapped[key] = columns[key]
    unknown = set(columns) - {"messages", "system", "tools"}
    if unknown:
        raise TunevalError(f"{where}: columns.{sorted(unknown)[0]} is not a column of a chat dataset "
                           "(messages, system, tools)")
    return mapped


def _tags(tags: dict[str, str], where: str) -> dict[str, Any] | None:
    """sharegpt tags as a turn rewrite, None where they are LLaMA-Factory's defaults (tuneval's own names)."""
    unknown = set(tags) - set(TAG_DEFAULTS)
    if unknown:
        raise TunevalError(f"{where}: tags.{sorted(unknown)[0]} is not a sharegpt tag ({', '.join(TAG_DEFAULTS)})")
    full = {**TAG_DEFAULTS, **tags}
    if full == TAG_DEFAULTS:
        return None
    roles = {full[key]: role for key, role in SHAREGPT_ROLES.items()}
    if len(roles) != len(SHAREGPT_ROLES):
        raise TunevalError(f"{where}: tags give two roles the same name ({', '.join(f'{k}={full[k]}' for k in SHAREGPT_ROLES)})")
    return {"role_key": full["role_tag"], "content_key": full["content_tag"], "roles": roles}


def retag_turns(rows: list[dict[str, Any]], field: str, tags: dict[str, Any]) -> list[dict[str, Any]]:
    """Each row's turns under `field` rewritten from the file's tag names to sharegpt's `{from, value}` and
    roles (human, gpt, observation, function_call, system); a role the tags do not name is left as it is
    (the sharegpt reader then names it), as are a turn's other keys (e.g. loss_weight)."""
    role_key, content_key, roles = tags["role_key"], tags["content_key"], tags["roles"]
    out = []
    for row in rows:
        turns = row.get(field)
        if isinstance(turns, list):
            row = {**row, field: [_retag(t, role_key, content_key, roles) if isinstance(t, dict) else t for t in turns]}
        out.append(row)
    return out


def _retag(turn: dict[str, Any], role_key: str, content_key: str, roles: dict[str, str]) -> dict[str, Any]:
    rest = {k: v for k, v in turn.items() if k not in (role_key, content_key)}
    new = {**rest}
    if role_key in turn:
        new["from"] = roles.get(turn[role_key], turn[role_key]) if isinstance(turn[role_key], str) else turn[role_key]
    if content_key in turn:
        new["value"] = turn[content_key]
    return new
