"""Fuzzed task YAML (issue 35): any task file in a --tasks-dir either loads, and its prompts render or
fail, or is one TunevalError line; never another exception, never a file written or read outside the
data directory. Inputs that found bugs are kept below as plain tests."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuneval.errors import TunevalError
from tuneval.tasks import load_rows
from tuneval.tasks.prompts import description, doc_to_choice, doc_to_target, doc_to_text, gold_index, references
from tuneval.tasks.registry import load_registry
from tuneval.tasks.task import TASK_KEYS

FUZZ = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
TEMPLATES = ["{{premise}}", "{{ premise|upper }}", "{{ choices }}", "{{ label }}", "label", "premise", "{premise}",
             "{{ doc.premise }}", "{{", "{% for %}", "{{ premise * 99999999 }}", "{{ cycler.__init__ }}", "{x.y}",
             "['a', 'b']", "{{ [premise, 'b'] }}", "{{ 1/0 }}", "{{ premise[99] }}", "{{ undefined_field }}", "0", "7"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 9), st.floats(allow_nan=True), st.text(max_size=8),
                    st.sampled_from(TEMPLATES + ["multiple_choice", "generate_until", "validation", "alpaca", "auto",
                                                 "evil/val.jsonl", "/etc/passwd", "../x", "first_n", "rouge", "acc"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.one_of(st.text(max_size=6), scalars.filter(
                                                           lambda v: isinstance(v, (str, int)))), inner, max_size=3)),
                      max_leaves=10)
KEYS = sorted(TASK_KEYS | {"include", "task_list"}) + ["suite", "tasks", "bogus"]
DATA = {"validation": "evil/val.jsonl", "train": "evil/val.jsonl"}
BASES = [  # a valid task of each kind; the fuzz changes, adds and drops a few keys
    {"task": "evil", "output_type": "multiple_choice", "data_files": DATA, "validation_split": "validation",
     "doc_to_text": "{{premise}}", "doc_to_choice": ["no", "yes"], "doc_to_target": "label"},
    {"task": "evil", "templates": ["{premise}", "Q: {premise}"], "target": "{label}", "data_files": DATA,
     "validation_split": "validation", "training_split": "train"},
    {"task": "evil", "format": "auto", "data_files": {"train": "evil/chat.jsonl"}, "validation_share": 0.5},
    {"task": "evil_{{ x }}", "task_list": [{"x": 1}], "doc_to_text": "{{premise}} {{ x }}", "doc_to_target": "label",
     "data_files": DATA, "validation_split": "validation"},
]
tasks = st.builds(lambda base, changes, drop: {k: v for k, v in {**base, **changes}.items() if k not in drop},
                  st.sampled_from(BASES), st.dictionaries(st.sampled_from(KEYS), values, max_size=3),
                  st.sets(st.sampled_from(KEYS), max_size=2))
CHATS = [{"instruction": f"say {i}", "output": str(i)} for i in range(4)]
ROWS = [{"premise": "It rained.", "label": 1, "choices": ["no", "yes"]}, {"premise": "", "label": "yes"}]


def one_line(e: TunevalError) -> None:
    assert str(e) and "\n" not in str(e), str(e)


def _render_all(task, data: Path) -> None:
    for split in ("validation", "train", "test"):
        try:
            rows = load_rows(task, split, data)[:2]
        except TunevalError as e:
            one_line(e)
            continue
        for doc in rows:
            for f in (doc_to_text, description, doc_to_choice, doc_to_target, references):
                try:
                    f(task, doc)
                except TunevalError as e:
                    one_line(e)
            try:
                gold_index(task, doc, doc_to_choice(task, doc))
            except TunevalError as e:
                one_line(e)


@FUZZ
@given(spec=tasks, as_yaml=st.booleans())
def test_any_task_file(spec, as_yaml):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "tasks").mkdir()
        (root / "data" / "evil").mkdir(parents=True)
        (root / "data" / "evil" / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        (root / "data" / "evil" / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in CHATS))
        text = yaml.safe_dump(spec, allow_unicode=True) if as_yaml else json.dumps(spec)
        (root / "tasks" / "evil.yaml").write_text(text)
        before = {str(p) for p in root.rglob("*")}
        try:
            registry = load_registry(root / "tasks")
        except TunevalError as e:
            one_line(e)
        else:
            for task in registry.tasks.values():
                if task.source.startswith(str(root)):
                    _render_all(task, root / "data")
        assert {str(p) for p in root.rglob("*")} == before


@FUZZ
@given(text=st.text(max_size=300))
def test_any_task_text(text):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "t.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_registry(Path(tmp))
        except TunevalError as e:
            one_line(e)
