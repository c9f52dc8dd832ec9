"""The main job: is instruction fine-tuning worth it, and is LoRA as good as full?

Zero-shot base model, full fine-tuning, LoRA fine-tuning, each scored on the same
DialogSum validation examples with the same template, then one comparison table.
Defaults are sized to finish in about 20 minutes on a 2-core CPU.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markdown import Markdown

from tuneval.config import recipe_from_dict
from tuneval.evaluate.distributed import is_main
from tuneval.evaluate.report import comparison_table, samples_table
from tuneval.evaluate.harness import run_task
from tuneval.evaluate.report import eval_report
from tuneval.io import atomic_write_json, atomic_write_text
from tuneval.methods.loading import load_result
from tuneval.precision import resolve_precision
from tuneval.runs import RunDir
from tuneval.tasks import get_task
from tuneval.train.trainer import train

DEFAULT_TRAIN_EXAMPLES = 96
DEFAULT_EVAL_EXAMPLES = 32

# What differs between the two runs; everything else is the recipe defaults (config.py).
METHOD_SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"train": {"learning_rate": 1e-4}},
    "lora": {"train": {"learning_rate": 1e-3}, "lora": {"r": 32, "lora_alpha": 32, "lora_dropout": 0.05}},
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{cpu}, {torch.get_num_threads()} threads"


def run_demo(*, model: str, data_dir: str | None, out: Path, train_examples: int, eval_examples: int,
             console: Console, seed: int = 42, precision: str = "auto") -> dict[str, Any]:
    """Each model is scored as `tuneval eval` would score it: trained results are reloaded from their
    run directories at the demo's precision, so every row can be reproduced from what was saved.

    Under torchrun / accelerate launch every rank trains and scores its share of the examples
    (evaluate/distributed.py); rank 0 alone prints and writes the comparison, and the other ranks
    return the rows without it."""
    main = is_main()
    if not main:
        console = Console(quiet=True)
    precision = resolve_precision(precision)
    task = get_task("dialogsum")
    console.rule(f"[bold]tuneval demo[/bold]: {model} on DialogSum, {train_examples} training / {eval_examples} eval examples")

    base, net = load_result(model, precision=precision)
    # Scored as `tuneval eval --task dialogsum` scores it (evaluate/entry.py), as the trained runs' eval/ are.
    rows = [run_task(net, base.tokenizer, base.arch, task, split="validation", limit=eval_examples,
                     template=task.template_index(None), data_dir=data_dir, batch_size=16, max_new_tokens=64,
                     label="original", meta={"model": model, "adapter": None, "precision": precision},
                     out_file=out / "eval-original" / "results.json")]
    if main:
        atomic_write_text(out / "eval-original" / "report.md", eval_report(rows[0]))
    del base, net
    rows[0]["method"] = "none"
    console.print(f"original: rouge1={rows[0]['metrics']['rouge1']:.4f}")

    for method in ("full", "lora"):
        raw = {"model": model, "task": "dialogsum", "method": method, "seed": seed, "output_dir": str(out / method),
               "precision": precision, "data": {"data_dir": data_dir, "train_examples": train_examples},
               "eval": {"limit": eval_examples, "batch_size": 16, "max_new_tokens": 64}, **METHOD_SETTINGS[method]}
        recipe = recipe_from_dict(raw, f"demo:{method}")
        # train() scores the saved result, reloaded, as `tuneval eval --adapter RUN` does: RUN/eval/results.json
        metrics, net, _ = train(recipe, overwrite=True)
        del net
        if not main:  # rank 0 wrote RUN/eval/results.json
            continue
        result = json.loads(RunDir(recipe.run_dir).eval_results_file.read_text(encoding="utf-8"))
        result["method"], result["train"] = method, metrics
        rows.append(result)
        console.print(f"{method}: rouge1={result['metrics']['rouge1']:.4f}")

    if not main:
        return {"rows": rows, "report": None}
    table = comparison_table(rows)
    samples = samples_table(rows, n=3)
    header = (f"Model `{model}`, task DialogSum (validation, first {eval_examples} examples, template "
              f"{rows[0]['prompt']['template']}), {train_examples} training examples per method, seed {seed}, "
              f"precision {precision}. Machine: {machine()}.")
    report = f"# tuneval demo\n\n{header}\n\n{table}\n\n## Side-by-side samples\n\n{samples}\n"
    atomic_write_text(out / "comparison.md", report)
    atomic_write_json(out / "comparison.json", {
        "machine": machine(), "model": model, "precision": precision, "train_examples": train_examples,
        "eval_examples": eval_examples,
        "rows": [{k: v for k, v in r.items() if k != "examples"} for r in rows],
    })
    console.print(Markdown(f"{header}\n\n{table}"))
    console.print(Markdown("## Side-by-side samples\n\n" + samples))
    console.print(f"\nsaved: {out / 'comparison.md'}, {out / 'comparison.json'}")
    return {"rows": rows, "report": report}
