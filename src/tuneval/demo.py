"""The main job: is instruction fine-tuning worth it, and is LoRA as good as full?

Zero-shot base model, full fine-tuning, LoRA fine-tuning, each scored on the same
DialogSum validation examples with the same template, then one comparison table.
Defaults are sized to finish in about 20 minutes on a 2-core CPU.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markdown import Markdown

from tuneval.config import recipe_from_dict
from tuneval.data.tasks import load_task
from tuneval.evaluate.report import comparison_table, samples_table
from tuneval.evaluate.run import evaluate_generation
from tuneval.io import atomic_write_json, atomic_write_text
from tuneval.models import load_model
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
             console: Console, seed: int = 42) -> dict[str, Any]:
    task = load_task("dialogsum")
    eval_kw = dict(split="validation", limit=eval_examples, data_dir=data_dir, batch_size=16, max_new_tokens=64)
    console.rule(f"[bold]tuneval demo[/bold]: {model} on DialogSum, {train_examples} training / {eval_examples} eval examples")

    base = load_model(model)
    rows = [evaluate_generation(base.model, base.tokenizer, base.arch, task, label="original",
                                out_dir=out / "eval-original", **eval_kw)]
    rows[0]["method"] = "none"
    console.print(f"original: rouge1={rows[0]['metrics']['rouge1']:.4f}")

    for method in ("full", "lora"):
        raw = {"model": model, "task": "dialogsum", "method": method, "seed": seed, "output_dir": str(out / method),
               "data": {"data_dir": data_dir, "train_examples": train_examples}, **METHOD_SETTINGS[method]}
        recipe = recipe_from_dict(raw, f"demo:{method}")
        loaded = base if method == "full" else load_model(model)  # full FT changes the weights in place
        metrics, net, _ = train(recipe, overwrite=True, loaded=loaded)
        result = evaluate_generation(net, loaded.tokenizer, loaded.arch, task, label=method,
                                     out_dir=out / f"eval-{method}", **eval_kw)
        result["method"], result["train"] = method, metrics
        rows.append(result)
        console.print(f"{method}: rouge1={result['metrics']['rouge1']:.4f}")
        del net

    table = comparison_table(rows)
    samples = samples_table(rows, n=3)
    header = (f"Model `{model}`, task DialogSum (validation, first {eval_examples} examples, template "
              f"{rows[0]['template']['index']}), {train_examples} training examples per method, seed {seed}. "
              f"Machine: {machine()}.")
    report = f"# tuneval demo\n\n{header}\n\n{table}\n\n## Side-by-side samples\n\n{samples}\n"
    atomic_write_text(out / "comparison.md", report)
    atomic_write_json(out / "comparison.json", {
        "machine": machine(), "model": model, "train_examples": train_examples, "eval_examples": eval_examples,
        "rows": [{k: v for k, v in r.items() if k != "examples"} for r in rows],
    })
    console.print(Markdown(f"{header}\n\n{table}"))
    console.print(Markdown("## Side-by-side samples\n\n" + samples))
    console.print(f"\nsaved: {out / 'comparison.md'}, {out / 'comparison.json'}")
    return {"rows": rows, "report": report}
