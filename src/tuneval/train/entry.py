"""`tuneval.train(...)`: the `tuneval train` command as a function (the command calls it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

def train(recipe: str | Path | Mapping[str, Any] | None = None, *, set: list[str] | None = None,  # noqa: A002
          data_dir: str | None = None, precision: str | None = None, resume: bool = False,
          overwrite: bool = False) -> dict[str, Any]:
    """`tuneval train RECIPE [--set k=v ...]`: a recipe file, a mapping, or None (all defaults).

    Returns the run's metrics (what RUN/metrics.json holds); the run directory is `metrics["run_dir"]`.
    """
    from tuneval.config import apply_overrides, load_recipe, recipe_from_dict
    from tuneval.train.trainer import train as run_train

    overrides = list(set or []) + ([f"data.data_dir={data_dir}"] if data_dir else []) + (
        [f"precision={precision}"] if precision else [])
    if isinstance(recipe, Mapping):
        r = recipe_from_dict(apply_overrides(dict(recipe), overrides), "recipe (mapping)")
    else:
        r = load_recipe(recipe, overrides)
    metrics, _, _ = run_train(r, resume=resume, overwrite=overwrite)
    return {**metrics, "run_dir": str(r.run_dir)}
