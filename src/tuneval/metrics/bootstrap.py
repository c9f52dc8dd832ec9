"""Percentile bootstrap: the one resampling loop behind every interval tuneval reports.

Per-task intervals and paired before/after differences (metrics/registry.py), pooled group
intervals (summary.py) and pooled group differences (forgetting.py) all resample the
examples with replacement, `iters` times from one seeded generator, recompute the statistic
on each resample, and read the interval off the percentiles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

T = TypeVar("T")

# The percentiles of the pooled (group) intervals. percentiles(0.95), used for per-task intervals,
# gives 2.500000000000002 for the lower one (float rounding of 100 * 0.05 / 2): the two are kept
# as they were so that no saved interval changes, though they differ in about one lower bound in
# eight, by an ulp.
POOLED = (2.5, 97.5)


def percentiles(level: float) -> tuple[float, float]:
    """The two percentiles of a central `level` interval (0.95: 2.5 and 97.5)."""
    return 100 * (1 - level) / 2, 100 * (1 + level) / 2


def resample(statistic: Callable[[np.ndarray], T], size: int, iters: int, seed: int) -> list[T]:
    """`statistic(idx)` on `iters` resamples of `size` examples (indices drawn with replacement), seeded."""
    rng = np.random.default_rng(seed)
    return [statistic(rng.integers(0, size, size)) for _ in range(iters)]


def interval(samples, bounds: tuple[float, float]) -> dict[str, float]:
    """{"stderr", "ci_low", "ci_high"} of bootstrap samples; `bounds` from percentiles() or POOLED."""
    samples = np.asarray(samples, dtype=float)
    lo, hi = np.percentile(samples, list(bounds))
    return {"stderr": float(samples.std(ddof=1)) if samples.size > 1 else 0.0, "ci_low": float(lo), "ci_high": float(hi)}
