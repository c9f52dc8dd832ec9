"""Intervals and paired differences of saved generation results, from their per-example records.

A generation results.json keeps every prediction and its per-item ROUGE, so its scores can be
bootstrapped again, and two results on the same examples compared pairwise, with the harness's
own `bootstrap_ci` and `paired_bootstrap` (registry.py). The demo's comparison table and the
HTML report both come here, so the two show the same intervals. Only BLEU is made cheaper: it
is a corpus statistic, and re-tokenising 500 sentences on each of 1,000 resamples takes minutes
per model; summing sacrebleu's own per-sentence n-gram counts gives the identical score
(sacrebleu's significance tests do the same) in well under a millisecond.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from tuneval.metrics.registry import Metric, Scorer, bootstrap_ci, paired_bootstrap
from tuneval.metrics.text import HEADLINE as METRICS
from tuneval.metrics.text import reference_streams

BLEU_STATS = "_bleu_stats"  # per-record n-gram counts, added to the scorer's copies of the records
SEED = 1234  # the harness's bootstrap seed (evaluate.harness.DEFAULT_SEED, lm-eval's), so intervals match results.json


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


def intervals(results: dict, iters: int = 1000, seed: int = SEED) -> dict[str, dict[str, float]]:
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


def improvements(base: dict, other: dict, iters: int = 1000, seed: int = SEED) -> dict[str, dict[str, Any]]:
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
