"""results.py: every result directory has one owner, and no other module spells its file names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import tuneval
from tuneval.errors import TunevalError
from tuneval.results import KINDS, DemoDir, EvalDir, ForgettingDir, LmEvalDir, SuiteDir, SweepDir
from tuneval.runs import MARKER, PEFT_CONFIG, TENSORS_FILE

SRC = Path(tuneval.__file__).parent
OWNERS = {SRC / "runs.py", SRC / "results.py"}
PENDING: set[Path] = set()  # none: a module that must spell a name for a while is listed here, with why
# Every file name of the run and result layouts. Docstrings and comments may name them; code may not.
LAYOUT_NAMES = ["results.json", "report.md", "summary.json", "summary.md", "forgetting.json", "forgetting.md",
                "forgetting.png", "comparison.json", "comparison.md", "sweep.json", "sweep.csv", "sweep.md",
                "sweep.png", "eval-original", PEFT_CONFIG, TENSORS_FILE, MARKER, "metrics.json", "score.json",
                "train_log.jsonl", "mixture.json", "scorecard.json", "scorecard.md",
                "scorecard_compare.json", "scorecard_compare.md", "results_", "samples_"]  # the last two: lm-eval's (LmEvalDir)
SPELLED = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, LAYOUT_NAMES)) + r")(?![\w-])")


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return {id(n.body[0].value) for n in nodes
            if n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


def spelled(source: str) -> list[tuple[int, str]]:
    """(line, name) for each layout file name in a string of the code (f-strings too), not in docstrings."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    return sorted((n.lineno, m.group(1)) for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip
                  for m in SPELLED.finditer(n.value))


def spelled_outside_owners() -> list[str]:
    return [f"{path.relative_to(SRC)}:{line}: {name}" for path in sorted(SRC.rglob("*.py")) if path not in OWNERS | PENDING
            for line, name in spelled(path.read_text(encoding="utf-8"))]


def test_no_layout_file_name_is_spelled_outside_runs_and_results():
    """Writers and readers go through RunDir and the result types; a new spot spelling a name fails here."""
    assert spelled_outside_owners() == []


def test_the_check_catches_a_spelled_name():
    code = '''"""Writes summary.json (a docstring may say so)."""
def f(out, d):
    """And results.json here."""
    a = out / "summary.json"  # a comment may name metrics.json
    b = f"{d}/eval-original/{out / 'report.md'}"
    c = EvalDir(out).results_file, "results", "my_summary.json"
    return p / "adapter_config.json"
'''
    assert spelled(code) == [(4, "summary.json"), (5, "eval-original"), (5, "report.md"), (7, "adapter_config.json")]


def test_each_kind_is_told_by_its_own_signature(tmp_path):
    signatures = [kind.SIGNATURE for kind in KINDS]
    assert len(set(signatures)) == len(signatures)
    for kind in KINDS:
        d = kind(tmp_path / kind.__name__)
        assert not d.exists()
        d.path.mkdir()
        d.signature_file.write_text('{"tasks": {}}')
        assert d.exists() and d.read() == {"tasks": {}}
        assert [k.__name__ for k in KINDS if k(d.path).exists()] == [kind.__name__]


def test_writes_land_where_the_paths_say(tmp_path):
    ev = EvalDir(tmp_path / "ev")
    ev.write({"a": 1})
    assert ev.read() == {"a": 1} and not ev.report_file.exists()
    ev.write({"a": 2}, "# samples\n")
    assert ev.report_file.read_text() == "# samples\n" and ev.read() == {"a": 2}

    demo = DemoDir(tmp_path / "demo")
    paths = demo.write({"rows": []}, "# demo\n")
    assert paths == {"json": demo.json_file, "markdown": demo.md_file} and demo.read() == {"rows": []}
    assert demo.original.path == tmp_path / "demo" / "eval-original" and demo.run("lora").path.name == "lora"

    sweep = SweepDir(tmp_path / "sweep")
    sweep.write({"rows": []}, "# sweep\n", "a,b\n")
    assert sweep.csv_file.read_text() == "a,b\n" and sweep.md_file.is_file() and sweep.point("r=1").path.parent == sweep.path

    forgetting = ForgettingDir(tmp_path / "forgetting")
    forgetting.write({"tasks": {}}, "# f\n")
    assert forgetting.md_file.is_file() and forgetting.before.path.name == "before" and forgetting.after.path.name == "after"


def test_a_suite_reads_back_every_task_it_lists(tmp_path):
    suite = SuiteDir(tmp_path / "suite")
    with pytest.raises(TunevalError, match="no summary.json here"):
        suite.task_results()
    suite.task("copa").write({"task": "copa"})
    suite.write({"tasks": {"copa": {}}}, "| task |\n")
    assert suite.task_results() == {"copa": {"task": "copa"}} and suite.summary_md_file.is_file()
    suite.write({"tasks": {"copa": {}, "rte": {}}}, "")
    with pytest.raises(TunevalError, match=r"rte.results\.json: missing"):
        suite.task_results()
    suite.summary_file.write_text("[]")
    with pytest.raises(TunevalError, match="not a tuneval eval summary"):
        suite.read()
    suite.summary_file.write_text("{not json")
    with pytest.raises(TunevalError, match="cannot read as JSON"):
        suite.read()


def test_an_lm_eval_dir_is_its_newest_results_file_here_or_one_model_directory_down(tmp_path):
    d = LmEvalDir(tmp_path / "out")
    assert not d.exists() and d.results_files() == []
    old = d.write("org__m", {"results": {"a": {}}}, {"a": [{"doc_id": 0}], "b": []}, stamp="2026-01-02T10-00-00.5")
    assert sorted(p.name for p in (tmp_path / "out" / "org__m").iterdir()) == [
        "results_2026-01-02T10-00-00.5.json", "samples_a_2026-01-02T10-00-00.5.jsonl", "samples_b_2026-01-02T10-00-00.5.jsonl"]
    new = d.write("other", {"results": {}}, {}, stamp="2026-01-03T09-00-00.1")
    assert d.signature_file == new["results"] and d.read() == {"results": {}}
    assert LmEvalDir(old["results"].parent).signature_file == old["results"]  # the model subdirectory itself
    file = LmEvalDir(old["results"])  # one results file: its samples are those with its timestamp
    assert file.samples_file("a") == old["a"] and file.read_samples("a") == [{"doc_id": 0}]
    assert file.read_samples("b") == [] and file.read_samples("c") is None
    assert d.timestamp().count(":") == 0
    old["a"].write_text("{oops\n")
    with pytest.raises(TunevalError, match="samples_a_2026-01-02T10-00-00.5.jsonl: cannot read as JSON lines"):
        file.read_samples("a")
