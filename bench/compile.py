"""torch.compile as a training lever on this machine: eager against compiled, same run otherwise.

The field's first answer to "the step is slow" is `torch.compile` (TrainingArguments
`torch_compile: true`, which a recipe's `train:` section passes through). Whether it pays on a
CPU depends on what it must compile: packed rows change length every step (dynamic shapes),
and attention per example splits each row at its position-id restarts in Python (a graph break
per layer). So this measures it rather than assuming either way: the same `tuneval train`
(recipe, examples, seed) twice, each in its own process, one eager and one compiled, with the
Trainer logging every step. Printed for each: the time to the end of the --warmup-steps first
steps (where compilation happens), real tokens/s over the steps after them (the steady state),
peak RSS, and the per-step losses side by side (compilation must not change the arithmetic
beyond rounding).

    .venv/bin/python bench/compile.py --data-dir ../shared/data                  # ~15 min on 2 cores
    .venv/bin/python bench/compile.py --data-dir ../shared/data --set data.varlen_attention=false
    # -> runs/bench-compile/compile.{json,md}
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = {"eager": [], "torch.compile": ["train.torch_compile=true"]}


def run(name: str, extra: list[str], a: argparse.Namespace) -> dict:
    out = Path(a.out) / name.replace(".", "_")
    sets = [f"output_dir={out}", "eval.after_training=false", f"data.data_dir={a.data_dir}",
            f"data.train_examples={a.examples}", "train.logging_steps=1", *a.set, *extra]
    cmd = [sys.executable, "-m", "tuneval.cli", "train", str(ROOT / a.recipe), "--overwrite"]
    cmd += [x for s in sets for x in ("--set", s)]
    print(f"[{name}] {' '.join(cmd)}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(cmd)
    if done.returncode != 0:
        raise SystemExit(f"[{name}] tuneval train exited with {done.returncode}")
    wall = time.perf_counter() - started
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "loss" in r and "train_runtime" in r]
    metrics = json.loads((out / "metrics.json").read_text())
    if len(steps) <= a.warmup_steps + 1:
        raise SystemExit(f"[{name}] {len(steps)} logged steps: give more --examples than {a.warmup_steps + 1} batches")
    w, last = steps[a.warmup_steps - 1], steps[-1]
    steady = (last["num_input_tokens_seen"] - w["num_input_tokens_seen"]) / (last["train_runtime"] - w["train_runtime"])
    return {"path": name, "warmup_seconds": w["train_runtime"], "steady_tokens_per_second": steady,
            "train_tokens_per_second": metrics["train_tokens_per_second"], "peak_memory_mb": metrics["peak_memory_mb"],
            "wall_seconds": wall, "losses": [r["loss"] for r in steps], "steps": len(steps),
            "precision": metrics.get("precision"), "allocator": metrics.get("allocator")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--recipe", default="recipes/dialogsum_lora.yaml")
    p.add_argument("--examples", type=int, default=160, help="Training examples (batches of the recipe's size).")
    p.add_argument("--warmup-steps", type=int, default=4, help="Steps counted as compilation, not steady state.")
    p.add_argument("--set", action="append", default=[], help="Extra recipe settings for both paths (KEY=VALUE).")
    p.add_argument("--out", default="runs/bench-compile")
    a = p.parse_args()
    from tuneval import allocator

    allocator.maybe_reexec()  # so the machine line names the allocator the runs use
    from tuneval.io import atomic_write_json, atomic_write_text
    from tuneval.runs import machine

    rows = [run(name, extra, a) for name, extra in PATHS.items()]
    eager, compiled = rows
    worst = max(abs(x - y) / abs(x) for x, y in zip(eager["losses"], compiled["losses"]))
    ratio = compiled["steady_tokens_per_second"] / eager["steady_tokens_per_second"]
    lines = ["| path | first %d steps (s) | steady real tok/s | whole-run tok/s | peak RSS MB | wall s |" % a.warmup_steps,
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['path']} | {r['warmup_seconds']:.1f} | {r['steady_tokens_per_second']:.1f} | "
              f"{r['train_tokens_per_second']:.1f} | {r['peak_memory_mb']:.0f} | {r['wall_seconds']:.0f} |" for r in rows]
    md = (f"# torch.compile as a training lever\n\nMachine: {machine()}. `{a.recipe}` on {a.examples} DialogSum "
          f"examples ({eager['steps']} steps), precision {eager['precision']}, extra settings {a.set or 'none'}; "
          f"steady state = the steps after the first {a.warmup_steps}.\n\n" + "\n".join(lines)
          + f"\n\nSteady-state speed, compiled over eager: **{ratio:.2f}x**. Largest relative difference of a "
          f"step's loss: {worst:.2e}.\n")
    atomic_write_json(Path(a.out) / "compile.json", {"machine": machine(), "args": vars(a), "rows": rows,
                                                     "ratio": ratio, "max_loss_rel_diff": worst})
    atomic_write_text(Path(a.out) / "compile.md", md)
    print(md)
    print(f"compiled/eager: {ratio:.2f}x")


if __name__ == "__main__":
    main()
