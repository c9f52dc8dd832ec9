"""ROUGE and BLEU, computed by the reference libraries (rouge-score, sacrebleu).

Per-item scoring is kept apart from corpus aggregation: ROUGE is reported as the mean of
per-item scores (as rouge-score and HF `evaluate` do), while BLEU is a *corpus* statistic
(n-gram counts summed over all items, one brevity penalty), never a mean of sentence BLEU.
ROUGE values are in [0, 1]; BLEU in [0, 100] with sacrebleu's signature.
"""

from __future__ import annotations

import re
from statistics import fmean

import sacrebleu
from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
HEADLINE = (*ROUGE_TYPES, "bleu")  # the F1s and corpus BLEU: what every table of a generation task shows
SCALE_100 = {"bleu", "chrf"}  # sacrebleu's scale; every other metric is in [0, 1] (or [-1, 1])
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def fmt(metric: str, value: float | None, sign: str = "") -> str:
    """A score as every table prints it: 2 decimals on the [0, 100] scale (BLEU, chrF), else 4; '-' for none."""
    if value is None:
        return "-"
    return f"{value:{sign}.2f}" if metric in SCALE_100 else f"{value:{sign}.4f}"


def reference_streams(references: list[list[str]]) -> list[list[str]]:
    """sacrebleu's layout: stream k holds every item's k-th reference, "" where an item has fewer."""
    n_refs = max(len(r) for r in references) if references else 1
    return [[refs[k] if k < len(refs) else "" for refs in references] for k in range(n_refs)]


def _lsum_lines(text: str) -> str:
    """rougeLsum treats newlines as sentence breaks; split sentences so it is summary-level LCS."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


def rouge_items(predictions: list[str], references: list[list[str]], use_stemmer: bool = True) -> list[dict]:
    """Per item: {rouge1: {precision, recall, fmeasure}, ...}; several references -> the best one."""
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
    items = []
    for pred, refs in zip(predictions, references, strict=True):
        scores = scorer.score_multi([_lsum_lines(r) for r in refs], _lsum_lines(pred))
        items.append(
            {k: {"precision": v.precision, "recall": v.recall, "fmeasure": v.fmeasure} for k, v in scores.items()}
        )
    return items


def rouge_aggregate(items: list[dict]) -> dict[str, float]:
    """Means of per-item scores. `rouge1` is the F1 (lm-eval naming); P/R/F1 all kept."""
    out: dict[str, float] = {}
    for key in ROUGE_TYPES:
        for stat, name in (("precision", "precision"), ("recall", "recall"), ("fmeasure", "f1")):
            out[f"{key}_{name}"] = fmean(item[key][stat] for item in items) if items else 0.0
        out[key] = out[f"{key}_f1"]
    return out


def corpus_bleu(predictions: list[str], references: list[list[str]]) -> dict:
    """sacrebleu corpus BLEU; references[i] holds item i's references (any number, padded)."""
    bleu = sacrebleu.metrics.BLEU()
    result = bleu.corpus_score(predictions, reference_streams(references))
    return {
        "bleu": result.score,
        "bleu_precisions": list(result.precisions),
        "bleu_brevity_penalty": result.bp,
        "bleu_signature": str(bleu.get_signature()),
    }


def summarization_metrics(predictions: list[str], references: list[list[str]],
                          items: list[dict] | None = None) -> tuple[dict, list[dict]]:
    """(corpus-level metrics, per-item ROUGE) for generated text against human references: ROUGE
    P/R/F1, corpus BLEU with its n-gram precisions and brevity penalty, every value a number
    (BLEU's signature is kept apart, in results["signatures"])."""
    items = rouge_items(predictions, references) if items is None else items
    metrics = rouge_aggregate(items)
    bleu = corpus_bleu(predictions, references)
    metrics.update({"bleu": bleu["bleu"], "bleu_brevity_penalty": bleu["bleu_brevity_penalty"],
                    **{f"bleu_precision_{n + 1}": p for n, p in enumerate(bleu["bleu_precisions"])}})
    return metrics, items
