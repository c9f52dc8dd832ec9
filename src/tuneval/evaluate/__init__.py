"""Evaluation: metrics (per item, then corpus), generation, reports, comparisons.

The package is also callable: `tuneval.evaluate(...)` is `evaluate/entry.py`'s `evaluate`. Python sets
the attribute `tuneval.evaluate` to this package as soon as any of its modules is imported, so the
Python API's name (`from tuneval import evaluate`) must work when it finds the package.
"""

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from tuneval.evaluate.entry import evaluate

        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
