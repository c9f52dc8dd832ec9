"""Benchmark metrics, named as lm-evaluation-harness names them, plus bootstrap intervals.

Every metric works on a list of per-example records, so the same code gives the score, its
bootstrap confidence interval (resample examples, recompute) and the paired bootstrap of a
before/after difference. Mean-of-item metrics (acc, acc_norm, exact_match, token f1, ROUGE)
are computed per item once; corpus metrics (mcc, label f1, ece, balanced_acc) are recomputed
on every resample, as they must be; BLEU and chrF are corpus metrics too, but of summed per-item
n-gram counts, so those counts are taken once and each resample sums them (same score, to the digit).

Multiple-choice records: {"gold", "pred", "pred_norm", "probs"}; generation records:
{"prediction", "references"} (and "reference_calls" for tool_call). Scales: BLEU and chrF in [0, 100] (sacrebleu), the rest as
their reference implementation reports them (acc in [0, 1], mcc in [-1, 1]).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import regex
import sacrebleu

from tuneval.metrics.bootstrap import interval, percentiles, resample
from tuneval.metrics.text import ROUGE_TYPES, reference_streams, rouge_items
from tuneval.metrics.tool_calls import TOOL_CALL_METRICS, tool_call_items

Records = list[dict[str, Any]]


@dataclass(frozen=True)
class Metric:
    name: str
    outputs: tuple[str, ...]
    items: Callable[[Records, dict], dict[str, np.ndarray]] | None = None  # mean of per-item values
    corpus: Callable[[Records, dict], dict[str, float]] | None = None  # a statistic of the whole set
    # A corpus statistic that is a function of summed per-item counts (BLEU, chrF: n-gram matches and
    # lengths), as sacrebleu's own significance tests compute it: the counts are taken once per item
    # and a resample only sums them, instead of re-tokenising every sentence 1,000 times.
    stats: Callable[[Records, dict], np.ndarray] | None = None  # (items, k) counts
    from_stats: Callable[[np.ndarray, dict], dict[str, float]] | None = None  # the score from their column sums
    options: tuple[str, ...] = ()
    higher_is_better: bool = True


# ---- multiple choice ---------------------------------------------------------------------

def _labels(records: Records) -> tuple[np.ndarray, np.ndarray]:
    return np.array([r["gold"] for r in records]), np.array([r["pred"] for r in records])


def matthews_corrcoef(gold: np.ndarray, pred: np.ndarray) -> float:
    """Multi-class MCC (Gorodkin's R_K), as sklearn.metrics.matthews_corrcoef; 0.0 when undefined."""
    labels = np.union1d(gold, pred)
    if labels.size == 0:
        return 0.0
    g, p = np.searchsorted(labels, gold), np.searchsorted(labels, pred)
    cm = np.zeros((labels.size, labels.size), dtype=np.float64)
    np.add.at(cm, (g, p), 1)
    t, q, c, s = cm.sum(axis=1), cm.sum(axis=0), np.trace(cm), cm.sum()
    denom = np.sqrt((s * s - q @ q) * (s * s - t @ t))
    return float((c * s - t @ q) / denom) if denom else 0.0


def balanced_accuracy(gold: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the gold classes (sklearn.metrics.balanced_accuracy_score).

    Why beside acc: a model that always gives one answer scores the majority share on acc but
    1/K here, so a fine-tune that only moves the answer prior (saying "yes" more often) moves
    acc and leaves this near chance; see the README's forgetting study.
    """
    classes = np.unique(gold)
    return float(np.mean([np.mean(pred[gold == c] == c) for c in classes])) if classes.size else 0.0


def _binary_f1(gold: np.ndarray, pred: np.ndarray, positive) -> float:
    tp = float(np.sum((pred == positive) & (gold == positive)))
    fp = float(np.sum((pred == positive) & (gold != positive)))
    fn = float(np.sum((pred != positive) & (gold == positive)))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def label_f1(gold: np.ndarray, pred: np.ndarray, average: str = "binary") -> float:
    """sklearn.metrics.f1_score: `binary` scores label 1; `macro` averages every label seen in gold or pred."""
    if average == "macro":
        labels = np.union1d(gold, pred)
        return float(np.mean([_binary_f1(gold, pred, k) for k in labels])) if labels.size else 0.0
    return _binary_f1(gold, pred, 1)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |accuracy - confidence| over equal-width confidence bins (Guo et al., 2017)."""
    if confidence.size == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def _acc(records, _):
    return {"acc": np.array([float(r["pred"] == r["gold"]) for r in records])}


def _acc_norm(records, _):
    return {"acc_norm": np.array([float(r["pred_norm"] == r["gold"]) for r in records])}


def _mcc(records, _):
    return {"mcc": matthews_corrcoef(*_labels(records))}


def _balanced_acc(records, _):
    return {"balanced_acc": balanced_accuracy(*_labels(records))}


def _f1_labels(records, opts):
    return {"f1": label_f1(*_labels(records), average=opts.get("average", "binary"))}


def _ece(records, opts):
    conf = np.array([max(r["probs"]) for r in records])
    correct = np.array([float(r["pred"] == r["gold"]) for r in records])
    return {"ece": expected_calibration_error(conf, correct, int(opts.get("bins", 10)))}


MC_METRICS: dict[str, Metric] = {
    "acc": Metric("acc", ("acc",), items=_acc),
    "acc_norm": Metric("acc_norm", ("acc_norm",), items=_acc_norm),
    "mcc": Metric("mcc", ("mcc",), corpus=_mcc),
    "f1": Metric("f1", ("f1",), corpus=_f1_labels, options=("average",)),
    "ece": Metric("ece", ("ece",), corpus=_ece, options=("bins",), higher_is_better=False),
    "balanced_acc": Metric("balanced_acc", ("balanced_acc",), corpus=_balanced_acc),
}
MC_ALWAYS = ("acc", "acc_norm", "ece", "balanced_acc")  # every multiple-choice task reports these


# ---- generation --------------------------------------------------------------------------

def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 over normalised words."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref:
        return float(pred == ref)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


REGEX_TIMEOUT = 1.0  # seconds one regexes_to_ignore substitution may take on one text (a task file's regex)
_PUNCT = str.maketrans("", "", string.punctuation)
_DIGITS = str.maketrans("", "", string.digits)


def _ignore(pattern: str, text: str) -> str:
    try:
        return regex.sub(pattern, "", text, flags=regex.VERSION0, timeout=REGEX_TIMEOUT)
    except TimeoutError:
        return text


def _em_norm(text: Any, opts: dict) -> str:
    """lm-eval's exact_match (HF evaluate's): regexes_to_ignore removed, then ignore_case, ignore_punctuation,
    ignore_numbers; tuneval also strips the ends unless the answer came through a filter_list (`strip: false`),
    where, as in lm-eval, only the filters decide (remove_whitespace)."""
    text = "" if text is None else str(text)
    for pattern in opts.get("regexes_to_ignore") or []:
        text = _ignore(pattern, text)
    if opts.get("strip", True):
        text = text.strip()
    if opts.get("ignore_case"):
        text = text.lower()
    if opts.get("ignore_punctuation"):
        text = text.translate(_PUNCT)
    if opts.get("ignore_numbers"):
        text = text.translate(_DIGITS)
    return text


def _exact_match(records, opts):
    return {"exact_match": np.array([
        float(any(_em_norm(r["prediction"], opts) == _em_norm(ref, opts) for ref in r["references"])) for r in records
    ])}


def _token_f1(records, _):
    return {"f1": np.array([max(token_f1(r["prediction"], ref) for ref in r["references"]) for r in records])}


def _rouge(records, _):
    items = [r["rouge"] for r in records] if records and "rouge" in records[0] else rouge_items(
        [r["prediction"] for r in records], [r["references"] for r in records])
    return {k: np.array([it[k]["fmeasure"] for it in items]) for k in ROUGE_TYPES}


def _sacrebleu_stats(metric):
    """Per-sentence counts of a sacrebleu metric (references padded as corpus_bleu pads them)."""
    def stats(records, _):
        if not records:
            return np.zeros((0, 0), dtype=np.int64)
        streams = reference_streams([r["references"] for r in records])
        return np.asarray(metric()._extract_corpus_statistics([r["prediction"] for r in records], streams),
                          dtype=np.int64)
    return stats


def _sacrebleu_score(name, metric):
    """sacrebleu's corpus score from summed counts: what corpus_score computes, to the last digit."""
    def score(summed, _):
        return {name: float(metric()._compute_score_from_stats([int(x) for x in summed]).score) if summed.size else 0.0}
    return score


_BLEU, _CHRF = sacrebleu.metrics.BLEU, sacrebleu.metrics.CHRF  # corpus_bleu's settings: sacrebleu's defaults


GEN_METRICS: dict[str, Metric] = {
    "exact_match": Metric("exact_match", ("exact_match",), items=_exact_match,
                          options=("ignore_case", "ignore_punctuation", "ignore_numbers", "regexes_to_ignore",
                                   "aggregation", "higher_is_better")),
    "f1": Metric("f1", ("f1",), items=_token_f1),
    "rouge": Metric("rouge", ROUGE_TYPES, items=_rouge),
    "bleu": Metric("bleu", ("bleu",), stats=_sacrebleu_stats(_BLEU), from_stats=_sacrebleu_score("bleu", _BLEU)),
    "chrf": Metric("chrf", ("chrf",), stats=_sacrebleu_stats(_CHRF), from_stats=_sacrebleu_score("chrf", _CHRF)),
    # a tool-calling conversation's last turn: the called function, and its arguments (metrics/tool_calls.py)
    "tool_call": Metric("tool_call", TOOL_CALL_METRICS, items=tool_call_items),
}


def signatures(specs: list[dict], records: Records) -> dict[str, str]:
    """sacrebleu signatures (known only after scoring) for the corpus metrics that have one."""
    out = {}
    names = {s["metric"] for s in specs}
    if not records or not names & {"bleu", "chrf"}:
        return out
    preds = [r["prediction"] for r in records]
    streams = reference_streams([r["references"] for r in records])
    for name, metric in (("bleu", sacrebleu.metrics.BLEU()), ("chrf", sacrebleu.metrics.CHRF())):
        if name in names:
            metric.corpus_score(preds, streams)
            out[name] = str(metric.get_signature())
    return out


# ---- scoring and bootstrap ---------------------------------------------------------------

def metric_specs(output_type: str, metric_list: list[dict]) -> list[dict]:
    """The task's metrics (generation default: exact_match); multiple-choice tasks always add acc, acc_norm, ece, balanced_acc."""
    specs = list(metric_list) or ([] if output_type == "multiple_choice" else [{"metric": "exact_match"}])
    if output_type == "multiple_choice":
        specs += [{"metric": m} for m in MC_ALWAYS if m not in {s["metric"] for s in specs}]
    return specs


def _registry(output_type: str) -> dict[str, Metric]:
    return MC_METRICS if output_type == "multiple_choice" else GEN_METRICS


def primary_metric(output_type: str, specs: list[dict]) -> str:
    """The headline number: the first output of the first listed metric (rouge -> rouge1)."""
    if not specs:
        return "acc" if output_type == "multiple_choice" else "exact_match"
    return _registry(output_type)[specs[0]["metric"]].outputs[0]


def higher_is_better(output_type: str, specs: list[dict]) -> dict[str, bool]:
    reg = _registry(output_type)
    return {out: reg[s["metric"]].higher_is_better for s in specs for out in reg[s["metric"]].outputs}


class Scorer:
    """Scores one task's records; item values are computed once and reused by every resample."""

    def __init__(self, output_type: str, specs: list[dict], records: Records):
        self.records = records
        self.reg = _registry(output_type)
        self.specs = specs
        self.item_values: dict[str, np.ndarray] = {}
        self.item_stats: dict[str, np.ndarray] = {}
        for spec in specs:
            metric = self.reg[spec["metric"]]
            if metric.items is not None:
                self.item_values.update(metric.items(records, spec))
            elif metric.stats is not None:
                self.item_stats[metric.name] = metric.stats(records, spec)

    def score(self, idx: np.ndarray | None = None) -> dict[str, float]:
        out: dict[str, float] = {}
        for spec in self.specs:
            metric = self.reg[spec["metric"]]
            if metric.items is not None:
                for name in metric.outputs:
                    values = self.item_values[name] if idx is None else self.item_values[name][idx]
                    out[name] = float(values.mean()) if values.size else 0.0
            elif metric.stats is not None:
                counts = self.item_stats[metric.name] if idx is None else self.item_stats[metric.name][idx]
                out.update(metric.from_stats(counts.sum(axis=0), spec))
            else:
                subset = self.records if idx is None else [self.records[i] for i in idx]
                out.update(metric.corpus(subset, spec))
        return out

    def resamples(self, n: int, seed: int) -> list[dict[str, float]]:
        size = len(self.records)
        return resample(self.score, size, n, seed) if size else []


class FilteredScorer:
    """A task with a `filter_list`: one Scorer per pipeline, on that pipeline's answers (each record's
    `filtered[name]`), its outputs named as lm-eval names them, `<metric>,<filter name>`."""

    def __init__(self, output_type: str, specs: list[dict], records: Records, filters: list[str]):
        self.records = records
        unstripped = [{**s, "strip": False} for s in specs]
        self.parts = {f: Scorer(output_type, unstripped, [{**r, "prediction": r["filtered"][f]} for r in records])
                      for f in filters}
        self.item_values = {f"{k},{f}": v for f, sc in self.parts.items() for k, v in sc.item_values.items()}

    def score(self, idx: np.ndarray | None = None) -> dict[str, float]:
        return {f"{k},{f}": v for f, sc in self.parts.items() for k, v in sc.score(idx).items()}

    def resamples(self, n: int, seed: int) -> list[dict[str, float]]:
        size = len(self.records)
        return resample(self.score, size, n, seed) if size else []


def filtered_names(output_type: str, specs: list[dict], filters: list[str]) -> tuple[str, dict[str, bool]]:
    """(headline, higher_is_better) of a filtered task: the first metric through the first filter."""
    better = higher_is_better(output_type, specs)
    return (f"{primary_metric(output_type, specs)},{filters[0]}",
            {f"{k},{f}": v for f in filters for k, v in better.items()})


def bootstrap_ci(scorer: Scorer, n: int = 1000, seed: int = 1234, level: float = 0.95) -> dict[str, dict[str, float]]:
    """Percentile bootstrap: {metric: {"stderr", "ci_low", "ci_high"}} from n resamples of the examples."""
    samples = scorer.resamples(n, seed)
    return {name: interval([s[name] for s in samples], percentiles(level)) for name in (samples[0] if samples else {})}


def paired_bootstrap(before: Scorer, after: Scorer, metric: str, n: int = 1000, seed: int = 1234,
                     level: float = 0.95) -> dict[str, float]:
    """after - before on the same examples, resampled together: the difference and its interval."""
    if len(before.records) != len(after.records):
        raise ValueError("paired bootstrap needs the same examples on both sides")
    deltas = np.array(resample(lambda idx: after.score(idx)[metric] - before.score(idx)[metric],
                               len(before.records), n, seed))
    ci = interval(deltas, percentiles(level))
    return {"delta": after.score()[metric] - before.score()[metric], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
            "p_not_better": float(np.mean(deltas <= 0)), "p_not_worse": float(np.mean(deltas >= 0))}
