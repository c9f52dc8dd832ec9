"""A task's rows for one split: the one loader training and evaluation both use.

Local files (under the data directory: `--data-dir`, else $TUNEVAL_DATA_DIR) come first; with
neither, the task's hub dataset (`dataset_path`, `dataset_name`) through `datasets`. A split's
`data_files` entry is one of:
- a path (`dialogsum/train.jsonl`); the suffix picks the reader (data/sources.py), `.txt` needs a
  `line_pattern` (a regex with named groups) or a `format` (label_text, trec; or, for a task in a
  data format, `format: text`: documents split as the task's `sample_by` says);
- a list of paths, read one after the other (CoLA's in-domain + out-of-domain dev sets);
- a mapping with `path` and per-file options: `format`, `columns` (for headerless csv/tsv),
  `line_pattern`, `rename` (column -> field), `rows` (a slice, `"1600:"`, the fixed held-out part
  of a file with one split), `explode` (one row per item of a list field), `field` (a JSON file's
  rows are the list under this key), `format: cot_prompt` (a chain-of-thought prompt file's shots);
- a mapping field -> path without `path`: parallel plain-text files, one segment per line (WMT).
Every row keeps `_where` (file:line), so a bad value is reported where it is. The task's
`process_docs` hooks (tasks/filters.py) then run on every row of every split.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tuneval.data.dataset_info import retag_turns
from tuneval.data.formats import FIELDS, detect_format, split_validation, to_records
from tuneval.data.sources import (DATA_SUFFIXES, check_fields, explode, read_documents, read_file, read_hub, read_lines,
                                  read_path, slice_rows)
from tuneval.errors import TunevalError
from tuneval.io import read_json, read_text
from tuneval.tasks.filters import process_docs
from tuneval.tasks.task import AUTO, Task

DATA_DIR_ENV = "TUNEVAL_DATA_DIR"
Row = dict[str, Any]


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


def data_path(root: Path, rel: Any, task: Task, split: str) -> Path:
    """`rel` under the data directory. A task file is often a stranger's: it names files under the
    data directory only, never an absolute path or one climbing out with `..` (which would put, say,
    /etc/shadow into the prompts and so into results.json). Symlinks the user made there are followed."""
    text = str(rel)
    joined = os.path.normpath(os.path.join(root, text))
    base = os.path.normpath(root)
    if os.path.isabs(text) or text.startswith("~") or os.path.commonpath([joined, base]) != base:
        raise TunevalError(f"{task.source}: data_files.{split} names '{text}', outside the data directory {root}; "
                           "a task reads only files under it (copy or link the file there)")
    return Path(joined)


def _read_parallel(root: Path, fields: dict[str, str], task: Task, split: str) -> list[Row]:
    columns: dict[str, list[str]] = {}
    for name, rel in fields.items():
        path = data_path(root, rel, task, split)
        if not path.is_file():
            raise TunevalError(f"{path}: data file not found")
        columns[name] = read_text(path).rstrip("\n").split("\n")
    lengths = {name: len(v) for name, v in columns.items()}
    if len(set(lengths.values())) != 1:
        raise TunevalError(f"parallel files differ in line count: {', '.join(f'{root / fields[k]}={n}' for k, n in lengths.items())}")
    first = root / next(iter(fields.values()))
    n = next(iter(lengths.values()))
    return [{**{name: col[i] for name, col in columns.items()}, "_where": f"{first}:{i + 1}"} for i in range(n)]


def _read_field(path: Path, name: str) -> list[Row]:
    """A JSON file whose rows are the list under one key (`field: examples`: BIG-bench's
    {"canary": ..., "examples": [...]}, as `datasets`' json loader's `field`)."""
    data = read_json(path)
    rows = data.get(name) if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise TunevalError(f"{path}: field '{name}' (data_files option `field`) is not a list of objects")
    return [{**r, "_where": f"{path} {name}[{i}]"} for i, r in enumerate(rows)]


COT_ANSWER = re.compile("(?<=answer is )(.*)(?=.)")  # lm-eval's bbh/_generate_configs.py


def read_cot_prompt(path: Path) -> list[Row]:
    """A chain-of-thought prompt file (BIG-Bench Hard's cot-prompts/<task>.txt: a canary line, `-----`,
    the task's description, then "Q: ...\nA: Let's think step by step.\n..." shots separated by a blank
    line), cut as lm-eval's bbh/_generate_configs.py cuts it: one row per shot with `input`, `target`
    (the reasoning) and `answer` (what follows "answer is ", less the last character), plus the
    `description` paragraph."""
    if not path.is_file():
        raise TunevalError(f"{path}: data file not found")
    paragraphs = read_text(path).split("\n-----\n")[-1].split("\n\n")
    first = next((i for i, p in enumerate(paragraphs) if p.startswith("Q: ")), len(paragraphs))
    description, shots = "\n\n".join(paragraphs[:first]), paragraphs[first:]  # snarks' description has two paragraphs
    rows = []
    for i, shot in enumerate(shots):
        question, sep, reasoning = shot.partition("\nA: Let's think step by step.")
        reasoning = reasoning[1:] if reasoning[:1] in ("\n", " ") else reasoning  # sports_understanding: a space
        answer = COT_ANSWER.search(shot)
        if not sep or not question.startswith("Q: ") or answer is None:
            raise TunevalError(f"{path}: shot {i + 1} is not 'Q: ...\\nA: Let's think step by step.\\n... answer is X.'")
        rows.append({"input": question[3:], "target": reasoning, "answer": answer[0], "description": description,
                     "_where": f"{path} shot {i + 1}"})
    return rows


def _read_one(path: Path, task: Task, options: dict[str, Any]) -> list[Row]:
    if options.get("field") is not None:
        return _read_field(path, str(options["field"]))
    if options.get("format") == "cot_prompt":
        return read_cot_prompt(path)
    data_format = getattr(task, "format", None)  # a task in a data format (--data), else a benchmark's fields
    text = task.sample_by if data_format == "text" else None  # plain-text documents (--data notes.txt --format text)
    if path.is_dir():  # a directory of data files, read in name order (a user's --data DIR)
        return read_path(path, options.get("columns", task.columns), sample_by=text)
    columns = options.get("columns", task.columns)
    pattern = options.get("line_pattern", task.line_pattern)
    if options.get("format") is None and path.suffix.lower() not in DATA_SUFFIXES:
        if text and not pattern:
            return read_documents(path, text)
        if data_format is not None and not pattern:
            raise TunevalError(_plain_text_hint(path, task))
        if not pattern:
            raise TunevalError(f"{task.source}: {path.name} is plain text; set 'line_pattern' (a regex with named groups) "
                               "or a 'format'")
        if not path.is_file():
            raise TunevalError(f"{path}: data file not found")
        return read_lines(path, pattern)
    return read_file(path, columns, options.get("format"))


def _plain_text_hint(path: Path, task: Task) -> str:
    """What to do with a plain-text file given as data in a data format (or recognised): a command that works."""
    if task.data_root:  # --data FILE
        return (f"{path}: plain text, {'not format ' + task.format if task.format != AUTO else 'which no format fits'}"
                f"; train on it as documents with: tuneval train --data {path} --format text (split on blank lines; "
                "--sample-by line for one document per line)")
    return f"{task.source}: {path.name} is plain text; set 'format: text' to train on it as documents"


def _shape(rows: list[Row], options: dict[str, Any], where: str) -> list[Row]:
    """Per-file options: rename columns, keep a slice of rows, explode a list field."""
    for row in rows:
        for old, new in (options.get("rename") or {}).items():
            if old in row:
                row[new] = row.pop(old)
    if options.get("rows") is not None:
        rows = slice_rows(rows, options["rows"], where)
    if options.get("explode"):
        rows = explode(rows, str(options["explode"]))
    return rows


def _read_local(task: Task, split: str, root: Path) -> list[Row]:
    if split not in task.data_files:
        raise TunevalError(f"{task.source}: task '{task.name}' has no local file for split '{split}' "
                           f"(data_files has: {', '.join(task.data_files) or 'none'})")
    spec = task.data_files[split]
    if isinstance(spec, dict) and "path" not in spec:
        return _read_parallel(root, spec, task, split)
    options = spec if isinstance(spec, dict) else {}
    paths = [spec["path"]] if isinstance(spec, dict) else spec if isinstance(spec, list) else [spec]
    rows = [row for rel in paths for row in _read_one(data_path(root, rel, task, split), task, options)]
    return _shape(rows, options, f"{task.source}: data_files.{split}")


def load_rows(task: Task, split: str, data_dir: str | Path | None = None) -> list[Row]:
    """Every row of one split, in file order, with `answer`/`options` added for labelled tasks and
    each checked for the fields the FLAN templates use; a task in a data format gives its rows as
    chat or text records (data/formats.py)."""
    if task.conversational:
        return _records(task, split, data_dir)
    rows, where = _raw_rows(task, split, data_dir)
    process_docs(task.hooks, rows)
    if task.label_names:
        add_answers(task, rows)
    check_fields(rows, task.fields)
    return rows


def _raw_rows(task: Task, split: str, data_dir: str | Path | None) -> tuple[list[Row], str]:
    root = Path(task.data_root) if task.data_root else resolve_data_dir(data_dir)
    if root is not None and not task.data_files and task.dataset_path:
        root = None  # a hub dataset with no local files (--data's `data.dataset`): the hub, data directory or not
    if root is not None:
        rows = _read_local(task, split, root)
        where = f"{root}/{task.data_files[split]}"
    elif task.dataset_path:
        rows = read_hub(task.dataset_path, split, task.dataset_name)
        where = f"hub:{task.dataset_path}[{split}]"
    else:
        raise TunevalError(f"task '{task.name}' has no hub dataset_path: pass --data-dir or set {DATA_DIR_ENV}")
    if not rows:
        raise TunevalError(f"{where}: split '{split}' of task '{task.name}' has no examples")
    return rows, where


def _records(task: Task, split: str, data_dir: str | Path | None) -> list[Row]:
    """A data-format task's records; `validation_share` holds out a seeded share of `train` as
    `validation` (and trains on the rest) when the data has no validation split of its own."""
    held_out = task.validation_share is not None and split in ("train", "validation") and (
        "validation" not in task.data_files if task.data_files else True)
    rows, where = _raw_rows(task, "train" if held_out else split, data_dir)
    if task.turn_tags:  # a LLaMA-Factory dataset whose sharegpt turns use their own key and role names
        rows = retag_turns(rows, (task.column_map or {}).get("conversations", "conversations"), task.turn_tags)
    records = to_records(rows, None if task.format == AUTO else task.format, columns=task.column_map, where_hint=where)
    task.read_info = read_info(rows, task.format, task.column_map)
    if not held_out:
        return records
    train, validation, info = split_validation(records, task.validation_share, task.split_seed, where_hint=where)
    task.split_info = info
    return train if split == "train" else validation


def read_info(rows: list[Row], format: str, columns: dict[str, str] | None) -> dict[str, Any]:  # noqa: A002
    """What reading a data-format task found, as the run records it: the format (for `auto`, the one the
    first row was recognised as, as to_records resolves it), the format asked for (`format_given`: auto
    or a name), the column each of the format's fields was read from (those some row has), the rows read."""
    given = None if format == AUTO else format
    resolved = given or ("columns" if columns else detect_format(rows[0]))
    required, optional = FIELDS[resolved]
    names = {f: (columns or {}).get(f, f) for f in required + optional}
    present = set().union(*(row.keys() for row in rows))
    return {"format": resolved, "format_given": format, "columns": {f: c for f, c in names.items() if c in present},
            "rows": len(rows)}


def add_answers(task: Task, rows: list[Row]) -> None:
    """Map each row's label value to its word (`answer`) and add the `options` block.

    A value is looked up as text ("entailment", "1"); a hub dataset's integer class index that is
    not a key is taken as the position in `label_names` (which lists the options in order)."""
    options = task.options_text
    words = list(task.label_names.values())
    for row in rows:
        value = row.get(task.label_field)
        if value is None:
            raise TunevalError(f"{row['_where']}: missing field '{task.label_field}'")
        word = task.label_names.get(str(value).strip())
        if word is None and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(words):
            word = words[value]
        if word is None:
            raise TunevalError(f"{row['_where']}: field '{task.label_field}' has value {value!r}, not one of "
                               f"label_names ({', '.join(task.label_names)}) in {task.source}")
        row["answer"], row["options"] = word, options
