"""Evaluate a model (optionally with an adapter) on a generation task; save everything.

results.json keeps every prediction beside its input and reference(s) and the metric
values, so anyone can recompute the numbers; report.md shows side-by-side samples.
Under torchrun / accelerate launch the prompts are shared out over the processes and the
predictions gathered back in order (evaluate/distributed.py); every rank returns the same
results, and only rank 0 writes them.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tuneval.data.collate import PromptFormatter
from tuneval.data.tasks import TaskSpec, load_split
from tuneval.errors import TunevalError
from tuneval.evaluate.distributed import is_main, map_examples
from tuneval.evaluate.generation import generate
from tuneval.evaluate.metrics import summarization_metrics
from tuneval.evaluate.report import eval_report
from tuneval.io import atomic_write_json, atomic_write_text


# long: one straight pass (rows, prompts, generate, score, save) under a one-per-line signature of ~20 options
def evaluate_generation(
    model,
    tokenizer,
    arch: str,
    task: TaskSpec,
    *,
    split: str = "validation",
    limit: int | None = 50,
    data_dir: str | None = None,
    template: int | None = None,
    batch_size: int = 16,
    max_new_tokens: int = 64,
    max_seq_len: int = 1024,
    chat_template: bool = True,
    label: str = "model",
    meta: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
    shard: bool | None = None,
) -> dict[str, Any]:
    """`shard`: None shares the prompts out over a running process group, False keeps them here
    (see distributed.map_examples)."""
    rows = load_split(task, split, data_dir)
    if limit is not None:
        if limit < 1:
            raise TunevalError(f"--limit must be at least 1, got {limit}")
        rows = rows[:limit]
    index = template_index(task, template)
    fmt = PromptFormatter(tokenizer, arch, chat_template=chat_template, max_seq_len=max_seq_len)
    budget = fmt.generation_budget(max_new_tokens)
    input_fields = [f for f in task.fields if f not in _target_fields(task)]
    prompts, prompt_ids, references = [], [], []
    for row in rows:
        instruction, ids = fmt.fit_prompt(task.templates, index, row, budget, input_fields)
        prompts.append(fmt.prompt_text(instruction))
        prompt_ids.append(ids)
        references.append([task.templates.render(row, index)[1]])
    start = time.perf_counter()

    def run(ids: list) -> tuple[list[str], dict[str, int]]:
        texts, n = generate(model, tokenizer, ids, arch, batch_size=batch_size, max_new_tokens=max_new_tokens,
                            description=f"eval {label}")
        return texts, {"new_tokens": n}

    predictions, counts = map_examples(model, prompt_ids, run, shard)
    new_tokens = counts.get("new_tokens", 0)
    seconds = time.perf_counter() - start
    metrics, items = summarization_metrics(predictions, references)
    results = {
        "label": label,
        "task": task.name,
        "split": split,
        "num_examples": len(rows),
        "template": {"index": index, "text": task.templates.prompts[index]},
        "input_field": task.input_field,  # what each example's "input" is (report headings)
        "chat_template": fmt.uses_chat,
        "generation": {"strategy": "greedy", "max_new_tokens": max_new_tokens, "batch_size": batch_size,
                       "seconds": round(seconds, 2), "new_tokens": new_tokens,
                       "tokens_per_second": round(new_tokens / seconds, 1) if seconds > 0 else None,
                       "processes": counts.get("processes", 1)},
        "metrics": metrics,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(meta or {}),
        "examples": [
            {
                "id": row.get(task.id_field) if task.id_field else i,
                "source": row["_where"],
                "input": row.get(task.input_field) if task.input_field else None,
                "prompt": prompt,
                "references": refs,
                "prediction": pred,
                "rouge": item,
            }
            for i, (row, prompt, refs, pred, item) in enumerate(zip(rows, prompts, references, predictions, items))
        ],
    }
    if out_dir is not None and is_main():
        out = Path(out_dir)
        atomic_write_json(out / "results.json", results)
        atomic_write_text(out / "report.md", eval_report(results))
    return results


def _target_fields(task: TaskSpec) -> set[str]:
    from tuneval.data.templates import placeholders

    return placeholders(task.templates.target)


def template_index(task: TaskSpec, template: int | None, where: str = "template") -> int:
    """The phrasing to evaluate with: `template`, else the task's own evaluation template."""
    index = task.templates.eval_index if template is None else template
    if not 0 <= index < len(task.templates.prompts):
        raise TunevalError(f"{where} {index} is out of range for task '{task.name}' (0..{len(task.templates.prompts) - 1})")
    return index
