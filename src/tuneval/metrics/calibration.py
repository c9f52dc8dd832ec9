"""HELM's calibration metrics of a multiple-choice task: ECE over 10 bins, selective accuracy at 10%.

Both read, per example, the probability of the picked choice (the top of the softmax over the
choices' log-likelihoods, `probs` in the harness's records) and whether the pick was right.

Two ECEs, both over 10 bins of that confidence, both |mean accuracy - mean confidence| per bin
weighted by the bin's share of examples:
- `ece_equal_width`: bins (0, .1], (.1, .2], ... (Guo et al. 2017). This is what tuneval's `ece`
  metric (metrics/registry.py) has always reported, and what the `uncertainty-calibration`
  package's `get_ece(..., num_bins=10)` computes: the same number.
- `ece_equal_mass` (HELM's `ece_10_bin`): bins of (about) equal numbers of examples, cut midway
  between neighbouring sorted confidences: `get_ece_em(..., num_bins=10)` of the same package,
  which HELM's basic_metrics calls. The scorecard reports this one as HELM does, beside `ece`.
Selective accuracy at 10% coverage (HELM's `selective_acc@10`): the accuracy of the most confident
examples, `get_selective_stats`: sort by confidence (descending), take the running accuracy at
index int(0.1 * n), so the top int(0.1 * n) + 1 examples. Ties are broken by example order
(a stable sort); the package's numpy quicksort leaves their order unspecified.
"""

from __future__ import annotations

import numpy as np

from tuneval.metrics.registry import expected_calibration_error

BINS = 10


def confidence_correct(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(probability of the pick, 1.0 where the pick is gold) of multiple-choice records."""
    conf = np.array([max(r["probs"]) for r in records], dtype=float)
    correct = np.array([float(r["pred"] == r["gold"]) for r in records], dtype=float)
    return conf, correct


def ece_equal_width(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    return expected_calibration_error(np.asarray(confidence, float), np.asarray(correct, float), bins)


def equal_mass_edges(confidence: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Upper bin edges: midway between the last of one equal-count group and the first of the next, then 1.0."""
    ordered = np.sort(np.asarray(confidence, float))
    groups = np.array_split(ordered, min(bins, ordered.size))
    edges = [(a[-1] + b[0]) / 2.0 for a, b in zip(groups, groups[1:])] + [1.0]
    return np.array(sorted(set(edges)))


def ece_equal_mass(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """HELM's ece_10_bin: ECE over equal-mass bins (a value goes to the first edge >= it)."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    if confidence.size == 0:
        return 0.0
    which = np.searchsorted(equal_mass_edges(confidence, bins), confidence, side="left")
    ece = 0.0
    for b in np.unique(which):
        mask = which == b
        ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def selective_accuracy(confidence: np.ndarray, correct: np.ndarray, coverage: float = 0.1) -> float:
    """Accuracy of the most confident examples: the running accuracy at index int(coverage * n)."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    if confidence.size == 0:
        return 0.0
    order = np.argsort(-confidence, kind="stable")
    running = np.cumsum(correct[order]) / np.arange(1, correct.size + 1)
    return float(running[int(coverage * correct.size)])


def coverage_accuracy_area(confidence: np.ndarray, correct: np.ndarray) -> float:
    """HELM's selective_cov_acc_area: the mean running accuracy over every coverage."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    if confidence.size == 0:
        return 0.0
    order = np.argsort(-confidence, kind="stable")
    return float(np.mean(np.cumsum(correct[order]) / np.arange(1, correct.size + 1)))


def calibration(records: list[dict], idx: np.ndarray | None = None) -> dict[str, float]:
    """Every calibration number of multiple-choice records (or the resample `idx` of them)."""
    conf, correct = confidence_correct(records)
    if idx is not None:
        conf, correct = conf[idx], correct[idx]
    return {"ece": ece_equal_width(conf, correct), "ece_10_bin": ece_equal_mass(conf, correct),
            "selective_acc@10": selective_accuracy(conf, correct),
            "selective_cov_acc_area": coverage_accuracy_area(conf, correct)}
