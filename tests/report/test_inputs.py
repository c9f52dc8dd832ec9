"""`tuneval report` recognises each saved result by its files, in any mix, and names what it cannot read."""

import json
import shutil

import pytest

from tuneval.errors import TunevalError
from tuneval.report.inputs import load_inputs
from tests.report.synthetic import eval_results, make_examples, write_run


def test_a_demo_brings_its_evaluations_in_table_order_and_its_runs(saved):
    inputs = load_inputs([saved["demo"]])
    assert [e.label for e in inputs.evals] == ["original", "full", "lora"]
    assert [e.path.name for e in inputs.evals] == ["eval-original", "eval", "eval"]  # runs keep theirs in RUN/eval
    assert [r.label for r in inputs.runs] == ["full", "lora"]
    assert all(e.results["examples"] for e in inputs.evals)
    assert inputs.runs[0].config["method"] == "full" and inputs.runs[0].log[0]["step"] == 1
    assert inputs.demos[0]["model"] == "smollm2-135m-instruct" and "rows" not in inputs.demos[0]


def test_each_kind_alone_and_the_same_path_twice(saved):
    inputs = load_inputs([saved["sweep"], saved["forgetting"], saved["forgetting"] / "forgetting.json",
                          saved["demo"] / "lora", saved["demo"] / "eval-original"])
    assert [s.label for s in inputs.sweeps] == ["sweep"]
    assert len(inputs.forgettings) == 1  # the directory and its file are one input
    assert inputs.forgettings[0].before["tasks"]["sst2"]["ci_low"] < inputs.forgettings[0].before["tasks"]["sst2"]["value"]
    assert [r.label for r in inputs.runs] == ["lora"] and [e.label for e in inputs.evals] == ["lora", "original"]
    suite = saved["forgetting"] / "before"
    assert load_inputs([suite]).suites[0].label == "smollm2-135m-instruct"


def test_two_demos_get_distinct_labels(saved, tmp_path):
    other = tmp_path / "second"
    shutil.copytree(saved["demo"], other / "demo")
    inputs = load_inputs([saved["demo"], other / "demo"])
    labels = [e.label for e in inputs.evals]
    assert labels[3:] == ["second/demo/original", "second/demo/full", "second/demo/lora"] and len(set(labels)) == 6
    assert [r.label for r in inputs.runs][2:] == ["second/demo/full", "second/demo/lora"]  # a run and its scores match


def test_a_demo_row_without_its_directory_still_shows_its_scores(saved, tmp_path):
    demo = tmp_path / "demo"
    shutil.copytree(saved["demo"], demo)
    shutil.rmtree(demo / "eval-original")
    inputs = load_inputs([demo])
    original = inputs.evals[0]
    assert original.label == "original" and "examples" not in original.results
    assert original.results["metrics"]["rouge1"] > 0


def test_a_torn_last_log_line_is_skipped(tmp_path):
    run = write_run(tmp_path / "run", "lora", steps=4, eval_every=2)
    with open(run / "train_log.jsonl", "a") as f:
        f.write('{"step": 5, "lo')
    assert [r.get("step") for r in load_inputs([run]).runs[0].log][-1] == 4


def test_a_benchmark_evaluation_inside_a_run_is_not_a_sample_source(tmp_path):
    run = write_run(tmp_path / "run", "lora", steps=4)
    (run / "eval").mkdir()
    (run / "eval" / "results.json").write_text(json.dumps({"task": "copa", "primary_metric": "acc",
                                                           "metrics": {"acc": 0.5}, "examples": []}))
    inputs = load_inputs([run])
    assert len(inputs.runs) == 1 and inputs.evals == []


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "not a tuneval run, evaluation, demo, sweep or forgetting directory"),
    (lambda p: None, "no such file or directory"),
    (lambda p: (p.mkdir(), (p / "config.yaml").write_text("model: x\nmethod: lora\n")), "has not finished"),
    (lambda p: (p.mkdir(), (p / "results.json").write_text('{"primary_metric": "acc", "metrics": {"acc": 1}}')),
     "one benchmark task's results"),
    (lambda p: (p.mkdir(), (p / "sweep.json").write_text("{not json")), "cannot read as JSON"),
    (lambda p: (p.mkdir(), (p / "summary.json").write_text("[]")), "not a tuneval eval summary"),
])
def test_unreadable_inputs_are_named(tmp_path, make, message):
    path = tmp_path / "x"
    make(path)
    with pytest.raises(TunevalError, match=message) as e:
        load_inputs([path])
    assert str(path) in str(e.value)


def test_a_plain_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(TunevalError, match="not a tuneval result file"):
        load_inputs([tmp_path / "notes.txt"])
    with pytest.raises(TunevalError, match="at least one"):
        load_inputs([])


def test_a_single_evaluation_directory(tmp_path):
    res = eval_results("mine", make_examples(3), 0.5, seed=1, adapter=None)
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "results.json").write_text(json.dumps(res))
    assert [e.label for e in load_inputs([tmp_path / "ev"]).evals] == ["mine"]


def test_lm_eval_output_is_a_suite_with_intervals_from_its_samples(tmp_path_factory, tiny_llama_dir, tmp_path):
    """lm-eval 0.4.13's own --output_path directories (written in the test), any of the three paths to them."""
    from tests.evaluate.lm_eval_runs import outputs
    from tuneval.api import html_report
    from tuneval.results import LmEvalDir

    runs = outputs(tmp_path_factory, tiny_llama_dir)
    shutil.copytree(runs.other, tmp_path / "other")
    file = LmEvalDir(tmp_path / "other").signature_file
    inputs = load_inputs([runs.base, file])
    assert [s.label for s in inputs.suites] == [str(runs.model), str(runs.other_model)]
    data = json.loads(file.read_text())
    row = inputs.suites[1].summary["tasks"]["tiny_mc"]
    assert row["value"] == data["results"]["tiny_mc"]["acc,none"] and row["ci_low"] <= row["value"] <= row["ci_high"]
    for sample in file.parent.glob("samples_*.jsonl"):
        sample.unlink()
    row = load_inputs([file.parent]).suites[0].summary["tasks"]["tiny_mc"]  # no samples: the number, no interval
    assert row["ci_low"] is None and row["stderr"] == data["results"]["tiny_mc"]["acc_stderr,none"]
    html = html_report([runs.base, file.parent], tmp_path / "r.html").read_text()
    assert "tiny_mc" in html and "tiny_gen" in html and str(runs.other_model) in html
    (tmp_path / "x.json").write_text('{"results": 1}')
    with pytest.raises(TunevalError, match=r"x\.json: not a tuneval result file .* an lm-eval results_<timestamp>\.json"):
        load_inputs([tmp_path / "x.json"])
