"""Pooled groups: a group, its categories and the tags a task carries (lm-eval's `bbh`)."""

from tuneval.evaluate.lm_eval_format import _groups
from tuneval.evaluate.summary import group_item_values, group_scores


def _result(task: str, group: str | None, values: list[float], tags=(), category=None) -> dict:
    return {"task": task, "group": group, "category": category, "tags": list(tags), "output_type": "generate_until",
            "primary_metric": "exact_match", "examples": [{"exact_match": v} for v in values]}


RESULTS = [_result("bbh_cot_fewshot_a", "bbh_cot_fewshot", [1, 0, 0], tags=["bbh"]),
           _result("bbh_cot_fewshot_b", "bbh_cot_fewshot", [1], tags=["bbh"]),
           _result("bbh_zeroshot_a", "bbh_zeroshot", [0, 0]),
           _result("bbh_zeroshot_b", "bbh_zeroshot", [1, 1])]


def test_a_tag_pools_its_tasks_per_example_like_a_group():
    pooled = group_item_values(RESULTS)
    assert pooled["bbh"]["tasks"] == ["bbh_cot_fewshot_a", "bbh_cot_fewshot_b"]
    assert pooled["bbh"]["values"] == [1, 0, 0, 1] == pooled["bbh_cot_fewshot"]["values"]
    assert group_scores(RESULTS, iters=50, seed=0)["bbh"]["value"] == 0.5  # weight by size: 2 of 4, not (1/3 + 1) / 2
    assert pooled["bbh_zeroshot"]["values"] == [0, 0, 1, 1]


def test_lm_eval_subtasks_of_a_tag_group_are_its_own_groups_only():
    _, subtasks = _groups(RESULTS)
    assert subtasks["bbh"] == ["bbh_cot_fewshot"]  # not bbh_zeroshot, whose tasks are not in `bbh`
    assert subtasks["bbh_zeroshot"] == ["bbh_zeroshot_a", "bbh_zeroshot_b"]


def test_one_task_groups_and_untagged_tasks_pool_nothing():
    assert group_item_values([_result("t", "g", [1, 0]), _result("u", None, [1])]) == {}


def test_a_tag_over_tasks_scored_differently_is_not_pooled():
    choice = {**_result("mc", None, [], tags=["mine"]), "output_type": "multiple_choice",
              "examples": [{"acc": 1.0}, {"acc": 0.0}]}
    assert "mine" not in group_item_values([choice, _result("gen", None, [1, 1], tags=["mine"])])
