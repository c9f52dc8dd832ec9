"""The demo's time budget (planned from measured costs), and its comparison table with intervals."""

from __future__ import annotations

import json
import random
import re

import pytest
from rich.console import Console

from tuneval.cli import main
from tuneval.jobs.demo import (MIN_TRAIN_SHARE, MIN_WARMUP_STEPS, TARGET_EVAL_EXAMPLES, Costs, Plan, StepClock,
                               _minimum_minutes, demo_recipe, describe, plan_budget, planned_steps, replan, run_demo)
from tuneval.errors import TunevalError
from tuneval.evaluate.report import comparison_table, paired_comparisons, with_interval
from tuneval.metrics.compare import intervals
from tests.report.synthetic import eval_results, make_examples


def _costs(**change) -> Costs:
    """About what an AMX Xeon with 2 threads measures for smollm2-135m in bf16."""
    rng = random.Random(0)
    values = dict(spent_seconds=90.0, reload_seconds=2.0, generate_seconds=0.8,
                  train_overhead_seconds={"full": 15.0, "lora": 10.0},
                  train_tokens_per_second={"full": 400.0, "lora": 600.0}, tokenize_seconds=0.001,
                  example_tokens=[rng.randint(120, 500) for _ in range(4096)], train_rows=12460, eval_rows=500)
    return Costs(**{**values, **change})


def _total(costs: Costs, train: int, evals: int) -> float:
    return sum(costs.phases(train, evals).values())


def test_the_plan_fills_the_budget():
    costs = _costs()
    plan = plan_budget(costs, 20)
    assert plan.planned == ["eval", "train"] and plan.eval_examples == TARGET_EVAL_EXAMPLES and not plan.notes
    assert plan.predicted == costs.phases(plan.train_examples, plan.eval_examples)
    assert 0.97 * 1200 < plan.predicted_seconds <= 1200  # all of it, and no more
    assert _total(costs, plan.train_examples + 1, plan.eval_examples) > 1200  # one more example would not fit
    # training time grows with the tokens of the examples drawn, at each method's own speed
    tokens = sum(costs.example_tokens[:plan.train_examples])
    assert plan.predicted["lora"] == pytest.approx(10 + tokens / 600 + plan.train_examples * 0.001 + 2 + 200 * 0.8)
    assert plan.predicted["full"] - plan.predicted["lora"] == pytest.approx(5 + tokens / 400 - tokens / 600)


def test_the_budget_scales_the_training_not_the_evaluation():
    costs = _costs()
    small, large = plan_budget(costs, 20), plan_budget(costs, 40)
    assert small.eval_examples == large.eval_examples == 200
    assert large.train_examples > 2 * small.train_examples
    slower = plan_budget(_costs(train_tokens_per_second={"full": 200.0, "lora": 300.0}), 20)
    assert slower.train_examples == pytest.approx(small.train_examples / 2, rel=0.1)


def test_a_small_budget_evaluates_fewer_examples_and_says_so():
    costs = _costs()
    plan = plan_budget(costs, 12)
    assert 20 <= plan.eval_examples < 200
    assert plan.notes and plan.notes[0].startswith(f"evaluating {plan.eval_examples} examples, not 200")
    fixed = _total(costs, 0, 0)
    training = sum(costs.train_seconds(m, plan.train_examples) for m in ("full", "lora"))
    assert training >= MIN_TRAIN_SHARE * (12 * 60 - fixed) * 0.99  # training keeps its share of the time
    assert plan.predicted_seconds <= 12 * 60
    assert f"- note: evaluating {plan.eval_examples} examples, not 200" in describe(plan, precision="bf16")


@pytest.mark.parametrize("minutes,needle", [
    (1.9, "measuring, loading and saving alone take 2.0 min"),  # the fixed costs (119 s) exceed the budget
    (2.6, "to evaluate 20 examples per model and leave 40% of the time to training"),
])
def test_too_small_a_budget_is_refused_with_the_least_that_works(minutes, needle):
    costs = _costs()
    with pytest.raises(TunevalError, match=re.escape(needle)) as e:
        plan_budget(costs, minutes)
    least = _minimum_minutes(costs)
    assert f"give --minutes {least:g} or more" in str(e.value) and "\n" not in str(e.value)
    assert plan_budget(costs, least).train_examples >= 8  # the least it names does work


def test_a_count_given_is_kept_and_only_the_other_planned():
    costs = _costs()
    plan = plan_budget(costs, 20, train_examples=300)
    assert (plan.train_examples, plan.planned) == (300, ["eval"]) and plan.eval_examples == 200
    plan = plan_budget(costs, 20, eval_examples=50)
    assert (plan.eval_examples, plan.planned) == (50, ["train"])
    assert plan.train_examples > plan_budget(costs, 20).train_examples  # fewer generations, more training
    assert 0.97 * 1200 < plan.predicted_seconds <= 1200
    plan = plan_budget(costs, 20, train_examples=700)  # training takes most of it: evaluation gives way
    assert plan.eval_examples < 200 and "too much to train 700 examples per method" in plan.notes[0]
    with pytest.raises(TunevalError, match="to evaluate 20 examples per model and train 2000 examples per method") as e:
        plan_budget(costs, 20, train_examples=2000)
    least = _minimum_minutes(costs, train_examples=2000)
    assert f"give --minutes {least:g} or more" in str(e.value) and plan_budget(costs, least, train_examples=2000)
    with pytest.raises(TunevalError, match="to train 8 examples per method after evaluating 500"):
        plan_budget(_costs(eval_rows=1000), 20, eval_examples=500)


def test_the_whole_training_split_caps_the_plan():
    costs = _costs(train_rows=300, eval_rows=120)
    plan = plan_budget(costs, 60)
    assert (plan.train_examples, plan.eval_examples) == (300, 120)  # one epoch, the whole validation split
    assert "finish early" in plan.notes[0]


def test_counts_given_plan_nothing():
    plan = Plan(96, 32)
    assert plan.to_json()["planned"] == [] and plan.predicted_seconds is None
    assert describe(plan, precision="fp32").startswith("Fixed: 96 training examples per method")


def test_scoring_the_original_replans_the_training_for_the_time_it_left():
    """The probe's scoring rate was 0.8 s per example; the original's 200 took 0.6 each: the 3 x 200 x 0.2 s
    freed go to training, the evaluation count stays, and the budget is filled again."""
    costs = _costs()
    plan = plan_budget(costs, 20)
    faster = replan(plan, 0.6 * plan.eval_examples)
    assert faster.eval_examples == plan.eval_examples and faster.train_examples > plan.train_examples
    assert faster.predicted["original"] == pytest.approx(0.6 * plan.eval_examples)
    assert 0.97 * 1200 < faster.predicted_seconds <= 1200
    assert faster.planned == plan.planned and "re-planned after scoring the original (0.60 s per example, not 0.80)" \
        in faster.notes[-1]
    slower = replan(plan, 1.0 * plan.eval_examples)
    assert slower.train_examples < plan.train_examples and slower.predicted_seconds <= 1200
    assert replan(plan, 0.8 * plan.eval_examples).train_examples == plan.train_examples  # as probed: as planned
    fixed = plan_budget(costs, 20, train_examples=100)  # a count given is never changed
    assert replan(fixed, 0.1 * fixed.eval_examples) is fixed
    assert replan(plan, 100.0 * plan.eval_examples) is plan  # nothing would fit: the printed plan stands


def test_a_cached_original_gives_its_time_to_training():
    """The original's scores in the cache: two models generate, not three, and training gets the rest."""
    costs, cached = _costs(), _costs(original_cached=True)
    plan, more = plan_budget(costs, 20), plan_budget(cached, 20)
    assert more.predicted["original"] == 0 and more.eval_examples == plan.eval_examples == 200
    assert more.train_examples > plan.train_examples and 0.97 * 1200 < more.predicted_seconds <= 1200
    assert "the original's scores come from the cache" in describe(more, precision="fp32")
    assert "the cache" not in describe(plan, precision="fp32")
    small = plan_budget(cached, 9)
    assert small.notes[0].startswith(f"evaluating {small.eval_examples} examples, not 200: 2 models x 200")
    again = replan(more, 0.6 * 200, cached=True)  # the time the cache recorded: re-planned, still not generated
    assert again.predicted["original"] == 0 and again.train_examples > more.train_examples
    assert "re-planned as the cache recorded scoring the original (0.60 s per example, not 0.80)" in again.notes[-1]


@pytest.mark.parametrize("train_examples,max_steps,warmup", [(8, None, 0.0), (152, None, 0.0), (160, None, 0.05),
                                                              (4096, None, 0.05), (56, 6, 0.0)])
def test_a_short_run_trains_without_warmup(tmp_path, train_examples, max_steps, warmup):
    """Under MIN_WARMUP_STEPS optimizer steps (8 examples a step) the demo's recipes drop their 5% warmup,
    whose first step runs at learning rate 0 and was all of a one-step run (issue 34)."""
    for method in ("full", "lora"):
        recipe = demo_recipe("m", method, out_dir=tmp_path, data_dir=None, precision="fp32", seed=1,
                             train_examples=train_examples, eval_examples=4, max_steps=max_steps)
        assert planned_steps(recipe) == (max_steps or -(-train_examples // 8))
        assert recipe.train.warmup_steps == warmup
    assert MIN_WARMUP_STEPS == 20


def test_step_clock_times_the_steps_after_the_warm_up():
    clock = StepClock()
    clock.marks = [(10.0, 1000), (12.0, 1600), (14.5, 2400)]  # the first step's end, then two more
    assert clock.tokens_per_second(warmup=1) == pytest.approx((2400 - 1000) / 4.5)
    assert clock.tokens_per_second(warmup=2) == pytest.approx((2400 - 1600) / 2.5)
    with pytest.raises(TunevalError, match="more than 3 of them, got 3"):
        clock.tokens_per_second(warmup=3)


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_minutes_must_be_positive_before_anything_loads(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--model", str(tmp_path / "no-model"), "--minutes", value])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --minutes must be a number of minutes greater than 0") and "\n" not in err


def _rows(n: int = 40) -> list[dict]:
    exs = make_examples(n)
    rows = []
    for i, (label, quality) in enumerate((("original", 0.2), ("full", 0.6), ("lora", 0.58))):
        res = eval_results(label, exs, quality, seed=i)
        res["bootstrap"] = intervals(res, iters=200)
        res["method"] = "none" if label == "original" else label
        rows.append(res)
    return rows


def test_every_score_carries_its_interval_and_differences_are_paired():
    rows = _rows()
    paired = paired_comparisons(rows, iters=200, seed=1)
    table = comparison_table(rows, paired)
    for r in rows:
        cells = [with_interval(k, r["metrics"][k], r["bootstrap"][k]) for k in ("rouge1", "rouge2", "bleu")]
        assert all(c in table for c in cells) and re.fullmatch(r"0\.\d{4} \[0\.\d{4}, 0\.\d{4}\]", cells[0])
    d = paired["vs_full"]["lora"]["rouge1"]
    assert d["delta"] == pytest.approx(rows[2]["metrics"]["rouge1"] - rows[1]["metrics"]["rouge1"])
    verdict = "significant" if d["ci_low"] > 0 or d["ci_high"] < 0 else "not significant"
    assert f"| lora | rouge1 | {d['delta']:+.4f} | [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] |" in table
    assert re.search(rf"\| lora \| rouge1 \| [^\n]*\| {verdict} \|", table.split("### Relative to full")[1])
    up = paired["vs_original"]["full"]["rouge1"]
    assert up["ci_low"] > 0 and "| full | rouge1 |" in table.split("### Improvement over original")[1]
    assert comparison_table(rows) == comparison_table(rows, paired_comparisons(rows))  # the defaults: 1000, seed 1234


def test_rows_without_examples_still_print():
    rows = [{k: v for k, v in r.items() if k not in ("examples", "bootstrap")} for r in _rows(10)]
    table = comparison_table(rows)
    assert f"| original | {rows[0]['metrics']['rouge1']:.4f} |" in table
    assert "| lora | rouge1 |" in table and "| - | " in table  # a difference, no interval, no verdict


def test_the_planned_demo_runs_and_records_its_plan(tiny_llama_dir, tiny_data_dir, tmp_path):
    """The whole path on tiny models: measure this machine, plan, print, run, save plan and wall times."""
    out = tmp_path / "demo"
    result = run_demo(model=str(tiny_llama_dir), data_dir=str(tiny_data_dir), out=out, minutes=5,
                      console=Console(quiet=True), precision="fp32")
    saved = json.loads((out / "comparison.json").read_text())
    plan = saved["plan"]
    assert plan["planned"] == ["eval", "train"]
    assert (saved["train_examples"], saved["eval_examples"]) == (32, 6)  # the tiny splits: all of both fit
    measured = plan["measured"]
    assert measured["train_rows"] == 32 and measured["eval_rows"] == 6
    assert all(measured["train_tokens_per_second"][m] > 0 for m in ("full", "lora"))
    assert measured["generate_seconds"] > 0 and measured["mean_example_tokens"] > 0
    assert set(saved["wall_seconds"]) == {"measure", "original", "full", "lora", "compare", "total"}
    assert plan["predicted_seconds"]["total"] == pytest.approx(sum(v for k, v in plan["predicted_seconds"].items()
                                                                   if k != "total"), abs=1e-3)
    md = (out / "comparison.md").read_text()
    assert "## Plan" in md and "Plan for 5 minutes on" in md and "(budget 5 min, predicted" in md
    assert [r["label"] for r in result["rows"]] == ["original", "full", "lora"]
    assert all(r["num_examples"] == 6 for r in result["rows"])
    assert json.loads((out / "full" / "metrics.json").read_text())["train_examples"] == 32


def _tensors(path) -> dict:
    from safetensors.torch import load_file

    return {name: t for f in sorted(path.glob("*.safetensors")) for name, t in load_file(f).items()}


def _demo(model_dir, data_dir, out, **counts) -> tuple[dict, str, dict]:
    """(run_demo's result, what it printed, comparison.json) of a demo with both counts fixed."""
    import io

    printed = io.StringIO()
    result = run_demo(model=str(model_dir), data_dir=str(data_dir), out=out, precision="fp32",
                      console=Console(file=printed, width=400), **counts)
    return result, printed.getvalue(), json.loads((out / "comparison.json").read_text())


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


SCORED = ("metrics", "bootstrap", "examples", "prompt", "num_examples", "signatures")


def _scored(row: dict) -> dict:
    """What a row's numbers are: its scores and examples, and how they were generated (not how long it took)."""
    timing = ("seconds", "tokens_per_second")
    return {**{k: row[k] for k in SCORED}, "generation": {k: v for k, v in row["generation"].items() if k not in timing}}


def test_a_second_demo_reads_the_original_scores_from_the_cache(tiny_llama_dir, tiny_data_dir, tmp_path):
    """Run twice on the same machine: the first scores the original and caches it, the second reads it,
    says so where it prints and in comparison.json, and its numbers are those the first computed."""
    from tuneval.results import DemoDir, EvalDir
    from tuneval.runs import RunDir

    first, printed, saved = _demo(tiny_llama_dir, tiny_data_dir, tmp_path / "one", train_examples=8, eval_examples=4)
    computed = first["rows"][0]
    assert computed["cache"]["hit"] is False and "from the cache" not in printed
    assert f"(scored now; cached in {computed['cache']['file']})" in printed
    # the tiny budget still trains (issue 34: its single step fell in the warmup, at learning rate 0)
    lora = _tensors(RunDir(tmp_path / "one" / "lora").result_dir)
    assert any(k.endswith("lora_B.weight") for k in lora)
    assert all(bool(t.abs().sum() > 0) for k, t in lora.items() if k.endswith("lora_B.weight"))
    before, after = _tensors(tiny_llama_dir), _tensors(RunDir(tmp_path / "one" / "full").result_dir)
    assert any(not torch_equal(before[k], after[k]) for k in before if k in after)

    second, printed, saved = _demo(tiny_llama_dir, tiny_data_dir, tmp_path / "two", train_examples=8, eval_examples=4)
    cached = second["rows"][0]
    assert cached["cache"] == {"hit": True, "file": computed["cache"]["file"], "created": cached["cache"]["created"]}
    assert re.search(r"original: rouge1=\d\.\d{4} \(from the cache, scored \S+ on this machine: ", printed)
    assert saved["rows"][0]["cache"]["hit"] is True and "come from the cache" in (tmp_path / "two" / "comparison.md").read_text()
    assert _scored(cached) == _scored(computed)  # cached == recomputed
    written = json.loads(EvalDir(DemoDir(tmp_path / "two").original.path).results_file.read_text())
    assert written["metrics"] == computed["metrics"] and written["examples"] == computed["examples"]


def test_a_changed_key_or_a_bad_entry_is_recomputed(tiny_llama_dir, tiny_data_dir, tmp_path, monkeypatch):
    """The original row scored through the demo's own path: cached, then one component of the key changed
    (max_new_tokens) scores again under its own entry; a damaged entry is scored again, equal, and rewritten."""
    import tuneval.jobs.demo as demo
    from tuneval.methods.loading import load_result
    from tuneval.tasks import get_task

    task = get_task("dialogsum")
    base, net = load_result(str(tiny_llama_dir), precision="fp32")
    find = lambda: demo.find_original(str(tiny_llama_dir), base, task, 3, data_dir=str(tiny_data_dir),  # noqa: E731
                                      precision="fp32")
    score = lambda found, out: demo.score_original(str(tiny_llama_dir), base, net, task, found,  # noqa: E731
                                                   data_dir=str(tiny_data_dir), precision="fp32", out=tmp_path / out)
    assert find().hit is None
    computed = score(find(), "a")
    found = find()
    assert found.hit is not None and _scored(score(found, "b")) == _scored(computed)

    monkeypatch.setitem(demo.EVAL_SETTINGS, "max_new_tokens", 5)
    other = find()
    assert other.hit is None and other.key != found.key
    shorter = score(other, "c")
    assert shorter["cache"]["hit"] is False and shorter["cache"]["file"] != computed["cache"]["file"]
    assert shorter["generation"]["max_new_tokens"] == 5
    monkeypatch.setitem(demo.EVAL_SETTINGS, "max_new_tokens", 64)

    found.hit.file.write_text('{"format": 1, "key": ')  # cut off mid-write by something other than tuneval
    damaged = find()
    assert damaged.hit is None
    again = score(damaged, "d")
    assert _scored(again) == _scored(computed)
    assert find().hit is not None  # written again
