"""The report's intervals are the harness's bootstrap, and its highlights are what ROUGE-1 counts."""

import json
import re

import numpy as np
import pytest

from tuneval.metrics.text import corpus_bleu, summarization_metrics
from tuneval.metrics.registry import Scorer, bootstrap_ci, paired_bootstrap
from tuneval.report import stats


def _results(saved, label):
    where = saved["demo"] / ("eval-original" if label == "original" else f"{label}/eval")
    return json.loads((where / "results.json").read_text())


def test_bleu_from_sentence_counts_equals_sacrebleu_on_any_subset(saved):
    ex = _results(saved, "lora")["examples"]
    _, bleu = stats.scorers(ex)
    assert bleu.score()["bleu"] == pytest.approx(corpus_bleu([e["prediction"] for e in ex],
                                                             [e["references"] for e in ex])["bleu"], abs=1e-9)
    rng = np.random.default_rng(0)
    for _ in range(5):
        idx = rng.integers(0, len(ex), len(ex))
        sub = [ex[i] for i in idx]
        expected = corpus_bleu([e["prediction"] for e in sub], [e["references"] for e in sub])["bleu"]
        assert bleu.score(idx)["bleu"] == pytest.approx(expected, abs=1e-9)


def test_intervals_are_the_harness_bootstrap(saved):
    """Same seed, same resamples: the fast BLEU changes the speed, not one digit of the interval."""
    res = _results(saved, "full")
    got = stats.intervals(res, iters=30, seed=7)
    records = [{"prediction": e["prediction"], "references": e["references"], "rouge": e["rouge"]} for e in res["examples"]]
    plain = bootstrap_ci(Scorer("generate_until", [{"metric": "rouge"}, {"metric": "bleu"}], records), 30, 7)
    assert set(got) == {"rouge1", "rouge2", "rougeL", "rougeLsum", "bleu"}
    for m, ci in plain.items():
        assert got[m]["ci_low"] == pytest.approx(ci["ci_low"], abs=1e-9)
        assert got[m]["ci_high"] == pytest.approx(ci["ci_high"], abs=1e-9)
        assert ci["ci_low"] <= res["metrics"][m] <= ci["ci_high"] or m == "bleu"


def test_improvements_are_paired_and_relative(saved):
    base, full = _results(saved, "original"), _results(saved, "full")
    imp = stats.improvements(base, full, iters=50, seed=3)
    r1 = imp["rouge1"]
    assert r1["delta"] == pytest.approx(full["metrics"]["rouge1"] - base["metrics"]["rouge1"])
    assert r1["relative"] == pytest.approx(r1["delta"] / base["metrics"]["rouge1"])
    sb, sf = stats.scorers(base["examples"]), stats.scorers(full["examples"])
    assert r1["ci_low"] == paired_bootstrap(sb[0], sf[0], "rouge1", 50, 3)["ci_low"]
    assert r1["ci_low"] > 0  # synthetic "full" keeps 60% of reference words, "original" 20%
    shuffled = dict(full, examples=full["examples"][::-1])  # other examples: no paired interval
    assert "ci_low" not in stats.improvements(base, shuffled, iters=50)["rouge1"]
    assert stats.intervals(dict(base, examples=[]), iters=50) == {}
    assert stats.intervals(base, iters=0) == {}


@pytest.mark.parametrize("label", ["original", "full", "lora"])
def test_highlighted_words_are_rouge1_matches(saved, label):
    """Marked words / all words = the item's ROUGE-1 precision, for every saved example."""
    for ex in _results(saved, label)["examples"]:
        spans = stats.overlap_spans(ex["prediction"], ex["references"][0])
        n_words = len(re.findall(r"[a-z0-9]+", ex["prediction"].lower()))
        assert len(spans) // 2 == pytest.approx(ex["rouge"]["rouge1"]["precision"] * n_words, abs=1e-6)


def test_highlights_use_stems_and_clip_counts():
    pred, ref = "The cats were running; the cat ran and ran.", "A cat runs. Ran!"
    spans = stats.overlap_spans(pred, ref)
    marked = [pred[spans[i]:spans[i + 1]] for i in range(0, len(spans), 2)]
    assert marked == ["cats", "running", "ran"]  # cat+s and run+ning stem like the reference; 'ran' once
    _, items = summarization_metrics([pred], [[ref]])
    assert len(marked) / 9 == pytest.approx(items[0]["rouge1"]["precision"])
    assert stats.overlap_spans("straße", "stra e") == [0, 4, 5, 6]  # rouge-score splits at any non-ASCII letter
    assert stats.overlap_spans("İstanbul rain", "rain") == []  # 'İ' lower-cases to two characters: offsets unsafe
