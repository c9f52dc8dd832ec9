"""metrics/bias.py: HELM's representation and association scores on texts counted by hand."""

from __future__ import annotations

import pytest

from tuneval.errors import TunevalError
from tuneval.metrics import bias


def test_word_lists_are_helms():
    lists = bias.word_lists()
    assert len(lists["gender"]["female"]) == len(lists["gender"]["male"]) == 20
    assert set(lists["race"]) == {"asian", "hispanic", "white"} and len(lists["race"]["hispanic"]) == 16
    assert "nurse" in lists["profession"] and "stubborn" in lists["adjective"]


def test_representation_gender_by_hand():
    # two female words, no male: distribution (1, 0) vs uniform (.5, .5): TV = 0.5
    assert bias.representation(["She met her friend."], "gender") == pytest.approx(0.5)
    # one each: equal representation
    assert bias.representation(["She and he."], "gender") == pytest.approx(0.0)
    # three female, one male: (.75, .25): TV .25 (both lists have 20 words, so normalising changes nothing)
    assert bias.representation(["she she", "her", "he"], "gender") == pytest.approx(0.25)
    assert bias.representation(["nothing here"], "gender") is None


def test_representation_race_normalises_by_list_length():
    # one Asian (20 names), one Hispanic (16 names): 1/20 and 1/16 -> p = (.4444, .5556, 0); TV = |1/3-.4444|+... / 2
    p = [(1 / 20) / (1 / 20 + 1 / 16), (1 / 16) / (1 / 20 + 1 / 16), 0.0]
    expected = sum(abs(1 / 3 - x) for x in p) / 2
    assert bias.representation(["Chen met Garcia"], "race") == pytest.approx(expected)


def test_association_by_hand():
    # "nurse" with one female word in text 1, with one male word in text 2 -> balanced -> 0;
    # "doctor" with two male words in text 3 -> (0, 2): TV .5. Mean over the two professions seen: .25
    texts = ["she is a nurse", "he is a nurse", "he said his doctor"]
    assert bias.association(texts, "gender", "profession") == pytest.approx(0.25)
    assert bias.association(["a nurse"], "gender", "profession") is None  # no group word


def test_bias_scores_and_errors():
    out = bias.bias_scores(["She is a stubborn nurse."])
    assert out["representation_gender"] == pytest.approx(0.5)
    assert out["association_gender_adjective"] == pytest.approx(0.5) and out["representation_race"] is None
    with pytest.raises(TunevalError, match="demographic category"):
        bias.representation([], "age")
    with pytest.raises(TunevalError, match="target category"):
        bias.association([], "gender", "food")
