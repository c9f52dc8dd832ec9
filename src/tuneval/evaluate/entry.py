"""`tuneval.evaluate(...)`: the `tuneval eval` command as a function (the command calls it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT_MODEL = "smollm2-135m-instruct"


def evaluate(model: str = DEFAULT_MODEL, adapter: str | Path | None = None, *, task: str | None = None,
             split: str | None = None, limit: int | None = None, out: str | Path | None = None,
             data_dir: str | None = None, template: int | None = None, batch_size: int = 16,
             max_new_tokens: int | None = None, chat_template: bool = True, tasks: str | list[str] | None = None,
             suite: str | None = None, num_fewshot: int | None = None, tasks_dir: str | Path | None = None,
             seed: int = 1234, bootstrap_iters: int = 1000, precision: str = "auto",
             on_task=None, model_args=None, data: str | Path | None = None, format: str | None = None,
             columns: dict[str, str] | None = None, merge: bool = False) -> dict[str, Any]:
    """`tuneval eval`: one `task` generated with a FLAN template and scored with ROUGE/BLEU (returns
    results.json's content), or `tasks`/`suite`, each through its default prompt family (returns
    summary.json's content). Both run evaluate/harness.run_task. `merge`: fold a LoRA-family adapter
    into the base first (methods/loading.load_result)."""
    from tuneval.methods.loading import run_label

    names = ",".join(tasks) if isinstance(tasks, list) else tasks
    out = Path(out or default_eval_out(model, adapter, task=task, tasks=names, suite=suite))
    if names or suite:
        from tuneval.evaluate.summary import evaluate_suite

        return evaluate_suite(model, adapter, tasks=names, suite=suite, limit=limit, num_fewshot=num_fewshot,
                              tasks_dir=tasks_dir, data_dir=data_dir, out=out, batch_size=batch_size, seed=seed,
                              bootstrap_iters=bootstrap_iters, chat_template=chat_template, precision=precision,
                              on_task=on_task, model_args=model_args, template=template, merge=merge)
    from tuneval.evaluate.harness import run_task
    from tuneval.methods.loading import load_result
    from tuneval.tasks import get_task

    if data is not None:  # your own data: every row, its last assistant turn the reference
        from tuneval.tasks.user_data import data_task

        spec = data_task(path=str(data), format=format, columns=columns, scored_whole=True, where="--data")
        index = None  # every row unless --limit
    else:
        spec = get_task(task or "dialogsum", tasks_dir)  # fails before the model loads
        index, limit = spec.template_index(template), 50 if limit is None else limit
    loaded, net = load_result(model, adapter, precision=precision, args=model_args, merge=merge)  # a ModelArgs
    results = run_task(
        net, loaded.tokenizer, loaded.arch, spec, split=split, limit=limit,
        template=index, data_dir=data_dir, batch_size=batch_size, max_new_tokens=max_new_tokens,
        chat_template=chat_template, seed=seed, bootstrap_iters=bootstrap_iters, label=run_label(model, adapter),
        meta={"model": model, "adapter": str(adapter) if adapter else None, "suite": None, **loaded.meta},
        out_file=out / "results.json", report=True)
    return results


def default_eval_out(model: str, adapter: str | Path | None, *, task: str | None = None, tasks: str | None = None,
                     suite: str | None = None) -> Path:
    """Where `evaluate` writes when no `out` is given: runs/eval/<model[+adapter]>-<task or suite>."""
    from tuneval.methods.loading import run_label

    if tasks or suite:
        return Path("runs") / "eval" / f"{run_label(Path(model).name, adapter)}-{suite or tasks.replace(',', '-')[:60]}"
    return Path("runs") / "eval" / f"{Path(run_label(model, adapter)).name}-{task or 'dialogsum'}"
