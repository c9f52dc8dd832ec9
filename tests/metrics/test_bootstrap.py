"""The one percentile bootstrap (metrics/bootstrap.py) gives, bit for bit, the intervals its four
former copies gave: expected values computed with the code before issue 13 on the same inputs."""

import numpy as np

from tuneval.metrics.bootstrap import POOLED, interval, percentiles, resample
from tuneval.evaluate.forgetting import _pooled_delta
from tuneval.evaluate.summary import group_scores
from tuneval.metrics.registry import Scorer, bootstrap_ci, paired_bootstrap

SPECS = [{"metric": "acc"}, {"metric": "mcc"}, {"metric": "f1", "average": "macro"}, {"metric": "ece"}]


def records(n, seed, flip):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gold = int(i % 3)
        pred = gold if rng.random() > flip else int((gold + 1) % 3)
        probs = rng.dirichlet([1, 1, 1]).round(4).tolist()
        out.append({"gold": gold, "pred": pred, "pred_norm": pred if i % 4 else gold, "probs": probs})
    return out


BEFORE = Scorer("multiple_choice", SPECS, records(40, 1, 0.5))
AFTER = Scorer("multiple_choice", SPECS, records(40, 2, 0.3))
POOL_BEFORE = np.array([((i * 7919) % 101) / 101 for i in range(59)])
POOL_AFTER = np.array([((i * 104729) % 97) / 97 for i in range(59)])


def test_per_task_intervals_are_unchanged():
    assert bootstrap_ci(BEFORE, n=200, seed=7) == {
        "acc": {"stderr": 0.0820312746769525, "ci_low": 0.3743750000000001, "ci_high": 0.675},
        "mcc": {"stderr": 0.12446087412107047, "ci_low": 0.043079513479579654, "ci_high": 0.5147665491749873},
        "f1": {"stderr": 0.08452145102611672, "ci_low": 0.34429538972823914, "ci_high": 0.6763697848045673},
        "ece": {"stderr": 0.05885425318933413, "ci_low": 0.11185181250000002, "ci_high": 0.3476003750000001},
    }


def test_paired_intervals_are_unchanged():
    assert paired_bootstrap(BEFORE, AFTER, "acc", n=200, seed=7) == {
        "delta": 0.17500000000000004, "ci_low": -0.05062499999999994, "ci_high": 0.35,
        "p_not_better": 0.065, "p_not_worse": 0.96}
    assert paired_bootstrap(BEFORE, AFTER, "mcc", n=150, seed=3, level=0.9) == {
        "delta": 0.2678922256542495, "ci_low": 0.044367884407008416, "ci_high": 0.5059658700232562,
        "p_not_better": 0.04, "p_not_worse": 0.96}


def test_pooled_group_intervals_are_unchanged():
    tasks = [{"task": f"t{k}", "group": "g", "output_type": "multiple_choice", "primary_metric": "acc",
              "examples": [{"acc": v} for v in part]} for k, part in enumerate((POOL_BEFORE[:30], POOL_BEFORE[30:]))]
    g = group_scores(tasks, iters=200, seed=0)["g"]
    assert (g["stderr"], g["ci_low"], g["ci_high"]) == (0.03615897439337955, 0.41531297197516365, 0.5566412149689545)
    assert _pooled_delta(POOL_BEFORE, POOL_AFTER, 200, 11) == {
        "delta": -0.006420159751428622, "ci_low": -0.08703481522361567, "ci_high": 0.09417726457251703}


def test_the_shared_pieces():
    # The inputs above are ones where swapping the two kinds' percentiles moves a lower bound by an ulp.
    assert percentiles(0.95) == (2.500000000000002, 97.5) and POOLED == (2.5, 97.5)
    draws = resample(lambda idx: idx.copy(), 5, 3, seed=0)
    assert len(draws) == 3 and all(d.shape == (5,) and d.min() >= 0 and d.max() < 5 for d in draws)
    assert resample(lambda idx: idx.sum(), 5, 3, seed=0) == [d.sum() for d in draws]  # seeded: the same resamples
    assert interval([1.0], POOLED) == {"stderr": 0.0, "ci_low": 1.0, "ci_high": 1.0}
