"""Intervals and word overlaps for the report, computed from the per-example records saved.

Generation results.json carries every prediction and its per-item ROUGE but no interval, so
the report bootstraps them with the harness's own `bootstrap_ci` and `paired_bootstrap`
(metrics/registry.py). Only BLEU is made cheaper: it is a corpus statistic, and re-tokenising
500 sentences on each of 1,000 resamples takes minutes per model; summing sacrebleu's own
per-sentence n-gram counts gives the identical score (sacrebleu's significance tests do
the same) in well under a millisecond.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Any

import numpy as np

from tuneval.evaluate.harness import DEFAULT_SEED
from tuneval.metrics.text import HEADLINE as METRICS
from tuneval.metrics.text import reference_streams
from tuneval.metrics.registry import Metric, Scorer, bootstrap_ci, paired_bootstrap

BLEU_STATS = "_bleu_stats"  # per-record n-gram counts, added to the report's copies of the records


@lru_cache(maxsize=1)
def _bleu():
    import sacrebleu

    return sacrebleu.metrics.BLEU()  # the same settings as metrics.corpus_bleu


def _bleu_from_stats(records: list[dict], _opts: dict) -> dict[str, float]:
    if not records:
        return {"bleu": 0.0}
    total = np.sum([r[BLEU_STATS] for r in records], axis=0)
    return {"bleu": float(_bleu()._compute_score_from_stats([int(x) for x in total]).score)}


FAST_BLEU = Metric("bleu", ("bleu",), corpus=_bleu_from_stats)


def records(examples: list[dict]) -> list[dict]:
    """The scorer's records, with BLEU counts per sentence (references padded as corpus_bleu pads them)."""
    out = [{"prediction": ex["prediction"], "references": ex["references"], "rouge": ex["rouge"]} for ex in examples]
    if out:
        streams = reference_streams([r["references"] for r in out])
        stats = _bleu()._extract_corpus_statistics([r["prediction"] for r in out], streams)
        for r, s in zip(out, stats):
            r[BLEU_STATS] = np.asarray(s, dtype=np.int64)
    return out


def scorers(examples: list[dict]) -> tuple[Scorer, Scorer]:
    """(ROUGE scorer, BLEU scorer): apart, so a ROUGE resample never pays for BLEU."""
    recs = records(examples)
    rouge = Scorer("generate_until", [{"metric": "rouge"}], recs)
    bleu = Scorer("generate_until", [{"metric": "bleu"}], recs)
    bleu.reg = {**bleu.reg, "bleu": FAST_BLEU}
    return rouge, bleu


def _scorer_for(pair: tuple[Scorer, Scorer], metric: str) -> Scorer:
    return pair[1] if metric == "bleu" else pair[0]


def has_examples(results: dict) -> bool:
    ex = results.get("examples")
    return bool(ex) and all("rouge" in e and "prediction" in e for e in ex)


def intervals(results: dict, iters: int = 1000, seed: int = DEFAULT_SEED) -> dict[str, dict[str, float]]:
    """{metric: {ci_low, ci_high, stderr}} from the examples; {} where results carry none."""
    if not has_examples(results) or iters < 1:
        return {}
    pair = scorers(results["examples"])
    return {**bootstrap_ci(pair[0], iters, seed), **bootstrap_ci(pair[1], iters, seed)}


def same_examples(a: dict, b: dict) -> bool:
    if not (has_examples(a) and has_examples(b)):
        return False
    ea, eb = a["examples"], b["examples"]
    return len(ea) == len(eb) and all(x.get("id") == y.get("id") and x["references"] == y["references"]
                                      for x, y in zip(ea, eb))


def improvements(base: dict, other: dict, iters: int = 1000, seed: int = DEFAULT_SEED) -> dict[str, dict[str, Any]]:
    """Per metric: absolute and relative change over `base`; a paired 95% interval of the change
    when both scored the same examples (the same resample for both sides, as the forgetting check does)."""
    out: dict[str, dict[str, Any]] = {}
    paired = iters > 0 and same_examples(base, other)
    pb = scorers(base["examples"]) if paired else None
    po = scorers(other["examples"]) if paired else None
    for m in METRICS:
        old, new = base["metrics"].get(m), other["metrics"].get(m)
        if old is None or new is None:
            continue
        row: dict[str, Any] = {"delta": new - old, "relative": (new - old) / old if old else None}
        if paired:
            d = paired_bootstrap(_scorer_for(pb, m), _scorer_for(po, m), m, iters, seed)
            row.update(ci_low=d["ci_low"], ci_high=d["ci_high"])
        out[m] = row
    return out


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
