"""Catastrophic forgetting: the same tasks before and after fine-tuning, per-task deltas, verdicts.

Both sides must have scored the same examples (same ids, same prompts), so each difference
is *paired*: the paired bootstrap resamples examples once and recomputes both scores on the
same resample. A task is `improved` or `forgot` when the 95% interval of (after - before)
excludes zero (sign read through the metric's direction), else `unchanged`.
Grouped tasks (MMLU) also get one verdict per category and overall, on pooled examples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tuneval.errors import TunevalError
from tuneval.metrics.bootstrap import POOLED, interval, resample
from tuneval.evaluate.harness import DEFAULT_SEED
from tuneval.metrics.text import SCALE_100, fmt
from tuneval.evaluate.summary import group_item_values
from tuneval.metrics.registry import Scorer, paired_bootstrap
from tuneval.results import ForgettingDir, SuiteDir

COLORS = {"improved": "#2e7d32", "unchanged": "#9e9e9e", "forgot": "#c62828"}


def load_results(path: str | Path) -> dict[str, dict[str, Any]]:
    """{task: results} from an eval output directory (results.SuiteDir)."""
    return SuiteDir(path).task_results()


def verdict(ci_low: float, ci_high: float, higher_is_better: bool) -> str:
    if ci_low > 0 or ci_high < 0:
        better = (ci_low > 0) == higher_is_better
        return "improved" if better else "forgot"
    return "unchanged"


def _id(example: dict):
    return example["id"] if "id" in example else example.get("doc_id")  # doc_id: results written before 2026-12


def _check_paired(task: str, before: dict, after: dict) -> None:
    b, a = before["examples"], after["examples"]
    if len(b) != len(a) or any(_id(x) != _id(y) or x["prompt"] != y["prompt"] for x, y in zip(b, a)):
        raise TunevalError(f"task '{task}': before and after scored different examples or prompts "
                           f"({len(b)} vs {len(a)}); run both with the same --limit, --num-fewshot and data")


def _pooled_delta(before: np.ndarray, after: np.ndarray, iters: int, seed: int) -> dict[str, float]:
    ci = interval(resample(lambda idx: (after[idx] - before[idx]).mean(), before.size, iters, seed), POOLED)
    return {"delta": float(after.mean() - before.mean()), "ci_low": ci["ci_low"], "ci_high": ci["ci_high"]}


def compare(before: dict[str, dict], after: dict[str, dict], *, iters: int = 1000, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Per task (and per group): before, after, delta, its paired 95% interval and the verdict."""
    common = [t for t in before if t in after]
    if not common:
        raise TunevalError("before and after share no task")
    tasks = {}
    for name in common:
        b, a = before[name], after[name]
        _check_paired(name, b, a)
        metric = b["primary_metric"]
        hib = b["higher_is_better"].get(metric, True)
        sb = Scorer(b["output_type"], b["metric_list"], b["examples"])
        sa = Scorer(a["output_type"], a["metric_list"], a["examples"])
        pb = paired_bootstrap(sb, sa, metric, iters, seed)
        tasks[name] = {"metric": metric, "higher_is_better": hib, "n": b["num_examples"],
                       "before": b["metrics"][metric], "after": a["metrics"][metric], **pb,
                       "verdict": verdict(pb["ci_low"], pb["ci_high"], hib),
                       "before_all": b["metrics"], "after_all": a["metrics"]}
    groups = {}
    gb, ga = group_item_values([before[t] for t in common]), group_item_values([after[t] for t in common])
    for name in sorted(gb):
        vb, va = np.array(gb[name]["values"], float), np.array(ga[name]["values"], float)
        d = _pooled_delta(vb, va, iters, seed)
        groups[name] = {"metric": gb[name]["metric"], "higher_is_better": True, "n": int(vb.size),
                        "num_tasks": len(gb[name]["tasks"]), "before": float(vb.mean()), "after": float(va.mean()),
                        **d, "verdict": verdict(d["ci_low"], d["ci_high"], True)}
    counts = {v: sum(1 for t in tasks.values() if t["verdict"] == v) for v in COLORS}
    return {"tasks": tasks, "groups": groups, "counts": counts, "bootstrap_iters": iters, "seed": seed,
            "only_before": [t for t in before if t not in after], "only_after": [t for t in after if t not in before]}


def _row(name: str, r: dict) -> str:
    m = r["metric"]
    return (f"| {name} | {r['n']} | {m} | {fmt(m, r['before'])} | {fmt(m, r['after'])} | {fmt(m, r['delta'], '+')} | "
            f"[{fmt(m, r['ci_low'], '+')}, {fmt(m, r['ci_high'], '+')}] | {r['verdict']} |")


def forgetting_markdown(result: dict[str, Any], before_label: str, after_label: str) -> str:
    c = result["counts"]
    lines = [f"# Forgetting: {after_label} vs {before_label}", "",
             f"{c['improved']} improved, {c['unchanged']} unchanged, {c['forgot']} forgot "
             f"(paired bootstrap, {result['bootstrap_iters']} resamples; a verdict needs the 95% interval of the "
             "difference to exclude zero).", "",
             "| task | n | metric | before | after | delta | 95% CI of delta | verdict |",
             "|---|---:|---|---:|---:|---:|---|---|"]
    lines += [_row(name, r) for name, r in result["groups"].items()]
    lines += [_row(name, r) for name, r in result["tasks"].items() if not (name.startswith("mmlu_") and "mmlu" in result["groups"])]
    if any(n.startswith("mmlu_") for n in result["tasks"]) and "mmlu" in result["groups"]:
        lines += ["", f"MMLU subjects are in {ForgettingDir.JSON}; the table shows their categories and overall mean."]
    if result["only_before"] or result["only_after"]:
        lines += ["", f"Not compared (only on one side): {', '.join(result['only_before'] + result['only_after'])}."]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path, title: str) -> Path:
    """Horizontal bars: delta per task (in points: [0,1] metrics x100), 95% interval, coloured by verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(result["groups"].items()) + [(n, r) for n, r in result["tasks"].items()
                                             if not (n.startswith("mmlu_") and "mmlu" in result["groups"])]
    scale = [1.0 if r["metric"] in SCALE_100 else 100.0 for _, r in rows]
    deltas = [r["delta"] * s for (_, r), s in zip(rows, scale)]
    err = np.array([[(r["delta"] - r["ci_low"]) * s, (r["ci_high"] - r["delta"]) * s] for (_, r), s in zip(rows, scale)]).T
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.5))
    y = np.arange(len(rows))[::-1]
    ax.barh(y, deltas, xerr=err, color=[COLORS[r["verdict"]] for _, r in rows], capsize=3)
    ax.set_yticks(y, [f"{n} ({r['metric']})" for n, r in rows])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("after - before (points; bars: 95% paired bootstrap interval)")
    ax.set_title(title, fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLORS.values()]
    ax.legend(handles, list(COLORS), loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_forgetting(result: dict[str, Any], out: str | Path, before_label: str, after_label: str) -> dict[str, Path]:
    where = ForgettingDir(out)
    md = forgetting_markdown(result, before_label, after_label)
    paths = where.write({"before": before_label, "after": after_label, **result}, md)
    return {**paths, "png": plot(result, where.png_file, f"{after_label} vs {before_label}")}
