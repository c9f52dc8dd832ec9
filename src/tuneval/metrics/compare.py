"""Intervals and paired differences of saved generation results, from their per-example records.

A generation results.json keeps every prediction and its per-item ROUGE, so its scores can be
bootstrapped again, and two results on the same examples compared pairwise, with the harness's
own `bootstrap_ci` and `paired_bootstrap` (registry.py: BLEU from summed per-sentence counts, so
1,000 resamples take well under a second). The demo's comparison table and the HTML report both
come here, so the two show the same intervals.
"""

from __future__ import annotations

from typing import Any

from tuneval.metrics.registry import Scorer, bootstrap_ci, paired_bootstrap
from tuneval.metrics.text import HEADLINE as METRICS

SEED = 1234  # the harness's bootstrap seed (evaluate.harness.DEFAULT_SEED, lm-eval's), so intervals match results.json


def records(examples: list[dict]) -> list[dict]:
    """The scorer's records: prediction, references and the per-item ROUGE saved with them."""
    return [{"prediction": ex["prediction"], "references": ex["references"], "rouge": ex["rouge"]} for ex in examples]


def scorers(examples: list[dict]) -> tuple[Scorer, Scorer]:
    """(ROUGE scorer, BLEU scorer): apart, so a ROUGE resample never pays for BLEU."""
    recs = records(examples)
    return Scorer("generate_until", [{"metric": "rouge"}], recs), Scorer("generate_until", [{"metric": "bleu"}], recs)


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
