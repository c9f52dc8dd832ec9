"""Results in tuneval's saved formats, made without a model, for the report tests and the load benchmark.

Test and bench tooling, so not in the installed package: tests import it as `tests.report.synthetic`,
bench/report_load.py puts the repository root on sys.path and imports it the same way.

Scores come from the real metric code (metrics.summarization_metrics) on made-up texts, so
every file has exactly the shape `tuneval demo`, `train`, `sweep` and `forgetting` write, and
a report over them exercises every section. The texts are word soup: these are fixtures.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from tuneval.io import atomic_write_text
from tuneval.metrics.text import corpus_bleu, summarization_metrics
from tuneval.results import DemoDir, EvalDir, ForgettingDir, SweepDir
from tuneval.runs import RunDir

WORDS = ("meeting monday report table dinner tonight doctor breathing allergies weekend train ticket "
         "office manager salary holiday flight hotel birthday present party phone call friend price "
         "apartment rent kitchen window teacher exam homework library book coffee tea rain umbrella").split()
NAMES = ("#Person1#", "#Person2#")


def _dialogue(rng: random.Random, turns: int) -> str:
    return "\n".join(f"{NAMES[i % 2]}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) + "."
                     for i in range(turns))


def _summary(rng: random.Random, dialogue: str, n: int) -> str:
    words = dialogue.replace(".", "").split()
    return f"{rng.choice(NAMES)} " + " ".join(rng.choice(words) for _ in range(n)) + "."


def _prediction(rng: random.Random, reference: str, dialogue: str, quality: float) -> str:
    """Keeps each reference word with probability `quality`, fills the rest from the dialogue."""
    ref, pool = reference.rstrip(".").split(), dialogue.replace(".", "").split()
    return " ".join(w if rng.random() < quality else rng.choice(pool) for w in ref) + "."


def eval_results(label: str, examples: list[dict], quality: float, seed: int, **meta) -> dict[str, Any]:
    rng = random.Random(seed)
    preds = [_prediction(rng, ex["reference"], ex["input"], quality) for ex in examples]
    refs = [[ex["reference"]] for ex in examples]
    metrics, items = summarization_metrics(preds, refs)
    return {
        "label": label, "task": "dialogsum", "split": "validation", "num_examples": len(examples),
        "prompt": {"family": "template", "template": 4,
                   "text": "Summarize the following conversation.\n\n{dialogue}\n\nSummary:", "target": "{summary}"},
        "output_type": "generate_until", "primary_metric": "rouge1", "chat_template": True,
        "signatures": {"bleu": corpus_bleu(preds, refs)["bleu_signature"]},
        "generation": {"strategy": "greedy", "max_new_tokens": 64, "batch_size": 16, "seconds": 1.0,
                       "new_tokens": 100, "tokens_per_second": 100.0},
        "metrics": metrics, "created": "2026-12-01T00:00:00+00:00", "precision": "fp32", **meta,
        "examples": [{"id": ex["id"], "source": f"dialogsum/validation.jsonl:{i + 1}", "input": ex["input"],
                      "prompt": ex["input"], "references": r, "prediction": p, "rouge": it}
                     for i, (ex, r, p, it) in enumerate(zip(examples, refs, preds, items))],
    }


def train_log(steps: int, seed: int, eval_every: int | None, final_loss: float) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    log = []
    for step in range(1, steps + 1):
        loss = final_loss + 1.5 * math.exp(-step / max(steps / 4, 1)) + rng.uniform(-0.05, 0.05)
        log.append({"loss": round(loss, 4), "learning_rate": 1e-3 * (1 - step / steps), "epoch": step / steps,
                    "step": step})
        if eval_every and step % eval_every == 0:
            score = 0.3 + 0.01 * seed - 0.15 * math.exp(-step / max(steps / 3, 1)) + rng.uniform(-0.01, 0.01)
            log.append({"eval_loss": round(loss + 0.2, 4), "eval_rouge1": score, "eval_rouge2": score / 3,
                        "eval_rougeL": score * 0.8, "eval_rougeLsum": score * 0.85, "eval_bleu": 40 * score,
                        "epoch": step / steps, "step": step})
    return log + [{"train_runtime": 100.0, "train_loss": final_loss, "epoch": 1.0, "step": steps}]


def write_run(d: Path, method: str, *, steps: int = 12, seed: int = 42, eval_every: int | None = 4,
              trainable: int = 1_843_200, total: int = 136_358_208) -> Path:
    run = RunDir(d)
    log = train_log(steps, seed, eval_every, final_loss=1.2 if method == "full" else 1.4)
    evals = [r for r in log if "eval_rougeL" in r]
    best = max(evals, key=lambda r: r["eval_rougeL"]) if evals else None
    metrics = {"method": method, "model": "smollm2-135m-instruct", "arch": "causal", "trainable_params": trainable,
               "all_params": total, "trainable_percent": 100 * trainable / total, "checkpoint_dir": str(run.path),
               "checkpoint_mb": trainable * 4 / 1e6, "peak_memory_mb": 7500.0 + trainable / 1e5, "peak_memory_kind": "rss",
               "train_tokens": 30000, "train_seconds": 250.0, "train_tokens_per_second": 120.0, "train_loss": 1.4,
               "train_examples": 96, "global_step": steps, "resumed_from": None, "precision": "fp32", "device": "cpu",
               "torch_threads": 2, "data": {"max_length": 529}}
    if best:
        metrics |= {"best_step": best["step"], "best_metric": best["eval_rougeL"], "metric_for_best_model": "rougeL"}
    run.write_metrics(metrics)
    atomic_write_text(run.log_file, "".join(json.dumps(r) + "\n" for r in log))
    run.begin({"model": "smollm2-135m-instruct", "task": "dialogsum", "method": method, "seed": seed,
               "output_dir": str(d), "precision": "fp32", "train": {"learning_rate": 1e-3}, "data": {"train_examples": 96}})
    return d


def make_examples(n: int, seed: int = 0, turns: int = 8) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        dialogue = _dialogue(rng, turns)
        out.append({"id": f"dev_{i}", "input": dialogue, "reference": _summary(rng, dialogue, rng.randint(10, 25))})
    return out


def write_demo(out: Path, *, examples: int = 32, methods: tuple[str, ...] = ("full", "lora"), steps: int = 12,
               eval_every: int | None = 4, extra_examples: list[dict] | None = None, turns: int = 8) -> Path:
    """A `tuneval demo` directory (results.DemoDir): the comparison, the base's evaluation, a run (with its eval/) per method."""
    demo = DemoDir(out)
    exs = make_examples(examples, turns=turns) + (extra_examples or [])
    quality = {"original": 0.2, "full": 0.6, "lora": 0.5}
    rows = []
    for i, label in enumerate(("original", *methods)):
        meta = {"adapter": None} if label == "original" else {"run": str(out / label)}
        res = eval_results(label, exs, quality.get(label, 0.3 + 0.04 * i), seed=i, model="smollm2-135m-instruct", **meta)
        # as the demo saves them: the base model's in eval-original/, each run's inside the run (RUN/eval/)
        where = demo.original if label == "original" else EvalDir(demo.run(label).eval_dir)
        where.write(res)
        row = {k: v for k, v in res.items() if k != "examples"} | {"method": "none" if label == "original" else label}
        if label != "original":
            run = write_run(out / label, label, steps=steps, seed=i, eval_every=eval_every,
                            trainable=134_515_008 if label == "full" else 1_843_200 * i)
            row["train"] = RunDir(run).metrics()
        rows.append(row)
    demo.write({"machine": "synthetic", "model": "smollm2-135m-instruct", "precision": "fp32", "train_examples": 96,
                "eval_examples": len(exs), "rows": rows}, "# tuneval demo (synthetic)\n")
    return out


def write_forgetting(out: Path, tasks: int = 6, seed: int = 0) -> Path:
    rng = random.Random(seed)
    result: dict[str, Any] = {"before": "smollm2-135m-instruct", "after": "smollm2-135m-instruct+lora", "tasks": {},
                              "groups": {}, "bootstrap_iters": 1000, "seed": 1234, "only_before": [], "only_after": []}
    sides: dict[str, dict] = {"before": {"tasks": {}, "groups": {}}, "after": {"tasks": {}, "groups": {}}}
    for i in range(tasks):
        name = ("sst2", "boolq", "copa", "rte", "trec", "agnews", "cb", "wic")[i % 8] + ("" if i < 8 else f"_{i}")
        before, delta = rng.uniform(0.3, 0.7), rng.uniform(-0.1, 0.1)
        lo, hi = delta - 0.04, delta + 0.04
        verdict = "improved" if lo > 0 else "forgot" if hi < 0 else "unchanged"
        result["tasks"][name] = {"metric": "acc", "higher_is_better": True, "n": 100, "before": before,
                                 "after": before + delta, "delta": delta, "ci_low": lo, "ci_high": hi,
                                 "verdict": verdict}
        for side, v in (("before", before), ("after", before + delta)):
            sides[side]["tasks"][name] = {"task": name, "metric": "acc", "value": v, "ci_low": v - 0.05,
                                          "ci_high": v + 0.05}
    result["counts"] = {v: sum(t["verdict"] == v for t in result["tasks"].values())
                        for v in ("improved", "unchanged", "forgot")}
    where = ForgettingDir(out)
    where.write(result, "# Forgetting (synthetic)\n")
    for side, s in sides.items():
        (where.before if side == "before" else where.after).write({"label": result[side], **s}, "")
    return out


def write_sweep(out: Path, ranks: tuple[int, ...] = (1, 2, 4, 8)) -> Path:
    rows = []
    for r in ranks:
        score = 0.25 + 0.02 * math.log2(r)
        rows.append({"method": "lora", "run_dir": str(out / f"lora.r={r}"), "trainable_params": 57600 * r,
                     "all_params": 134515008 + 57600 * r, "trainable_percent": 100 * 57600 * r / 134515008,
                     "checkpoint_mb": 0.25 * r, "peak_memory_mb": 7800.0, "train_tokens_per_second": 35.0,
                     "train_seconds": 260.0, "train_loss": 2.2, "global_step": 4, "train_examples": 32,
                     "max_length": 529, "val_loss": 1.9 - 0.02 * r, "rouge1": score, "rouge2": score / 4,
                     "rougeL": score * 0.8, "rougeLsum": score * 0.85, "bleu": 30 * score, "eval_examples": 16,
                     "precision": "fp32", "point": {"lora.r": r}, "lora.r": r})
    SweepDir(out).write({"recipe": "recipes/dialogsum_lora.yaml", "grid": {"lora.r": list(ranks)}, "rows": rows}, "", "")
    return out
