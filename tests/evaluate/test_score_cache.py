"""The score cache: every part of the key changes it, entries read back as written, and an entry
that cannot be read is a miss, never an error."""

from __future__ import annotations

import json
import shutil

import pytest

from tuneval.evaluate import score_cache
from tests.test_layers import GRAPH, _part

ROWS = [{"dialogue": "#Person1#: hi", "summary": "they greet", "_where": "validation.jsonl:1"},
        {"dialogue": "#Person2#: bye", "summary": "they part", "_where": "validation.jsonl:2"}]
SETTINGS = {"task": "dialogsum", "split": "validation", "template": 0, "max_new_tokens": 64, "batch_size": 16,
            "tokenizer_chat_template": "{{ messages }}"}
RESULTS = {"metrics": {"rouge1": 0.3141592653589793, "bleu": 12.5}, "examples": [{"id": 0, "prediction": "x é"}],
           "stats": {"seconds": 1.5}}


def _key(identity, **change):
    parts = dict(model=identity, rows=ROWS, precision="fp32", dtype="float32", settings=SETTINGS, machine="cpu, 2 threads")
    return score_cache.score_key(**{**parts, **change})


@pytest.fixture
def model_copy(tiny_llama_dir, tmp_path):
    return shutil.copytree(tiny_llama_dir, tmp_path / "model")


def test_the_scoring_parts_cover_what_scoring_imports():
    """The hashed code is the static import closure of the scoring path: a new import reaching another
    part fails here until SCORING_PARTS names it."""
    seen, todo = set(), ["tuneval.evaluate.harness", "tuneval.methods.loading"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += [t for t, _ in GRAPH.get(module, [])]
    assert {_part(m) for m in seen} - set(score_cache.SCORING_PARTS) == set()
    assert "jobs" not in score_cache.SCORING_PARTS and "train" not in score_cache.SCORING_PARTS


def test_every_component_of_the_key_changes_it(model_copy, monkeypatch):
    identity = score_cache.model_identity("tiny", model_copy)
    base = _key(identity)
    other_rows = [dict(ROWS[0], summary="they wave"), ROWS[1]]
    changed = {
        "model name": _key(score_cache.model_identity("other-name", model_copy)),
        "rows": _key(identity, rows=other_rows), "row count": _key(identity, rows=ROWS[:1]),
        "template": _key(identity, settings={**SETTINGS, "template": 1}),
        "chat template": _key(identity, settings={**SETTINGS, "tokenizer_chat_template": "{{ m }}"}),
        "max_new_tokens": _key(identity, settings={**SETTINGS, "max_new_tokens": 32}),
        "precision": _key(identity, precision="bf16"), "dtype": _key(identity, dtype="bfloat16"),
        "machine": _key(identity, machine="cpu, 16 threads"),
    }
    (model_copy / "tokenizer_config.json").write_text((model_copy / "tokenizer_config.json").read_text() + " ")
    changed["a model file's bytes"] = _key(score_cache.model_identity("tiny", model_copy))
    monkeypatch.setattr(score_cache, "scoring_code", lambda: "0" * 64)
    changed["scoring code"] = _key(identity)
    monkeypatch.setattr(score_cache, "libraries", lambda: {"torch": "0.0"})
    changed["library versions"] = _key(identity)
    files = {name: score_cache.entry_file(k) for name, k in changed.items()}
    assert score_cache.entry_file(base) not in files.values()
    assert len(set(files.values())) == len(files)  # each one its own entry
    assert _key(score_cache.model_identity("tiny", model_copy)) != base  # the edited file stays edited
    assert score_cache.entry_file(base) == score_cache.entry_file(json.loads(json.dumps(base)))  # stable


def test_the_code_hash_sees_every_file_of_the_parts_but_no_cache(tmp_path):
    root = tmp_path / "pkg"
    (root / "metrics" / "data").mkdir(parents=True)
    (root / "metrics" / "text.py").write_text("A = 1\n")
    (root / "metrics" / "data" / "words.txt").write_text("a\n")
    (root / "io.py").write_text("B = 2\n")
    (root / "train.py").write_text("C = 3\n")
    digest = lambda: score_cache.parts_digest(root, ("metrics", "io"))  # noqa: E731
    first = digest()
    (root / "metrics" / "__pycache__").mkdir()
    (root / "metrics" / "__pycache__" / "text.cpython-311.pyc").write_bytes(b"\0")
    (root / "train.py").write_text("C = 4\n")  # not a scoring part
    assert digest() == first
    for path, text in (("metrics/text.py", "A = 2\n"), ("metrics/data/words.txt", "b\n"), ("io.py", "B = 3\n")):
        (root / path).write_text(text)
        assert digest() != first, path
        first = digest()
    assert len(score_cache.scoring_code()) == 64


def test_a_hub_model_is_named_by_its_commit(tmp_path):
    assert score_cache.model_identity("org/m", "org/m", "abc123") == {"name": "org/m", "hub_commit": "abc123"}
    assert score_cache.model_identity("org/m", "org/m", None) is None  # nothing to name it by: never cached


def test_an_entry_reads_back_as_written(model_copy):
    key = _key(score_cache.model_identity("tiny", model_copy))
    assert score_cache.lookup(key) is None
    path = score_cache.store(key, RESULTS)
    assert path == score_cache.entry_file(key) and path.parent == score_cache.cache_dir()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # written atomically: no temp file left
    hit = score_cache.lookup(key)
    assert hit.results == RESULTS and hit.file == path and hit.created
    assert score_cache.lookup(_key(score_cache.model_identity("tiny", model_copy), precision="bf16")) is None


@pytest.mark.parametrize("damage", ["truncated", "not utf-8", "a list", "other format", "other key", "no metrics",
                                    "a directory"])
def test_an_entry_that_cannot_be_read_is_a_miss(model_copy, damage):
    key = _key(score_cache.model_identity("tiny", model_copy))
    path = score_cache.store(key, RESULTS)
    entry = json.loads(path.read_text())
    if damage == "truncated":
        path.write_text(path.read_text()[:100])
    elif damage == "not utf-8":
        path.write_bytes(b"\xff\xfe" + path.read_bytes())
    elif damage == "a list":
        path.write_text("[1, 2]")
    elif damage == "a directory":
        path.unlink()
        path.mkdir()
    else:
        if damage == "other format":
            entry["format"] = score_cache.FORMAT + 1
        elif damage == "other key":
            entry["key"]["precision"] = "bf16"
        else:
            entry["results"] = {"examples": []}
        path.write_text(json.dumps(entry))
    assert score_cache.lookup(key) is None
    if damage != "a directory":
        score_cache.store(key, RESULTS)  # the next write replaces it
        assert score_cache.lookup(key).results == RESULTS
