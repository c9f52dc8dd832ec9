"""A task's rows (tasks/rows.py): per-file options, line patterns, label words; bad rows and bad
task YAMLs named by file:line or file and key."""

import json

import pytest

from tests.data.fixtures import write_task_data
from tuneval.data.sources import read_file
from tuneval.errors import TunevalError
from tuneval.tasks import available_tasks, get_task, load_registry, load_rows
from tuneval.tasks.prompts import placeholders
from tuneval.tasks.rows import _read_one, _read_parallel

CLASSIFICATION = {"sst2": ["negative", "positive"], "rte": ["yes", "no"],
                  "cb": ["Yes", "No", "It's impossible to say"],
                  "trec": ["description", "entity", "abbreviation", "human", "numeric", "location"],
                  "agnews": ["World", "Sports", "Business", "Science/Tech"]}


def read_task(path):
    """The one task a user's YAML file defines."""
    reg = load_registry(path)
    return next(t for t in reg.tasks.values() if t.source == str(path))


def test_benchmark_line_pattern_uses_the_same_reader(tmp_path):
    """A benchmark YAML's line_pattern and the training formats read lines alike (one reader)."""
    from types import SimpleNamespace

    t = tmp_path / "test.txt"
    t.write_text("DESC:manner How did it go ?\nLOC:city Where is it ?\n")
    task = SimpleNamespace(line_pattern=r"^(?P<coarse_label>[A-Z]+):(?P<fine_label>\S+)\s+(?P<text>\S.*?)\s*$",
                           columns=None, source="trec.yaml")
    assert _read_one(t, task, {}) == read_file(t, format="trec")
    t.write_text("DESC:manner How ?\nnot a question line\n")
    with pytest.raises(TunevalError, match=r"test.txt:2: expected a line matching line_pattern"):
        _read_one(t, task, {})


def test_builtin_classification_tasks_are_flan_style():
    assert set(CLASSIFICATION) | {"dialogsum", "self_instruct"} <= set(available_tasks())
    for name, words in CLASSIFICATION.items():
        task = get_task(name)
        assert len(task.templates.prompts) >= 5, name
        assert list(task.label_names.values()) == words
        assert task.templates.target == "{answer}"
        assert all("options" in placeholders(p) for p in task.templates.prompts), name
        assert task.options_text == "OPTIONS:\n" + "\n".join(f"- {w}" for w in words)
        assert "options" not in task.input_fields and "answer" not in task.input_fields
    assert len(get_task("self_instruct").templates.prompts) >= 5


def test_label_values_become_words_and_options(tiny_data_dir):
    root = write_task_data(tiny_data_dir)
    sst2 = get_task("sst2")
    rows = load_rows(sst2, "train", root)
    raw = (root / "glue" / "sst2" / "train.txt").read_text().splitlines()
    assert [r["answer"] for r in rows] == [("positive" if line[0] == "1" else "negative") for line in raw]
    prompt, target = sst2.templates.render(rows[0], 0)
    assert prompt.endswith("negative or positive?\nOPTIONS:\n- negative\n- positive") and target == rows[0]["answer"]
    dev = load_rows(sst2, "validation", root)  # a tsv with a header row
    assert len(dev) == 6 and {r["answer"] for r in dev} <= {"negative", "positive"}
    trec = load_rows(get_task("trec"), "train", root)
    assert {r["answer"] for r in trec} <= set(CLASSIFICATION["trec"]) and len(trec) == 24
    si = get_task("self_instruct")
    assert len(load_rows(si, "train", root)) == 10 and len(load_rows(si, "validation", root)) == 100


def test_unknown_label_value_names_file_and_line(tiny_data_dir):
    root = write_task_data(tiny_data_dir)
    path = root / "superglue" / "rte" / "train.jsonl"
    lines = path.read_text().splitlines()
    lines[4] = json.dumps({"premise": "p", "hypothesis": "h", "label": "maybe", "idx": 4})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TunevalError, match=rf"{path}:5: field 'label' has value 'maybe', not one of label_names "
                                           r"\(entailment, not_entailment\)"):
        load_rows(get_task("rte"), "train", root)


def write_task(tmp_path, text):
    d = tmp_path / "tasks"
    d.mkdir(exist_ok=True)
    (d / "topic.yaml").write_text(text)
    return d / "topic.yaml"


BASE = "task: topic\ntemplates: ['{text}\\n{options}']\ntarget: '{answer}'\n"


def test_rename_rows_slice_and_numeric_label_names(tmp_path):
    root = tmp_path / "d"
    (root / "news").mkdir(parents=True)
    (root / "news" / "test.csv").write_text(
        "Class Index,Title,Description\n" + "".join(f"{1 + i % 2},t{i},body {i}\n" for i in range(10)))
    spec = ("data_files:\n  train: {path: news/test.csv, rows: '3:', rename: {Class Index: label, Description: text}}\n"
            "  validation: {path: news/test.csv, rows: ':3', rename: {Class Index: label, Description: text}}\n"
            "label_field: label\nlabel_names: {1: World, 2: Sports}\n" + BASE)
    task = read_task(write_task(tmp_path, spec))
    train, val = load_rows(task, "train", root), load_rows(task, "validation", root)
    assert [r["text"] for r in val] == ["body 0", "body 1", "body 2"]
    assert [r["text"] for r in train] == [f"body {i}" for i in range(3, 10)]
    assert [r["answer"] for r in val] == ["World", "Sports", "World"]
    assert train[0]["_where"].endswith("test.csv:5")  # line numbers still point into the file


@pytest.mark.parametrize("text,message", [
    ("label_field: label\n" + BASE, r"topic.yaml: 'label_field' and 'label_names' go together"),
    (BASE, r"topic.yaml: the templates use \['answer', 'options'\], which need 'label_field' and 'label_names'"),
    ("label_field: label\nlabel_names: {0: ''}\n" + BASE, r"topic.yaml: label_names.0 must be a non-empty word"),
    ("data_files:\n  train: {path: a.txt, fromat: trec}\nlabel_field: l\nlabel_names: {a: b}\n" + BASE,
     r"topic.yaml: data_files.train: unknown key\(s\) \['fromat'\]"),
    ("data_files:\n  train: 3\nlabel_field: l\nlabel_names: {a: b}\n" + BASE,
     r"topic.yaml: data_files.train must be a path, a list of paths or a mapping"),
    ("files:\n  train: a.jsonl\n" + BASE, r"topic.yaml: unknown key\(s\) \['files'\] \('files' is now 'data_files'\)"),
    ("task: topic\ntarget: '{x}'\n", r"topic.yaml: 'target'/'eval_template' need 'templates'"),
    ("task: topic\ndoc_to_target: x\n", r"topic.yaml: a task needs FLAN 'templates'"),
])
def test_bad_task_yaml_names_file_and_key(tmp_path, text, message):
    with pytest.raises(TunevalError, match=message):
        read_task(write_task(tmp_path, text))


def test_bad_rows_slice_is_an_error(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    (root / "a.jsonl").write_text('{"text": "x", "label": "a"}\n')
    path = write_task(tmp_path, "data_files:\n  train: {path: a.jsonl, rows: 'first 10'}\nlabel_field: label\n"
                             "label_names: {a: A}\n" + BASE)
    with pytest.raises(TunevalError, match=r"topic.yaml: data_files.train: rows must be a slice like '1600:'"):
        load_rows(read_task(path), "train", root)


def test_benchmark_readers_refuse_binary_files(tmp_path):
    from types import SimpleNamespace

    task = SimpleNamespace(line_pattern=r"^(?P<text>.+)$", columns=None, source="t.yaml")
    (tmp_path / "src.txt").write_bytes(b"one\ntwo\n\xff\n")
    with pytest.raises(TunevalError, match=r"src.txt:3: not UTF-8 text \(byte 0xff\)"):
        _read_one(tmp_path / "src.txt", task, {})
    (tmp_path / "ref.txt").write_text("one\ntwo\nthree\n")
    with pytest.raises(TunevalError, match=r"src.txt:3: not UTF-8 text"):
        _read_parallel(tmp_path, {"ref": "ref.txt", "src": "src.txt"}, task, "test")


