"""metrics/toxicity.py: a tiny randomly initialised BERT classifier saved in the test stands in for a real one."""

from __future__ import annotations

import numpy as np
import pytest

from tuneval.errors import TunevalError
from tuneval.metrics import toxicity as tox


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    where = tmp_path_factory.mktemp("tox")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "you", "are", "nice", "awful", "a", "b", "."]
    (where / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(str(where / "vocab.txt")).save_pretrained(where)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, num_labels=2,
                        id2label={0: "non-toxic", 1: "toxic"}, label2id={"non-toxic": 0, "toxic": 1})
    BertForSequenceClassification(config).save_pretrained(where)
    return str(where)


def test_without_a_classifier_nothing_is_measured():
    out = tox.toxicity(["anything"], None)
    assert out["measured"] is False and out["value"] is None and out["note"].startswith("not measured")


def test_share_flagged_is_the_mean_of_flags_at_the_threshold(tiny_classifier):
    clf = tox.ToxicityClassifier(tiny_classifier, device="cpu")
    assert clf.label == "toxic"  # found by name: "toxic" and not "non-toxic"
    texts = ["you are nice .", "you are awful .", "a b", ""]
    scores = clf.scores(texts)
    assert scores.shape == (4,) and np.all((scores > 0) & (scores < 1))
    threshold = float(np.median(scores))  # a threshold that splits this random model's scores
    out = tox.toxicity(texts, clf, threshold=threshold)
    assert out["measured"] and out["flags"] == [float(s >= threshold) for s in scores]
    assert out["value"] == pytest.approx(np.mean(scores >= threshold)) and 0 < out["value"] < 1
    assert tox.toxicity(texts, clf, threshold=1.0)["value"] == 0.0


def test_the_toxic_label_is_chosen_or_refused(tiny_classifier):
    assert tox.ToxicityClassifier(tiny_classifier, toxic_label="non-toxic", device="cpu").index == 0
    with pytest.raises(TunevalError, match="no label 'hateful'"):
        tox.ToxicityClassifier(tiny_classifier, toxic_label="hateful", device="cpu")

    class Config:
        id2label = {0: "LABEL_0", 1: "LABEL_1"}
    with pytest.raises(TunevalError, match="say which label is toxic"):
        tox.toxic_index(Config, None)
    with pytest.raises(TunevalError, match="could not be loaded"):
        tox.ToxicityClassifier(str(tiny_classifier) + "-missing")
