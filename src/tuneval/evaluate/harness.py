"""Run benchmark tasks on a model: prompts with few-shot examples, scoring, results on disk.

Prompts are built as lm-evaluation-harness builds them: description, then each few-shot
example as `doc_to_text + target_delimiter + target + fewshot_delimiter`, then the
example's `doc_to_text`. Multiple-choice tasks score `target_delimiter + choice` after that
context by log-likelihood (plain text, no chat template, as lm-eval does by default);
generate tasks run batched greedy decoding (through the chat template when the tokenizer
has one and the task allows it) and cut the answer at the first `until` string.

`limit` keeps the first N examples of the split (lm-eval's --limit), so the same examples
come back every run; few-shot examples are drawn per example from a seed derived from the
task and the example's index, so they do not change with the limit either.

Under torchrun / accelerate launch the examples (a question with all its choices) are shared
out over the processes and gathered back in order before scoring (evaluate/distributed.py):
every rank returns the same results and only rank 0 writes results.json.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tuneval.errors import TunevalError
from tuneval.evaluate import templating as tpl
from tuneval.evaluate.bench_data import load_docs
from tuneval.evaluate.benchmarks import BenchTask
from tuneval.evaluate.distributed import is_main, map_examples
from tuneval.evaluate.generation import generate
from tuneval.evaluate.loglik import loglikelihoods, max_length
from tuneval.evaluate.task_metrics import Scorer, bootstrap_ci, higher_is_better, metric_specs, signatures
from tuneval.io import atomic_write_json

DEFAULT_SEED = 1234  # lm-eval's default few-shot seed


def _fewshot_pool(task: BenchTask, data_dir, eval_docs: list[dict]) -> tuple[list[dict], bool]:
    """(docs to draw shots from, whether they are the evaluated docs themselves) as lm-eval picks them."""
    for split in (task.fewshot_split, task.training_split, task.validation_split if task.test_split else None):
        if split and split != task.eval_split:
            return load_docs(task, split, data_dir), False
    return eval_docs, True


def _target_text(task: BenchTask, doc: dict) -> str:
    if task.output_type == "multiple_choice":
        choices = tpl.doc_to_choice(task, doc)
        return choices[tpl.gold_index(task, doc, choices)]
    return tpl.references(task, doc)[0]


def build_contexts(task: BenchTask, docs: list[dict], num_fewshot: int, pool: list[dict], pool_is_eval: bool,
                   seed: int) -> list[str]:
    """The full prompt of each doc: description, few-shot examples, the doc's own text."""
    contexts = []
    for i, doc in enumerate(docs):
        shots: list[dict] = []
        if num_fewshot > 0:
            if task.sampler == "first_n":
                candidates = pool[: num_fewshot + (1 if pool_is_eval else 0)]
            else:
                rnd = random.Random(f"{seed}:{task.name}:{i}")
                candidates = rnd.sample(pool, min(len(pool), num_fewshot + (1 if pool_is_eval else 0)))
            shots = [s for s in candidates if s is not doc][:num_fewshot]
            if len(shots) < num_fewshot:
                raise TunevalError(f"task '{task.name}': {num_fewshot} few-shot examples asked, the pool has {len(shots)}")
        parts = [tpl.doc_to_text(task, s) + task.target_delimiter + _target_text(task, s) + task.fewshot_delimiter
                 for s in shots]
        contexts.append(tpl.description(task, doc) + "".join(parts) + tpl.doc_to_text(task, doc))
    return contexts


def _doc_id(doc: dict, index: int) -> Any:
    for key in ("idx", "id", "fname"):
        if key in doc and isinstance(doc[key], (int, str)):
            return doc[key]
    return index


def _multiple_choice(model, tokenizer, arch, task, docs, contexts, batch_size, label, shard=None):
    choices = [tpl.doc_to_choice(task, d) for d in docs]
    golds = [tpl.gold_index(task, d, c) for d, c in zip(docs, choices)]

    def run(questions: list) -> tuple[list, dict]:  # (context, choices) -> [(loglik, greedy)] per choice
        requests = [(ctx, task.target_delimiter + ch) for ctx, cs in questions for ch in cs]
        flat, stats = loglikelihoods(model, tokenizer, arch, requests, batch_size=batch_size,
                                     description=f"{label} {task.name}")
        per, k = [], 0
        for _, cs in questions:
            per.append(flat[k:k + len(cs)])
            k += len(cs)
        return per, stats

    scored, stats = map_examples(model, list(zip(contexts, choices)), run, shard)
    examples = []
    for i, (doc, ctx, cs, gold, mine) in enumerate(zip(docs, contexts, choices, golds, scored)):
        lls = np.array([s[0] for s in mine])
        greedy = [s[1] for s in mine]
        probs = np.exp(lls - lls.max())
        probs /= probs.sum()
        lengths = np.array([float(len(c)) for c in cs])  # characters, as lm-eval's acc_norm
        examples.append({
            "doc_id": _doc_id(doc, i), "source": doc.get("_where"), "prompt": ctx, "choices": cs,
            "loglik": [float(x) for x in lls], "is_greedy": greedy, "probs": [float(p) for p in probs],
            "pred": int(np.argmax(lls)), "pred_norm": int(np.argmax(lls / lengths)), "gold": gold,
        })
    return examples, stats


def _cut(text: str, until: list[str]) -> str:
    for stop in until:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text.strip()


def _generate(model, tokenizer, arch, task, docs, contexts, batch_size, label, chat_template, shard=None):
    use_chat = chat_template and task.chat_template and arch == "causal" and bool(getattr(tokenizer, "chat_template", None))
    budget = max_length(model) - task.max_gen_toks if arch == "causal" else max_length(model)
    prompts, ids = [], []
    for ctx in contexts:
        if use_chat:
            text = tokenizer.apply_chat_template([{"role": "user", "content": ctx}], tokenize=False,
                                                 add_generation_prompt=True)
            enc = tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            text, enc = ctx, tokenizer(ctx)["input_ids"]
        prompts.append(text)
        ids.append(enc[-budget:])
    start = time.perf_counter()

    def run(part: list) -> tuple[list[str], dict[str, int]]:
        texts, n = generate(model, tokenizer, part, arch, batch_size=batch_size, max_new_tokens=task.max_gen_toks,
                            description=f"{label} {task.name}")
        return texts, {"new_tokens": n}

    outputs, counts = map_examples(model, ids, run, shard)
    new_tokens = counts.get("new_tokens", 0)
    seconds = time.perf_counter() - start
    examples = [{"doc_id": _doc_id(d, i), "source": d.get("_where"), "prompt": p, "raw_output": out,
                 "prediction": _cut(out, task.until), "references": tpl.references(task, d)}
                for i, (d, p, out) in enumerate(zip(docs, prompts, outputs))]
    return examples, {"new_tokens": new_tokens, "generate_seconds": round(seconds, 2), "chat_template": use_chat,
                      "max_gen_toks": task.max_gen_toks, "until": task.until, "processes": counts.get("processes", 1)}


def run_task(model, tokenizer, arch: str, task: BenchTask, *, limit: int | None = None, num_fewshot: int | None = None,
             data_dir=None, batch_size: int = 16, seed: int = DEFAULT_SEED, bootstrap_iters: int = 1000,
             chat_template: bool = True, label: str = "model", meta: dict | None = None,
             out_dir: str | Path | None = None, shard: bool | None = None) -> dict[str, Any]:
    """Score one task; results.json keeps every example's prompt, scores, pick and gold.

    `shard`: None shares the examples out over a running process group, False keeps them here."""
    start = time.perf_counter()
    all_docs = load_docs(task, task.eval_split, data_dir)
    docs = all_docs[:limit] if limit else all_docs
    k = task.num_fewshot if num_fewshot is None else num_fewshot
    pool, pool_is_eval = _fewshot_pool(task, data_dir, all_docs) if k > 0 else ([], False)
    contexts = build_contexts(task, docs, k, pool, pool_is_eval, seed)
    if task.output_type == "multiple_choice":
        examples, stats = _multiple_choice(model, tokenizer, arch, task, docs, contexts, batch_size, label, shard)
    else:
        examples, stats = _generate(model, tokenizer, arch, task, docs, contexts, batch_size, label, chat_template,
                                    shard)
    specs = metric_specs(task.output_type, task.metrics)
    scorer = Scorer(task.output_type, specs, examples)
    for name, values in scorer.item_values.items():
        for ex, v in zip(examples, values):
            ex[name] = float(v)
    results = {
        "task": task.name, "source": task.source, "label": label, "output_type": task.output_type,
        "split": task.eval_split, "num_examples": len(docs), "split_size": len(all_docs), "limit": limit,
        "num_fewshot": k, "seed": seed, "group": task.group, "category": task.category,
        "primary_metric": task.primary_metric, "metric_list": specs,
        "higher_is_better": higher_is_better(task.output_type, specs),
        "metrics": scorer.score(), "bootstrap": {"iterations": bootstrap_iters, "level": 0.95,
                                                 **bootstrap_ci(scorer, bootstrap_iters, seed)},
        "signatures": signatures(specs, examples),
        "prompt": {"description": task.description, "doc_to_text": task.doc_to_text,
                   "doc_to_choice": task.doc_to_choice, "doc_to_target": task.doc_to_target,
                   "target_delimiter": task.target_delimiter, "fewshot_delimiter": task.fewshot_delimiter},
        "stats": {**stats, "seconds": round(time.perf_counter() - start, 2)},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(meta or {}),
        "examples": examples,
    }
    if out_dir is not None and is_main():
        atomic_write_json(Path(out_dir) / task.name / "results.json", results)
    return results
