"""Evaluation: metrics (per item, then corpus), generation, reports, comparisons.

The package is also callable: `tuneval.evaluate(...)` is `evaluate/entry.py`'s `evaluate` (callable_package.py).
"""

from tuneval.callable_package import make_callable

make_callable(__name__, "tuneval.evaluate.entry", "evaluate")
