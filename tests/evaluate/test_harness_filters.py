"""A task with a filter_list, written in the test (a GSM8K-style task in YAML alone), scored end to end on the
tiny Llama: the raw generation and each filter's answer in every record, metrics named `metric,filter`."""

from __future__ import annotations

import json

import pytest

from tests.tasks.test_bbh import DATA  # read before the fixtures clear TUNEVAL_DATA_DIR
from tests.tasks.test_filters import GSM_YAML
from tuneval.evaluate.harness import run_task
from tuneval.models import load_model
from tuneval.tasks.filters import apply_filters
from tuneval.tasks.registry import tasks_in_file


def test_a_gsm8k_style_task_scores_every_filter(tiny_llama_dir, tmp_path):
    data = tmp_path / "data"
    (data / "gsm").mkdir(parents=True)
    rows = [{"question": f" What is {a} + {b}? ", "answer": f"{a} + {b} = {a + b}\n#### {a + b}"} for a, b in
            [(1, 2), (30, 12), (7, 7)]]
    (data / "gsm" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "gsm.yaml").write_text(GSM_YAML)
    (task,) = tasks_in_file(tmp_path / "gsm.yaml")
    loaded = load_model(str(tiny_llama_dir))
    res = run_task(loaded.model, loaded.tokenizer, loaded.arch, task, data_dir=data, bootstrap_iters=10)
    assert res["primary_metric"] == "exact_match,strict-match"
    assert set(res["metrics"]) == {"exact_match,strict-match", "exact_match,flexible-extract"}
    assert res["prompt"]["filter_list"] == ["strict-match", "flexible-extract"]
    for ex, row in zip(res["examples"], rows):
        assert ex["references"] == [row["answer"].split("####")[1].strip()]  # split_answer made `final`
        assert ex["prompt"].startswith(f"Question: {row['question'].strip()}\nAnswer:")  # strip ran on question
        cut = ex["raw_output"]
        for stop in task.until:
            cut = cut.split(stop)[0]
        assert ex["filtered"] == apply_filters(task.filters, cut, {})
        for name, answer in ex["filtered"].items():
            assert ex[f"exact_match,{name}"] == float(str(answer).replace(",", "").lower() == ex["references"][0])
    for name in ("strict-match", "flexible-extract"):
        values = [ex[f"exact_match,{name}"] for ex in res["examples"]]
        assert res["metrics"][f"exact_match,{name}"] == sum(values) / len(values)
        assert f"exact_match,{name}" in res["bootstrap"] and res["higher_is_better"][f"exact_match,{name}"]


def test_bbh_zeroshot_through_the_cli(tiny_llama_dir, tmp_path):
    """`eval --tasks bbh_zeroshot_...`: each task with both filters side by side (the whole group takes 90 s here)."""
    from tuneval.cli import main

    if DATA is None:
        pytest.skip("BIG-Bench Hard data not here")
    out = tmp_path / "ev"
    with pytest.raises(SystemExit) as e:
        main(["eval", "--tasks", "bbh_zeroshot_snarks,bbh_zeroshot_word_sorting", "--model", str(tiny_llama_dir), "--data-dir", str(DATA), "--limit", "1",
              "--out", str(out)])
    assert e.value.code == 0
    files = sorted(out.rglob("results.json"))
    assert len(files) == 2
    res = json.loads(next(f for f in files if "snarks" in str(f)).read_text())
    (ex,) = res["examples"]
    assert ex["prompt"].endswith("\nA:") and set(ex["filtered"]) == {"flexible-extract", "strict-match"}
    assert res["primary_metric"] == "exact_match,flexible-extract" and "exact_match,strict-match" in res["metrics"]
