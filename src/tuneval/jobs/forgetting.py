"""`tuneval forgetting`: the same suite on the base, then on base + adapter, then the comparison.

Under torchrun / accelerate launch every rank runs the same plan on its share of each task's
examples (evaluate/distributed.py); rank 0 writes, and the forgetting comparison, which reads
what rank 0 wrote, runs there alone (other ranks get None).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from tuneval.evaluate.distributed import is_main
from tuneval.evaluate.forgetting import compare, load_results, write_forgetting
from tuneval.errors import TunevalError
from tuneval.evaluate.harness import DEFAULT_SEED
from tuneval.evaluate.lm_eval_format import paired_results
from tuneval.evaluate.summary import plan_tasks, run_plan
from tuneval.results import ForgettingDir, LmEvalDir, SuiteDir


def run_forgetting(model: str, adapter: str | Path, *, tasks=None, suite: str | None = "forgetting",
                   limit: int | None = None, num_fewshot: int | None = None, tasks_dir=None, data_dir=None,
                   out: str | Path, batch_size: int = 16, seed: int = DEFAULT_SEED, bootstrap_iters: int = 1000,
                   chat_template: bool = True, on_task: Callable[[dict], None] | None = None,
                   precision: str = "auto", model_args=None) -> dict[str, Any] | None:
    """Score the base, put the adapter on the same loaded weights, score again, compare."""
    from tuneval.methods.loading import load_adapter, run_label
    from tuneval.models import load_model

    where = ForgettingDir(out)
    todo = plan_tasks(tasks, None if tasks else suite, limit, num_fewshot, tasks_dir)
    loaded = load_model(model, precision=precision, args=model_args)
    common = dict(data_dir=data_dir, batch_size=batch_size, seed=seed, bootstrap_iters=bootstrap_iters,
                  chat_template=chat_template, on_task=on_task)
    before_label, after_label = run_label(model), run_label(model, adapter)
    run_plan(loaded.model, loaded.tokenizer, loaded.arch, todo, out_dir=where.before.path, label=before_label,
             meta={"model": model, "adapter": None, "suite": suite, **loaded.meta}, **common)
    net = load_adapter(loaded, adapter)
    run_plan(net, loaded.tokenizer, loaded.arch, todo, out_dir=where.after.path, label=after_label,
             meta={"model": model, "adapter": str(adapter), "suite": suite, **loaded.meta}, **common)
    if not is_main():
        return None
    return compare_dirs(where.before.path, where.after.path, out=where.path, iters=bootstrap_iters, seed=seed)


def load_side(path: str | Path) -> dict[str, dict[str, Any]]:
    """{task: results} of one side: a `tuneval eval --tasks/--suite` output directory, or lm-eval's
    output (its --output_path directory, the model subdirectory or a results_<ts>.json file, with
    the samples files --log_samples wrote beside it: forgetting pairs every example)."""
    if SuiteDir(path).exists():
        return load_results(path)
    if LmEvalDir(path).exists():
        return paired_results(path)
    raise TunevalError(f"{path}: neither a `tuneval eval --tasks/--suite` output ({SuiteDir.SUMMARY}) nor "
                       f"lm-evaluation-harness output ({LmEvalDir.RESULTS_PREFIX}<timestamp>.json, in it or a "
                       "model subdirectory)")


def compare_dirs(before: str | Path, after: str | Path, *, out: str | Path, iters: int = 1000,
                 seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Compare two saved evaluations, each tuneval's or lm-eval's (any mix: `load_side`)."""
    rb, ra = load_side(before), load_side(after)
    label = lambda results, d: next(iter(results.values())).get("label") or str(d)  # noqa: E731
    before_label, after_label = label(rb, before), label(ra, after)
    result = compare(rb, ra, iters=iters, seed=seed)
    paths = write_forgetting(result, out, before_label, after_label)
    return {**result, "paths": paths, "before_label": before_label, "after_label": after_label}


def run_served_forgetting(model: str, adapter: str, *, model_args, tasks=None, suite: str | None = "forgetting",
                          out: str | Path, on_task: Callable[[dict], None] | None = None, **options) -> dict[str, Any]:
    """The same comparison on a server that serves the base and the adapter side by side (vLLM
    --lora-modules, tuneval serve --adapters): before is `model_args`' served model, after is the
    served `adapter` of the same endpoint. `options`: evaluate_suite's (limit, data_dir, seed, ...)."""
    from dataclasses import replace

    from tuneval.evaluate.summary import evaluate_suite
    from tuneval.models.endpoint import parse_model_args

    args = parse_model_args(model_args)
    where = ForgettingDir(out)
    common = dict(tasks=tasks, suite=None if tasks else suite, on_task=on_task, **options)
    evaluate_suite(model, None, out=where.before.path, model_args=args, **common)
    evaluate_suite(model, None, out=where.after.path, model_args=replace(args, model=str(adapter)), **common)
    return compare_dirs(where.before.path, where.after.path, out=where.path, iters=options.get("bootstrap_iters", 1000),
                        seed=options.get("seed", DEFAULT_SEED))
