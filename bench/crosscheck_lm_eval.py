"""Cross-check tuneval's multiple-choice scores against lm-evaluation-harness on the same model.

Both tools read the same local files (no hub) and score the same first N examples zero-shot.
lm-eval uses its *own* built-in task files (super_glue/copa, super_glue/rte, super_glue/boolq,
mmlu/default/mmlu_<subject>), `include:`d by absolute path, with only the data source changed
to the local jsonl/csv files (and, where the official files spell labels as strings or have
the MMLU options in columns A-D, `doc_to_target`/`doc_to_text` adapted to read them: same
prompt strings). tuneval uses its built-in tasks. So agreement checks tuneval's prompts
*and* its log-likelihood scoring. Prints accuracies side by side, how many examples got a
different pick, and the largest log-likelihood difference; writes JSON and Markdown.

Needs the `bench` extra: `.venv/bin/pip install -c constraints.txt -e '.[bench]'`.

    python bench/crosscheck_lm_eval.py [--model smollm2-135m-instruct] [--data-dir ../shared/data]
        [--limit N (every task)] [--boolq-limit 300] [--mmlu-subject anatomy] [--batch-size 16] [--out bench/results]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))


def require_lm_eval():
    """lm-eval, offline (the task files read local data); a one-line exit where it is not installed."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import lm_eval
    except ImportError:
        raise SystemExit("lm-eval is not installed: .venv/bin/pip install -c constraints.txt -e '.[bench]'") from None
    return lm_eval


def lm_eval_tasks(tmp: Path, data: Path, subject: str) -> dict[str, str]:
    """Write lm-eval task files that include lm-eval's own and only swap the data source. {tuneval task: lm-eval task}."""
    import lm_eval

    builtin = Path(lm_eval.__file__).parent / "tasks"
    local = lambda split, path: {"data_files": {split: str(data / path)}}  # noqa: E731
    specs = {
        "copa": {"include": str(builtin / "super_glue/copa/default.yaml"), "task": "xc_copa",
                 "dataset_path": "json", "dataset_kwargs": local("validation", "superglue/copa/val.jsonl")},
        "rte": {"include": str(builtin / "super_glue/rte/default.yaml"), "task": "xc_rte",
                "dataset_path": "json", "dataset_kwargs": local("validation", "superglue/rte/val.jsonl"),
                # the official jsonl spells the label; lm-eval's hub copy has 0 = entailment, 1 = not_entailment
                "doc_to_target": "{{ ['entailment', 'not_entailment'].index(label) }}"},
        "boolq": {"include": str(builtin / "super_glue/boolq/default.yaml"), "task": "xc_boolq",
                  "dataset_path": "json", "dataset_kwargs": local("validation", "superglue/boolq/val.jsonl"),
                  "doc_to_target": "{{ 1 if label else 0 }}"},
        f"mmlu_{subject}": {
            "include": str(builtin / f"mmlu/default/mmlu_{subject}.yaml"), "task": f"xc_mmlu_{subject}",
            "dataset_path": "csv", "fewshot_split": None,
            "dataset_kwargs": {"data_files": {"test": str(data / f"mmlu/test/{subject}_test.csv")},
                               "column_names": ["question", "A", "B", "C", "D", "answer"],
                               # keep "None"/"NA" options as text; the prompt comparison below catches any other change
                               "keep_default_na": False, "na_filter": False},
            # lm-eval's string with choices[i] read from the csv's columns A-D
            "doc_to_text": "{{question.strip()}}\nA. {{A}}\nB. {{B}}\nC. {{C}}\nD. {{D}}\nAnswer:"},
    }
    out = {}
    for name, spec in specs.items():
        spec = {"dataset_name": None, "training_split": None, "validation_split": None, **spec}
        if name != f"mmlu_{subject}":
            spec["validation_split"] = "validation"
        (tmp / f"{spec['task']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        out[name] = spec["task"]
    return out


def run_lm_eval(model, tokenizer, tasks: dict[str, str], limits: dict[str, int | None], tmp: Path, batch_size: int):
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    manager = TaskManager(include_path=str(tmp), include_defaults=False)
    out = {}
    for name, task in tasks.items():
        start = time.perf_counter()
        res = simple_evaluate(model=lm, tasks=[task], task_manager=manager, num_fewshot=0, limit=limits[name],
                              log_samples=True, bootstrap_iters=0)
        samples = sorted(res["samples"][task], key=lambda s: s["doc_id"])
        out[name] = {"acc": res["results"][task]["acc,none"], "n": len(samples),
                     "loglik": [[float(r[0]) for r in s["filtered_resps"]] for s in samples],
                     "requests": [[list(a) for a in s["arguments"]] for s in samples],
                     "seconds": time.perf_counter() - start}
    return out


def run_tuneval(model, tokenizer, arch, names: list[str], limits, data_dir, batch_size: int):
    from tuneval.tasks import load_registry
    from tuneval.evaluate.harness import run_task

    reg = load_registry()
    out = {}
    for name in names:
        start = time.perf_counter()
        r = run_task(model, tokenizer, arch, reg.tasks[name], limit=limits[name], num_fewshot=0, data_dir=data_dir,
                     batch_size=batch_size, bootstrap_iters=0, label="tuneval")
        delim = reg.tasks[name].target_delimiter
        out[name] = {"acc": r["metrics"]["acc"], "n": r["num_examples"], "loglik": [ex["loglik"] for ex in r["examples"]],
                     "requests": [[[ex["prompt"], delim + c] for c in ex["choices"]] for ex in r["examples"]],
                     "seconds": time.perf_counter() - start}
    return out


def compare(ours: dict, theirs: dict) -> list[dict]:
    rows = []
    for name in ours:
        a, b = ours[name], theirs[name]
        if a["n"] != b["n"]:
            raise SystemExit(f"{name}: tuneval scored {a['n']} examples, lm-eval {b['n']}")
        picks = sum(max(range(len(x)), key=x.__getitem__) != max(range(len(y)), key=y.__getitem__)
                    for x, y in zip(a["loglik"], b["loglik"]))
        diff = max(abs(p - q) for x, y in zip(a["loglik"], b["loglik"]) for p, q in zip(x, y))
        same = sum(x == y for x, y in zip(a["requests"], b["requests"]))
        rows.append({"task": name, "n": a["n"], "lm_eval_acc": b["acc"], "tuneval_acc": a["acc"],
                     "diff_points": 100 * (a["acc"] - b["acc"]), "same_requests": same, "different_picks": picks, "max_abs_loglik_diff": diff,
                     "lm_eval_seconds": round(b["seconds"], 1), "tuneval_seconds": round(a["seconds"], 1)})
    return rows


def markdown(rows: list[dict], header: str) -> str:
    lines = [header, "", "| task | n | lm-eval acc | tuneval acc | diff (points) | identical prompts+choices | different picks "
             "| max abs loglik diff | lm-eval s | tuneval s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['n']} | {r['lm_eval_acc']:.4f} | {r['tuneval_acc']:.4f} | {r['diff_points']:+.2f} | "
                     f"{r['same_requests']}/{r['n']} | {r['different_picks']} | {r['max_abs_loglik_diff']:.2e} | {r['lm_eval_seconds']:.0f} | {r['tuneval_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--data-dir", default=os.environ.get("TUNEVAL_DATA_DIR", str(REPO.parent / "shared" / "data")))
    p.add_argument("--limit", type=int, default=None, help="First N examples of every task (default: all, BoolQ 300).")
    p.add_argument("--boolq-limit", type=int, default=300, help="BoolQ subset size when --limit is not given.")
    p.add_argument("--mmlu-subject", default="anatomy")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--precision", default="fp32", help="The one model both tools score (fp32: bit-comparable; "
                   "bf16: how far batching under bf16 rounding moves the picks).")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="Where crosscheck_lm_eval.{json,md} go.")
    args = p.parse_args()
    require_lm_eval()
    import torch

    from tuneval.runs import machine
    from tuneval.io import atomic_write_json, atomic_write_text
    from tuneval.models import load_model

    data = Path(args.data_dir).expanduser().resolve()
    subject = args.mmlu_subject
    names = ["copa", "rte", "boolq", f"mmlu_{subject}"]
    limits = {n: args.limit for n in names} if args.limit else {n: (args.boolq_limit if n == "boolq" else None) for n in names}
    loaded = load_model(args.model, precision=args.precision)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="xc-lm-eval-") as tmp:
        tasks = lm_eval_tasks(Path(tmp), data, subject)
        ours = run_tuneval(loaded.model, loaded.tokenizer, loaded.arch, names, limits, str(data), args.batch_size)
        theirs = run_lm_eval(loaded.model, loaded.tokenizer, tasks, limits, Path(tmp), args.batch_size)
    rows = compare(ours, theirs)
    import lm_eval as le

    header = (f"Model `{args.model}` ({loaded.dtype}), zero-shot, first N examples of each split, local files from `{data}`; "
              f"lm-evaluation-harness {le.__version__} HFLM (batch {args.batch_size}) vs tuneval; machine: {machine()}.")
    md = markdown(rows, header)
    print(md)
    atomic_write_json(args.out / "crosscheck_lm_eval.json", {"header": header, "limits": limits, "rows": rows})
    atomic_write_text(args.out / "crosscheck_lm_eval.md", md)
    worst = max(abs(r["diff_points"]) for r in rows)
    print(f"largest accuracy difference: {worst:.2f} points ({'within' if worst <= 1 else 'OVER'} one point)")


if __name__ == "__main__":
    main()
