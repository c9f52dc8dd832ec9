import sacrebleu
from rouge_score import rouge_scorer

from tuneval.metrics.text import corpus_bleu, rouge_aggregate, rouge_items, summarization_metrics

PAIRS = [
    ("It is very cold outside", "It is cold outside"),
    ("the cat sat on the mat", "a cat was sitting on the mat"),
    ("#Person1# asks #Person2# to book a table. They will meet at noon.", "#Person2# books a table for two at noon."),
    ("nothing in common", "completely different words"),
]


def test_textbook_rouge1():
    item = rouge_items(["It is very cold outside"], [["It is cold outside"]])[0]
    assert item["rouge1"]["recall"] == 1.0
    assert item["rouge1"]["precision"] == 0.8
    assert abs(item["rouge1"]["fmeasure"] - 2 * 0.8 / 1.8) < 1e-12
    assert item["rouge2"]["recall"] == 2 / 3  # "it is", "cold outside" of 3 reference bigrams


def test_rouge_equals_rouge_score_with_stemming():
    preds, refs = [p for p, _ in PAIRS], [r for _, r in PAIRS]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    expected = [scorer.score(r, p) for p, r in zip(preds, refs)]
    agg = rouge_aggregate(rouge_items(preds, [[r] for r in refs]))
    for key in ("rouge1", "rouge2", "rougeL"):
        for stat, name in (("precision", "precision"), ("recall", "recall"), ("fmeasure", "f1")):
            want = sum(getattr(e[key], stat) for e in expected) / len(expected)
            assert abs(agg[f"{key}_{name}"] - want) < 1e-12
    # stemming: "sitting"/"sat" differ, but "sitting" matches "sit" after stemming
    assert rouge_items(["sitting"], [["sit"]])[0]["rouge1"]["fmeasure"] == 1.0


def test_rougelsum_splits_sentences():
    item = rouge_items(["b c. a b."], [["a b. b c."]])[0]
    assert item["rougeLsum"]["fmeasure"] == 1.0 and item["rougeL"]["fmeasure"] < 1.0


def test_corpus_bleu_equals_sacrebleu_and_is_not_a_mean_of_sentences():
    preds, refs = [p for p, _ in PAIRS], [r for _, r in PAIRS]
    ours = corpus_bleu(preds, [[r] for r in refs])
    theirs = sacrebleu.corpus_bleu(preds, [refs])
    assert ours["bleu"] == theirs.score
    assert ours["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    sentence_mean = sum(sacrebleu.sentence_bleu(p, [r]).score for p, r in PAIRS) / len(PAIRS)
    assert abs(ours["bleu"] - sentence_mean) > 1.0


def test_multiple_references():
    preds = ["It is very cold outside", "a cat sat"]
    refs = [["It is cold outside", "It is very cold outside"], ["the cat sat"]]
    m, items = summarization_metrics(preds, refs)
    assert items[0]["rouge1"]["fmeasure"] == 1.0  # best reference wins
    assert m["bleu"] == sacrebleu.corpus_bleu(preds, [[r[0] for r in refs], [refs[0][1], ""]]).score
