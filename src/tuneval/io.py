"""Files in and out: atomic writes (a crash or a bad input never leaves a half-written result
behind), and reading a text file whose bytes may not be text."""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tuneval.errors import TunevalError


def _create_beside(target: Path, suffix: str, create) -> tuple[Path, Any]:
    """A new hidden temp name beside `target`, created by `create(path)` with the umask's permissions.

    tempfile.mkstemp/mkdtemp create 0600/0700 whatever the umask says, so results written
    through them could not be read by another account (a service running `tuneval serve`).
    Opening with O_EXCL keeps what mkstemp guarantees: the name is new and ours.
    """
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}{suffix}"
        try:
            return tmp, create(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"{target}: no free temporary name beside it")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write to a temp file in the same directory, then rename over the target."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """atomic_write_text for bytes (a PNG, say)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _create_beside(path, ".tmp", lambda p: os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def atomic_write_yaml(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp dir beside `target`; on success it replaces `target`, on failure it vanishes."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp, _ = _create_beside(target, "", lambda p: os.mkdir(p, 0o777))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_text(path: Path) -> str:
    """A text file's contents, newlines as in text mode; a binary or non-UTF-8 file is one line naming
    the file and line, where `open(encoding="utf-8")` would raise a traceback mid-read."""
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):  # Excel and Notepad write one; it is not part of the first field
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
        bad, what = data.find(b"\0"), "a NUL byte"  # valid UTF-8, but no text file has one
    except UnicodeDecodeError as e:
        bad, what = e.start, f"byte 0x{data[e.start]:02x}"
    if bad >= 0:
        line = data[:bad].replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1
        raise TunevalError(f"{path}:{line}: not UTF-8 text ({what}); a binary file, or saved in another encoding?")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file's bytes, read in chunks (a model's weights, a downloaded archive)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_json(path: Path, what: str = "data file") -> Any:
    """A JSON file's value; a missing file or bad JSON is one line naming the file (and the line)."""
    if not path.is_file():
        raise TunevalError(f"{path}: {what} not found")
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise TunevalError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def check_out_dir(out: Path, flag: str = "--out") -> None:
    """Results are written at the end: a path that cannot become a directory must fail before the slow part."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise TunevalError(f"{flag} {out}: {'is' if p == out else f'{p} is'} a file, not a directory")
            return
