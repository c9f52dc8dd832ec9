"""report/scorecard.py: one colour scale for every metric direction; comparison cells coloured by their verdict."""

from __future__ import annotations

from tuneval.report.scorecard import card_html, compare_html, goodness


def test_goodness_turns_every_metric_to_bad_low_good_high():
    assert goodness("accuracy", 0.9) == 0.9 and goodness("ece_10_bin", 0.1) == 0.9
    assert goodness("fairness_gap", -0.25) == 0.75 and goodness("toxicity", 1.0) == 0.0
    assert goodness("accuracy", 1.5) == 1.0  # clipped


def test_card_and_compare_html():
    card = {"label": "m", "bootstrap_iters": 10, "seed": 1, "scenarios": {"t": {
        "n": 3, "metric": "acc", "efficiency": {"seconds_per_example": 0.5},
        "cells": {"accuracy": {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0},
                  "toxicity": {"value": None, "note": "not measured: no classifier"}}}}}
    html = card_html(card)
    assert "hsl(120," in html and ">not measured<" in html
    result = {"before": "a", "after": "b", "scenarios": {"t": {
        "accuracy": {"before": 0.5, "after": 0.3, "delta": -0.2, "ci_low": -0.3, "ci_high": -0.1, "lower_is_better": False},
        "ece": {"before": 0.3, "after": 0.1, "delta": -0.2, "ci_low": -0.3, "ci_high": -0.1, "lower_is_better": True}}}}
    out = compare_html(result)
    assert out.count("hsl(0,65%,85%)") == 1 and out.count("hsl(120,65%,85%)") == 1  # acc worse, ece better
