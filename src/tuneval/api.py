"""The Python API for notebooks: `from tuneval import train, evaluate, load`.

Each function takes the arguments of the command of the same name and writes the same files,
because the command is a thin caller of it (cli.py parses flags, prints, and calls these):
  train     tuneval train RECIPE [--set k=v]        (train/entry.py)
  evaluate  tuneval eval [--task | --tasks/--suite]  (evaluate/entry.py)
  load      what every command does to get a model   (methods/loading.py)

`tuneval.train` and `tuneval.evaluate` are also the names of packages; those packages are
callable (their __init__.py), so the names work whichever Python found first.
"""

from __future__ import annotations

from pathlib import Path

from tuneval.evaluate.entry import default_eval_out, evaluate
from tuneval.methods.loading import load_result as _load_result
from tuneval.train.entry import train

__all__ = ["train", "evaluate", "load", "default_eval_out"]


def load(model: str = "smollm2-135m-instruct", adapter: str | Path | None = None, *, precision: str = "auto",
         model_args=None, merge: bool = False):
    """(loaded base, model to run): the base model with a trained run or adapter over it, as every
    command loads it (`model_args`: a ModelArgs for dtype, revision, ...). `loaded.tokenizer` and
    `loaded.arch` come with it. `merge`: a LoRA-family adapter folded into the base (faster generation)."""
    return _load_result(model, adapter, precision=precision, args=model_args, merge=merge)
