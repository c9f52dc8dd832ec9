"""Tasks as data: one YAML file per task, under data/tasks/.

A task says where its rows live (files under the data directory, or a hub id), which
fields the templates use, and its template set. Adding a task is adding a file.

Classification tasks name their label field and map each label value to a word
(`label_names`); every row then also has `{answer}` (the word) and `{options}` (a FLAN-style
"OPTIONS:\n- negative\n- positive" block) for the templates to use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tuneval.data.sources import check_fields, explode, read_file, read_hub, slice_rows
from tuneval.data.templates import TemplateSet, placeholders
from tuneval.errors import TunevalError
from tuneval.io import read_text

BUILTIN_DIR = Path(__file__).parent / "tasks"
DATA_DIR_ENV = "TUNEVAL_DATA_DIR"
DERIVED_FIELDS = ("answer", "options")  # filled from label_names, never read from the data
FILE_KEYS = {"path", "format", "columns", "rename", "rows", "explode"}


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
    file_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # split -> format/columns/rename/rows/explode
    label_field: str | None = None
    label_names: dict[str, str] = field(default_factory=dict)  # label value (as text) -> verbaliser, in option order

    @property
    def fields(self) -> list[str]:
        names: set[str] = set()
        for text in (*self.templates.prompts, self.templates.target):
            names |= placeholders(text)
        return sorted(names)

    @property
    def input_fields(self) -> list[str]:
        """Fields the prompt shows from the data (what fit_prompt may cut), not the answer or the options."""
        target = placeholders(self.templates.target)
        return [f for f in self.fields if f not in target and f not in DERIVED_FIELDS]

    @property
    def options_text(self) -> str:
        return "OPTIONS:\n" + "\n".join(f"- {name}" for name in self.label_names.values())


KNOWN_KEYS = {"name", "description", "hub_id", "files", "columns", "id_field", "input_field", "templates", "target",
              "eval_template", "label_field", "label_names"}


def _file_specs(raw: Any, path: Path) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """`files: {split: path}` or `{split: {path, format, columns, rename, rows, explode}}`."""
    if not isinstance(raw, dict):
        raise TunevalError(f"{path}: 'files' must map split names to paths")
    paths, options = {}, {}
    for split, spec in raw.items():
        if isinstance(spec, str):
            paths[split] = spec
            continue
        if not isinstance(spec, dict) or "path" not in spec:
            raise TunevalError(f"{path}: files.{split} must be a path or a mapping with 'path'")
        unknown = set(spec) - FILE_KEYS
        if unknown:
            raise TunevalError(f"{path}: files.{split}: unknown key(s) {sorted(unknown)} (known: {', '.join(sorted(FILE_KEYS))})")
        paths[split] = str(spec["path"])
        options[split] = {k: v for k, v in spec.items() if k != "path"}
    return paths, options


def _label_names(raw: dict[str, Any], path: Path) -> tuple[str | None, dict[str, str]]:
    field_name, names = raw.get("label_field"), raw.get("label_names")
    if (field_name is None) != (names is None):
        raise TunevalError(f"{path}: 'label_field' and 'label_names' go together")
    if names is None:
        return None, {}
    if not isinstance(names, dict) or not names:
        raise TunevalError(f"{path}: 'label_names' must map each label value to its word, e.g. {{0: negative, 1: positive}}")
    for value, word in names.items():
        if not isinstance(word, str) or not word.strip():
            raise TunevalError(f"{path}: label_names.{value} must be a non-empty word, got {word!r}")
    return str(field_name), {str(k): v for k, v in names.items()}


def available_tasks() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_task(name: str) -> TaskSpec:
    """The built-in task `name` (data/tasks/NAME.yaml)."""
    path = BUILTIN_DIR / f"{name}.yaml"
    if not path.is_file():
        raise TunevalError(f"unknown task '{name}' (known: {', '.join(available_tasks())})")
    return read_task(path)


def read_task(path: Path) -> TaskSpec:
    """A task from its YAML file, every key checked; its name is the file's stem unless it says `name`."""
    name = path.stem
    try:
        raw: dict[str, Any] = yaml.safe_load(read_text(path)) or {}
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
    files, file_options = _file_specs(raw.get("files") or {}, path)
    label_field, label_names = _label_names(raw, path)
    spec = TaskSpec(
        name=raw.get("name", name),
        source=str(path),
        templates=templates,
        files=files,
        file_options=file_options,
        label_field=label_field,
        label_names=label_names,
        columns=raw.get("columns"),
        hub_id=raw.get("hub_id"),
        id_field=raw.get("id_field"),
        input_field=raw.get("input_field"),
        description=raw.get("description", ""),
    )
    # Which fields the rows must have is checked against the data itself, row by row.
    templates.validate(set(spec.fields), str(path))
    derived = sorted(set(spec.fields) & set(DERIVED_FIELDS))
    if derived and not label_names:
        raise TunevalError(f"{path}: the templates use {derived}, which need 'label_field' and 'label_names'")
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
        options = task.file_options.get(split, {})
        rows = read_file(path, options.get("columns", task.columns), options.get("format"))
        where = str(path)
        rows = _shape(rows, options, f"{task.source}: files.{split}")
    elif task.hub_id:
        rows = read_hub(task.hub_id, split)
        where = f"hub:{task.hub_id}[{split}]"
    else:
        raise TunevalError(f"task '{task.name}' has no hub_id: pass --data-dir or set {DATA_DIR_ENV}")
    if not rows:
        raise TunevalError(f"{where}: split '{split}' of task '{task.name}' has no examples")
    if task.label_names:
        add_answers(task, rows)
    check_fields(rows, task.fields)
    return rows


def _shape(rows: list[dict[str, Any]], options: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """Per-file options: rename columns, keep a slice of rows (a fixed held-out part), explode a list field."""
    rename = options.get("rename") or {}
    if rename:
        for row in rows:
            for old, new in rename.items():
                if old in row:
                    row[new] = row.pop(old)
    if options.get("rows") is not None:
        rows = slice_rows(rows, options["rows"], where)
    if options.get("explode"):
        rows = explode(rows, str(options["explode"]))
    return rows


def add_answers(task: TaskSpec, rows: list[dict[str, Any]]) -> None:
    """Map each row's label value to its word (`answer`) and add the `options` block."""
    options = task.options_text
    for row in rows:
        value = row.get(task.label_field)
        if value is None:
            raise TunevalError(f"{row['_where']}: missing field '{task.label_field}'")
        word = task.label_names.get(str(value).strip())
        if word is None:
            raise TunevalError(f"{row['_where']}: field '{task.label_field}' has value {value!r}, not one of "
                               f"label_names ({', '.join(task.label_names)}) in {task.source}")
        row["answer"], row["options"] = word, options
