"""metrics/calibration.py: ECE (equal width, equal mass) and selective accuracy, against hand-computed
values and against the `uncertainty-calibration` package HELM uses, on the same probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from tuneval.metrics import calibration as cal
from tuneval.metrics.registry import MC_METRICS


def test_equal_width_by_hand():
    conf = np.array([0.95, 0.95, 0.55, 0.15])
    correct = np.array([1.0, 0.0, 1.0, 0.0])
    # bins (0.9,1]: acc .5 conf .95 -> .45 * 2/4; (0.5,0.6]: 1 vs .55 -> .45 * 1/4; (0.1,0.2]: 0 vs .15 -> .15 * 1/4
    assert cal.ece_equal_width(conf, correct) == pytest.approx(0.225 + 0.1125 + 0.0375)


def test_equal_mass_by_hand():
    conf = np.array([0.2, 0.4, 0.6, 0.8])
    correct = np.array([0.0, 1.0, 1.0, 1.0])
    # 4 examples, 10 bins asked: 4 bins of one, edges .3 .5 .7 1.0; errors .2 .6 .4 .2, each weight 1/4
    assert list(cal.equal_mass_edges(conf)) == pytest.approx([0.3, 0.5, 0.7, 1.0])
    assert cal.ece_equal_mass(conf, correct) == pytest.approx((0.2 + 0.6 + 0.4 + 0.2) / 4)
    assert cal.ece_equal_mass(conf, correct, bins=2) == pytest.approx(0.5 * abs(0.5 - 0.3) + 0.5 * abs(1.0 - 0.7))


def test_selective_accuracy_by_hand():
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01, 0.001])
    correct = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], dtype=float)
    # n = 12: index int(1.2) = 1, so the two most confident: (0 + 1) / 2
    assert cal.selective_accuracy(conf, correct) == pytest.approx(0.5)
    assert cal.selective_accuracy(conf[:5], correct[:5]) == 0.0  # n = 5: the top one only
    assert cal.coverage_accuracy_area(conf[:3], correct[:3]) == pytest.approx((0 + 0.5 + 2 / 3) / 3)


def test_tunevals_ece_metric_is_the_equal_width_one():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=50)
    records = [{"probs": list(p), "pred": int(np.argmax(p)), "gold": int(g)}
               for p, g in zip(probs, rng.integers(0, 4, 50))]
    assert MC_METRICS["ece"].corpus(records, {})["ece"] == pytest.approx(cal.calibration(records)["ece"])


@pytest.mark.parametrize("n", [7, 50, 301])
def test_against_the_uncertainty_calibration_package(n):
    package = pytest.importorskip("calibration", reason="uncertainty-calibration is not installed (pip install "
                                  "uncertainty-calibration==0.1.4, the bench extra)")
    rng = np.random.default_rng(n)
    conf = rng.uniform(0.25, 1.0, n)  # continuous: no ties
    correct = (rng.uniform(size=n) < conf).astype(int)
    assert cal.ece_equal_width(conf, correct) == pytest.approx(package.get_ece(conf, correct, num_bins=10))
    assert cal.ece_equal_mass(conf, correct) == pytest.approx(package.get_ece_em(conf, correct, num_bins=10))
    area, top10 = package.get_selective_stats(conf, correct)
    assert cal.selective_accuracy(conf, correct) == pytest.approx(top10)
    assert cal.coverage_accuracy_area(conf, correct) == pytest.approx(area)
