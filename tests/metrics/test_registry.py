"""Each benchmark metric against its reference library (or a case worked by hand), and the bootstrap."""

import math
import random

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer

from tuneval.metrics.registry import (
    GEN_METRICS,
    Scorer,
    balanced_accuracy,
    bootstrap_ci,
    expected_calibration_error,
    label_f1,
    matthews_corrcoef,
    metric_specs,
    paired_bootstrap,
    token_f1,
)


def labels(n, k, seed):
    rng = random.Random(seed)
    gold = np.array([rng.randrange(k) for _ in range(n)])
    pred = np.array([g if rng.random() < 0.6 else rng.randrange(k) for g in gold])
    return gold, pred


def mc_records(gold, pred, probs=None):
    return [{"gold": int(g), "pred": int(p), "pred_norm": int(p), "probs": probs[i] if probs else [0.5, 0.5]}
            for i, (g, p) in enumerate(zip(gold, pred))]


def test_mcc_by_hand():
    # tp=3 tn=2 fp=1 fn=2: (3*2 - 1*2) / sqrt(4*5*3*4)
    gold = np.array([1, 1, 1, 1, 1, 0, 0, 0])
    pred = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    assert matthews_corrcoef(gold, pred) == pytest.approx(4 / math.sqrt(240))
    assert matthews_corrcoef(np.array([1, 1, 1]), np.array([1, 1, 1])) == 0.0  # undefined -> 0, as sklearn


def test_f1_by_hand():
    gold = np.array([1, 1, 1, 1, 1, 0, 0, 0])
    pred = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    assert label_f1(gold, pred) == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    # macro: class 0 has tp=2 fp=2 fn=1 -> 4/7; class 1 has 6/9
    assert label_f1(gold, pred, "macro") == pytest.approx((4 / 7 + 6 / 9) / 2)


@pytest.mark.parametrize("k, seed", [(2, 0), (3, 1), (4, 2)])
def test_mcc_and_f1_match_sklearn(k, seed):
    metrics = pytest.importorskip("sklearn.metrics")
    gold, pred = labels(200, k, seed)
    assert matthews_corrcoef(gold, pred) == pytest.approx(metrics.matthews_corrcoef(gold, pred), abs=1e-12)
    assert label_f1(gold, pred, "macro") == pytest.approx(metrics.f1_score(gold, pred, average="macro"), abs=1e-12)
    if k == 2:
        assert label_f1(gold, pred) == pytest.approx(metrics.f1_score(gold, pred), abs=1e-12)


@pytest.mark.parametrize("k, seed", [(2, 0), (3, 1), (4, 2)])
def test_balanced_accuracy_matches_sklearn_and_ignores_the_answer_prior(k, seed):
    gold, pred = labels(200, k, seed)
    metrics = pytest.importorskip("sklearn.metrics")
    assert balanced_accuracy(gold, pred) == pytest.approx(metrics.balanced_accuracy_score(gold, pred), abs=1e-12)
    always = np.full_like(gold, np.bincount(gold).argmax())  # one answer for everything: acc = majority share
    assert balanced_accuracy(gold, always) == pytest.approx(1 / len(np.unique(gold)))


def test_multiple_choice_tasks_always_report_balanced_acc():
    gold = np.array([0, 0, 0, 1])
    score = Scorer("multiple_choice", metric_specs("multiple_choice", [{"metric": "acc"}]),
                   mc_records(gold, np.zeros(4, dtype=int))).score()
    assert score["acc"] == pytest.approx(0.75) and score["balanced_acc"] == pytest.approx(0.5)


def test_cb_macro_f1_is_lm_evals_cb_multi_fi():
    pytest.importorskip("sklearn")
    aggregate = pytest.importorskip("lm_eval.tasks.super_glue.cb.aggregate")
    gold, pred = labels(56, 3, 7)
    scorer = Scorer("multiple_choice", [{"metric": "f1", "average": "macro"}], mc_records(gold, pred))
    assert scorer.score()["f1"] == pytest.approx(aggregate.cb_multi_fi(list(zip(pred, gold))), abs=1e-12)


def test_ece_by_hand():
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([1.0, 0.0, 1.0, 1.0])
    # bin (0.9,1.0]: acc 0.5, conf 0.95 -> 0.45 * 2/4; bin (0.5,0.6]: acc 1, conf 0.55 -> 0.45 * 2/4
    assert expected_calibration_error(conf, correct) == pytest.approx(0.45)
    assert expected_calibration_error(np.array([0.7, 0.7]), np.array([1.0, 0.0]), bins=5) == pytest.approx(0.2)


def gen_records():
    preds = ["The cat sat on the mat.", "A quick brown fox jumps", "hello there world", "Paris"]
    refs = [["The cat is on the mat."], ["The quick brown fox jumps over the lazy dog"], ["hello world"], ["paris"]]
    return [{"prediction": p, "references": r} for p, r in zip(preds, refs)], preds, refs


def test_bleu_chrf_match_sacrebleu():
    records, preds, refs = gen_records()
    streams = [[r[0] for r in refs]]
    score = Scorer("generate_until", [{"metric": "bleu"}, {"metric": "chrf"}], records).score()
    assert score["bleu"] == pytest.approx(sacrebleu.corpus_bleu(preds, streams).score)
    assert score["chrf"] == pytest.approx(sacrebleu.corpus_chrf(preds, streams).score)


def test_rouge_matches_rouge_score():
    records, preds, refs = gen_records()
    score = Scorer("generate_until", [{"metric": "rouge"}], records).score()
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    for key in ("rouge1", "rouge2", "rougeL"):
        want = np.mean([scorer.score(r[0], p)[key].fmeasure for p, r in zip(preds, refs)])
        assert score[key] == pytest.approx(want)


def test_exact_match_and_token_f1():
    records, _, _ = gen_records()
    em = Scorer("generate_until", [{"metric": "exact_match"}], records).score()["exact_match"]
    em_ci = Scorer("generate_until", [{"metric": "exact_match", "ignore_case": True}], records).score()["exact_match"]
    assert em == 0.0 and em_ci == 0.25  # only "Paris" == "paris", ignoring case
    # SQuAD: articles and punctuation dropped; "cat sat on mat" vs "cat is on mat": 3 common, P=R=3/4
    assert token_f1("The cat sat on the mat.", "The cat is on the mat.") == pytest.approx(0.75)
    assert token_f1("hello there world", "hello world") == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    f1 = Scorer("generate_until", [{"metric": "f1"}], records).score()["f1"]
    assert f1 == pytest.approx(np.mean([max(token_f1(r["prediction"], x) for x in r["references"]) for r in records]))
    assert set(GEN_METRICS) == {"exact_match", "f1", "rouge", "bleu", "chrf", "tool_call"}


def test_multiple_choice_always_reports_acc_acc_norm_ece_balanced_acc():
    specs = metric_specs("multiple_choice", [{"metric": "mcc"}])
    assert [s["metric"] for s in specs] == ["mcc", "acc", "acc_norm", "ece", "balanced_acc"]
    gold, pred = labels(50, 2, 3)
    records = mc_records(gold, pred, [[0.8, 0.2]] * 50)
    records[0]["pred_norm"] = 1 - records[0]["pred"]
    score = Scorer("multiple_choice", specs, records).score()
    assert score["acc"] == pytest.approx(np.mean(gold == pred))
    assert score["acc_norm"] == pytest.approx(score["acc"] + (0.02 if gold[0] != pred[0] else -0.02))
    assert score["ece"] == pytest.approx(abs(score["acc"] - 0.8))


def test_bootstrap_interval_covers_the_score_and_shrinks_with_n():
    widths = []
    for n in (40, 400):
        gold, pred = labels(n, 2, n)
        scorer = Scorer("multiple_choice", [{"metric": "acc"}, {"metric": "mcc"}], mc_records(gold, pred))
        ci = bootstrap_ci(scorer, n=300, seed=0)
        point = scorer.score()
        for m in ("acc", "mcc"):
            assert ci[m]["ci_low"] <= point[m] <= ci[m]["ci_high"]
        assert ci["acc"]["stderr"] == pytest.approx(math.sqrt(point["acc"] * (1 - point["acc"]) / n), rel=0.25)
        assert bootstrap_ci(scorer, n=300, seed=0) == ci  # seeded: the same interval every time
        widths.append(ci["acc"]["ci_high"] - ci["acc"]["ci_low"])
    assert widths[1] < widths[0] / 2


def test_paired_bootstrap_sees_a_small_consistent_gain():
    gold, pred = labels(300, 2, 11)
    before = mc_records(gold, pred)
    after = [dict(r) for r in before]
    flipped = 0
    for r in after:  # fix 15 wrong answers, break none: +5 points, always in the same direction
        if r["pred"] != r["gold"] and flipped < 15:
            r["pred"], flipped = r["gold"], flipped + 1
    specs = [{"metric": "acc"}]
    result = paired_bootstrap(Scorer("multiple_choice", specs, before), Scorer("multiple_choice", specs, after), "acc", 500)
    assert result["delta"] == pytest.approx(0.05)
    assert result["ci_low"] > 0 and result["p_not_better"] == 0.0


def test_bleu_and_chrf_from_summed_counts_equal_sacrebleu_on_resamples():
    """Counts taken once and summed per resample: the corpus score sacrebleu gives, to the last digit."""
    import sacrebleu

    from tuneval.metrics.text import reference_streams

    rng = np.random.default_rng(3)
    words = "the cat sat on a mat while two dogs ran home quickly and slowly".split()
    records = [{"prediction": " ".join(rng.choice(words, rng.integers(0, 9))),
                "references": [" ".join(rng.choice(words, rng.integers(1, 9))) for _ in range(rng.integers(1, 3))]}
               for _ in range(30)]
    scorer = Scorer("generate_until", [{"metric": "bleu"}, {"metric": "chrf"}], records)
    for idx in [None, *(rng.integers(0, 30, 30) for _ in range(5))]:
        sub = records if idx is None else [records[i] for i in idx]
        streams = reference_streams([r["references"] for r in sub])
        preds = [r["prediction"] for r in sub]
        got = scorer.score(idx)
        assert got["bleu"] == sacrebleu.metrics.BLEU().corpus_score(preds, streams).score
        assert got["chrf"] == sacrebleu.metrics.CHRF().corpus_score(preds, streams).score
    assert Scorer("generate_until", [{"metric": "bleu"}], []).score() == {"bleu": 0.0}
