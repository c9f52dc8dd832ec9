"""Does multi-task training or PEFT protect against forgetting? Three runs at an equal budget.

On the embedded model, each arm trains on the same number of examples, in the same number
of steps at the same batch size (the recipes share their training settings):

  full-dialogsum   full fine-tuning on DialogSum only            (recipes/dialogsum_full.yaml)
  full-mixture     full fine-tuning on a FLAN-style mixture      (recipes/mixture_flan.yaml)
                   that includes DialogSum (about half of it)
  lora-dialogsum   LoRA on DialogSum only                        (recipes/dialogsum_lora.yaml)

Each arm, and the base model once, is scored on DialogSum validation (`tuneval eval --task
dialogsum`: ROUGE, BLEU) and on the forgetting suite (`tuneval eval --suite forgetting`); the
arm's deltas against the base come from `tuneval forgetting --before BASE --after ARM`
(paired bootstrap verdicts). Every step runs as a `tuneval` command in its own process and
its output is kept, so an interrupted study continues where it stopped when run again.
Suite tasks an arm trained on (e.g. sst2 in the mixture) are marked: a gain there is
in-domain training, not protection against forgetting, so the table also averages the
deltas over the tasks no arm trained on.

    .venv/bin/python bench/forgetting_study.py --data-dir ../shared/data                # the study
    .venv/bin/python bench/forgetting_study.py --data-dir ../shared/data --train-examples 8 \\
        --eval-examples 4 --limit 4 --out runs/forgetting-study-smoke                     # smoke test

Writes OUT/study.md and OUT/study.json; each arm's run, evaluations and forgetting report
under OUT/<arm>/, the base model's under OUT/base/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tuneval.results import EvalDir, ForgettingDir, SuiteDir
from tuneval.runs import RunDir

ROOT = Path(__file__).resolve().parents[1]
ARMS: dict[str, tuple[str, str]] = {
    "full-dialogsum": ("recipes/dialogsum_full.yaml", "full FT, DialogSum only"),
    "full-mixture": ("recipes/mixture_flan.yaml", "full FT, multi-task mixture incl. DialogSum"),
    "lora-dialogsum": ("recipes/dialogsum_lora.yaml", "LoRA, DialogSum only"),
}
ROUGE = ("rouge1", "rouge2", "rougeL", "rougeLsum")
POINTS_AS_IS = ("bleu", "chrf")  # metrics already in points; [0,1] metrics are shown x100


def tuneval(*args: str, log: Path) -> None:
    """Run one `tuneval` command in its own process (its memory and progress bars are its own)."""
    cmd = [sys.executable, "-m", "tuneval.cli", *args]
    print(f"$ tuneval {' '.join(args)}", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT)
    seconds = time.perf_counter() - start
    with log.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"args": list(args), "returncode": done.returncode, "seconds": round(seconds, 1)}) + "\n")
    if done.returncode != 0:
        sys.exit(f"error: `tuneval {' '.join(args)}` exited with {done.returncode}; fix it and rerun (finished steps are kept)")


def data_args(a: argparse.Namespace) -> list[str]:
    return ["--data-dir", a.data_dir] if a.data_dir else []


def suite_args(a: argparse.Namespace) -> list[str]:
    return ["--suite", a.suite, *(["--limit", str(a.limit)] if a.limit else []), *data_args(a)]


def evaluate(a: argparse.Namespace, out: Path, model: str, adapter: Path | None, log: Path) -> dict[str, Any]:
    """DialogSum ROUGE and (unless skipped) the forgetting suite for one model; cached on disk."""
    adapter_args = ["--adapter", str(adapter)] if adapter else []
    if not EvalDir(out / "dialogsum").exists():
        tuneval("eval", "--model", model, *adapter_args, "--task", "dialogsum", "--split", "validation",
                "--limit", str(a.eval_examples), "--out", str(out / "dialogsum"), *data_args(a), log=log)
    if not a.skip_forgetting and not SuiteDir(out / "suite").exists():
        tuneval("eval", "--model", model, *adapter_args, *suite_args(a), "--out", str(out / "suite"), log=log)
    return EvalDir(out / "dialogsum").read()


def run_arm(a: argparse.Namespace, arm: str, out: Path, log: Path) -> dict[str, Any]:
    recipe, what = ARMS[arm]
    run = out / arm / "run"
    saved = RunDir(run)
    if not saved.metrics_file.is_file():
        sets = [f"data.train_examples={a.train_examples}", f"seed={a.seed}", f"model={a.model}",
                f"output_dir={run}", *(f"train.{kv}" for kv in a.train_set)]
        tuneval("train", recipe, *[x for s in sets for x in ("--set", s)], *data_args(a), "--overwrite", log=log)
    metrics = saved.metrics()
    full = saved.has_model
    dialogsum = evaluate(a, out / arm, str(saved.result_dir) if full else a.model, None if full else run, log)
    row: dict[str, Any] = {"arm": arm, "what": what, "recipe": recipe, "method": metrics["method"],
                           "trained_tasks": metrics["data"].get("tasks") or [metrics["data"]["task"]],
                           "train": {k: metrics[k] for k in ("train_examples", "global_step", "train_tokens",
                                                             "train_seconds", "train_loss", "trainable_params")},
                           "dialogsum": {k: dialogsum["metrics"][k] for k in (*ROUGE, "bleu")}}
    if "mixture" in metrics["data"]:
        row["mixture"] = {t["task"]: t["drawn"] for t in metrics["data"]["mixture"]["tasks"]}
    if not a.skip_forgetting:
        forgetting = out / arm / "forgetting"
        if not (forgetting / "forgetting.json").is_file():
            tuneval("forgetting", "--before", str(out / "base" / "suite"), "--after", str(out / arm / "suite"),
                    "--out", str(forgetting), log=log)
        row["forgetting"] = ForgettingDir(forgetting).read()
    return row


# -- the table -----------------------------------------------------------------------------------


def points(metric: str, value: float) -> float:
    return value if metric in POINTS_AS_IS else 100 * value


def per_task(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per benchmark task: delta in points (sign: + is better), verdict.

    A group whose members are named after it (mmlu: mmlu_anatomy, ...) stands for them, so 57
    MMLU subjects count once; other groups (glue, superglue) are only sums of listed tasks.
    """
    f = row.get("forgetting") or {}
    tasks, groups = f.get("tasks") or {}, f.get("groups") or {}
    families = [g for g in groups if any(t.startswith(f"{g}_") for t in tasks)]
    families = [g for g in families if not any(g.startswith(f"{h}_") for h in families)]
    chosen = {g: groups[g] for g in families}
    chosen.update({t: r for t, r in tasks.items() if not any(t.startswith(f"{g}_") for g in families)})
    out = {}
    for name, r in chosen.items():
        sign = 1 if r.get("higher_is_better", True) else -1
        out[name] = {"metric": r["metric"], "delta": sign * points(r["metric"], r["delta"]), "verdict": r["verdict"],
                     "before": points(r["metric"], r["before"]), "after": points(r["metric"], r["after"])}
    return out


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(rows: list[dict[str, Any]]) -> None:
    trained_anywhere = {t for r in rows for t in r["trained_tasks"]}
    for r in rows:
        tasks = per_task(r)
        r["suite"] = tasks
        r["mean_delta"] = mean([t["delta"] for t in tasks.values()])
        r["mean_delta_untrained"] = mean([t["delta"] for n, t in tasks.items() if n not in trained_anywhere])
        r["verdicts"] = {v: sum(1 for t in tasks.values() if t["verdict"] == v) for v in ("improved", "unchanged", "forgot")}


def fmt(x: float | None, spec: str = "+.2f") -> str:
    return "–" if x is None else format(x, spec)


def report(rows: list[dict[str, Any]], base: dict[str, Any], a: argparse.Namespace, machine: str) -> str:
    steps = ", ".join(f"{r['arm']}: {r['train']['global_step']} steps" for r in rows)
    lines = [
        "# Forgetting study: DialogSum-only vs multi-task mixture vs LoRA",
        "",
        f"Model `{a.model}`, seed {a.seed}; every arm trains on {a.train_examples} examples "
        f"({steps}). DialogSum: first "
        f"{a.eval_examples} validation examples, greedy, its fixed evaluation template. Suite: `{a.suite}`"
        + (f", first {a.limit} examples per task" if a.limit else ", its own per-task limits")
        + f". Machine: {machine}.",
        "",
        "| arm | trainable params | train tokens | train s | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-Lsum | BLEU "
        "| suite Δ mean (pts) | Δ mean, tasks no arm trained on | improved / unchanged / forgot |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    b = base["metrics"]
    lines.append(f"| base (no training) | – | – | – | {' | '.join(f'{b[k]:.4f}' for k in ROUGE)} | {b['bleu']:.2f} | – | – | – |")
    for r in rows:
        t, d = r["train"], r["dialogsum"]
        v = r.get("verdicts") or {}
        counts = f"{v['improved']} / {v['unchanged']} / {v['forgot']}" if r.get("forgetting") else "–"
        lines.append(f"| {r['arm']} | {t['trainable_params']:,} | {t['train_tokens']:,} | {t['train_seconds']:.0f} | "
                     f"{' | '.join(f'{d[k]:.4f}' for k in ROUGE)} | {d['bleu']:.2f} | {fmt(r.get('mean_delta'))} | "
                     f"{fmt(r.get('mean_delta_untrained'))} | {counts} |")
    names = sorted({n for r in rows for n in r.get("suite", {})})
    if names:
        lines += ["", "Per suite task: after − before in points ([0,1] metrics ×100; + is better), verdict from "
                      "`tuneval forgetting` (paired bootstrap, 95%). * = the arm trained on this task's training split.",
                  "", "| task | metric | base | " + " | ".join(r["arm"] for r in rows) + " |",
                  "|---|---|---:|" + "---:|" * len(rows)]
        for n in names:
            first = next(r["suite"][n] for r in rows if n in r["suite"])
            cells = []
            for r in rows:
                t = r["suite"].get(n)
                star = "*" if n in r["trained_tasks"] else ""
                cells.append("–" if t is None else f"{t['delta']:+.1f} {t['verdict']}{star}")
            lines.append(f"| {n} | {first['metric']} | {first['before']:.1f} | " + " | ".join(cells) + " |")
    mixes = [r for r in rows if r.get("mixture")]
    for r in mixes:
        lines += ["", f"{r['arm']} drew: " + ", ".join(f"{k} {v}" for k, v in r["mixture"].items()) + " examples."]
    if a.skip_forgetting:
        lines += ["", "The forgetting suite was skipped (--skip-forgetting)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--data-dir", default=os.environ.get("TUNEVAL_DATA_DIR"), help="Local data directory.")
    p.add_argument("--train-examples", type=int, default=240, help="Training examples per arm (the equal budget; the recipes' own).")
    p.add_argument("--eval-examples", type=int, default=40, help="DialogSum validation examples scored (the recipes' eval.limit).")
    p.add_argument("--suite", default="forgetting")
    p.add_argument("--limit", type=int, default=None, help="Examples per suite task (default: the suite's own).")
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--train-set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="Training overrides for every arm, e.g. max_steps=2 (smoke tests).")
    p.add_argument("--skip-forgetting", action="store_true", help="Only train and score DialogSum.")
    p.add_argument("--out", default="runs/forgetting-study")
    p.add_argument("--overwrite", action="store_true", help="Start over (delete OUT's earlier results).")
    a = p.parse_args()
    out = Path(a.out).resolve()
    settings = {k: v for k, v in vars(a).items() if k not in ("overwrite", "out", "arms", "skip_forgetting")}
    saved = out / "study_settings.json"
    if a.overwrite and out.exists():
        import shutil

        shutil.rmtree(out)
    if saved.is_file() and json.loads(saved.read_text()) != settings:
        sys.exit(f"error: {out} holds a study with other settings ({saved}); pass --overwrite or another --out")
    sys.path.insert(0, str(ROOT / "src"))
    from tuneval.runs import machine
    from tuneval.io import atomic_write_json, atomic_write_text

    atomic_write_json(saved, settings)
    log = out / "commands.jsonl"
    start = time.perf_counter()
    base = evaluate(a, out / "base", a.model, None, log)
    rows = [run_arm(a, arm, out, log) for arm in a.arms]
    summarise(rows)
    md = report(rows, base, a, machine())
    atomic_write_text(out / "study.md", md)
    atomic_write_json(out / "study.json", {"settings": settings, "machine": machine(),
                                           "base": {"dialogsum": {k: base["metrics"][k] for k in (*ROUGE, "bleu")}},
                                           "arms": rows, "seconds_this_invocation": round(time.perf_counter() - start, 1)})
    print(md)
    print(f"saved: {out / 'study.md'}, {out / 'study.json'} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
