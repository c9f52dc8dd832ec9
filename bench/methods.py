"""Every fine-tuning method on DialogSum with the embedded model, at an equal training budget; one table.

Each method trains on the same examples (same seed, order, templates), for the same number
of steps at the same batch size, then is scored on the same validation examples (teacher-
forced loss, greedy generation: ROUGE-1/2/L, BLEU). Only the learning rate differs: each
method gets one in its usual range (LEARNING_RATES). The untrained model is the first row.

Every method runs in a process of its own, so its peak memory (process RSS on a CPU, the
CUDA allocator's peak on a GPU) is its own and not what the previous method left behind;
next to it is `tuneval memory`'s estimate for the run's longest batch.

Full budget (what docs/benchmarks/methods.md reports; ~1.5-2 h on 2 CPU cores):
    .venv/bin/python bench/methods.py --data-dir ../shared/data
Smoke test (a couple of minutes a method):
    .venv/bin/python bench/methods.py --data-dir ../shared/data --train-examples 8 --eval-examples 4 \\
        --max-steps 2 --batch-size 4 --out runs/bench-methods-smoke
Writes OUT/methods.md, methods.csv, methods.json; each method's run directory is OUT/<method>.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# method: (learning rate, options). One typical setting each, nothing tuned on the validation set.
LEARNING_RATES: dict[str, tuple[float, dict[str, Any]]] = {
    "full": (1e-4, {}),
    "freeze": (1e-4, {"trainable_layers": 2}),
    "bitfit": (1e-3, {}),
    "ln_tuning": (3e-3, {}),
    "lora": (1e-3, {"r": 32, "lora_alpha": 32, "lora_dropout": 0.05}),
    "qlora": (1e-3, {"r": 32, "lora_alpha": 32, "lora_dropout": 0.05}),
    "prompt_tuning": (3e-2, {"num_virtual_tokens": 20, "prompt_tuning_init": "TEXT",
                             "prompt_tuning_init_text": "Summarize the following dialogue in one or two sentences."}),
    "prefix_tuning": (1e-2, {"num_virtual_tokens": 20}),
    "ia3": (3e-3, {}),
    "adapters": (1e-3, {"reduction_factor": 16}),
}
COLUMNS = [
    ("method", "method"), ("family", "family"), ("trainable_params", "trainable params"),
    ("trainable_percent", "trainable %"), ("checkpoint_mb", "checkpoint MB"), ("peak_memory_mb", "peak memory MB"),
    ("estimate_mb", "estimate MB"), ("train_tokens_per_second", "train tok/s"), ("train_seconds", "train s"),
    ("val_loss", "val loss"), ("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"), ("bleu", "BLEU"),
]


def recipe_for(method: str, a: argparse.Namespace):
    from tuneval.config import recipe_from_dict

    lr, options = LEARNING_RATES[method]
    raw = {
        "model": a.model, "task": "dialogsum", "method": method, "seed": a.seed, "output_dir": str(Path(a.out) / method),
        "data": {"data_dir": a.data_dir, "train_examples": a.train_examples},
        "train": {"learning_rate": lr, "num_train_epochs": a.epochs, "max_steps": a.max_steps,
                  "per_device_train_batch_size": a.batch_size, "warmup_steps": 0.1, "logging_steps": 1,
                  "save_steps": 10_000},
        "eval": {"limit": a.eval_examples, "batch_size": 16, "max_new_tokens": 64},
    }
    if options:
        raw[method] = options
    return recipe_from_dict(raw, f"bench:{method}")


def worker(method: str, a: argparse.Namespace) -> dict[str, Any]:
    """One method, in this process: train, score, estimate memory. Returns the table row."""
    import warnings

    import transformers

    from tuneval.errors import TunevalError
    from tuneval.methods import get_method

    warnings.filterwarnings("ignore")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if method == "none":
        return base_row(a)
    import psutil

    from tuneval.jobs.sweep import train_and_score
    from tuneval.methods.memory import estimate_memory
    from tuneval.train import trainer  # noqa: F401  (everything training imports, before any model loads)

    runtime = psutil.Process().memory_info().rss

    recipe = recipe_for(method, a)
    row: dict[str, Any] = {"method": method, "family": get_method(method).family,
                           "learning_rate": recipe.train.learning_rate}
    try:
        row.update(train_and_score(recipe))
    except TunevalError as e:  # e.g. bitfit on a model without biases: reported, not hidden
        row["error"] = str(e)
        return row
    e = estimate_memory(a.model, method, recipe.method_args, batch_size=a.batch_size, seq_len=row["max_length"],
                        gradient_checkpointing=recipe.train.gradient_checkpointing, runtime=runtime)
    row["estimate_mb"] = e.with_runtime / 2**20
    row["estimate"] = e.to_dict()
    return row


def base_row(a: argparse.Namespace) -> dict[str, Any]:
    from tuneval.config import recipe_from_dict
    from tuneval.evaluate.harness import run_task
    from tuneval.results import EvalDir
    from tuneval.runs import RunDir
    from tuneval.metrics.text import HEADLINE
    from tuneval.models import load_model
    from tuneval.tasks import get_task
    from tuneval.train.evaluation import TaskEvaluation

    recipe = recipe_from_dict({"model": a.model, "method": "full", "data": {"data_dir": a.data_dir},
                               "eval": {"limit": a.eval_examples}}, "bench:none")
    loaded = load_model(a.model)
    vloss = TaskEvaluation(recipe, loaded.tokenizer, loaded.arch).loss(loaded.model)
    task = get_task("dialogsum")
    results = run_task(loaded.model, loaded.tokenizer, loaded.arch, task, template=task.template_index(None),
                       limit=a.eval_examples, data_dir=a.data_dir, batch_size=16, max_new_tokens=64,
                       label="untrained", out_file=EvalDir(RunDir(Path(a.out) / "untrained").eval_dir).results_file)
    m = results["metrics"]
    return {"method": "(untrained)", "family": "-", "val_loss": vloss,
            **{k: m[k] for k in HEADLINE}}


def run_all(a: argparse.Namespace) -> list[dict[str, Any]]:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for method in ["none", *a.methods]:
        row_file = out / f"{'untrained' if method == 'none' else method}.row.json"
        if row_file.is_file() and not a.overwrite:
            print(f"[{method}] done before: {row_file}", flush=True)
        else:
            print(f"[{method}] running...", flush=True)
            start = time.perf_counter()
            cmd = [sys.executable, __file__, "--worker", method, *sys.argv[1:]]
            done = subprocess.run(cmd)
            if done.returncode != 0 or not row_file.is_file():
                rows.append({"method": method, "error": f"worker exited with {done.returncode}"})
                continue
            print(f"[{method}] {time.perf_counter() - start:.0f} s", flush=True)
        rows.append(json.loads(row_file.read_text()))
    return rows


def write_report(rows: list[dict[str, Any]], a: argparse.Namespace) -> str:
    from tuneval.runs import machine
    from tuneval.jobs.sweep import csv_table, markdown_table
    from tuneval.io import atomic_write_json, atomic_write_text

    budget = (f"{a.max_steps} steps" if a.max_steps > 0 else f"{a.epochs:g} epoch(s)") + \
        f" of {a.train_examples} training examples, batch {a.batch_size}"
    header = (f"Model `{a.model}`, DialogSum: {budget} for every method (seed {a.seed}); scored on the first "
              f"{a.eval_examples} validation examples (template fixed, greedy, 64 new tokens). Machine: {machine()}. "
              "Peak memory: process RSS on CPU (CUDA allocator peak on GPU); estimate: `tuneval memory` for "
              "the longest batch, plus this process's runtime.")
    table = markdown_table(rows, COLUMNS)
    errors = [f"- **{r['method']}**: {r['error']}" for r in rows if r.get("error")]
    lrs = ", ".join(f"{m} {LEARNING_RATES[m][0]:g}" for m in a.methods)
    md = f"# Methods on DialogSum\n\n{header}\n\n{table}\n\nLearning rates: {lrs}.\n"
    if errors:
        md += "\nNot run:\n\n" + "\n".join(errors) + "\n"
    atomic_write_text(Path(a.out) / "methods.md", md)
    atomic_write_text(Path(a.out) / "methods.csv", csv_table(rows, COLUMNS + [("error", "error")]))
    atomic_write_json(Path(a.out) / "methods.json", {"machine": machine(), "args": vars(a), "rows": rows})
    return md


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--data-dir", default=None, help="Local data directory (else $TUNEVAL_DATA_DIR).")
    p.add_argument("--train-examples", type=int, default=96)
    p.add_argument("--eval-examples", type=int, default=32)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=-1, help="If > 0, overrides --epochs.")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--methods", nargs="+", default=list(LEARNING_RATES), choices=list(LEARNING_RATES))
    p.add_argument("--out", default="runs/bench-methods")
    p.add_argument("--overwrite", action="store_true", help="Rerun methods that finished before.")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        row = worker(a.worker, a)
        from tuneval.io import atomic_write_json

        name = "untrained" if a.worker == "none" else a.worker
        atomic_write_json(Path(a.out) / f"{name}.row.json", row)
        return
    rows = run_all(a)
    print(write_report(rows, a))
    print(f"saved: {Path(a.out) / 'methods.md'}, methods.csv, methods.json")


if __name__ == "__main__":
    main()
