"""The same training run under each memory allocator, each in its own `tuneval train` process.

glibc's malloc (`TUNEVAL_ALLOCATOR=system`) is the baseline; jemalloc and tcmalloc are what the
`tuneval` command preloads when the machine has them (src/tuneval/allocator.py). Same recipe,
seed and examples each time, so the training loss must agree exactly: the allocator changes
where tensors live, not what is computed. Prints, per allocator, real tokens/s, peak RSS (the
process's own, from the run's metrics.json), the mean training loss, and tokens/s over glibc.

    .venv/bin/python bench/allocator.py --data-dir ../shared/data [--examples 480] [--method full]
    # -> runs/bench-allocator/allocator.{json,md}; about 8-10 min per allocator on 2 cores

Needs a quiet CPU: the runs follow each other, so load from elsewhere lands on one of them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tuneval import allocator
from tuneval.io import atomic_write_json, atomic_write_text
from tuneval.jobs.demo import METHODS, demo_recipe
from tuneval.runs import machine

def recipe(method: str, examples: int, data_dir: str, out: Path) -> dict:
    """The demo's recipe for `method` (jobs/demo.py, its one source), without evaluation after training."""
    r = demo_recipe("smollm2-135m-instruct", method, out_dir=out, data_dir=data_dir, precision="auto", seed=42,
                    train_examples=examples, eval_examples=1).to_dict()
    r["eval"]["after_training"] = False
    r["train"]["logging_steps"] = 5
    return r


def run(kind: str, a: argparse.Namespace, work: Path) -> dict:
    out = work / kind
    path = work / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(recipe(a.method, a.examples, a.data_dir, out)))
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF", "TUNEVAL_ALLOCATOR_PRELOADED")}
    env[allocator.ENV] = kind
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tuneval.cli", "train", str(path), "--overwrite"], env=env, check=True)
    wall = time.perf_counter() - start
    m = json.loads((out / "metrics.json").read_text())
    return {"allocator": m.get("allocator", kind), "train_tokens_per_second": m["train_tokens_per_second"],
            "peak_memory_mb": m["peak_memory_mb"], "train_loss": m["train_loss"], "wall_seconds": round(wall, 1),
            "load_average": os.getloadavg()[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("TUNEVAL_DATA_DIR", "../shared/data"))
    p.add_argument("--examples", type=int, default=480)
    p.add_argument("--method", choices=METHODS, default="full")
    p.add_argument("--repeats", type=int, default=1, help="Rounds over the allocators, interleaved (the CPU's own drift hits all).")
    p.add_argument("--out", default="runs/bench-allocator")
    a = p.parse_args()
    a.data_dir = str(Path(a.data_dir).resolve())
    kinds = ["system"] + [k for k in allocator.PACKAGES if allocator.find(k)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(a.repeats):
            for kind in kinds:
                rows.append({"round": round_ + 1, **run(kind, a, Path(tmp))})
                print(rows[-1], flush=True)
    base = sum(r["train_tokens_per_second"] for r in rows if r["allocator"] == "glibc") / a.repeats
    lines = [f"# Training under each allocator\n\nMachine: {machine().rsplit(',', 1)[0]}. {a.method}, "
             f"{a.examples} DialogSum examples, the demo's recipe, one process each.\n",
             "| round | allocator | real tokens/s | over glibc (mean of rounds) | peak RSS (GB) | mean train loss | wall (s) | load avg after |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['round']} | {r['allocator']} | {r['train_tokens_per_second']:.1f} | {r['train_tokens_per_second'] / base:.2f}x "
                     f"| {r['peak_memory_mb'] / 1024:.2f} | {r['train_loss']:.6f} | {r['wall_seconds']} | {r['load_average']:.2f} |")
    out = Path(a.out)
    atomic_write_json(out / "allocator.json", {"machine": machine(), "args": vars(a), "rows": rows})
    atomic_write_text(out / "allocator.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    means = {k: sum(r["train_tokens_per_second"] for r in rows if r["allocator"] == k) / a.repeats
             for k in dict.fromkeys(r["allocator"] for r in rows)}
    best = max(means, key=means.get)
    print(f"speedup: {means[best] / base:.2f}x ({best} over glibc, mean of {a.repeats} round(s))")


if __name__ == "__main__":
    main()
