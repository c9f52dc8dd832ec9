"""Benchmark task YAMLs: include, task_list, suites, and errors that name the file."""

from pathlib import Path

import pytest

from tuneval.errors import TunevalError
from tuneval.tasks import prompts as tpl
from tuneval.tasks.registry import BUILTIN_DIR, load_registry, plan

MC = 'output_type: multiple_choice\nvalidation_split: validation\ndoc_to_choice: ["no", "yes"]\ndoc_to_target: label\n'


def write(d: Path, name: str, text: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text)
    return d / name


def test_builtin_tasks_groups_and_suites():
    reg = load_registry()
    for name in ("dialogsum", "samsum", "sst2", "cola", "boolq", "cb", "copa", "rte", "wic", "wsc", "trec", "agnews",
                 "wmt22_de_en", "wmt22_en_de", "self_instruct"):
        assert name in reg.tasks, name
    subjects = reg.groups["mmlu"]
    assert len(subjects) == 57 and all(s.startswith("mmlu_") for s in subjects)
    sizes = {c: len(reg.groups[f"mmlu_{c}"]) for c in ("stem", "humanities", "social_sciences", "other")}
    assert sizes == {"stem": 19, "humanities": 13, "social_sciences": 12, "other": 13}  # lm-eval's grouping
    anatomy = reg.tasks["mmlu_anatomy"]
    assert anatomy.data_files == {"test": "mmlu/test/anatomy_test.csv", "dev": "mmlu/dev/anatomy_dev.csv"}
    assert anatomy.category == "stem" and anatomy.eval_split == "test" and anatomy.sampler == "first_n"
    assert tpl.description(anatomy, {}) == "The following are multiple choice questions (with answers) about anatomy.\n\n"
    assert set(reg.suites) >= {"glue", "superglue", "mmlu", "forgetting"}
    assert reg.tasks["cb"].metrics == [{"metric": "acc"}, {"metric": "f1", "average": "macro"}]
    assert reg.tasks["cola"].primary_metric == "mcc"


def test_include_merges_base_local_keys_win_and_builtin_bases_resolve(tmp_path):
    d = tmp_path / "tasks"
    write(d, "_base.yaml", MC + 'doc_to_text: "base {{x}}"\ntarget_delimiter: "|"\nmetric_list: [acc]\n')
    write(d, "mine.yaml", 'include: _base.yaml\ntask: mine\ndoc_to_text: "mine {{x}}"\n')
    write(d, "glued.yaml", 'include: _superglue.yaml\ntask: glued\ndoc_to_text: "{{x}}"\ndoc_to_choice: [a, b]\n'
                           'doc_to_target: label\ndata_files: {validation: g/val.jsonl}\n')
    reg = load_registry(d)
    mine = reg.tasks["mine"]
    assert mine.doc_to_text == "mine {{x}}" and mine.target_delimiter == "|" and mine.source.endswith("mine.yaml")
    glued = reg.tasks["glued"]
    assert glued.group == "superglue" and glued.output_type == "multiple_choice" and glued.validation_split == "validation"
    assert "glued" in reg.groups["superglue"]


def test_task_list_makes_one_task_per_entry(tmp_path):
    d = tmp_path / "tasks"
    write(d, "_t.yaml", MC + 'task: "fam_{{ kind }}"\ngroup: fam\ndata_files: {validation: "fam/{{ kind }}.jsonl"}\n'
                        'doc_to_text: "{{ kind }}: {{ q }}"\n')
    write(d, "fam.yaml", "include: _t.yaml\ntask_list:\n  - {kind: a, category: x}\n  - {kind: b, category: y}\n")
    reg = load_registry(d)
    assert reg.groups["fam"] == ["fam_a", "fam_b"] and reg.groups["fam_x"] == ["fam_a"]
    b = reg.tasks["fam_b"]
    assert b.data_files == {"validation": "fam/b.jsonl"}
    assert tpl.doc_to_text(b, {"q": "why", "_where": "f:1"}) == "b: why"


def test_user_task_replaces_builtin(tmp_path):
    d = tmp_path / "tasks"
    write(d, "copa.yaml", MC + "task: copa\ndoc_to_text: mine\n")
    assert load_registry(d).tasks["copa"].doc_to_text == "mine"


@pytest.mark.parametrize("text, needles", [
    (MC + "task: t\ndoc_to_text: x\ndoc_to_txt: y\n", ["unknown key(s) ['doc_to_txt']"]),
    (MC + "task: t\ndoc_to_text: x\nmetric_list: [accuracy]\n", ["unknown metric 'accuracy'", "acc_norm"]),
    (MC + "task: t\ndoc_to_text: x\nmetric_list: [{metric: f1, avg: macro}]\n", ["metric 'f1' has no option(s) ['avg']"]),
    (MC + "task: t\n", ["a multiple_choice task needs 'doc_to_text'"]),
    (MC.replace("multiple_choice", "ranking") + "task: t\ndoc_to_text: x\n", ["output_type must be one of"]),
    (MC + "task: t\ndoc_to_text: x\ngeneration_kwargs: {max_tokens: 3}\n", ["['max_tokens'] in generation_kwargs"]),
    (MC + "task: t\ndoc_to_text: x\nfewshot_config: {sampler: best}\n", ["sampler must be one of"]),
    ("task: [unclosed\n", ["not valid YAML"]),
])
def test_bad_task_files_name_the_file(tmp_path, text, needles):
    path = write(tmp_path / "tasks", "bad.yaml", text)
    with pytest.raises(TunevalError) as e:
        load_registry(tmp_path / "tasks")
    assert str(e.value).startswith(str(path)), str(e.value)
    for needle in needles:
        assert needle in str(e.value)


def test_bad_key_in_an_included_file_names_that_file(tmp_path):
    d = tmp_path / "tasks"
    base = write(d, "_base.yaml", MC + "promt: oops\n")
    write(d, "t.yaml", "include: _base.yaml\ntask: t\ndoc_to_text: x\n")
    with pytest.raises(TunevalError, match=r"unknown key\(s\) \['promt'\]") as e:
        load_registry(d)
    assert str(e.value).startswith(str(base))


def test_missing_include_and_cycles(tmp_path):
    d = tmp_path / "tasks"
    write(d, "t.yaml", "include: _nope.yaml\ntask: t\n")
    with pytest.raises(TunevalError, match="include '_nope.yaml' not found"):
        load_registry(d)
    (d / "t.yaml").unlink()
    write(d, "a.yaml", "include: b.yaml\n")
    write(d, "b.yaml", "include: a.yaml\n")
    with pytest.raises(TunevalError, match="include cycle"):
        load_registry(d)


def test_suites_and_plan_limits(tmp_path):
    d = tmp_path / "tasks"
    write(d, "mine.yaml", MC + "task: mine\ndoc_to_text: x\nnum_fewshot: 2\n")
    write(d, "s.yaml", "suite: small\ntasks:\n  - {task: mine, limit: 7}\n  - {task: copa, num_fewshot: 1}\n")
    reg = load_registry(d)
    got = [(t.name, lim, k) for t, lim, k in plan(reg, suite="small")]
    assert got == [("mine", 7, 2), ("copa", None, 1)]
    got = [(t.name, lim, k) for t, lim, k in plan(reg, suite="small", limit=3, num_fewshot=0)]
    assert got == [("mine", 3, 0), ("copa", 3, 0)]
    assert len(plan(reg, tasks=["mmlu", "mmlu_anatomy"])) == 57
    with pytest.raises(TunevalError, match="unknown task 'copaa'"):
        plan(reg, tasks=["copaa"])
    with pytest.raises(TunevalError, match="unknown suite 'nope'"):
        plan(reg, suite="nope")
    bad = write(d, "s2.yaml", "suite: other\ntasks:\n  - {task: mine, limt: 3}\n")
    with pytest.raises(TunevalError, match=r"unknown key\(s\) \['limt'\]") as e:
        load_registry(d)
    assert str(e.value).startswith(str(bad))


def test_builtin_prompts_match_lm_eval():
    """Our COPA and WSC templates give the strings lm-eval's Python prompt functions give."""
    pytest.importorskip("lm_eval")
    import importlib.util

    import lm_eval

    root = Path(lm_eval.__file__).parent / "tasks" / "super_glue"

    def module(path):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    copa_utils, wsc_utils = module(root / "copa" / "utils.py"), module(root / "wsc" / "preprocess_wsc.py")
    reg = load_registry()
    copa, wsc = reg.tasks["copa"], reg.tasks["wsc"]
    doc = {"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.",
           "choice2": "Water flowed from the spout.", "question": "effect", "label": 1, "_where": "x:1"}
    assert tpl.doc_to_text(copa, doc) == copa_utils.doc_to_text(doc)
    assert tpl.doc_to_choice(copa, doc) == copa_utils.doc_to_choice(doc)
    flat = {"text": "Mr. Moncrieff visited Chester 's luxurious New York apartment , thinking that it belonged to his son Edward .",
            "span1_index": 0, "span1_text": "Mr. Moncrieff", "span2_index": 9, "span2_text": "it", "label": False}
    official = {"text": flat["text"], "target": {k: flat[k] for k in flat if k.startswith("span")}, "label": False, "_where": "x:2"}
    assert tpl.doc_to_text(wsc, official) == wsc_utils.default_doc_to_text(flat)
    assert tpl.doc_to_text(wsc, {**flat, "_where": "x:3"}) == wsc_utils.default_doc_to_text(flat)


def test_builtin_dir_has_no_stray_files():
    names = {p.name for p in BUILTIN_DIR.glob("*.yaml")}
    assert "mmlu.yaml" in names and "_mmlu.yaml" in names and len([n for n in names if n.startswith("mmlu_")]) == 0


def test_the_catalogue_lists_tasks_groups_and_suites_with_their_metrics(tmp_path):
    """`tuneval tasks` (api.list_tasks): the BBH families with lm-eval's metric,filter names, a user's task too."""
    from tuneval.api import list_tasks

    (tmp_path / "mine.yaml").write_text("task: mine_gen\ndoc_to_text: 'Q: {{q}}'\ndoc_to_target: a\n"
                                        "filter_list: [{name: last, filter: [{function: regex, regex_pattern: '(\\d+)', "
                                        "group_select: -1}]}]\n")
    rows = {r["name"]: r for r in list_tasks(tasks_dir=tmp_path)}
    assert rows["mine_gen"]["metrics"] == ["exact_match,last"] and rows["mine_gen"]["families"] == ["scoring"]
    assert rows["bbh_zeroshot_snarks"]["metrics"] == ["exact_match,flexible-extract", "exact_match,strict-match"]
    assert rows["bbh_cot_fewshot_snarks"]["num_fewshot"] == 3 and rows["bbh_cot_fewshot_snarks"]["evaluation_only"]
    assert rows["bbh"]["kind"] == "group" and rows["bbh"]["tasks"] == 27
    assert rows["mmlu"]["kind"] in ("group", "suite") and rows["dialogsum"]["families"] == ["template x6"]
    assert {r["kind"] for r in list_tasks("forgetting")} == {"suite"}
    assert [r["name"] for r in list_tasks("bbh_fewshot_w*")] == ["bbh_fewshot_web_of_lies", "bbh_fewshot_word_sorting"]


def test_tuneval_tasks_prints_a_plain_table(capsys):
    from tuneval.cli import main

    with pytest.raises(SystemExit) as e:
        main(["tasks", "bbh_zeroshot_s*"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["name", "kind", "output", "type", "families", "/", "tasks", "metrics"]
    assert "bbh_zeroshot_sports_understanding                 task" in out and "exact_match,strict-match" in out
    with pytest.raises(SystemExit):
        main(["tasks", "bbh", "--json"])
    assert '"kind": "group"' in capsys.readouterr().out
