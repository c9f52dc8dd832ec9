"""A stranger's task file reads only under the data directory (issue 35): no absolute data_files, no
`..` out of it, no local directory as a hub `dataset_path`, no non-YAML `include`."""

from __future__ import annotations

import json

import pytest

from tuneval.errors import TunevalError
from tuneval.tasks import load_rows
from tuneval.tasks.registry import get_task

SECRET = "root:$6$secret-hash:19000:0:99999:7:::\n"


def _tasks(tmp_path, **keys):
    tasks, data = tmp_path / "tasks", tmp_path / "data"
    tasks.mkdir()
    (data / "ok").mkdir(parents=True)
    (data / "ok" / "val.jsonl").write_text(json.dumps({"text": "fine", "label": 1}) + "\n")
    (tmp_path / "shadow").write_text(SECRET)
    spec = {"task": "thief", "validation_split": "validation", "doc_to_text": "{{text}}", "doc_to_target": "{{text}}",
            "line_pattern": "^(?P<text>.*)$", **keys}
    (tasks / "thief.yaml").write_text(json.dumps(spec))
    return get_task("thief", tasks), data


@pytest.mark.parametrize("where", ["{shadow}", "../shadow", "ok/../../shadow", "~/../../{shadow}",
                                   ["ok/val.jsonl", "{shadow}"], {"path": "../shadow"}, {"text": "../shadow"}])
def test_data_files_outside_the_data_directory_are_refused(where, tmp_path):
    shadow = str(tmp_path / "shadow")
    fill = lambda w: w.format(shadow=shadow) if isinstance(w, str) else w  # noqa: E731
    spec = [fill(w) for w in where] if isinstance(where, list) else {k: fill(v) for k, v in where.items()} \
        if isinstance(where, dict) else fill(where)
    task, data = _tasks(tmp_path, data_files={"validation": spec})
    with pytest.raises(TunevalError, match=r"thief.yaml: data_files.validation names '.*shadow', outside the data "
                                           r"directory .*; a task reads only files under it") as e:
        load_rows(task, "validation", data)
    assert "secret-hash" not in str(e.value)


def test_data_files_inside_the_data_directory_still_read(tmp_path):
    task, data = _tasks(tmp_path, data_files={"validation": "ok/../ok/val.jsonl"})
    assert load_rows(task, "validation", data)[0]["text"] == "fine"


@pytest.mark.parametrize("hub", ["/etc", "./data", "~/private", "../x", "a/../../b", "a/b/c"])
def test_dataset_path_is_a_hub_id_not_a_local_path(hub, tmp_path):
    with pytest.raises(TunevalError, match="dataset_path .* is not a hub dataset id"):
        _tasks(tmp_path, dataset_path=hub)


def test_dataset_path_naming_an_existing_local_directory_is_refused(tmp_path):
    (tmp_path / "private").mkdir()  # the tests run in tmp_path (conftest), so `private` exists relative to cwd
    with pytest.raises(TunevalError, match="dataset_path 'private' is not a hub dataset id"):
        _tasks(tmp_path, dataset_path="private")


def test_include_reads_only_yaml(tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "t.yaml").write_text(f"include: {tmp_path / 'shadow'}\ntask: t\ndoc_to_text: x\ndoc_to_target: y\n")
    (tmp_path / "shadow").write_text(SECRET)
    with pytest.raises(TunevalError, match=r"t.yaml: include '.*shadow' is not a task YAML file") as e:
        get_task("t", tasks)
    assert "secret-hash" not in str(e.value)
