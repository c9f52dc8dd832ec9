"""Row sources: local jsonl / json / csv / tsv / parquet files (or a directory of them), or a hub dataset.

Every row remembers where it came from, so a bad value is reported as file:line:field; a row of a
parquet file or a JSON object of columns has no line, and is named "file row N" (from 0, as
pandas and datasets count).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from tuneval.errors import TunevalError, first_line
from tuneval.io import read_text


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for lineno, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            # json's own wording sometimes ends in "at" ("Unterminated string starting at")
            raise TunevalError(f"{path}:{lineno}: not valid JSON ({e.msg.removesuffix(' at')} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise TunevalError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        row["_where"] = f"{path}:{lineno}"
        rows.append(row)
    return rows


def read_json(path: Path) -> list[dict[str, Any]]:
    """A JSON array of objects (each row named by the line its object starts on), or an object of
    equal-length column lists (`df.to_json(orient="list")`, `Dataset.to_dict()`). A `.json` file that
    holds JSON lines, as many exports write under that suffix, is read as JSON lines."""
    text = read_text(path)
    start = len(text) - len(text.lstrip())
    if text[start:start + 1] == "[":
        return _json_array(path, text, start)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # one value, then more: JSON lines
            return read_jsonl(path)
        raise TunevalError(f"{path}:{e.lineno}: not valid JSON ({e.msg.removesuffix(' at')} at column {e.colno})") from None
    if isinstance(data, dict) and "\n" not in text.strip() and not _is_columns(data):
        return read_jsonl(path)  # a single JSON line
    if not isinstance(data, dict) or not _is_columns(data):
        raise TunevalError(f"{path}: expected a JSON array of objects, an object of equal-length column lists, "
                           f"or JSON lines; got {_json_kind(data)}")
    names = list(data)
    return [{**{name: data[name][i] for name in names}, "_where": f"{path} row {i}"}
            for i in range(len(data[names[0]]))]


def _is_columns(data: dict) -> bool:
    lengths = {len(v) if isinstance(v, list) else -1 for v in data.values()}
    return bool(data) and len(lengths) == 1 and -1 not in lengths


def _json_kind(data: Any) -> str:
    if isinstance(data, dict):
        return "an object whose values are not equal-length lists"
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(data), "a number")


def _json_array(path: Path, text: str, pos: int) -> list[dict[str, Any]]:
    """Decode the array one element at a time, so each row keeps the line its object starts on."""
    decoder, rows = json.JSONDecoder(), []
    space = re.compile(r"\s*")
    pos = space.match(text, pos + 1).end()
    try:
        while text[pos:pos + 1] != "]":
            if rows:
                if text[pos:pos + 1] != ",":
                    raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
                pos = space.match(text, pos + 1).end()
            line = text.count("\n", 0, pos) + 1
            row, pos = decoder.raw_decode(text, pos)
            if not isinstance(row, dict):
                raise TunevalError(f"{path}:{line}: expected a JSON object, got {type(row).__name__}")
            rows.append({**row, "_where": f"{path}:{line}"})
            pos = space.match(text, pos).end()
        after = space.match(text, pos + 1).end()
        if after < len(text):
            raise json.JSONDecodeError("Extra data", text, after)
    except json.JSONDecodeError as e:
        raise TunevalError(f"{path}:{e.lineno}: not valid JSON ({e.msg.removesuffix(' at')} at column {e.colno})") from None
    return rows


def read_parquet(path: Path) -> list[dict[str, Any]]:
    """Rows of a parquet file (what `Dataset.to_parquet` and the hub's converted datasets hold);
    nested columns (a `messages` list of role/content structs) come back as lists of dicts."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # not parquet, truncated, unsupported encoding: one line for the user
        raise TunevalError(f"{path}: not a readable parquet file ({first_line(e)})") from None
    return [{**row, "_where": f"{path} row {i}"} for i, row in enumerate(table.to_pylist())]


def read_delimited(path: Path, delimiter: str, columns: list[str] | None) -> list[dict[str, Any]]:
    """csv/tsv; with `columns` the file has no header and those are the names.

    Tab-separated files are read unquoted (as GLUE's are): a sentence may start with a quote
    mark that is part of the text, not a quoted field."""
    rows = []
    quoting, kind = (csv.QUOTE_NONE, "TSV") if delimiter == "\t" else (csv.QUOTE_MINIMAL, "CSV")
    reader = csv.reader(io.StringIO(read_text(path), newline=""), delimiter=delimiter, quoting=quoting)
    header = columns
    try:
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
    except csv.Error as e:  # e.g. a quoted field that never ends
        raise TunevalError(f"{path}:{reader.line_num}: not valid {kind} ({e})") from None
    return rows


def read_lines(path: Path, pattern: str, expected: str | None = None) -> list[dict[str, Any]]:
    """One row per non-blank line, its fields the named groups of `pattern` (a regex).

    The one reader for plain-text datasets: the training formats below and the benchmark
    YAMLs' `line_pattern` both come here. `expected` words the error for a line that does
    not match (default: the pattern itself).
    """
    try:
        regex = re.compile(str(pattern))
    except re.error as e:
        raise TunevalError(f"{path}: line_pattern {pattern!r} is not a valid regular expression ({e})") from None
    rows = []
    for lineno, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        m = regex.match(line)
        if m is None:
            want = expected or f"a line matching line_pattern {pattern!r}"
            raise TunevalError(f"{path}:{lineno}: expected {want}, got {line[:60]!r}")
        rows.append({**m.groupdict(), "_where": f"{path}:{lineno}"})
    return rows


SAMPLE_BY = ("paragraph", "line", "document")  # HF datasets' `text` builder's `sample_by` choices


def read_documents(path: Path, sample_by: str = "paragraph") -> list[dict[str, Any]]:
    """A plain-text file as `{"text": ...}` rows for continued pre-training: one per paragraph (blocks
    of lines between blank lines), per non-blank line, or the whole file as one document, as HF
    datasets' `text` builder samples by (its default is line; here paragraph, so a document keeps its
    lines together). Each row is named by the line it starts on."""
    if sample_by not in SAMPLE_BY:
        raise TunevalError(f"{path}: sample_by must be one of {', '.join(SAMPLE_BY)}, got {sample_by!r}")
    if not path.is_file():
        raise TunevalError(f"{path}: data file not found")
    lines = read_text(path).split("\n")
    if sample_by == "document":
        first = next((i for i, line in enumerate(lines) if line.strip()), None)
        text = "\n".join(lines).strip("\n")
        return [{"text": text, "_where": f"{path}:{first + 1}"}] if first is not None else []
    if sample_by == "line":
        return [{"text": line, "_where": f"{path}:{i}"} for i, line in enumerate(lines, 1) if line.strip()]
    rows, block, start = [], [], 0
    for i, line in enumerate([*lines, ""], 1):
        if line.strip():
            block, start = block + [line], start or i
        elif block:
            rows.append({"text": "\n".join(block), "_where": f"{path}:{start}"})
            block, start = [], 0
    return rows


def read_label_text(path: Path, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """`<label> <text>` per line (SST-2's train.txt): the first token is the label, the rest the text."""
    if columns is not None and len(columns) != 2:
        raise TunevalError(f"{path}: format label_text takes two columns [label, text], got {columns}")
    label, text = columns or ["label", "text"]
    return read_lines(path, rf"^\s*(?P<{label}>\S+)\s+(?P<{text}>\S.*?)\s*$", f"'<{label}> <{text}>'")


def read_trec(path: Path, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """TREC question classification, `COARSE:fine question` per line (Li & Roth's release).

    Fields are named as the hub's TREC dataset names them: coarse_label, fine_label, text.
    """
    if columns is not None and len(columns) != 3:
        raise TunevalError(f"{path}: format trec takes three columns [coarse, fine, text], got {columns}")
    coarse, fine, text = columns or ["coarse_label", "fine_label", "text"]
    return read_lines(path, rf"^(?P<{coarse}>[A-Z]+):(?P<{fine}>\S+)\s+(?P<{text}>\S.*?)\s*$",
                      "'COARSE:fine question' (e.g. 'DESC:manner How ...')")


FORMATS = {"label_text": read_label_text, "trec": read_trec}


def read_file(path: Path, columns: list[str] | None = None, format: str | None = None) -> list[dict[str, Any]]:
    """Rows of one file; `format` names a line format (label_text, trec), else the suffix decides."""
    if not path.is_file():
        raise TunevalError(f"{path}: data file not found")
    if format is not None:
        if format not in FORMATS:
            raise TunevalError(f"{path}: unknown format '{format}' (known: {', '.join(sorted(FORMATS))})")
        return FORMATS[format](path, columns)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".json":
        return read_json(path)
    if suffix == ".parquet":
        return read_parquet(path)
    if suffix == ".csv":
        return read_delimited(path, ",", columns)
    if suffix == ".tsv":
        return read_delimited(path, "\t", columns)
    raise TunevalError(f"{path}: unsupported file type '{suffix}' (use {', '.join(DATA_SUFFIXES)}, or name a format: "
                       f"{', '.join(sorted(FORMATS))})")


DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")


def read_path(path: Path, columns: list[str] | None = None, format: str | None = None,
              sample_by: str | None = None) -> list[dict[str, Any]]:
    """A file, or a directory of data files of one type (a dataset saved in shards: train-00000.parquet,
    ...), read in name order and concatenated; each row still names its own file. Hidden files and
    other suffixes in the directory are left alone; subdirectories are not searched. With `sample_by`
    (data in format text), `.txt` files are data too: documents split as read_documents splits them."""
    path = Path(path)
    suffixes = DATA_SUFFIXES + ((".txt",) if sample_by else ())
    if not path.is_dir():
        if sample_by and path.suffix.lower() == ".txt":
            return read_documents(path, sample_by)
        return read_file(path, columns, format)
    files = sorted(p for p in path.iterdir()
                   if p.is_file() and not p.name.startswith(".") and (format or p.suffix.lower() in suffixes))
    if not files:
        raise TunevalError(f"{path}: no data files in this directory (looked for {', '.join(suffixes)})")
    kinds = sorted({p.suffix.lower() for p in files})
    if len(kinds) > 1:
        raise TunevalError(f"{path}: the directory mixes file types ({', '.join(kinds)}); keep one type per directory")
    return [row for p in files for row in read_path(p, columns, format, sample_by)]


def read_hub(hub_id: str, split: str, name: str | None = None) -> list[dict[str, Any]]:
    """A hub dataset's split (`name`: its configuration, e.g. glue's `sst2`)."""
    try:
        import datasets

        ds = datasets.load_dataset(hub_id, name, split=split)
    except Exception as e:  # offline, unknown id, unknown split: all one message for the user
        raise TunevalError(
            f"hub dataset '{hub_id}' split '{split}' could not be loaded ({first_line(e)}); "
            "pass --data-dir or set TUNEVAL_DATA_DIR to read local files"
        ) from None
    return [{**dict(row), "_where": f"hub:{hub_id}[{split}] row {i}"} for i, row in enumerate(ds)]


def slice_rows(rows: list[dict[str, Any]], spec: str, where: str) -> list[dict[str, Any]]:
    """`rows: "1600:"` keeps rows 1600.. of a file, in HF datasets' split-slicing syntax (`test[1600:]`)."""
    start, sep, stop = str(spec).partition(":")
    try:
        if not sep:
            raise ValueError
        lo, hi = int(start) if start.strip() else None, int(stop) if stop.strip() else None
    except ValueError:
        raise TunevalError(f"{where}: rows must be a slice like '1600:' or ':1600', got {spec!r}") from None
    return rows[lo:hi]


def explode(rows: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    """One row per item of a list field, the item's keys merged in (self-instruct's `instances`)."""
    out = []
    for row in rows:
        items = row.get(field)
        if not isinstance(items, list) or not items:
            raise TunevalError(f"{row['_where']}: field '{field}' must be a non-empty list")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise TunevalError(f"{row['_where']}: {field}[{i}] must be an object, got {type(item).__name__}")
            merged = {k: v for k, v in row.items() if k != field}
            merged.update(item)
            if len(items) > 1:
                merged["_where"] = f"{row['_where']} {field}[{i}]"
            out.append(merged)
    return out


def check_fields(rows: list[dict[str, Any]], fields: list[str]) -> None:
    for row in rows:
        for name in fields:
            value = row.get(name)
            if value is None:
                raise TunevalError(f"{row['_where']}: missing field '{name}'")
            if not isinstance(value, str):
                row[name] = str(value)
