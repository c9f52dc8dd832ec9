"""Tasks as data: one YAML file per task, built in under data/tasks/ or in --tasks-dir.

A task says where its rows live (files under the data directory, or a hub id), which
fields the templates use, and its template set. Adding a task is adding a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tuneval.data.sources import check_fields, read_file, read_hub
from tuneval.data.templates import TemplateSet, placeholders
from tuneval.errors import TunevalError

BUILTIN_DIR = Path(__file__).parent / "tasks"
DATA_DIR_ENV = "TUNEVAL_DATA_DIR"


@dataclass
class TaskSpec:
    name: str
    source: str  # the YAML file
    templates: TemplateSet
    files: dict[str, str] = field(default_factory=dict)  # split -> path under the data dir
    columns: list[str] | None = None  # for headerless csv/tsv
    hub_id: str | None = None
    id_field: str | None = None
    input_field: str | None = None  # the field shown in side-by-side samples
    description: str = ""

    @property
    def fields(self) -> list[str]:
        names: set[str] = set()
        for text in (*self.templates.prompts, self.templates.target):
            names |= placeholders(text)
        return sorted(names)


KNOWN_KEYS = {"name", "description", "hub_id", "files", "columns", "id_field", "input_field", "templates", "target", "eval_template"}


def available_tasks(tasks_dir: str | Path | None = None) -> list[str]:
    dirs = [BUILTIN_DIR] + ([Path(tasks_dir)] if tasks_dir else [])
    return sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})


def load_task(name: str, tasks_dir: str | Path | None = None) -> TaskSpec:
    candidates = ([Path(tasks_dir) / f"{name}.yaml"] if tasks_dir else []) + [BUILTIN_DIR / f"{name}.yaml"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise TunevalError(f"unknown task '{name}' (known: {', '.join(available_tasks(tasks_dir))})")
    try:
        raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise TunevalError(f"{path}: not valid YAML ({e})") from None
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise TunevalError(f"{path}: unknown key(s) {sorted(unknown)} (known: {', '.join(sorted(KNOWN_KEYS))})")
    for key in ("templates", "target"):
        if key not in raw:
            raise TunevalError(f"{path}: missing key '{key}'")
    templates = TemplateSet(
        task=name,
        prompts=tuple(raw["templates"]),
        target=raw["target"],
        eval_index=int(raw.get("eval_template", 0)),
    )
    spec = TaskSpec(
        name=raw.get("name", name),
        source=str(path),
        templates=templates,
        files=dict(raw.get("files") or {}),
        columns=raw.get("columns"),
        hub_id=raw.get("hub_id"),
        id_field=raw.get("id_field"),
        input_field=raw.get("input_field"),
        description=raw.get("description", ""),
    )
    # Which fields the rows must have is checked against the data itself, row by row.
    templates.validate(set(spec.fields), str(path))
    return spec


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """An explicit directory must exist; else $TUNEVAL_DATA_DIR; else None (use the hub)."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        origin = "--data-dir" if data_dir else DATA_DIR_ENV
        raise TunevalError(f"data directory '{path}' ({origin}) does not exist")
    return path


def load_split(task: TaskSpec, split: str, data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Rows of one split, each checked for the fields the templates use."""
    root = resolve_data_dir(data_dir)
    if root is not None:
        if split not in task.files:
            raise TunevalError(
                f"task '{task.name}' has no split '{split}' in local files (has: {', '.join(task.files) or 'none'})"
            )
        path = root / task.files[split]
        rows = read_file(path, task.columns)
        where = str(path)
    elif task.hub_id:
        rows = read_hub(task.hub_id, split)
        where = f"hub:{task.hub_id}[{split}]"
    else:
        raise TunevalError(f"task '{task.name}' has no hub_id: pass --data-dir or set {DATA_DIR_ENV}")
    if not rows:
        raise TunevalError(f"{where}: split '{split}' of task '{task.name}' has no examples")
    check_fields(rows, task.fields)
    return rows
