"""Peak memory of every shipped recipe, and how it moves over a run (issue 16, item 5).

Each recipe in recipes/*.yaml trains in its own `tuneval train` process (the command's own
allocator choice, precision auto), with its evaluation after training off: generation is not
training memory. This script samples the process's RSS twice a second, so it shows whether the
peak is reached early and holds (the model's working set) or climbs over the run (allocator
fragmentation across packed shapes, which is what drove an all-linear LoRA run to 22.6 GB under
glibc's malloc). Besides the recipes it runs the issue's case: LoRA on all linear layers, r 16,
alpha 32, dropout 0.05, batch 8, 700 DialogSum examples. Beside each measured peak stands the
estimate `tuneval memory` gives (weights, gradients, AdamW states, saved activations) for a step
of 8 examples x --estimate-len tokens, so the table says what the peak is made of.

    .venv/bin/python bench/memory.py --data-dir ../shared/data          # ~25 min on 2 cores
    .venv/bin/python bench/memory.py --data-dir ../shared/data --only issue16_all_linear --gradient-checkpointing
    # -> runs/bench-memory/memory.{json,md}

Recipes with more than --max-examples training examples (dialogsum_best: 7,000) run on the first
--max-examples (the issue's case sets its own count and keeps it): a step's memory does not depend on how many steps follow, and the trajectory
column shows whether it climbs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from tuneval.config import load_recipe
from tuneval.io import atomic_write_json, atomic_write_text
from tuneval.runs import machine

ROOT = Path(__file__).resolve().parent.parent
ISSUE_CASE = ("issue16_all_linear", "dialogsum_lora.yaml",
              ["lora.target_modules=[all-linear]", "lora.r=16", "lora.lora_alpha=32", "lora.lora_dropout=0.05",
               "data.train_examples=700", "train.learning_rate=1e-3", "train.warmup_steps=0.05"])
GB = 2**30


def cases(a: argparse.Namespace) -> list[tuple[str, Path, list[str]]]:
    found = [(p.stem, p, []) for p in sorted((ROOT / "recipes").glob("*.yaml"))]
    found.append((ISSUE_CASE[0], ROOT / "recipes" / ISSUE_CASE[1], list(ISSUE_CASE[2])))
    if a.only:
        found = [c for c in found if c[0] in a.only.split(",")]
    if a.gradient_checkpointing:
        found = [(f"{name} + gradient checkpointing", path, sets + ["train.gradient_checkpointing=true"])
                 for name, path, sets in found]
    return found


def sample_rss(pid: int, trace: list[tuple[float, float]], stop: threading.Event, started: float) -> None:
    """The child's RSS twice a second; `tuneval` re-executes itself in place (same pid) with its allocator."""
    try:
        proc = psutil.Process(pid)
        while not stop.is_set():
            trace.append((time.perf_counter() - started, proc.memory_info().rss / GB))
            stop.wait(0.5)
    except psutil.NoSuchProcess:
        pass


def run(name: str, path: Path, sets: list[str], a: argparse.Namespace, work: Path) -> dict:
    out = work / name.replace(" ", "_")
    given = list(sets)
    sets = sets + [f"output_dir={out}", "eval.after_training=false", f"data.data_dir={a.data_dir}"]
    recipe = load_recipe(path, sets)
    chose_count = any(s.startswith("data.train_examples=") for s in given)  # the issue's case: its 700 stand
    if not chose_count and (recipe.data.train_examples or 0) > a.max_examples:
        sets.append(f"data.train_examples={a.max_examples}")
        recipe = load_recipe(path, sets)
    cmd = [sys.executable, "-m", "tuneval.cli", "train", str(path), "--overwrite"] + [x for s in sets for x in ("--set", s)]
    trace: list[tuple[float, float]] = []
    stop = threading.Event()
    started = time.perf_counter()
    child = subprocess.Popen(cmd)
    sampler = threading.Thread(target=sample_rss, args=(child.pid, trace, stop, started), daemon=True)
    sampler.start()
    rc = child.wait()
    stop.set()
    sampler.join()
    if rc != 0:
        raise SystemExit(f"{name}: tuneval train exited with {rc}")
    m = json.loads((out / "metrics.json").read_text())
    # the trajectory over the training part of the run: the sampled peak up to each quarter of the wall time
    wall = trace[-1][0] if trace else 0.0
    quarters = [max((r for t, r in trace if t <= wall * q / 4), default=0.0) for q in range(1, 5)]
    return {"case": name, "recipe": str(path.relative_to(ROOT)), "set": given, "method": recipe.method,
            "train_examples": m.get("train_examples"), "precision": m.get("precision"), "allocator": m.get("allocator"),
            "peak_memory_gb": m["peak_memory_mb"] / 1024, "rss_by_quarter_gb": quarters,
            "train_tokens_per_second": m["train_tokens_per_second"], "packing": m.get("packing"),
            "gradient_checkpointing": recipe.train.gradient_checkpointing, "wall_seconds": round(wall, 1),
            "load_average": os.getloadavg()[0], "estimate": estimate(recipe, a.estimate_len)}


def estimate(recipe, seq_len: int) -> dict:
    """`tuneval memory` for the recipe's method at batch 8 x seq_len: what the peak is made of (GB)."""
    from tuneval.methods.memory import estimate_memory
    from tuneval.precision import resolve_precision

    e = estimate_memory(recipe.model, recipe.method, recipe.method_args, batch_size=recipe.train.per_device_train_batch_size,
                        seq_len=seq_len, gradient_checkpointing=recipe.train.gradient_checkpointing,
                        bf16=resolve_precision(recipe.precision) == "bf16", runtime=0)
    return {"weights": e.weights / GB, "gradients": e.gradients / GB, "optimizer": e.optimizer / GB,
            "activations": e.activations / GB, "transient": e.transient / GB, "tensors": e.tensors / GB}


def machine_of_runs(rows: list[dict]) -> str:
    """The children re-execute with their own allocator, so this process's allocator is not theirs."""
    allocators = ", ".join(sorted({str(r["allocator"]) for r in rows}))
    return f"{machine().rsplit(',', 1)[0]}, {allocators} allocator in the runs"


def table(rows: list[dict], a: argparse.Namespace) -> str:
    lines = [f"# Peak memory of the shipped recipes\n\nMachine: {machine_of_runs(rows)}. Batch 8 (each recipe's own), "
             f"evaluation after training off, one `tuneval train` process each. Estimate: `tuneval memory` at "
             f"batch 8 x {a.estimate_len} tokens, without the runtime.\n",
             "| case | method | examples | real tok/s | peak RSS (GB) | peak RSS up to the end of each quarter of the run (GB) | estimate: weights + grads + AdamW + activations = tensors (GB) |",
             "|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        e = r["estimate"]
        lines.append(f"| {r['case']} | {r['method']} | {r['train_examples']} | {r['train_tokens_per_second']:.0f} | "
                     f"**{r['peak_memory_gb']:.2f}** | {' / '.join(f'{q:.2f}' for q in r['rss_by_quarter_gb'])} | "
                     f"{e['weights']:.2f} + {e['gradients']:.2f} + {e['optimizer']:.2f} + {e['activations']:.2f} = {e['tensors']:.2f} |")
    worst = max(rows, key=lambda r: r["peak_memory_gb"])
    lines.append(f"\nHighest peak: {worst['case']}, {worst['peak_memory_gb']:.2f} GB "
                 f"({'under' if worst['peak_memory_gb'] < a.limit_gb else 'OVER'} the {a.limit_gb:g} GB target).")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("TUNEVAL_DATA_DIR", "../shared/data"))
    p.add_argument("--only", help="Comma-separated case names (recipe stems, issue16_all_linear).")
    p.add_argument("--max-examples", type=int, default=480)
    p.add_argument("--estimate-len", type=int, default=320, help="Tokens per example for the estimate column.")
    p.add_argument("--gradient-checkpointing", action="store_true", help="Every case with gradient checkpointing on.")
    p.add_argument("--limit-gb", type=float, default=8.0)
    p.add_argument("--out", default="runs/bench-memory")
    a = p.parse_args()
    a.data_dir = str(Path(a.data_dir).resolve())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, sets in cases(a):
            rows.append(run(name, path, sets, a, Path(tmp)))
            print({k: v for k, v in rows[-1].items() if k != "estimate"}, flush=True)
    out = Path(a.out)
    text = table(rows, a)
    atomic_write_json(out / "memory.json", {"machine": machine_of_runs(rows), "args": vars(a), "rows": rows})
    atomic_write_text(out / "memory.md", text)
    print(text)


if __name__ == "__main__":
    main()
