"""`tuneval forgetting --before/--after` over lm-eval's own output directories (written by lm-eval
0.4.13 in the test: tests/evaluate/lm_eval_runs.py), alone and mixed with tuneval's."""

from __future__ import annotations

import shutil

import pytest

from tests.evaluate.lm_eval_runs import TASKS, outputs
from tuneval.errors import TunevalError
from tuneval.jobs.forgetting import compare_dirs, load_side
from tuneval.results import ForgettingDir, LmEvalDir


@pytest.fixture
def runs(tmp_path_factory, tiny_llama_dir):
    return outputs(tmp_path_factory, tiny_llama_dir)


def test_two_lm_eval_runs_compare_pair_by_pair(runs, tmp_path):
    from tuneval.api import compare_forgetting

    before, after = LmEvalDir(runs.base).read(), LmEvalDir(runs.other).read()
    result = compare_forgetting(runs.base, LmEvalDir(runs.other).signature_file.parent, out=tmp_path / "f",
                                bootstrap_iters=200)
    assert set(result["tasks"]) == set(TASKS)
    mc = result["tasks"]["tiny_mc"]
    assert mc["metric"] == "acc" and mc["n"] == 6
    assert (mc["before"], mc["after"]) == (before["results"]["tiny_mc"]["acc,none"], after["results"]["tiny_mc"]["acc,none"])
    assert mc["delta"] == pytest.approx(mc["after"] - mc["before"]) and mc["ci_low"] <= mc["delta"] <= mc["ci_high"]
    assert result["tasks"]["tiny_gen"]["metric"] == "exact_match"
    assert result["before_label"] == str(runs.model) and result["after_label"] == str(runs.other_model)
    assert ForgettingDir(tmp_path / "f").exists() and result["html"].is_file()
    assert "tiny_mc" in result["html"].read_text()


def test_a_tuneval_suite_pairs_with_an_lm_eval_run_of_the_same_tasks(runs, tmp_path):
    from tuneval.evaluate.summary import run_plan
    from tuneval.models import load_model
    from tuneval.tasks import load_registry

    loaded = load_model(str(runs.model), precision="fp32")
    reg = load_registry(runs.tasks_dir)
    run_plan(loaded.model, loaded.tokenizer, loaded.arch, [(reg.tasks[t], None, 0) for t in TASKS],
             out_dir=tmp_path / "tv", data_dir=runs.data, bootstrap_iters=50, batch_size=4, label="tuneval-base")
    result = compare_dirs(tmp_path / "tv", runs.other, out=tmp_path / "f", iters=200)
    after = LmEvalDir(runs.other).read()["results"]
    assert result["before_label"] == "tuneval-base" and set(result["tasks"]) == set(TASKS)
    assert result["tasks"]["tiny_mc"]["after"] == after["tiny_mc"]["acc,none"]
    same = compare_dirs(runs.base, tmp_path / "tv", out=tmp_path / "g", iters=200)  # lm-eval and tuneval, one model
    assert all(t["delta"] == 0 and t["verdict"] == "unchanged" for t in same["tasks"].values())


def test_a_side_without_samples_or_results_is_refused_in_one_line(runs, tmp_path):
    (tmp_path / "bare").mkdir()
    shutil.copy(LmEvalDir(runs.base).signature_file, tmp_path / "bare")
    with pytest.raises(TunevalError, match=r"has no samples file .*rerun lm-eval with --log_samples$"):
        compare_dirs(tmp_path / "bare", runs.other, out=tmp_path / "f")
    with pytest.raises(TunevalError, match=r"neither a `tuneval eval --tasks/--suite` output \(summary\.json\) nor "
                                           r"lm-evaluation-harness output"):
        load_side(tmp_path / "nothing")
