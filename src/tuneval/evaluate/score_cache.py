"""Scores kept for next time: a model's evaluation results, reused only where recomputing them would
give the same numbers (issue 34: `tuneval demo` scores the untrained model every run, the same 200
examples with the same settings; a second demo on this machine reads them instead).

This module owns the cache's layout: $TUNEVAL_HOME/scores/<sha256 of the key>.json, one entry per
key, each holding its whole key beside the results (checked on every read, so a hash collision or a
file copied from elsewhere is a miss, not a wrong score). Entries are written atomically (io.py).
An entry that cannot be read, parsed or matched is ignored: the caller recomputes and writes it again.

The key is everything the numbers depend on:
- the model: the name it was asked by, and a sha256 of every file of its directory (weights, config,
  tokenizer, chat template) or, for a hub id, the hub commit transformers resolved;
- the data rows scored, hashed as loaded (their `_where` too, which results record per example);
- the prompt and generation settings the caller passes (template, chat template, max_new_tokens, ...);
- precision and the dtype the weights were loaded in;
- the code that scores: a sha256 of every file of the parts of tuneval that scoring imports
  (SCORING_PARTS), tuneval's version, and the versions of the libraries that compute the numbers;
- the machine (runs.machine: CPU model and threads, or the GPU), since float sums differ across both.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from tuneval.io import atomic_write_json, file_sha256
from tuneval.models.catalogue import tuneval_home

FORMAT = 1  # the entry's own layout; bumped when it changes
# The code that scores, as a hash of its source rather than a SCORING_VERSION bumped by hand: a constant
# someone forgets to bump serves stale scores, a hash cannot. The cost is a recomputation when anything else
# in these parts changes. The parts are the static import closure of the scoring path
# (evaluate/harness.py, and methods/loading.py that loads what it scores): tests/evaluate/test_score_cache.py
# fails when that closure reaches a part not listed here. Task YAML and metric data files are hashed too.
SCORING_PARTS = ("allocator", "console", "data", "errors", "evaluate", "io", "methods", "metrics", "model_args",
                 "models", "precision", "results", "runs", "tasks", "typed")
# Libraries whose arithmetic or text handling is in the numbers: generation, tokenising, ROUGE, BLEU, bootstrap.
LIBRARIES = ("torch", "transformers", "tokenizers", "peft", "accelerate", "numpy", "rouge-score", "sacrebleu",
             "nltk", "safetensors")


def cache_dir() -> Path:
    return tuneval_home() / "scores"


def entry_file(key: dict[str, Any]) -> Path:
    return cache_dir() / f"{_digest_json(key)}.json"


def _digest_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parts_digest(root: Path, parts: tuple[str, ...]) -> str:
    """sha256 over the path and bytes of every file of `parts` (a package directory, else `part`.py)
    under `root`; caches and compiled files aside."""
    h = hashlib.sha256()
    for part in parts:
        files = sorted(p for p in (root / part).rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
            if (root / part).is_dir() else [root / f"{part}.py"]
        for p in files:
            if p.suffix != ".pyc":
                h.update(f"{p.relative_to(root).as_posix()}\0{file_sha256(p)}\0".encode())
    return h.hexdigest()


@lru_cache(maxsize=None)
def scoring_code() -> str:
    """parts_digest of this installation's SCORING_PARTS."""
    return parts_digest(Path(__file__).resolve().parents[1], SCORING_PARTS)


def libraries() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


@lru_cache(maxsize=8)
def _directory_digest(path: str, stats: tuple[tuple[str, int, int], ...]) -> str:
    """sha256 of a directory's files (name, size, content); `stats` (name, size, mtime) keys the memo,
    so one process hashes a model's weights once."""
    return _digest_json([[name, size, file_sha256(Path(path) / name)] for name, size, _ in stats])


def model_identity(name: str, path: str | Path, hub_commit: str | None = None) -> dict[str, Any] | None:
    """The model as the key names it: every top-level file of its directory hashed, or a hub id's commit;
    None where neither is known (nothing is cached then)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        stats = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)
        return {"name": name, "files": _directory_digest(str(p.resolve()), stats)}
    return {"name": name, "hub_commit": hub_commit} if hub_commit else None


def score_key(*, model: dict[str, Any], rows: list[dict[str, Any]], precision: str, dtype: str,
              settings: dict[str, Any], machine: str) -> dict[str, Any]:
    """The whole key (see the module's doc); `settings`: the task, split, prompt and generation
    settings the scores were taken with, as the caller passes them to the harness."""
    from tuneval import __version__

    return {"format": FORMAT, "model": model, "rows": {"count": len(rows), "sha256": _digest_json(rows)},
            "settings": settings, "precision": precision, "dtype": dtype,
            "code": {"tuneval": __version__, "scoring_sha256": scoring_code(), "libraries": libraries()},
            "machine": machine}


@dataclass
class Hit:
    """What the cache held for a key: the results, the entry's file, and when it was written."""

    results: dict[str, Any]
    file: Path
    created: str | None


def lookup(key: dict[str, Any]) -> Hit | None:
    """The entry for `key`, or None: absent, unreadable, not JSON, another format or another key."""
    path = entry_file(key)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if entry.get("format") != FORMAT or entry.get("key") != json.loads(json.dumps(key, default=str)):
            return None
        results = entry["results"]
        if not isinstance(results, dict) or not isinstance(results.get("metrics"), dict):
            return None
        return Hit(results, path, entry.get("created"))
    except Exception:  # noqa: BLE001  (a cache must never stop the work it saves: any bad entry is a miss)
        return None


def store(key: dict[str, Any], results: dict[str, Any]) -> Path:
    """Write the entry for `key` (atomically: a reader sees the old entry or the new, never half)."""
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return atomic_write_json(entry_file(key), {"format": FORMAT, "created": created, "key": key, "results": results})
