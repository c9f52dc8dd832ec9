"""A task file is a stranger's: its templates render in Jinja's sandbox and run no code (issue 35).

Each payload tries to touch a marker file; the test asserts the file never appears and that the
attempt is one TunevalError line naming the task file and the field. docs/security.md's table
comes from these tests (and tests/tasks/test_rows_confined.py, tests/train/test_faults.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.evaluate.test_bench_cli import run
from tuneval.errors import TunevalError
from tuneval.tasks import load_rows
from tuneval.tasks.prompts import description, doc_to_choice, doc_to_target, doc_to_text, render_string
from tuneval.tasks.registry import get_task

TOUCH = "touch {marker}"
# {cmd} is the shell command each payload would run if it escaped the sandbox.
PAYLOADS = {
    "cycler globals": "{{{{ cycler.__init__.__globals__.os.popen('{cmd}').read() }}}}",
    "joiner globals": "{{{{ joiner.__init__.__globals__.os.system('{cmd}') }}}}",
    "lipsum globals": "{{{{ lipsum.__globals__['os'].popen('{cmd}').read() }}}}",
    "namespace globals": "{{{{ namespace.__init__.__globals__.os.system('{cmd}') }}}}",
    "subclasses": "{{% for c in ''.__class__.__mro__[1].__subclasses__() %}}{{% if c.__name__ == 'Popen' %}}"
                  "{{{{ c('{cmd}', shell=True) }}}}{{% endif %}}{{% endfor %}}",
    "builtins": "{{{{ __builtins__.__import__('os').system('{cmd}') }}}}",
    "template reference": "{{{{ self._TemplateReference__context.cycler.__init__.__globals__.os.system('{cmd}') }}}}",
    "config": "{{{{ config.__class__.__init__.__globals__['os'].popen('{cmd}') }}}}",
    "request": "{{{{ request.application.__globals__.__builtins__.__import__('os').popen('{cmd}') }}}}",
    "format attribute": "{{{{ '{{0.__class__.__init__.__globals__}}'.format(premise) }}}}{{{{ premise }}}}",
    "format_map attribute": "{{{{ '{{x.__class__.__base__.__subclasses__}}'.format_map({{'x': premise}}) }}}}",
    "percent format": "{{{{ '%s' % premise.__class__ }}}}",
    "attr filter": "{{{{ (premise|attr('__class__')|attr('__base__')|attr('__subclasses__'))() }}}}",
    "attr __globals__": "{{{{ (range|attr('__init__')|attr('__globals__'))['os'].system('{cmd}') }}}}",
    "getitem dunder": "{{{{ premise['__class__']['__mro__'] }}}}",
    "mutate a list": "{{% set xs = [1] %}}{{{{ xs.append(2) }}}}{{{{ xs }}}}",
    "mutate a dict": "{{{{ doc.update({{'premise': 'changed'}}) }}}}",
    "string repeat": "{{{{ premise * 100000000 }}}}",
    "huge power": "{{{{ 10 ** 100000000 }}}}",
    "huge width filter": "{{{{ premise|center(1000000000) }}}}",
    "huge width method": "{{{{ premise.ljust(1000000000) }}}}",
    "huge format width": "{{{{ '{{:>999999999}}'.format(premise) }}}}",
    "huge %-width": "{{{{ '%999999999s' % premise }}}}",
    "huge range": "{{{{ range(100000000)|list }}}}",
}


def payload(name: str, marker: Path) -> str:
    return PAYLOADS[name].format(cmd=TOUCH.format(marker=marker))


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_payload_renders_nothing(name, tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(TunevalError) as e:
        render_string(payload(name, marker), {"premise": "It rained.", "doc": {"premise": "It rained."}},
                      "evil.yaml (doc_to_text) on rows.jsonl:1")
    assert not marker.exists()
    message = str(e.value)
    assert "\n" not in message and message.startswith("evil.yaml (doc_to_text) on rows.jsonl:1: template ")
    assert len(message) < 700


def test_what_tasks_use_still_renders():
    """lm-eval's prompt idioms work in the sandbox: methods, filters, ifs, loops, small arithmetic, formats."""
    context = {"question": " Why? ", "choices": ["a", "b"], "label": 1, "n": 3}
    template = ("{{question.strip()}} {{ choices|join(', ') }} {% for c in choices %}{{ loop.index }}.{{ c }} {% endfor %}"
                "{{ 'yes' if label else 'no' }} {{ n * 2 }} {{ 2 ** 8 }} {{ '%03d' % n }} {{ '{:>4}'.format(n) }} "
                "{{ question|regex_replace('\\\\?', '!')|trim }} {{ \"do n't\"|detokenize }} {{ range(3)|list }} "
                "{{ dict(a=1)['a'] }} {{ 'ab' * 3 }} {{ choices[label]|upper }} {{ question|center(9) }}")
    assert render_string(template, context, "t") == ("Why? a, b 1.a 2.b yes 6 256 003    3 Why! don't [0, 1, 2] 1 "
                                                      "ababab B    Why?  ")


def _task_dir(tmp_path: Path, **keys) -> tuple[Path, Path]:
    """A tasks directory with one multiple-choice task `evil` and a data directory with its rows."""
    tasks, data = tmp_path / "tasks", tmp_path / "data"
    tasks.mkdir()
    (data / "evil").mkdir(parents=True)
    rows = [{"premise": f"It rained {i}.", "label": i % 2} for i in range(3)]
    (data / "evil" / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"task": "evil", "output_type": "multiple_choice", "data_files": {"validation": "evil/val.jsonl"},
            "validation_split": "validation", "doc_to_text": "{{premise}}", "doc_to_choice": ["no", "yes"],
            "doc_to_target": "label", **keys}
    (tasks / "evil.yaml").write_text(json.dumps(spec))  # JSON is YAML
    return tasks, data


@pytest.mark.parametrize("field", ["doc_to_text", "doc_to_choice", "doc_to_target", "description"])
@pytest.mark.parametrize("name", ["cycler globals", "subclasses", "format attribute", "attr __globals__"])
def test_task_yaml_from_a_tasks_dir_runs_no_code(name, field, tmp_path):
    """The real path: a task YAML in a --tasks-dir, found by the registry, its rows read and rendered."""
    marker = tmp_path / "pwned"
    evil = payload(name, marker)
    tasks, data = _task_dir(tmp_path, **{field: evil})
    task = get_task("evil", tasks)
    doc = load_rows(task, "validation", data)[0]
    with pytest.raises(TunevalError) as e:
        {"doc_to_text": doc_to_text, "doc_to_choice": doc_to_choice, "doc_to_target": doc_to_target,
         "description": description}[field](task, doc)
    assert not marker.exists()
    assert f"evil.yaml ({field}) on " in str(e.value) and "val.jsonl:1" in str(e.value)


@pytest.mark.parametrize("name", ["cycler globals", "format attribute"])
def test_task_list_metadata_renders_in_the_sandbox(name, tmp_path):
    """`{{ var }}` in task names and data paths (task_list) goes through the same sandbox."""
    marker = tmp_path / "pwned"
    tasks, _ = _task_dir(tmp_path)
    (tasks / "evil.yaml").write_text(json.dumps({
        "task": "evil_" + payload(name, marker), "task_list": [{"x": 1}], "doc_to_text": "{{premise}}",
        "doc_to_target": "label", "data_files": {"validation": "evil/val.jsonl"}}))
    with pytest.raises(TunevalError, match="evil.yaml: template .* refused"):
        get_task("evil_1", tasks)
    assert not marker.exists()


def test_eval_cli_refuses_the_issue_payload_with_exit_2(tiny_llama_dir, tmp_path, capsys):
    """The issue's exact probe: `tuneval eval --tasks-dir DIR --tasks NAME` created the file and exited 0."""
    marker = tmp_path / "x"
    tasks, data = _task_dir(
        tmp_path, doc_to_text="{{ cycler.__init__.__globals__.os.popen('touch %s').read() }}{{premise}}" % marker)
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--tasks-dir", str(tasks), "--tasks", "evil",
                        "--data-dir", str(data), "--out", str(tmp_path / "ev"), "--bootstrap-iters", "0"], capsys)
    assert code == 2 and not marker.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "evil.yaml (doc_to_text)" in lines[0], err
    assert "refused" in lines[0]


@pytest.mark.parametrize("template, message", [
    ("{premise.__class__.__init__.__globals__}", "not a plain field name"),
    ("{premise[0]}", "not a plain field name"),
    ("{0}", "not a plain field name"),
    ("{premise:{premise.__class__}}", "nested field"),
    ("{premise:>999999999}", "width over"),
    ("{premise", "not a template with {field} placeholders"),
])
def test_flan_templates_take_plain_field_names(template, message, tmp_path):
    tasks, _ = _task_dir(tmp_path)
    (tasks / "evil.yaml").write_text(json.dumps({
        "task": "evil", "templates": [template], "target": "{label}", "data_files": {"validation": "evil/val.jsonl"}}))
    with pytest.raises(TunevalError, match=r"evil.yaml: templates\[0\]: .*" + message.replace("{", r"\{")):
        get_task("evil", tasks)


def test_flan_template_with_a_plain_width_and_conversion_still_works(tmp_path):
    tasks, data = _task_dir(tmp_path)
    (tasks / "evil.yaml").write_text(json.dumps({
        "task": "evil", "templates": ["{premise!r:>20}"], "target": "{label}", "validation_split": "validation",
        "data_files": {"validation": "evil/val.jsonl"}}))
    task = get_task("evil", tasks)
    row = load_rows(task, "validation", data)[0]
    assert task.templates.render(row, 0) == ("      'It rained 0.'", "0")
