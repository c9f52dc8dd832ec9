"""Intervals and word overlaps for the report, computed from the per-example records saved.

Generation results.json carries every prediction and its per-item ROUGE, so the report
bootstraps them again with the harness's own `bootstrap_ci` and `paired_bootstrap` (metrics/compare.py,
shared with the demo's comparison table so the two show the same intervals). Here: which words ROUGE-1 counted.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

from tuneval.metrics.compare import (METRICS, has_examples, improvements, intervals, records, same_examples,
                                     scorers)

__all__ = ["METRICS", "has_examples", "improvements", "intervals", "records", "same_examples", "scorers",
           "overlap_spans"]


# ---- the words ROUGE-1 counts ---------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z0-9]+")


@lru_cache(maxsize=1)
def _tokenizer():
    from rouge_score import tokenizers

    return tokenizers.DefaultTokenizer(use_stemmer=True)  # what metrics.rouge_items scores with


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    toks = _tokenizer().tokenize(word)
    return toks[0] if toks else word.lower()


def _words(text: str) -> list[tuple[int, int, str]] | None:
    """(start, end, stem) per token, as rouge-score tokenises; None where the character offsets
    cannot be trusted (a character whose lower case is not one character long)."""
    found = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(text)]
    if [w.lower() for *_, w in found] != re.findall(r"[a-z0-9]+", text.lower()):
        return None
    return [(s, e, _stem(w)) for s, e, w in found]


def overlap_spans(prediction: str, reference: str) -> list[int]:
    """Flat [start, end, ...] of the prediction's words ROUGE-1 counts as matching the reference:
    stemmed unigrams, each reference word matched at most as often as it occurs (clipped counts),
    so marked / all words is the item's ROUGE-1 precision."""
    pred, ref = _words(prediction), _words(reference)
    if pred is None or ref is None:
        return []
    left = Counter(stem for *_, stem in ref)
    spans: list[int] = []
    for s, e, stem in pred:
        if left[stem] > 0:
            left[stem] -= 1
            spans += [s, e]
    return spans
