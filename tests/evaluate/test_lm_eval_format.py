"""lm-eval 0.4's results format, both ways, against files lm-eval 0.4.13 writes in the test
(tests/evaluate/lm_eval_runs.py runs its CLI on the tiny Llama over two tiny local tasks)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.evaluate.lm_eval_runs import TASKS, outputs
from tuneval.errors import TunevalError
from tuneval.evaluate.lm_eval_format import (lm_eval_summary, paired_results, read_lm_eval, sanitize_model_name,
                                             write_lm_eval)
from tuneval.results import LmEvalDir

EXTRA_MC = {"ece", "balanced_acc"}  # tuneval reports these on every multiple-choice task; lm-eval has no such metric


@pytest.fixture
def runs(tmp_path_factory, tiny_llama_dir):
    return outputs(tmp_path_factory, tiny_llama_dir)


_SCORED: dict[str, tuple] = {}


@pytest.fixture
def tuneval_scored(runs):
    """tuneval on the base model over the same two tasks: (results per task, the rows scored, the tokenizer)."""
    if "s" not in _SCORED:
        from tuneval.evaluate.harness import run_task
        from tuneval.models import load_model
        from tuneval.tasks import load_registry, load_rows

        loaded = load_model(str(runs.model), precision="fp32")
        reg = load_registry(runs.tasks_dir)
        results = [run_task(loaded.model, loaded.tokenizer, loaded.arch, reg.tasks[name], data_dir=runs.data,
                            bootstrap_iters=100, batch_size=4, label="tiny") for name in TASKS]
        docs = {name: load_rows(reg.tasks[name], "test", runs.data) for name in TASKS}
        _SCORED["s"] = (results, docs, loaded.tokenizer)
    return _SCORED["s"]


def _write(runs, tuneval_scored, out: Path) -> dict[str, Path]:
    results, docs, tok = tuneval_scored
    return write_lm_eval(out, results, model_name=str(runs.model), model_args={"pretrained": str(runs.model)},
                         batch_size=4, device="cpu", bootstrap_iters=100, seed=1234, tokenizer=tok, max_length=1024,
                         docs=docs)


def _lm(d: Path) -> tuple[dict, dict[str, list[dict]]]:
    out = LmEvalDir(d)
    return out.read(), {t: out.read_samples(t) for t in TASKS}


def test_lm_eval_own_helpers_find_tuneval_files(runs, tuneval_scored, tmp_path):
    from lm_eval.utils import (get_file_datetime, get_file_task_name, get_latest_filename, get_results_filenames,
                               get_sample_results_filenames)

    paths = _write(runs, tuneval_scored, tmp_path / "out")
    for d in (tmp_path / "out", runs.base):  # tuneval's and lm-eval's directories, seen the same way
        files = [str(p) for p in sorted(d.rglob("*")) if p.is_file()]
        results, samples = get_results_filenames(files), get_sample_results_filenames(files)
        assert len(results) == 1 and len(samples) == 2
        assert sorted(get_file_task_name(Path(f).name) for f in samples) == sorted(TASKS)
        assert {get_file_datetime(Path(f).name) for f in samples} == {get_file_datetime(Path(results[0]).name)[:-5]}
        assert get_latest_filename(results) == str(LmEvalDir(d).signature_file)
        assert Path(results[0]).parent.name == sanitize_model_name(str(runs.model))
    assert str(paths["results"]) in get_results_filenames([str(p) for p in paths.values()])


def test_keys_equal_what_lm_eval_wrote_for_the_same_tasks(runs, tuneval_scored, tmp_path):
    _write(runs, tuneval_scored, tmp_path / "out")
    (ours, our_samples), (theirs, their_samples) = _lm(tmp_path / "out"), _lm(runs.base)
    assert set(ours) == set(theirs)
    for key in ("configs", "versions", "n-shot", "higher_is_better", "n-samples", "task_hashes"):
        assert set(ours[key]) == set(theirs[key]) == set(TASKS), key
    assert set(ours["config"]) >= {"model", "model_args", "batch_size", "device", "limit", "bootstrap_iters"}
    assert set(ours["config"]) <= set(theirs["config"])
    for task in TASKS:
        extra = EXTRA_MC if TASKS[task]["output_type"] == "multiple_choice" else set()
        assert set(ours["results"][task]) - set(theirs["results"][task]) == {f"{m}{s},none" for m in extra
                                                                           for s in ("", "_stderr")}
        assert set(theirs["results"][task]) <= set(ours["results"][task])
        assert set(ours["n-samples"][task]) == set(theirs["n-samples"][task]) == {"original", "effective"}
        assert set(ours["higher_is_better"][task]) - set(theirs["higher_is_better"][task]) == extra
        for mine, lm in zip(our_samples[task], their_samples[task], strict=True):
            assert set(mine) - set(lm) == extra and set(lm) <= set(mine)
            assert set(mine["arguments"]) == set(lm["arguments"])
            assert [set(a) for a in mine["arguments"].values()] == [set(a) for a in lm["arguments"].values()]
            assert mine["filter"] == lm["filter"] == "none" and set(lm["metrics"]) <= set(mine["metrics"])
        shared = {"task", "output_type", "doc_to_text", "doc_to_target", "num_fewshot", "metric_list",
                  "target_delimiter", "fewshot_delimiter", "description", "repeats", "metadata", "test_split"}
        assert shared <= set(ours["configs"][task]) & set(theirs["configs"][task])


def test_values_and_hashes_equal_lm_eval_on_the_same_model(runs, tuneval_scored, tmp_path):
    """Same model, same prompts: the same docs, prompts and targets (hashes), log-likelihoods, scores."""
    _write(runs, tuneval_scored, tmp_path / "out")
    (ours, our_samples), (theirs, their_samples) = _lm(tmp_path / "out"), _lm(runs.base)
    assert ours["task_hashes"] == theirs["task_hashes"]
    for task in TASKS:
        for key in theirs["results"][task]:
            if "_stderr" not in key:
                assert ours["results"][task][key] == pytest.approx(theirs["results"][task][key]), (task, key)
        assert ours["n-samples"][task] == theirs["n-samples"][task] and ours["n-shot"][task] == theirs["n-shot"][task]
        for mine, lm in zip(our_samples[task], their_samples[task]):
            assert (mine["doc_id"], mine["doc"], mine["target"]) == (lm["doc_id"], lm["doc"], lm["target"])
            assert [mine[h] for h in ("doc_hash", "prompt_hash", "target_hash")] == [lm[h] for h in
                                                                                   ("doc_hash", "prompt_hash", "target_hash")]
            assert mine["arguments"] == lm["arguments"] if task == "tiny_mc" else \
                mine["arguments"]["gen_args_0"]["arg_0"] == lm["arguments"]["gen_args_0"]["arg_0"]
            for m in lm["metrics"]:
                assert mine[m] == lm[m], (task, m)
        if TASKS[task]["output_type"] == "multiple_choice":
            for mine, lm in zip(our_samples[task], their_samples[task]):
                assert [float(x[0]) for x in mine["filtered_resps"]] == pytest.approx(
                    [float(x[0]) for x in lm["filtered_resps"]], abs=1e-4)
                assert [x[1] for x in mine["filtered_resps"]] == [x[1] for x in lm["filtered_resps"]]


def test_reading_lm_eval_output_gives_its_numbers_and_pairable_records(runs):
    for where in (runs.base, LmEvalDir(runs.base).signature_file.parent, LmEvalDir(runs.base).signature_file):
        results = read_lm_eval(where)
        assert set(results) == set(TASKS)
    data, samples = _lm(runs.base)
    mc, gen = results["tiny_mc"], results["tiny_gen"]
    assert mc["metrics"] == {"acc": data["results"]["tiny_mc"]["acc,none"],
                             "acc_norm": data["results"]["tiny_mc"]["acc_norm,none"]}
    assert [s["metric"] for s in mc["metric_list"]] == ["acc", "acc_norm"] and mc["primary_metric"] == "acc"
    assert [e["id"] for e in mc["examples"]] == [r["doc"]["idx"] for r in samples["tiny_mc"]]  # tuneval's id rule
    assert [e["acc"] for e in mc["examples"]] == [r["acc"] for r in samples["tiny_mc"]]
    assert [e["gold"] for e in mc["examples"]] == [r["doc"]["label"] for r in samples["tiny_mc"]]
    assert gen["primary_metric"] == "exact_match" and gen["examples"][0]["references"] == ["fine thanks"]
    assert [e["prediction"] for e in gen["examples"]] == [r["filtered_resps"][0] for r in samples["tiny_gen"]]


def test_tuneval_reads_back_what_it_wrote(runs, tuneval_scored, tmp_path):
    _write(runs, tuneval_scored, tmp_path / "out")
    back = read_lm_eval(tmp_path / "out")
    for r in tuneval_scored[0]:
        b = back[r["task"]]
        assert [e["id"] for e in b["examples"]] == [e["id"] for e in r["examples"]]
        assert [e["prompt"] for e in b["examples"]] == [e["prompt"] for e in r["examples"]]
        assert {k: b["metrics"][k] for k in b["metrics"]} == pytest.approx({k: r["metrics"][k] for k in b["metrics"]})
        assert b["lm_eval"]["unpaired_metrics"] == []


def test_without_samples_the_numbers_show_and_pairing_says_why_not(runs, tmp_path):
    only = tmp_path / "no-samples"
    only.mkdir()
    shutil.copy(LmEvalDir(runs.base).signature_file, only)
    results = read_lm_eval(only)
    assert results["tiny_mc"]["examples"] == [] and results["tiny_mc"]["metric_list"] == []
    summary = lm_eval_summary(only)
    row = summary["tasks"]["tiny_mc"]
    data = json.loads(LmEvalDir(runs.base).signature_file.read_text())
    assert row["ci_low"] is None and row["stderr"] == data["results"]["tiny_mc"]["acc_stderr,none"]
    with pytest.raises(TunevalError, match=r"no-samples.*task 'tiny_(mc|gen)' has no samples file.*--log_samples"):
        paired_results(only)
    (tmp_path / "x").mkdir()
    with pytest.raises(TunevalError, match="no lm-eval results here"):
        read_lm_eval(tmp_path / "x")  # nothing there yet
    (tmp_path / "x" / "m").mkdir()  # a model subdirectory, found one level down
    (tmp_path / "x" / "m" / "results_2026.json").write_text("[]")
    with pytest.raises(TunevalError, match=r"results_2026\.json: not lm-evaluation-harness results"):
        read_lm_eval(tmp_path / "x")


def test_a_filtered_task_is_written_per_filter_as_lm_eval_logs_it(tmp_path):
    from tuneval.evaluate.lm_eval_format import write_lm_eval

    examples = [{"id": i, "prompt": f"Q{i}", "references": ["(A)"], "raw_output": f" so (A) {i}",
                 "prediction": f"so (A) {i}", "filtered": {"strict-match": "[invalid]", "flexible-extract": "(A)"},
                 "exact_match,strict-match": 0.0, "exact_match,flexible-extract": 1.0} for i in range(3)]
    r = {"task": "bbh_zeroshot_x", "output_type": "generate_until", "num_examples": 3, "num_fewshot": 0,
         "higher_is_better": {"exact_match,flexible-extract": True, "exact_match,strict-match": True},
         "metrics": {"exact_match,flexible-extract": 1.0, "exact_match,strict-match": 0.0},
         "bootstrap": {}, "generation": {"until": ["\n\n"], "max_new_tokens": 8}, "examples": examples}
    paths = write_lm_eval(tmp_path, [r], model_name="m")
    results = json.loads(paths["results"].read_text())
    entry = results["results"]["bbh_zeroshot_x"]
    assert entry["exact_match,flexible-extract"] == 1.0 and entry["exact_match,strict-match"] == 0.0
    assert "exact_match,none" not in entry and results["higher_is_better"]["bbh_zeroshot_x"] == {"exact_match": True}
    samples = [json.loads(line) for line in paths["bbh_zeroshot_x"].read_text().splitlines()]
    assert len(samples) == 6 and {s["filter"] for s in samples} == {"strict-match", "flexible-extract"}
    flexible = [s for s in samples if s["filter"] == "flexible-extract"]
    assert [s["filtered_resps"] for s in flexible] == [["(A)"]] * 3 and all(s["exact_match"] == 1.0 for s in flexible)
    assert all(s["resps"] == [[f" so (A) {s['doc_id']}"]] for s in samples)
