"""Log-likelihood scoring speed: tuneval against lm-evaluation-harness's HF backend, same prompts.

Issues 16 and 34 ask for examples/s on COPA, BoolQ (200) and MMLU (3 subjects) against lm-eval 0.4.13's
`HFLM`. Both tools score
the *same model object* at the precision policy's dtype (`--precision auto`: bf16 where the CPU
computes it natively), zero-shot, on the same first N examples read from the same local files;
the task files and both runners are bench/crosscheck_lm_eval.py's, so the requests are checked
to be identical (prompt and choice strings) and the picks compared, as there.

Rounds alternate the two tools (lm-eval, tuneval, lm-eval, tuneval, ...) so a host that
speeds up or slows down mid-run does not favour one; each row keeps the best round and prints
every round. lm-eval's time includes its per-task set-up inside `simple_evaluate` (building the
task and its requests), which a user of it pays too; tuneval's includes reading the rows and
building its prompts.

    .venv/bin/python bench/loglik_throughput.py --data-dir ../shared/data [--limit 100]
        [--boolq-limit 200] [--mmlu-subject anatomy ...] [--batch-size 16] [--repeats 2] [--precision auto] [--out bench/results]

Needs the `bench` extra. Writes OUT/loglik_throughput.{json,md}; the last line is
`speedup: <ratio>x` (tuneval's examples/s over lm-eval's, all tasks together, best rounds).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))


def best_rounds(rounds: list[dict]) -> dict:
    """Per task: the fastest round (the others are noise from the host), with every round's seconds."""
    out = {}
    for name in rounds[0]:
        fastest = min(rounds, key=lambda r: r[name]["seconds"])[name]
        out[name] = {**fastest, "rounds_seconds": [round(r[name]["seconds"], 2) for r in rounds]}
    return out


def table(ours: dict, theirs: dict, picks: dict[str, dict]) -> tuple[list[dict], float]:
    """Rows of examples/s per task and the overall ratio (total examples over total best seconds)."""
    rows = []
    for name in ours:
        a, b = ours[name], theirs[name]
        rows.append({"task": name, "n": a["n"], "lm_eval_seconds": round(b["seconds"], 2),
                     "tuneval_seconds": round(a["seconds"], 2), "lm_eval_examples_per_s": b["n"] / b["seconds"],
                     "tuneval_examples_per_s": a["n"] / a["seconds"], "ratio": b["seconds"] / a["seconds"],
                     "lm_eval_rounds": b["rounds_seconds"], "tuneval_rounds": a["rounds_seconds"],
                     "lm_eval_acc": b["acc"], "tuneval_acc": a["acc"], "same_requests": picks[name]["same_requests"],
                     "different_picks": picks[name]["different_picks"]})
    ratio = sum(b["seconds"] for b in theirs.values()) / sum(a["seconds"] for a in ours.values())
    return rows, ratio


def markdown(rows: list[dict], header: str, ratio: float) -> str:
    lines = ["# Log-likelihood scoring: tuneval vs lm-evaluation-harness", "", header, "",
             "| task | n | lm-eval ex/s | tuneval ex/s | ratio | lm-eval rounds s | tuneval rounds s | lm-eval acc "
             "| tuneval acc | identical prompts+choices | different picks |",
             "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['n']} | {r['lm_eval_examples_per_s']:.2f} | {r['tuneval_examples_per_s']:.2f} | "
                     f"{r['ratio']:.2f}x | {' / '.join(map(str, r['lm_eval_rounds']))} | "
                     f"{' / '.join(map(str, r['tuneval_rounds']))} | {r['lm_eval_acc']:.4f} | {r['tuneval_acc']:.4f} | "
                     f"{r['same_requests']}/{r['n']} | {r['different_picks']} |")
    lines += ["", f"All tasks together: **{ratio:.2f}x** lm-eval's examples/s (best round of each)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    from tuneval import allocator

    allocator.maybe_reexec()  # the allocator `tuneval eval` runs with (both tools share this process)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--data-dir", default=os.environ.get("TUNEVAL_DATA_DIR", str(REPO.parent / "shared" / "data")))
    p.add_argument("--limit", type=int, default=100, help="First N examples of each task.")
    p.add_argument("--boolq-limit", type=int, default=200, help="First N BoolQ examples (issue 34: 200; 0 skips BoolQ).")
    p.add_argument("--mmlu-subject", action="append", help="Repeatable (default: anatomy, astronomy, marketing).")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=2, help="Alternating rounds per tool; the best counts.")
    p.add_argument("--precision", default="auto", help="auto (bf16 where native) | bf16 | fp32: the one model both score.")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args()
    import crosscheck_lm_eval as xc

    lm_eval = xc.require_lm_eval()
    import torch

    from tuneval.io import atomic_write_json, atomic_write_text
    from tuneval.models import load_model
    from tuneval.runs import machine

    data = Path(args.data_dir).expanduser().resolve()
    subjects = args.mmlu_subject or ["anatomy", "astronomy", "marketing"]
    names = ["copa"] + (["boolq"] if args.boolq_limit else []) + [f"mmlu_{s}" for s in subjects]
    limits = {n: args.boolq_limit if n == "boolq" else args.limit for n in names}
    loaded = load_model(args.model, precision=args.precision)
    dtype = str(next(loaded.model.parameters()).dtype).removeprefix("torch.")
    torch.manual_seed(0)
    ours, theirs = [], []
    with tempfile.TemporaryDirectory(prefix="loglik-bench-") as tmp:
        tasks = {}
        for subject in subjects:  # each call writes the shared tasks' files again, and one subject's
            tasks |= {n: t for n, t in xc.lm_eval_tasks(Path(tmp), data, subject).items() if n in names}
        for k in range(args.repeats):
            print(f"round {k + 1}/{args.repeats}: lm-eval, then tuneval", flush=True)
            theirs.append(xc.run_lm_eval(loaded.model, loaded.tokenizer, tasks, limits, Path(tmp), args.batch_size))
            ours.append(xc.run_tuneval(loaded.model, loaded.tokenizer, loaded.arch, names, limits, str(data),
                                       args.batch_size))
    picks = {r["task"]: r for r in xc.compare(ours[-1], theirs[-1])}
    rows, ratio = table(best_rounds(ours), best_rounds(theirs), picks)
    load = os.getloadavg()[0]
    header = (f"Model `{args.model}` at {dtype} (precision {args.precision}), zero-shot, first {args.limit} examples "
              f"(BoolQ: {args.boolq_limit}), "
              f"batch {args.batch_size}, the same model object for both; lm-evaluation-harness {lm_eval.__version__} "
              f"`HFLM` vs tuneval; {args.repeats} alternating rounds, best kept. Machine: {machine()}; "
              f"load average {load:.2f} at the end.")
    md = markdown(rows, header, ratio)
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "loglik_throughput.json", {"header": header, "dtype": dtype, "rows": rows,
                                                            "speedup": ratio})
    atomic_write_text(args.out / "loglik_throughput.md", md)
    print(f"speedup: {ratio:.2f}x")


if __name__ == "__main__":
    main()
