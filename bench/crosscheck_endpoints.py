"""Cross-check scoring through an OpenAI-compatible server against scoring in process, side by side.

One `tuneval serve` process serves the model and one LoRA adapter (`--adapter demo=RUN`). For the
base and for the adapter, on COPA (first 100) and BoolQ (first 200), zero-shot:

  lm-eval hf                  lm-evaluation-harness 0.4.13's HFLM in this process (peft=RUN for the adapter)
  lm-eval local-completions   lm-eval's API model against the server (token-id prompts, echo + logprobs)
  tuneval -> server           `tuneval eval --tasks` with --model local-completions against the server

lm-eval runs its own task files with only the data source swapped to the local files
(bench/crosscheck_lm_eval.py). Printed per row: accuracy, examples whose pick differs from
lm-eval hf, the largest log-likelihood difference, and the wall time.

Then the round trip (issue 31 item 3): `tuneval eval --task dialogsum --adapter RUN` in process
against the same task through the server (`model=demo`, tokenizer given: the same prompt ids):
identical predictions and ROUGE, and how long each took.

Needs the `bench` extra and an adapter on the model: `make demo` leaves one in runs/demo/lora.

    python bench/crosscheck_endpoints.py [--adapter runs/demo/lora] [--copa 100] [--boolq 200] [--dialogsum 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from crosscheck_lm_eval import lm_eval_tasks, require_lm_eval  # noqa: E402
from serve import Server  # noqa: E402

BASE = "smollm2-135m-instruct"  # the embedded model; `tuneval serve --model NAME` serves it under this name


def lm_eval_run(lm, task: str, manager, limit: int) -> dict:
    from lm_eval import simple_evaluate

    start = time.perf_counter()
    res = simple_evaluate(model=lm, tasks=[task], task_manager=manager, num_fewshot=0, limit=limit, log_samples=True,
                          bootstrap_iters=0)
    samples = sorted(res["samples"][task], key=lambda s: s["doc_id"])
    return {"acc": res["results"][task]["acc,none"], "n": len(samples),
            "loglik": [[float(r[0]) for r in s["filtered_resps"]] for s in samples],
            "seconds": time.perf_counter() - start}


def tuneval_run(model_args: str, task: str, limit: int, data: Path, out: Path) -> dict:
    from tuneval import simple_evaluate

    start = time.perf_counter()
    summary = simple_evaluate("local-completions", tasks=task, limit=limit, data_dir=str(data), out=out,
                              model_args=model_args, bootstrap_iters=0)
    from tuneval.results import SuiteDir

    r = SuiteDir(out).task(task).read()
    return {"acc": summary["tasks"][task]["metrics"]["acc"], "n": r["num_examples"],
            "loglik": [ex["loglik"] for ex in r["examples"]], "seconds": time.perf_counter() - start}


def row(label: str, task: str, how: str, got: dict, ref: dict) -> dict:
    pick = lambda xs: max(range(len(xs)), key=xs.__getitem__)  # noqa: E731
    diff = sum(pick(a) != pick(b) for a, b in zip(got["loglik"], ref["loglik"]))
    worst = max(abs(p - q) for a, b in zip(got["loglik"], ref["loglik"]) for p, q in zip(a, b))
    return {"model": label, "task": task, "how": how, "n": got["n"], "acc": got["acc"], "picks_differ": diff,
            "max_abs_loglik_diff": worst, "seconds": round(got["seconds"], 1)}


def scoring(server: Server, base_dir: Path, adapter: Path, data: Path, limits: dict[str, int], tmp: Path) -> list[dict]:
    from lm_eval.models.huggingface import HFLM
    from lm_eval.models.openai_completions import LocalCompletionsAPI
    from lm_eval.tasks import TaskManager
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tasks = lm_eval_tasks(tmp, data, "anatomy")
    manager = TaskManager(include_path=str(tmp), include_defaults=False)
    rows, base_refs = [], {}
    for label, served, peft in (("base", BASE, None), ("LoRA adapter", "demo", str(adapter))):
        hf = HFLM(pretrained=str(base_dir), peft=peft, dtype="float32", batch_size=16, device=device)
        api = LocalCompletionsAPI(base_url=f"{server.url}/v1/completions", model=served, tokenizer=str(base_dir),
                                  num_concurrent=1, max_retries=1, max_length=2048)
        for task, limit in limits.items():
            ref = lm_eval_run(hf, tasks[task], manager, limit)
            base_refs.setdefault(task, ref)
            rows.append({**row(label, task, "lm-eval hf", ref, ref), "vs_base": row(label, task, "", ref, base_refs[task])})
            rows.append(row(label, task, "lm-eval local-completions -> serve", lm_eval_run(api, tasks[task], manager, limit), ref))
            ours = tuneval_run(f"base_url={server.url}/v1,model={served},tokenizer={base_dir}", task, limit, data,
                               tmp / f"tuneval-{served}-{task}")
            rows.append(row(label, task, "tuneval eval -> serve", ours, ref))
            print(*(f"{r['model']} {r['task']} {r['how']}: acc {r['acc']:.4f}, {r['picks_differ']} picks differ, "
                    f"{r['seconds']} s" for r in rows[-3:]), sep="\n", flush=True)
        del hf
    return rows


def round_trip(server: Server, base_dir: Path, adapter: Path, data: Path, limit: int, tmp: Path) -> dict:
    from tuneval import simple_evaluate

    base = simple_evaluate(BASE, task="dialogsum", limit=limit, data_dir=str(data), out=tmp / "rt-base",
                           bootstrap_iters=0, precision="fp32")
    start = time.perf_counter()
    local = simple_evaluate(BASE, adapter, task="dialogsum", limit=limit, data_dir=str(data),
                            out=tmp / "rt-local", bootstrap_iters=0, precision="fp32")
    local_s = time.perf_counter() - start
    start = time.perf_counter()
    served = simple_evaluate("local-completions", task="dialogsum", limit=limit, data_dir=str(data),
                             out=tmp / "rt-served", bootstrap_iters=0,
                             model_args=f"base_url={server.url}/v1,model=demo,tokenizer={base_dir}")
    served_s = time.perf_counter() - start
    same = sum(a["prediction"] == b["prediction"] for a, b in zip(local["examples"], served["examples"]))
    moved = sum(a["prediction"] != b["prediction"] for a, b in zip(local["examples"], base["examples"]))
    return {"n": limit, "identical_predictions": same, "differ_from_base": moved,
            "rouge1_base": base["metrics"]["rouge1"], "rouge1_local": local["metrics"]["rouge1"],
            "rouge1_served": served["metrics"]["rouge1"], "rougeL_local": local["metrics"]["rougeL"],
            "rougeL_served": served["metrics"]["rougeL"], "local_seconds": round(local_s, 1),
            "served_seconds": round(served_s, 1)}


def markdown(header: str, rows: list[dict], trip: dict) -> str:
    lines = [header, "", "| model | task | how | n | acc | picks differing from lm-eval hf | max abs loglik diff | s |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['task']} | {r['how']} | {r['n']} | {r['acc']:.4f} | {r['picks_differ']} | "
                     f"{r['max_abs_loglik_diff']:.2e} | {r['seconds']:.0f} |")
    moved = [f"{r['task']}: log-likelihoods up to {r['vs_base']['max_abs_loglik_diff']:.3f} apart, "
             f"{r['vs_base']['picks_differ']} picks changed" for r in rows if r.get("vs_base") and r["model"] != "base"]
    lines += ["", "The adapter against the base (lm-eval hf, same examples): " + "; ".join(moved) + "."]
    lines += ["", f"Round trip, DialogSum (first {trip['n']}, FLAN template, greedy; the adapter changes "
              f"{trip['differ_from_base']} of the base model's predictions, ROUGE-1 {trip['rouge1_base']:.4f} "
              "without it): identical predictions "
              f"{trip['identical_predictions']}/{trip['n']}; ROUGE-1 {trip['rouge1_local']:.4f} in process vs "
              f"{trip['rouge1_served']:.4f} through the server; ROUGE-L {trip['rougeL_local']:.4f} vs "
              f"{trip['rougeL_served']:.4f}; {trip['local_seconds']:.0f} s vs {trip['served_seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adapter", type=Path, default=REPO / "runs" / "demo" / "lora")
    p.add_argument("--data-dir", default=os.environ.get("TUNEVAL_DATA_DIR", str(REPO.parent / "shared" / "data")))
    p.add_argument("--copa", type=int, default=100)
    p.add_argument("--boolq", type=int, default=200)
    p.add_argument("--dialogsum", type=int, default=20)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args()
    require_lm_eval()
    from tuneval.io import atomic_write_json, atomic_write_text
    from tuneval.models.catalogue import ensure_embedded
    from tuneval.runs import machine

    base_dir, data = ensure_embedded(BASE), Path(args.data_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="xc-endpoints-") as tmp:
        server = Server(["--model", BASE, "--adapter", f"demo={args.adapter}", "--precision", "fp32",
                         "--max-prompt-tokens", "2048", "--max-batch-size", "16"], Path(tmp) / "server.log")
        try:
            server.wait()
            rows = scoring(server, base_dir, args.adapter, data, {"copa": args.copa, "boolq": args.boolq}, Path(tmp))
            trip = round_trip(server, base_dir, args.adapter, data, args.dialogsum, Path(tmp))
        finally:
            server.stop()
    import lm_eval

    header = (f"`smollm2-135m-instruct` (float32) and the LoRA adapter `{args.adapter.name}`, zero-shot, local files; "
              f"lm-evaluation-harness {lm_eval.__version__}; one `tuneval serve` process on the same machine: {machine()}.")
    import datetime
    import subprocess

    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    provenance = {"machine": machine(), "date": datetime.date.today().isoformat(), "commit": commit}
    md = (f"> **Machine:** {provenance['machine']} · **date:** {provenance['date']} · **commit:** {commit}\n\n"
          + markdown(header, rows, trip))
    print(md)
    atomic_write_json(args.out / "crosscheck_endpoints.json",
                      {"provenance": provenance, "header": header, "rows": rows, "round_trip": trip})
    atomic_write_text(args.out / "crosscheck_endpoints.md", md)


if __name__ == "__main__":
    main()
