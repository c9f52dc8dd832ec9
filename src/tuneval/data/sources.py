"""Row sources: local jsonl / csv / tsv files, or a hub dataset.

Every row remembers where it came from, so a bad value is reported as file:line:field.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from tuneval.errors import TunevalError


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise TunevalError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise TunevalError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            row["_where"] = f"{path}:{lineno}"
            rows.append(row)
    return rows


def read_delimited(path: Path, delimiter: str, columns: list[str] | None) -> list[dict[str, Any]]:
    """csv/tsv; with `columns` the file has no header and those are the names."""
    rows = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = columns
        for lineno, values in enumerate(reader, 1):
            if header is None:
                header = values
                continue
            if not values:
                continue
            if len(values) != len(header):
                raise TunevalError(f"{path}:{lineno}: expected {len(header)} columns {header}, got {len(values)}")
            row: dict[str, Any] = dict(zip(header, values))
            row["_where"] = f"{path}:{lineno}"
            rows.append(row)
    return rows


def read_file(path: Path, columns: list[str] | None = None) -> list[dict[str, Any]]:
    if not path.is_file():
        raise TunevalError(f"{path}: data file not found")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return read_jsonl(path)
    if suffix == ".csv":
        return read_delimited(path, ",", columns)
    if suffix == ".tsv":
        return read_delimited(path, "\t", columns)
    raise TunevalError(f"{path}: unsupported file type '{suffix}' (use .jsonl, .csv or .tsv)")


def read_hub(hub_id: str, split: str) -> list[dict[str, Any]]:
    try:
        import datasets

        ds = datasets.load_dataset(hub_id, split=split)
    except Exception as e:  # offline, unknown id, unknown split: all one message for the user
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TunevalError(
            f"hub dataset '{hub_id}' split '{split}' could not be loaded ({first}); "
            "pass --data-dir or set TUNEVAL_DATA_DIR to read local files"
        ) from None
    rows = []
    for i, row in enumerate(ds):
        row = dict(row)
        row["_where"] = f"hub:{hub_id}[{split}] row {i}"
        rows.append(row)
    return rows


def check_fields(rows: list[dict[str, Any]], fields: list[str]) -> None:
    for row in rows:
        for name in fields:
            value = row.get(name)
            if value is None:
                raise TunevalError(f"{row['_where']}: missing field '{name}'")
            if not isinstance(value, str):
                row[name] = str(value)
