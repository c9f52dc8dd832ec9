"""Sweeps: one recipe, a grid of overrides, one run directory per point, one table and a plot.

`tuneval sweep RECIPE.yaml --grid lora.r=1,2,4,8` trains every point of the grid (the
product, when several keys are given), scores each on the recipe's evaluation examples
(teacher-forced validation loss, then greedy generation: ROUGE-1/2/L, BLEU), and writes
sweep.md, sweep.csv, sweep.json and sweep.png to the sweep directory. Each point is an
ordinary run directory (config.yaml, the adapter, metrics.json) plus eval/ and score.json,
so a finished point is reused when the sweep is run again.

`train_and_score` is also what bench/methods.py runs for each method.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
from pathlib import Path
from typing import Any

import yaml

from tuneval.errors import TunevalError
from tuneval.metrics.text import HEADLINE, SCALE_100, fmt
from tuneval.io import atomic_write_json
from tuneval.report.charts import plot_sweep
from tuneval.results import SweepDir
from tuneval.runs import RunDir

COLUMNS = [  # (key in a row, header)
    ("trainable_params", "trainable params"), ("trainable_percent", "trainable %"), ("val_loss", "val loss"),
    ("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"), ("bleu", "BLEU"),
]


def parse_grid(items: list[str]) -> list[tuple[str, list[Any]]]:
    """['lora.r=1,2,4', 'train.learning_rate=1e-3,1e-4'] -> [('lora.r', [1, 2, 4]), ...] (values read as YAML)."""
    grid: list[tuple[str, list[Any]]] = []
    for item in items:
        key, _, text = item.partition("=")
        key = key.strip()
        values = [_value(v) for v in text.split(",") if v.strip()]
        if not key or not values:
            raise TunevalError(f"--grid {item}: expected key=value1,value2,... (e.g. lora.r=1,2,4,8)")
        if any(key == k for k, _ in grid):
            raise TunevalError(f"--grid {key}: given twice")
        grid.append((key, values))
    if not grid:
        raise TunevalError("sweep: give at least one --grid key=v1,v2,...")
    return grid


def _value(text: str) -> Any:
    value = yaml.safe_load(text.strip())
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            return float(value)
        except ValueError:
            pass
    return value


def grid_points(grid: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    keys = [k for k, _ in grid]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in grid))]


def point_name(point: dict[str, Any]) -> str:
    return ",".join(re.sub(r"[^\w.+=-]", "_", f"{k}={v}") for k, v in point.items())


def set_key(raw: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    raw = dict(raw)
    node = raw
    parts = key.split(".")
    for p in parts[:-1]:
        node[p] = dict(node[p]) if isinstance(node.get(p), dict) else {}
        node = node[p]
    node[parts[-1]] = value
    return raw


# -- scoring one trained model -----------------------------------------------------------------

def train_and_score(recipe, *, loaded=None, console=None, label: str | None = None) -> dict[str, Any]:
    """Train a recipe with its eval section run on the result; the row is also saved as RUN/score.json.

    The scores are train()'s own `metrics["eval"]`: the saved result reloaded at the recipe's
    precision, exactly as `tuneval eval --adapter RUN --precision P` scores it.
    """
    import dataclasses

    from tuneval.train.trainer import train

    recipe = dataclasses.replace(recipe, eval=dataclasses.replace(recipe.eval, after_training=True))
    metrics, net, loaded = train(recipe, overwrite=True, loaded=loaded)
    del net, loaded
    ev = metrics["eval"]
    row = {
        "method": recipe.method,
        "run_dir": str(recipe.run_dir),
        **{k: metrics[k] for k in ("trainable_params", "all_params", "trainable_percent", "checkpoint_mb",
                                   "peak_memory_mb", "train_tokens_per_second", "train_seconds", "train_loss",
                                   "global_step", "train_examples")},
        "max_length": metrics["data"]["max_length"],
        "val_loss": ev["loss"],
        **{k: ev.get(k) for k in HEADLINE},
        "eval_examples": ev["examples"],
        "precision": ev["precision"],
    }
    atomic_write_json(RunDir(recipe.run_dir).score_file, row)
    if console is not None:
        scores = ", ".join(f"{k} {fmt(k, ev[k])}" for k in ("rouge1", "rougeL", "bleu") if k in ev)
        console.print(f"{label or recipe.method}: val loss {ev['loss']:.4f}, {scores}")
    return row


# -- tables and the plot ------------------------------------------------------------------------

def _cell(value: Any, key: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if key in ("trainable_params", "all_params") and isinstance(value, int):
        return f"{value:,d}"
    if key == "trainable_percent":
        return f"{value:.4f}%" if value < 0.1 else f"{value:.2f}%"
    if key.endswith(("_mb", "_second", "_seconds")):
        return f"{value:.1f}"
    if key in SCALE_100 or isinstance(value, float):  # scores (and losses) as every table prints them
        return fmt(key, value)
    return str(value)


def markdown_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(k), k) for k, _ in columns) + " |")
    return "\n".join(lines)


def csv_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([k for k, _ in columns])
    for r in rows:
        w.writerow(["" if r.get(k) is None else r.get(k) for k, _ in columns])
    return buf.getvalue()


def _with_flags(raw: dict, data_dir: str | None, precision: str | None) -> dict:
    """--data-dir and --precision laid onto the raw recipe as values (not as `--set` strings parsed back)."""
    raw = dict(raw)
    if data_dir is not None:
        raw["data"] = {**(raw["data"] if isinstance(raw.get("data"), dict) else {}), "data_dir": data_dir}
    if precision is not None:
        raw["precision"] = precision
    return raw


def run_sweep(recipe_path: str | Path, grid_items: list[str], overrides: list[str] | None = None, *,
              out: str | Path | None = None, overwrite: bool = False, console=None, data_dir: str | None = None,
              precision: str | None = None) -> dict[str, Any]:
    from tuneval.config import apply_overrides, read_recipe, recipe_from_dict

    grid = parse_grid(grid_items)
    keys = [k for k, _ in grid]
    raw = _with_flags(apply_overrides(read_recipe(recipe_path), overrides or []), data_dir, precision)
    base = recipe_from_dict(raw, f"{recipe_path} (with --set)" if overrides else str(recipe_path))  # checked once
    out = Path(out) if out else Path("runs") / f"sweep-{Path(recipe_path).stem}"
    recipes = []
    for point in grid_points(grid):
        point_raw = raw
        for k, v in point.items():
            point_raw = set_key(point_raw, k, v)
        point_raw["output_dir"] = str(out / point_name(point))
        recipes.append((point, recipe_from_dict(point_raw, f"{recipe_path} (sweep point {point_name(point)})")))
    rows = []
    for i, (point, recipe) in enumerate(recipes, 1):
        score = RunDir(recipe.run_dir).score_file
        if score.is_file() and not overwrite:
            import json

            row = json.loads(score.read_text())
            if console is not None:
                console.print(f"[dim]{point_name(point)}: done before, reusing {score}[/dim]")
        else:
            if console is not None:
                console.rule(f"sweep point {i}/{len(recipes)}: {point_name(point)}")
            row = train_and_score(recipe, console=console, label=point_name(point))
        row["point"] = point
        row.update({k: v for k, v in point.items()})
        rows.append(row)
    columns = [(k, k) for k in keys] + [c for c in COLUMNS if c[0] not in keys] + [("run_dir", "run")]
    header = (f"Sweep of `{recipe_path}` over {', '.join(keys)}: model `{base.model}`, method `{base.method}`, "
              f"task {base.task}, {base.eval.limit} `{base.eval.split}` examples scored, seed {base.seed}.")
    where = SweepDir(out)
    md = f"# Sweep\n\n{header}\n\n{markdown_table(rows, columns)}\n\n![scores against {keys[0]}]({where.PNG})\n"
    where.write({"recipe": str(recipe_path), "grid": dict(grid), "rows": rows}, md, csv_table(rows, columns))
    plot_sweep(rows, keys, where.png_file, title=f"{base.model}, {base.method}: scores against {keys[0]}")
    return {"rows": rows, "markdown": markdown_table(rows, columns), "out": out}
