"""Training: the HF Trainer, configured from a recipe, plus progress/memory callbacks.

The package is also callable: `tuneval.train(...)` is `train/entry.py`'s `train` (callable_package.py).
"""

from tuneval.callable_package import make_callable

make_callable(__name__, "tuneval.train.entry", "train")
