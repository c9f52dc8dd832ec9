"""Forgetting verdicts on synthetic before/after results with known differences."""

import json
import random
from pathlib import Path

import pytest

from tuneval.errors import TunevalError
from tuneval.evaluate.forgetting import compare, load_results, verdict
from tuneval.jobs.forgetting import compare_dirs


def mc_result(task, accuracy_mask, group=None, category=None, primary="acc", metric_list=None):
    examples = []
    for i, right in enumerate(accuracy_mask):
        gold = i % 2
        pred = gold if right else 1 - gold
        examples.append({"id": i, "prompt": f"{task} {i}", "gold": gold, "pred": pred, "pred_norm": pred,
                         "probs": [0.7, 0.3] if pred == 0 else [0.3, 0.7], "acc": float(right)})
    specs = metric_list or [{"metric": "acc"}, {"metric": "acc_norm"}, {"metric": "ece"}]
    from tuneval.metrics.registry import Scorer, higher_is_better

    return {"task": task, "label": "x", "output_type": "multiple_choice", "primary_metric": primary, "metric_list": specs,
            "higher_is_better": higher_is_better("multiple_choice", specs), "num_examples": len(examples),
            "metrics": Scorer("multiple_choice", specs, examples).score(), "group": group, "category": category,
            "examples": examples}


def masks(n, p_before, p_after_fix, p_after_break, seed):
    rng = random.Random(seed)
    before = [rng.random() < p_before for _ in range(n)]
    after = [(b and rng.random() >= p_after_break) or (not b and rng.random() < p_after_fix) for b in before]
    return before, after


def synthetic():
    up = masks(300, 0.5, 0.6, 0.0, 1)  # fixes most wrong answers: improved
    same = masks(300, 0.6, 0.0, 0.0, 2)  # identical answers: unchanged
    noise = masks(300, 0.6, 0.05, 0.03, 3)  # a few flips both ways: not significant
    down = masks(300, 0.8, 0.0, 0.4, 4)  # breaks 40% of right answers: forgot
    before = {t: mc_result(t, m[0]) for t, m in zip(("up", "same", "noise", "down"), (up, same, noise, down))}
    after = {t: mc_result(t, m[1]) for t, m in zip(("up", "same", "noise", "down"), (up, same, noise, down))}
    return before, after


def test_verdicts_follow_the_paired_interval():
    before, after = synthetic()
    result = compare(before, after, iters=500)
    got = {t: r["verdict"] for t, r in result["tasks"].items()}
    assert got == {"up": "improved", "same": "unchanged", "noise": "unchanged", "down": "forgot"}
    assert result["counts"] == {"improved": 1, "unchanged": 2, "forgot": 1}
    up = result["tasks"]["up"]
    assert up["delta"] == pytest.approx(up["after"] - up["before"]) and up["ci_low"] > 0
    assert result["tasks"]["same"]["ci_low"] == result["tasks"]["same"]["ci_high"] == 0.0


def test_lower_is_better_metrics_flip_the_verdict():
    assert verdict(0.01, 0.05, higher_is_better=True) == "improved"
    assert verdict(0.01, 0.05, higher_is_better=False) == "forgot"  # e.g. ECE went up
    assert verdict(-0.05, -0.01, higher_is_better=False) == "improved"
    assert verdict(-0.01, 0.02, higher_is_better=True) == "unchanged"


def test_groups_are_pooled_over_examples():
    a_b, a_a = masks(100, 0.5, 0.9, 0.0, 5)
    b_b, b_a = masks(100, 0.5, 0.0, 0.0, 6)
    c_b, c_a = masks(100, 0.5, 0.0, 0.0, 7)
    spec = {"g_a": ("x", a_b, a_a), "g_b": ("y", b_b, b_a), "g_c": ("y", c_b, c_a)}
    before = {t: mc_result(t, b, "g", cat) for t, (cat, b, _) in spec.items()}
    after = {t: mc_result(t, a, "g", cat) for t, (cat, _, a) in spec.items()}
    groups = compare(before, after, iters=300)["groups"]
    assert set(groups) == {"g", "g_y"}  # g_x has one task: it would only repeat g_a
    assert groups["g"]["n"] == 300 and groups["g"]["num_tasks"] == 3
    assert groups["g"]["before"] == pytest.approx((sum(a_b) + sum(b_b) + sum(c_b)) / 300)
    assert groups["g"]["verdict"] == "improved" and groups["g_y"]["verdict"] == "unchanged"


def test_unpaired_examples_are_refused():
    before, after = synthetic()
    after["up"]["examples"] = after["up"]["examples"][:-1]
    with pytest.raises(TunevalError, match="task 'up': before and after scored different examples"):
        compare(before, after, iters=10)


def save(root: Path, results: dict) -> Path:
    for name, r in results.items():
        (root / name).mkdir(parents=True)
        (root / name / "results.json").write_text(json.dumps(r))
    (root / "summary.json").write_text(json.dumps({"tasks": {n: {} for n in results}}))
    return root


def test_compare_dirs_writes_markdown_json_and_png(tmp_path):
    before, after = synthetic()
    out = tmp_path / "cmp"
    result = compare_dirs(save(tmp_path / "b", before), save(tmp_path / "a", after), out=out, iters=200)
    assert result["tasks"]["down"]["verdict"] == "forgot"
    md = (out / "forgetting.md").read_text()
    assert "1 improved, 2 unchanged, 1 forgot" in md and "| down | 300 | acc |" in md
    assert json.loads((out / "forgetting.json").read_text())["tasks"]["up"]["verdict"] == "improved"
    assert (out / "forgetting.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(TunevalError, match="no summary.json"):
        load_results(tmp_path)
