"""Rows ("docs", as lm-eval calls them) for a benchmark task's split.

`data_files` maps a split to a path under the data directory, a list of paths (read one
after the other, e.g. CoLA's in-domain + out-of-domain dev sets), or a mapping field -> path
for parallel plain-text files (WMT source and reference, one segment per line). The file
type comes from its suffix: .jsonl, .csv (header row unless `columns` names them), .tsv
(no quoting, as GLUE writes them), .txt (one row per line, split by `line_pattern`'s named
groups). Without a data directory the rows come from the hub (`dataset_path`,
`dataset_name`). Every row remembers its file:line for error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneval.data.sources import read_delimited, read_jsonl, read_lines
from tuneval.data.tasks import DATA_DIR_ENV, resolve_data_dir
from tuneval.errors import TunevalError, first_line
from tuneval.io import read_text

Doc = dict[str, Any]


def _read_lines(path: Path, pattern: str | None, source: str) -> list[Doc]:
    if not pattern:
        raise TunevalError(f"{source}: {path.name} is plain text; set 'line_pattern' (a regex with named groups)")
    return read_lines(path, pattern)


def _read_parallel(root: Path, fields: dict[str, str]) -> list[Doc]:
    columns: dict[str, list[str]] = {}
    for name, rel in fields.items():
        path = root / rel
        if not path.is_file():
            raise TunevalError(f"{path}: data file not found")
        columns[name] = read_text(path).rstrip("\n").split("\n")
    lengths = {name: len(v) for name, v in columns.items()}
    if len(set(lengths.values())) != 1:
        raise TunevalError(f"parallel files differ in line count: {', '.join(f'{root / fields[k]}={n}' for k, n in lengths.items())}")
    first = root / next(iter(fields.values()))
    n = next(iter(lengths.values()))
    return [{**{name: col[i] for name, col in columns.items()}, "_where": f"{first}:{i + 1}"} for i in range(n)]


def read_path(path: Path, task) -> list[Doc]:
    if not path.is_file():
        raise TunevalError(f"{path}: data file not found")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return read_jsonl(path)
    if suffix == ".csv":
        return read_delimited(path, ",", task.columns)
    if suffix == ".tsv":
        return read_delimited(path, "\t", task.columns)
    return _read_lines(path, task.line_pattern, task.source)


def _read_hub(task, split: str) -> list[Doc]:
    try:
        import datasets

        ds = datasets.load_dataset(task.dataset_path, task.dataset_name, split=split)
    except Exception as e:  # offline, unknown id or split: one message for the user
        raise TunevalError(f"task '{task.name}': hub dataset '{task.dataset_path}' split '{split}' could not be loaded "
                           f"({first_line(e)}); pass --data-dir or set {DATA_DIR_ENV} to read local files") from None
    return [{**dict(row), "_where": f"hub:{task.dataset_path}[{split}] row {i}"} for i, row in enumerate(ds)]


def load_docs(task, split: str, data_dir: str | Path | None) -> list[Doc]:
    """Every row of one split, in file order."""
    root = resolve_data_dir(data_dir)
    if root is not None:
        if split not in task.data_files:
            raise TunevalError(f"{task.source}: task '{task.name}' has no local file for split '{split}' "
                               f"(data_files has: {', '.join(task.data_files) or 'none'})")
        spec = task.data_files[split]
        if isinstance(spec, dict):
            docs = _read_parallel(root, spec)
        else:
            docs = [row for rel in (spec if isinstance(spec, list) else [spec]) for row in read_path(root / rel, task)]
        where = f"{root}/{spec}"
    elif task.dataset_path:
        docs = _read_hub(task, split)
        where = f"hub:{task.dataset_path}[{split}]"
    else:
        raise TunevalError(f"task '{task.name}' has no hub dataset_path: pass --data-dir or set {DATA_DIR_ENV}")
    if not docs:
        raise TunevalError(f"{where}: split '{split}' of task '{task.name}' has no examples")
    return docs
