"""Mixture rates and sampling, caps, seeds, temperature, replay and template hold-out."""

import json
import math
import random
from collections import Counter

import pytest

from tests.data.fixtures import write_task_data
from tuneval.config import load_recipe, recipe_from_dict
from tuneval.tasks.mixtures import (draw_templates, mixing_rates, resolve_mixture, sample_tasks, take,
                                   train_templates)
from tuneval.tasks import get_task as load_task
from tuneval.errors import TunevalError

SIZES = {"big": 10_000, "mid": 3_000, "small": 100}
ONES = {k: 1.0 for k in SIZES}


def test_examples_proportional_with_cap():
    r = mixing_rates(SIZES, ONES, "proportional", cap=3_000)
    capped = {k: min(n, 3_000) for k, n in SIZES.items()}
    assert r == pytest.approx({k: v / sum(capped.values()) for k, v in capped.items()})
    assert r["big"] == pytest.approx(r["mid"])  # past the cap, size stops counting
    uncapped = mixing_rates(SIZES, ONES, "proportional")
    assert uncapped["big"] == pytest.approx(10_000 / 13_100)
    weighted = mixing_rates(SIZES, {"big": 1.0, "mid": 2.0, "small": 1.0}, "proportional", cap=3_000)
    assert weighted["mid"] == pytest.approx(2 * weighted["big"])


def test_temperature_flattens_rates():
    base = mixing_rates(SIZES, ONES, "proportional")
    assert mixing_rates(SIZES, ONES, "temperature", temperature=1.0) == pytest.approx(base)
    t2 = mixing_rates(SIZES, ONES, "temperature", temperature=2.0)
    assert t2["big"] / t2["small"] == pytest.approx(math.sqrt(10_000 / 100))
    small = [mixing_rates(SIZES, ONES, "temperature", temperature=t)["small"] for t in (1, 2, 4, 100)]
    assert small == sorted(small) and small[-1] == pytest.approx(1 / 3, abs=0.02)  # large T -> equal rates
    assert sum(t2.values()) == pytest.approx(1.0)


def test_explicit_rates_are_normalised_weights():
    assert mixing_rates(SIZES, {"big": 2, "mid": 1, "small": 1}, "rates") == pytest.approx(
        {"big": 0.5, "mid": 0.25, "small": 0.25})


def test_sampled_shares_hold_rates_over_many_draws_and_seeds_repeat():
    rates = {"a": 0.6, "b": 0.3, "c": 0.1}
    n = 20_000
    picks = sample_tasks(rates, n, seed=5)
    counts = Counter(picks)
    for name, rate in rates.items():
        sigma = math.sqrt(rate * (1 - rate) / n)
        assert abs(counts[name] / n - rate) < 4 * sigma
    assert picks == sample_tasks(rates, n, seed=5)
    assert picks != sample_tasks(rates, n, seed=6)
    assert picks[:100] == sample_tasks(rates, 100, seed=5)  # a shorter run is a prefix of a longer one


def test_take_uses_each_row_once_per_pass():
    drawn = take(10, 25, seed="x")
    assert sorted(drawn[:10]) == list(range(10)) and sorted(drawn[10:20]) == list(range(10))
    assert all(c in (2, 3) for c in Counter(drawn).values())
    assert take(10, 25, seed="x") == drawn and take(10, 25, seed="y") != drawn
    assert len(set(take(1000, 30, seed=1))) == 30  # under one pass, no repeats


def test_draw_templates_matches_template_set_draw():
    """With every phrasing allowed, the draw is the one runs made before mixtures (the removed
    TemplateSet.draw: one random.Random(seed).randrange(n) per example), so they repeat."""
    ts = load_task("dialogsum").templates
    rng = random.Random(9)
    assert draw_templates(200, 9, list(range(len(ts.prompts)))) == [rng.randrange(len(ts.prompts)) for _ in range(200)]


def test_train_templates_holdout_and_errors():
    task = load_task("dialogsum")
    assert train_templates(task, holdout=[4, 5]) == [0, 1, 2, 3]
    assert train_templates(task, templates=[1, 2, 4], holdout=[4]) == [1, 2]
    assert train_templates(task, fixed=3) == [3]
    with pytest.raises(TunevalError, match=r"data.holdout_templates: 9 is out of range 0..5"):
        train_templates(task, holdout=[9])
    with pytest.raises(TunevalError, match=r"data.template: 4 is also in data.holdout_templates"):
        train_templates(task, fixed=4, holdout=[4])
    with pytest.raises(TunevalError, match=r"every template of task 'dialogsum' is held out"):
        train_templates(task, holdout=list(range(6)))


@pytest.fixture
def data_dir(tiny_data_dir):
    return write_task_data(tiny_data_dir)  # dialogsum 32, sst2 40, trec 24, rte 12, self_instruct 10 (train)


def mixture_recipe(data_dir, **mixture):
    tasks = mixture.pop("tasks", [{"task": "dialogsum"}, {"task": "sst2"}, {"task": "trec"},
                                  {"task": "rte", "max_examples": 8}])
    data = mixture.pop("data", {})
    return recipe_from_dict({"mixture": {"tasks": tasks, **mixture},
                             "data": {"data_dir": str(data_dir), **data}}, "test")


def test_resolved_mixture_caps_pools_and_rates(data_dir):
    recipe = mixture_recipe(data_dir, strategy="proportional", cap=20)
    assert recipe.task == "dialogsum"  # the first task is the primary one
    comps, picks = resolve_mixture(recipe)
    by = {c.spec.name: c for c in comps}
    assert {n: len(c.pool) for n, c in by.items()} == {"dialogsum": 32, "sst2": 40, "trec": 24, "rte": 8}
    assert len(picks) == 20 + 20 + 20 + 8  # no train_examples: one pass over the capped mixture
    assert {n: c.rate for n, c in by.items()} == pytest.approx({"dialogsum": 20 / 68, "sst2": 20 / 68,
                                                                "trec": 20 / 68, "rte": 8 / 68})
    assert {n: len(c.drawn) for n, c in by.items()} == Counter(picks)
    assert all(0 <= i < 8 for i in by["rte"].drawn)  # max_examples caps the rows a task can use
    again, picks2 = resolve_mixture(recipe)
    assert picks2 == picks and [c.drawn for c in again] == [c.drawn for c in comps]


def test_temperature_upsamples_a_small_task_by_repeating_it(data_dir):
    tasks = [{"task": "sst2"}, {"task": "rte", "max_examples": 4}]
    shares = {}
    for t in (1.0, 8.0):
        comps, picks = resolve_mixture(mixture_recipe(data_dir, strategy="temperature", temperature=t, tasks=tasks,
                                                      data={"train_examples": 2000}))
        rte = next(c for c in comps if c.spec.name == "rte")
        shares[t] = len(rte.drawn) / len(picks)
        assert len(set(rte.drawn)) <= 4
    assert shares[1.0] == pytest.approx(4 / 44, abs=0.03)
    assert shares[8.0] == pytest.approx((4 ** 0.125) / (4 ** 0.125 + 40 ** 0.125), abs=0.03)


def test_replay_mixes_a_fixed_share_into_a_single_task_run(data_dir):
    recipe = recipe_from_dict({"task": "dialogsum", "data": {"data_dir": str(data_dir), "train_examples": 2000,
                                                             "replay": {"task": "self_instruct", "fraction": 0.2}}}, "t")
    comps, picks = resolve_mixture(recipe)
    assert [c.spec.name for c in comps] == ["dialogsum", "self_instruct"] and comps[1].replay
    assert len(comps[1].pool) == 10  # rows 100: of the file (the first 100 are held out)
    share = picks.count("self_instruct") / len(picks)
    assert abs(share - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 2000)


def test_holdout_templates_are_never_trained_on(data_dir):
    recipe = mixture_recipe(data_dir, tasks=[{"task": "dialogsum"}, {"task": "sst2", "holdout_templates": [0, 5]},
                                             {"task": "trec", "templates": [1, 2]}],
                            data={"train_examples": 300, "holdout_templates": [4]})
    comps, _ = resolve_mixture(recipe)
    by = {c.spec.name: c for c in comps}
    assert by["dialogsum"].allowed == [0, 1, 2, 3, 5] and by["dialogsum"].holdout == [4]
    assert by["sst2"].allowed == [1, 2, 3, 4] and by["trec"].allowed == [1, 2]
    for c in comps:
        drawn = draw_templates(len(c.drawn), f"{recipe.seed}/{c.spec.name}/templates", c.allowed)
        assert set(drawn) == set(c.allowed)  # every kept phrasing is used, no held-out one


@pytest.mark.parametrize("text,message", [
    ("mixture:\n  tasks: [{task: sst2, wieght: 2}]\n", r"r.yaml: unknown key 'mixture.tasks\[0\].wieght' \(known: holdout"),
    ("mixture:\n  strategy: mixed\n  tasks: [{task: sst2}]\n", r"'mixture.strategy': unknown strategy 'mixed'"),
    ("mixture:\n  strategy: rates\n  cap: 10\n  tasks: [{task: sst2}]\n", r"'mixture.cap' applies to strategies"),
    ("mixture:\n  temperature: 2\n  tasks: [{task: sst2}]\n", r"'mixture.temperature' needs strategy: temperature"),
    ("mixture:\n  tasks: []\n", r"'mixture.tasks' must list at least one task"),
    ("mixture:\n  tasks: [{task: sst2}, {task: sst2}]\n", r"'mixture.tasks\[1\].task': 'sst2' is listed twice"),
    ("task: cb\nmixture:\n  tasks: [{task: sst2}]\n", r"task 'cb' is not in mixture.tasks \(sst2\)"),
    ("mixture:\n  tasks: {task: sst2}\n", r"'mixture.tasks' must be a list"),
    ("data:\n  replay: {task: self_instruct, fraction: 1.5}\n", r"'data.replay.fraction' must be between 0 and 1"),
    ("data:\n  replay: {tsk: self_instruct}\n", r"unknown key 'data.replay.tsk'"),
])
def test_bad_mixture_recipes_name_file_and_key(tmp_path, text, message):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    with pytest.raises(TunevalError, match=message):
        load_recipe(p)


def test_mixture_recipe_round_trips_and_overrides(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("mixture:\n  strategy: proportional\n  cap: 3000\n  tasks:\n    - {task: dialogsum, weight: 2}\n"
                 "    - {task: sst2, holdout_templates: [5]}\n")
    r = load_recipe(p, ["mixture.strategy=temperature", "mixture.temperature=2"])
    assert (r.mixture.strategy, r.mixture.temperature, r.mixture.tasks[1].holdout_templates) == ("temperature", 2.0, [5])
    again = recipe_from_dict(json.loads(json.dumps(r.to_dict())), "saved")
    assert again.to_dict() == r.to_dict() and again.task == "dialogsum"
    assert recipe_from_dict({"task": "dialogsum"}, "t").mixture is None


def test_replay_task_already_in_the_mixture_is_refused(data_dir):
    recipe = mixture_recipe(data_dir, tasks=[{"task": "dialogsum"}, {"task": "self_instruct"}],
                            data={"replay": {"task": "self_instruct", "fraction": 0.1}})
    with pytest.raises(TunevalError, match="data.replay.task: 'self_instruct' is already in the mixture"):
        resolve_mixture(recipe)


def test_mixture_template_out_of_range_names_the_entry(data_dir):
    recipe = mixture_recipe(data_dir, tasks=[{"task": "dialogsum"}, {"task": "sst2", "templates": [7]}])
    with pytest.raises(TunevalError, match=r"mixture.tasks\[1\].templates: 7 is out of range 0..5"):
        resolve_mixture(recipe)
