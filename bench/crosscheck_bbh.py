"""BIG-Bench Hard: tuneval against lm-evaluation-harness 0.4.13's own bbh configs, side by side (issue 30 item 3).

For each family (zeroshot, cot_fewshot) and task: lm-eval's `bbh_<family>_<task>.yaml`, included as
it ships with only the data source swapped to the local `bbh/<task>.json`, run by lm-eval's HFLM
(`generate_until`, its default batch size 1, or --lm-eval-batch-size; the docs whose generations then
differ from tuneval's are generated again at batch 1, unpadded) on the embedded model at fp32;
and tuneval's `bbh_<family>_<task>` (batched generation, --batch-size) on the same model, same
precision, greedy. Printed per task: identical generations (after the stop strings), exact match for
each filter on both sides, and each side's wall time; then the ratio of the totals.

    python bench/crosscheck_bbh.py [--tasks boolean_expressions,navigate,...] [--n 50] [--families zeroshot cot_fewshot]
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

BASE = "smollm2-135m-instruct"
TASKS = ["boolean_expressions", "causal_judgement", "date_understanding", "formal_fallacies", "navigate",
         "sports_understanding"]


def lm_eval_task(tmp: Path, data: Path, family: str, task: str) -> str:
    """An lm-eval task file that includes lm-eval's own and only swaps the data source; its name."""
    import lm_eval

    builtin = Path(lm_eval.__file__).parent / "tasks" / "bbh" / family / f"{task}.yaml"
    name = f"xc_bbh_{family}_{task}"
    spec = {"include": str(builtin), "task": name, "dataset_path": "json", "dataset_name": None,
            "dataset_kwargs": {"data_files": {"test": str(data / "bbh" / f"{task}.json")}, "field": "examples"}}
    (tmp / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return name


def run_lm_eval(hf, manager, name: str, n: int, docs: list[int] | None = None) -> dict:
    """lm-eval's generations (doc order), exact match per filter and wall time: the first `n` docs, or `docs`."""
    from lm_eval import simple_evaluate

    start = time.perf_counter()
    res = simple_evaluate(model=hf, tasks=[name], task_manager=manager, limit=None if docs else n,
                          samples={name: docs} if docs else None, log_samples=True, bootstrap_iters=0)
    seconds = time.perf_counter() - start
    samples = res["samples"][name]
    first = sorted((s for s in samples if s["filter"] == samples[0]["filter"]), key=lambda s: s["doc_id"])
    em = {k.split(",", 1)[1]: float(v) for k, v in res["results"][name].items() if k.startswith("exact_match,")}
    return {"generations": [s["resps"][0][0].strip() for s in first], "em": em, "seconds": seconds}


def rerun_alone(hf, manager, name: str, row: dict, ours: dict) -> None:
    """lm-eval's batch-1 generations for the docs its batched pass gave differently from tuneval: do they
    match once nothing is padded? (Left padding changes fp32 sums, so a long greedy generation can drift.)"""
    differ = row.pop("_differ")
    if not differ or hf.batch_size_per_gpu == 1:
        row["identical_alone"] = row["identical"]
        return
    batched, hf.batch_size_per_gpu = hf.batch_size_per_gpu, 1
    try:
        alone = run_lm_eval(hf, manager, name, 0, differ)
    finally:
        hf.batch_size_per_gpu = batched
    fixed = sum(ours["generations"][i] == g for i, g in zip(differ, alone["generations"]))
    row["identical_alone"] = row["identical"] + fixed
    row["rerun_alone"] = {"docs": differ, "matched": fixed, "seconds": round(alone["seconds"], 1)}
    print(f"  lm-eval at batch 1 on the {len(differ)} differing: {fixed} now identical", flush=True)


def run_tuneval(family: str, task: str, n: int, data: Path, out: Path, batch_size: int) -> dict:
    from tuneval import simple_evaluate
    from tuneval.results import SuiteDir

    name = f"bbh_{family}_{task}"
    start = time.perf_counter()
    summary = simple_evaluate(BASE, tasks=name, limit=n, data_dir=str(data), out=out, precision="fp32",
                              batch_size=batch_size, bootstrap_iters=0)
    seconds = time.perf_counter() - start
    examples = SuiteDir(out).task(name).read()["examples"]
    metrics = summary["tasks"][name]["metrics"]
    em = {k.split(",", 1)[1]: v for k, v in metrics.items() if k.startswith("exact_match,")}
    return {"generations": [e["prediction"] for e in examples], "em": em, "seconds": seconds}


def compare(family: str, task: str, ours: dict, theirs: dict) -> dict:
    same = sum(a == b for a, b in zip(ours["generations"], theirs["generations"]))
    differ = [i for i, (a, b) in enumerate(zip(ours["generations"], theirs["generations"])) if a != b]
    row = {"family": family, "task": task, "n": len(theirs["generations"]), "identical": same,
           "differ_at": differ[:10], "_differ": differ, "em_tuneval": ours["em"], "em_lm_eval": theirs["em"],
           "s_tuneval": round(ours["seconds"], 1), "s_lm_eval": round(theirs["seconds"], 1),
           "gen_chars_mean": sum(map(len, theirs["generations"])) / max(1, len(theirs["generations"]))}
    print(f"{family} {task}: {same}/{row['n']} identical; EM tuneval {ours['em']} lm-eval {theirs['em']}; "
          f"{row['s_tuneval']} s vs {row['s_lm_eval']} s", flush=True)
    return row


def markdown(rows: list[dict], a: argparse.Namespace, provenance: dict) -> str:
    lines = [f"> **Machine:** {provenance['machine']} · **date:** {provenance['date']} · **commit:** "
             f"{provenance['commit']}", "",
             f"`{BASE}` at fp32, greedy, first {a.n} examples per task, local BIG-Bench Hard files. lm-eval "
             f"{provenance['lm_eval']} HFLM `generate_until` at batch size {a.lm_eval_batch_size}; tuneval "
             f"`--batch-size {a.batch_size}` (prefill per prompt, decode batched, rows dropped at EOS; the task's stop strings cut the text afterwards).", "",
             "| family | task | identical generations | identical, lm-eval's differing ones rerun at batch 1 "
             "| EM strict: tuneval / lm-eval | EM flexible: tuneval / lm-eval "
             "| tuneval s | lm-eval s | lm-eval / tuneval |", "|---|---|---:|---:|---|---|---:|---:|---:|"]
    for r in rows:
        em = lambda f: f"{r['em_tuneval'].get(f, float('nan')):.2f} / {r['em_lm_eval'].get(f, float('nan')):.2f}"  # noqa: E731
        lines.append(f"| {r['family']} | {r['task']} | {r['identical']}/{r['n']} | "
                     f"{r.get('identical_alone', r['identical'])}/{r['n']} | {em('strict-match')} | "
                     f"{em('flexible-extract')} | {r['s_tuneval']:.0f} | {r['s_lm_eval']:.0f} | "
                     f"{r['s_lm_eval'] / r['s_tuneval']:.2f}x |")
    ours, theirs = sum(r["s_tuneval"] for r in rows), sum(r["s_lm_eval"] for r in rows)
    same, n = sum(r["identical"] for r in rows), sum(r["n"] for r in rows)
    alone = sum(r.get("identical_alone", r["identical"]) for r in rows)
    lines += ["", f"All: {same}/{n} identical generations ({alone}/{n} once lm-eval's differing ones ran at batch 1); "
              f"{ours:.0f} s (tuneval) vs {theirs:.0f} s (lm-eval), **{theirs / ours:.2f}x**."]
    return "\n".join(lines) + "\n"


def save(rows: list[dict], a: argparse.Namespace, provenance: dict) -> str:
    """Results so far, rewritten after every task: a run stopped part way keeps what it measured."""
    from tuneval.io import atomic_write_json, atomic_write_text

    md = markdown(rows, a, provenance)
    atomic_write_json(a.out / "crosscheck_bbh.json", {"provenance": provenance, "n": a.n, "rows": rows})
    atomic_write_text(a.out / "crosscheck_bbh.md", md)
    return md


def run_all(a: argparse.Namespace, tmp: Path, provenance: dict) -> list[dict]:
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from tuneval.models.catalogue import ensure_embedded

    torch.set_num_threads(a.threads)
    data = Path(a.data_dir).resolve()
    names = {(f, t): lm_eval_task(tmp, data, f, t) for f in a.families for t in a.tasks}
    manager = TaskManager(include_path=str(tmp), include_defaults=False)
    hf = HFLM(pretrained=str(ensure_embedded(BASE)), dtype="float32", batch_size=a.lm_eval_batch_size, device="cpu")
    rows = []
    for family in a.families:
        for task in a.tasks:  # alternate the two sides task by task, so drift in the machine's speed hits both
            ours = run_tuneval(family, task, a.n, data, tmp / f"tv-{family}-{task}", a.batch_size)
            theirs = run_lm_eval(hf, manager, names[(family, task)], a.n)
            rows.append(compare(family, task, ours, theirs))
            rerun_alone(hf, manager, names[(family, task)], rows[-1], ours)
            save(rows, a, provenance)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=lambda s: s.split(","), default=TASKS)
    p.add_argument("--families", nargs="+", default=["zeroshot", "cot_fewshot"])
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lm-eval-batch-size", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--data-dir", default=os.environ.get("TUNEVAL_DATA_DIR", str(REPO.parent / "shared" / "data")))
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    a = p.parse_args()
    import lm_eval

    from tuneval.runs import machine

    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    provenance = {"machine": machine(), "date": datetime.date.today().isoformat(), "commit": commit,
                  "lm_eval": lm_eval.__version__}
    with tempfile.TemporaryDirectory(prefix="xc-bbh-") as tmp:
        rows = run_all(a, Path(tmp), provenance)
    print(save(rows, a, provenance))


if __name__ == "__main__":
    main()
