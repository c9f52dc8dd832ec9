"""Run a plan of tasks, then one summary table (Markdown + JSON) with bootstrap intervals.

Grouped tasks (MMLU's 57 subjects) are also reported per category and overall, averaged
over examples (lm-eval's `weight_by_size: true`), with a bootstrap over the pooled examples.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tuneval.metrics.bootstrap import POOLED, interval, resample
from tuneval.evaluate.distributed import is_main
from tuneval.evaluate.harness import DEFAULT_SEED, run_task
from tuneval.metrics.text import fmt
from tuneval.results import SuiteDir
from tuneval.tasks import load_registry, plan


def group_item_values(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{group: {"metric", "tasks", "values"}} per group, group_category and tag of 2+ tasks, pooled per
    example. Tags pool too: lm-eval's `bbh` is a group of the chain-of-thought tasks, tuneval's a tag of them."""
    groups: dict[str, dict[str, Any]] = {}
    for r in results:
        group, category = r.get("group"), r.get("category")
        names = [n for n in (group, group and category and f"{group}_{category}") if n] + list(r.get("tags") or [])
        if not names:
            continue
        metric = "acc" if r["output_type"] == "multiple_choice" else r["primary_metric"]
        for name in names:
            g = groups.setdefault(name, {"metric": metric, "tasks": [], "values": []})
            g["tasks"].append(r["task"])
            g["values"] += [ex[metric] for ex in r["examples"]]
            g["mixed"] = g.get("mixed") or g["metric"] != metric  # a tag over tasks scored differently: no pool
    return {name: {k: v for k, v in g.items() if k != "mixed"} for name, g in groups.items()
            if len(g["tasks"]) > 1 and not g["mixed"]}  # a one-task group would repeat the task


def group_scores(results: list[dict[str, Any]], iters: int = 1000, seed: int = DEFAULT_SEED) -> dict[str, dict[str, Any]]:
    out = {}
    for name, g in sorted(group_item_values(results).items()):
        values = np.array(g["values"], dtype=float)
        out[name] = {"metric": g["metric"], "value": float(values.mean()), "num_examples": int(values.size),
                     "num_tasks": len(g["tasks"]),
                     **interval(resample(lambda idx: values[idx].mean(), values.size, iters, seed), POOLED)}
    return out


def task_row(r: dict[str, Any]) -> dict[str, Any]:
    m = r["primary_metric"]
    ci = r["bootstrap"].get(m, {})
    return {"task": r["task"], "n": r["num_examples"], "num_fewshot": r["num_fewshot"], "metric": m,
            "value": r["metrics"][m], "ci_low": ci.get("ci_low"), "ci_high": ci.get("ci_high"),
            "stderr": ci.get("stderr"), "metrics": r["metrics"], "seconds": r["stats"]["seconds"],
            "group": r.get("group"), "category": r.get("category")}


def summary_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# {summary['label']}: {len(summary['tasks'])} tasks", "",
             f"Model `{summary.get('model')}`" + (f", adapter `{summary['adapter']}`" if summary.get("adapter") else "")
             + f"; 95% bootstrap intervals ({summary['bootstrap_iters']} resamples); {summary['seconds']:.0f} s.", ""]
    if summary["groups"]:
        lines += ["| group | tasks | n | metric | value | 95% CI |", "|---|---:|---:|---|---:|---|"]
        for name, g in summary["groups"].items():
            lines.append(f"| {name} | {g['num_tasks']} | {g['num_examples']} | {g['metric']} | {fmt(g['metric'], g['value'])} "
                         f"| [{fmt(g['metric'], g['ci_low'])}, {fmt(g['metric'], g['ci_high'])}] |")
        lines.append("")
    lines += ["| task | n | shots | metric | value | 95% CI | other metrics | s |", "|---|---:|---:|---|---:|---|---|---:|"]
    for row in summary["tasks"].values():
        m = row["metric"]
        others = ", ".join(f"{k} {fmt(k, v)}" for k, v in row["metrics"].items() if k != m and not k.endswith(("_precision", "_recall")))
        lines.append(f"| {row['task']} | {row['n']} | {row['num_fewshot']} | {m} | {fmt(m, row['value'])} | "
                     f"[{fmt(m, row['ci_low'])}, {fmt(m, row['ci_high'])}] | {others} | {row['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def run_plan(model, tokenizer, arch: str, plan: list, *, out_dir: str | Path, data_dir=None, batch_size: int = 16,
             seed: int = DEFAULT_SEED, bootstrap_iters: int = 1000, chat_template: bool = True, label: str = "model",
             meta: dict | None = None, on_task=None, template: int | None = None) -> dict[str, Any]:
    """Every (task, limit, num_fewshot) of the plan; per-task results.json, then summary.{md,json}.
    `template`: score every task with that FLAN phrasing instead of its default prompt family."""
    out = SuiteDir(out_dir)
    start = time.perf_counter()
    results = []
    for task, limit, k in plan:
        r = run_task(model, tokenizer, arch, task, limit=limit, num_fewshot=k, data_dir=data_dir, batch_size=batch_size,
                     seed=seed, bootstrap_iters=bootstrap_iters, chat_template=chat_template, label=label, meta=meta,
                     template=template, out_file=out.task(task.name).results_file)
        results.append(r)
        if on_task is not None:
            on_task(r)
    summary = {"label": label, **(meta or {}), "seconds": round(time.perf_counter() - start, 1),
               "bootstrap_iters": bootstrap_iters, "seed": seed,
               "groups": group_scores(results, bootstrap_iters, seed),
               "tasks": {r["task"]: task_row(r) for r in results}}
    if is_main():  # under torchrun every rank ran the plan (its share of each task); one writes
        out.write(summary, summary_markdown(summary))
    return summary


def plan_tasks(tasks, suite, limit, num_fewshot, tasks_dir):
    """(task, limit, num_fewshot) to run for `--tasks a,b` or `--suite NAME`; bad names fail here, before any model loads."""
    names = [t.strip() for t in tasks.split(",") if t.strip()] if isinstance(tasks, str) else tasks
    return plan(load_registry(tasks_dir), tasks=names, suite=suite, limit=limit, num_fewshot=num_fewshot)


def evaluate_suite(model: str, adapter: str | Path | None = None, *, tasks=None, suite: str | None = None,
                   limit: int | None = None, num_fewshot: int | None = None, tasks_dir=None, data_dir=None,
                   out: str | Path, batch_size: int = 16, seed: int = DEFAULT_SEED, bootstrap_iters: int = 1000,
                   chat_template: bool | str = True, on_task: Callable[[dict], None] | None = None,
                   precision: str = "auto", model_args=None, template: int | None = None,
                   merge: bool = False) -> dict[str, Any]:
    """`tuneval eval --tasks/--suite`: load the model (with its adapter) or open the endpoint, run the
    plan, write summary.{md,json}."""
    from tuneval.evaluate import remote

    todo = plan_tasks(tasks, suite, limit, num_fewshot, tasks_dir)  # bad task names fail before the model loads
    for task, _, _ in todo if template is not None else []:
        task.template_index(template, "--template")  # and a phrasing a task lacks
    loaded, net = remote.open_model(model, adapter, precision=precision, model_args=model_args, merge=merge,
                                    requests_file=SuiteDir(out).requests_file, chat_template=chat_template)
    label = remote.label(model, adapter, model_args)
    meta = {"model": model, "adapter": str(adapter) if adapter else None, "suite": suite, **loaded.meta}
    return run_plan(net, loaded.tokenizer, loaded.arch, todo, out_dir=out, data_dir=data_dir, batch_size=batch_size,
                    seed=seed, bootstrap_iters=bootstrap_iters, chat_template=chat_template is not False, label=label,
                    meta=meta,
                    on_task=on_task, template=template)
