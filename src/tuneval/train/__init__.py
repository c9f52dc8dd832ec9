"""Training: the HF Trainer, configured from a recipe, plus progress/memory callbacks.

The package is also callable: `tuneval.train(...)` is `train/entry.py`'s `train`. Python sets
the attribute `tuneval.train` to this package as soon as any of its modules is imported, so the
Python API's name (`from tuneval import train`) must work when it finds the package.
"""

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from tuneval.train.entry import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
