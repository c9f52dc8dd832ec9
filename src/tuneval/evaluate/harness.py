"""The one evaluation harness: a task, a model, per-example records, metrics, one results.json shape.

A task is scored through one of its two prompt families (tasks/task.py):
- its scoring prompt (`doc_to_text`...), as lm-evaluation-harness runs it (below), or
- a FLAN template (`template=N`, or the task's `eval_template` when it has no scoring prompt):
  the same rendering, field cutting and chat template training uses (data/collate.py), greedy
  generation, scored with ROUGE/BLEU against the rendered target.
`tuneval eval --task X` asks for the FLAN family, `--tasks X` for the task's default family;
both come here, and write the same shape: the config, the metric values with bootstrap
intervals, and every example's record (id, source, input, prompt, then the prediction and
references, or the choices, log-likelihoods, pick and gold).

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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tuneval.data.formats import has_tools, reference_calls
from tuneval.errors import TunevalError
from tuneval.evaluate import remote
from tuneval.evaluate.distributed import is_main, map_examples
from tuneval.evaluate.generation import generate
from tuneval.evaluate.inputs import conversation_inputs, scoring_inputs, template_inputs
from tuneval.evaluate.loglik import loglikelihoods
from tuneval.evaluate.report import eval_report
from tuneval.metrics.registry import FilteredScorer, Scorer, bootstrap_ci, filtered_names, higher_is_better, metric_specs, primary_metric, signatures
from tuneval.metrics.text import summarization_metrics
from tuneval.metrics.tool_calls import parse_tool_calls
from tuneval.models.endpoint import Endpoint
from tuneval.results import EvalDir
from tuneval.tasks import Task, load_rows
from tuneval.tasks import prompts as tpl
from tuneval.tasks.filters import apply_filters

DEFAULT_SEED = 1234  # lm-eval's default few-shot seed


def _fewshot_pool(task: Task, scored: str, data_dir, eval_docs: list[dict]) -> tuple[list[dict], bool]:
    """(docs to draw shots from, whether they are the evaluated docs themselves) as lm-eval picks them."""
    for split in (task.fewshot_split, task.training_split, task.validation_split if task.test_split else None):
        if split and split != scored:
            return load_rows(task, split, data_dir), False
    return eval_docs, True


def _target_text(task: Task, doc: dict) -> str:
    if task.output_type == "multiple_choice":
        choices = tpl.doc_to_choice(task, doc)
        return choices[tpl.gold_index(task, doc, choices)]
    return tpl.references(task, doc)[0]


def build_contexts(task: Task, docs: list[dict], num_fewshot: int, pool: list[dict], pool_is_eval: bool,
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


def _record(task: Task, doc: dict, index: int, prompt: str) -> dict[str, Any]:
    """The fields every example record starts with, whatever the prompt family."""
    doc_id: Any = index
    for key in (task.id_field, "idx", "id", "fname"):
        if key and key in doc and isinstance(doc[key], (int, str)):
            doc_id = doc[key]
            break
    text = doc.get(task.input_field) if task.input_field else None
    if text is None and "messages" in doc:  # a conversation: what the last user turn asked
        text = next((m["content"] for m in reversed(doc["messages"][:-1]) if m["role"] == "user"), None)
    return {"id": doc_id, "source": doc.get("_where"), "input": None if text is None else str(text), "prompt": prompt}


def _multiple_choice(model, tokenizer, arch, task, docs, contexts, batch_size, label, shard=None):
    choices = [tpl.doc_to_choice(task, d) for d in docs]
    golds = [tpl.gold_index(task, d, c) for d, c in zip(docs, choices)]

    def run(questions: list) -> tuple[list, dict]:  # (context, choices) -> [(loglik, greedy)] per choice
        requests = [(ctx, task.target_delimiter + ch) for ctx, cs in questions for ch in cs]
        if isinstance(model, Endpoint):
            flat, stats = remote.loglikelihoods(model, requests, description=f"{label} {task.name}")
        else:
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
        probs = np.exp(lls - lls.max())
        probs /= probs.sum()
        lengths = np.array([float(len(c)) for c in cs])  # characters, as lm-eval's acc_norm
        examples.append({
            **_record(task, doc, i, ctx), "choices": cs, "loglik": [float(x) for x in lls],
            "is_greedy": [s[1] for s in mine], "probs": [float(p) for p in probs],
            "pred": int(np.argmax(lls)), "pred_norm": int(np.argmax(lls / lengths)), "gold": gold,
        })
    return examples, {**stats, "chat_template": False}


def _cut(text: str, until: list[str], strip: bool = True) -> str:
    for stop in until:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text.strip() if strip else text


def _generate(model, tokenizer, arch, task, docs, inputs, refs, *, until, max_new_tokens, batch_size, label, shard):
    start = time.perf_counter()
    description = f"{label} {task.name}"

    def run(part: list) -> tuple[list[str], dict[str, int]]:
        if isinstance(model, Endpoint):
            return remote.generate(model, part, max_new_tokens=max_new_tokens, until=until, description=description)
        texts, n = generate(model, tokenizer, [x["ids"] for x in part], arch, batch_size=batch_size,
                            max_new_tokens=max_new_tokens, description=description)
        return texts, {"new_tokens": n}

    outputs, counts = map_examples(model, inputs, run, shard)
    seconds = time.perf_counter() - start
    new_tokens = counts.get("new_tokens", 0)
    examples = [{**_record(task, d, i, x["text"]), "references": r, "prediction": _cut(out, until), "raw_output": out}
                for i, (d, x, r, out) in enumerate(zip(docs, inputs, refs, outputs))]
    return examples, {"strategy": "greedy", "max_new_tokens": max_new_tokens, "until": until, "batch_size": batch_size,
                      "new_tokens": new_tokens, "seconds": round(seconds, 2),
                      "tokens_per_second": round(new_tokens / seconds, 1) if seconds > 0 else None,
                      "processes": counts.get("processes", 1)}


def _text_metrics(examples: list[dict], specs: list[dict]) -> dict[str, Any]:
    """For ROUGE and BLEU: precision and recall beside the F1s, BLEU's n-gram precisions and brevity
    penalty (metrics.text.summarization_metrics), for the tables that show them; per-item ROUGE
    goes into each record (the Scorer reuses it)."""
    names = {s["metric"] for s in specs}
    if not {"rouge", "bleu"} <= names:
        return {}
    metrics, items = summarization_metrics([e["prediction"] for e in examples], [e["references"] for e in examples])
    for ex, item in zip(examples, items):
        ex["rouge"] = item
    return metrics


def family(task: Task, template: int | None) -> str:
    """Which prompt family scores `task`: "template" (a FLAN phrasing), "scoring" (doc_to_text) or
    "conversation" (a data-format task: the data holds prompt and reference)."""
    if task.conversational and template is None:
        return "conversation"
    if template is not None or task.doc_to_text is None:
        return "template"
    return "scoring"


@dataclass
class _Setup:
    """What every prompt family needs to score one task's examples."""
    model: Any
    tokenizer: Any
    arch: str
    task: Task
    docs: list[dict]
    batch_size: int
    label: str
    shard: bool | None
    chat_template: bool
    max_new_tokens: int | None
    max_seq_len: int

    @property
    def max_new(self) -> int:
        return self.max_new_tokens or self.task.max_gen_toks


@dataclass
class _Scored:
    """One family's outcome: how it was scored, every example's record, and how it ran."""
    output_type: str
    specs: list[dict]
    examples: list[dict]
    gen: dict[str, Any]
    chat_template: bool
    prompt: dict[str, Any]
    filters: list[str] | None = None  # filter_list pipeline names: scored per pipeline, `metric,name`


def _zero_shot(task: Task, k: int, why: str = "") -> None:
    if k > 0:
        raise TunevalError(f"task '{task.name}': few-shot prompts need a scoring prompt (doc_to_text){why}")


def _generated(s: _Setup, specs: list[dict], inputs, refs, use_chat: bool, prompt: dict[str, Any],
               until: list[str] | None = None, output_type: str = "generate_until") -> _Scored:
    """Greedy generation over the family's inputs (evaluate/inputs.py), the part every generating family shares."""
    examples, gen = _generate(s.model, s.tokenizer, s.arch, s.task, s.docs, inputs, refs, until=until or [],
                              max_new_tokens=s.max_new, batch_size=s.batch_size, label=s.label, shard=s.shard)
    return _Scored(output_type, specs, examples, gen, use_chat, prompt)


def _by_conversation(s: _Setup, k: int) -> _Scored:
    """A data-format task: each conversation up to its last assistant turn, that turn the reference.
    Conversations with tools are also scored on the calls the model makes (metrics/tool_calls.py):
    each example keeps the reference's calls and the calls read from the generated text."""
    _zero_shot(s.task, k)
    inputs, refs, use_chat = conversation_inputs(s.model, s.tokenizer, s.arch, s.task, s.docs, s.chat_template,
                                                 s.max_new, s.max_seq_len)
    info = {"family": "conversation", "format": s.task.format, "columns": s.task.column_map,
            "validation": s.task.split_info}
    specs = metric_specs("generate_until", s.task.metrics)
    tools = any(has_tools(d) for d in s.docs if "messages" in d)
    if tools and "tool_call" not in {m["metric"] for m in specs}:
        specs.append({"metric": "tool_call"})
    scored = _generated(s, specs, inputs, refs, use_chat, info)
    if tools:
        for ex, doc in zip(scored.examples, s.docs):
            ex["reference_calls"], ex["tool_calls"] = reference_calls(doc), parse_tool_calls(ex["prediction"])
    return scored


def _by_template(s: _Setup, template: int | None, k: int) -> _Scored:
    """A FLAN phrasing, rendered as training renders it, scored against the rendered target."""
    task = s.task
    index = task.template_index(template)
    _zero_shot(task, k, f"; FLAN template {index} is scored zero-shot")
    inputs, refs, use_chat = template_inputs(s.model, s.tokenizer, s.arch, task, s.docs, index, s.chat_template,
                                             s.max_new, s.max_seq_len)
    info = {"family": "template", "template": index, "text": task.templates.prompts[index],
            "target": task.templates.target}
    return _generated(s, metric_specs("generate_until", task.generation_metrics()), inputs, refs, use_chat, info)


def _by_scoring_prompt(s: _Setup, k: int, seed: int, fewshot: tuple[list[dict], bool]) -> _Scored:
    """lm-evaluation-harness's way: few-shot contexts, then choices by log-likelihood or greedy generation."""
    task = s.task
    contexts = build_contexts(task, s.docs, k, *fewshot, seed)
    info = {"family": "scoring", "description": task.description, "doc_to_text": task.doc_to_text,
            "doc_to_choice": task.doc_to_choice, "doc_to_target": task.doc_to_target,
            "target_delimiter": task.target_delimiter, "fewshot_delimiter": task.fewshot_delimiter}
    specs = metric_specs(task.output_type, task.metrics)
    if task.output_type == "multiple_choice":
        examples, gen = _multiple_choice(s.model, s.tokenizer, s.arch, task, s.docs, contexts, s.batch_size, s.label,
                                         s.shard)
        return _Scored(task.output_type, specs, examples, gen, False, info)
    inputs, use_chat = scoring_inputs(s.model, s.tokenizer, s.arch, task, contexts, s.chat_template, s.max_new)
    scored = _generated(s, specs, inputs, [tpl.references(task, d) for d in s.docs], use_chat, info,
                        until=task.until, output_type=task.output_type)
    # ---- the filter step (lm-eval's filter_list, tasks/filters.py): each pipeline's answer from the generation
    # cut at `until` and not stripped, as lm-eval hands it over; scored per pipeline in _results.
    if task.filters:
        for ex, doc in zip(scored.examples, s.docs):
            ex["filtered"] = apply_filters(task.filters, _cut(ex["raw_output"], task.until, strip=False), doc)
        scored.filters = [p.name for p in task.filters]
        info["filter_list"] = scored.filters
    return scored


def _results(task: Task, scored: _Scored, *, bootstrap_iters: int, seed: int, seconds: float) -> dict[str, Any]:
    """The metrics (with bootstrap intervals) and the record of how they were taken; each example gets its
    per-item metric values."""
    output_type, specs, examples, gen = scored.output_type, scored.specs, scored.examples, scored.gen
    extra = _text_metrics(examples, specs) if output_type == "generate_until" and not scored.filters else {}
    if scored.filters:  # filter_list: each metric through each pipeline (metrics/registry.FilteredScorer)
        scorer = FilteredScorer(output_type, specs, examples, scored.filters)
        primary, better = filtered_names(output_type, specs, scored.filters)
    else:
        scorer = Scorer(output_type, specs, examples)
        primary, better = primary_metric(output_type, specs), higher_is_better(output_type, specs)
    for name, values in scorer.item_values.items():
        for ex, v in zip(examples, values):
            ex[name] = float(v)
    return {
        "output_type": output_type, "primary_metric": primary, "metric_list": specs, "higher_is_better": better,
        "metrics": {**extra, **scorer.score()},
        "bootstrap": {"iterations": bootstrap_iters, "level": 0.95, **bootstrap_ci(scorer, bootstrap_iters, seed)},
        "signatures": signatures(specs, examples), "prompt": scored.prompt, "input_field": task.input_field,
        "chat_template": scored.chat_template, "generation": gen if output_type == "generate_until" else None,
        "stats": {**(gen if output_type == "multiple_choice" else {"processes": gen["processes"]}),
                  "seconds": seconds},
    }


def run_task(model, tokenizer, arch: str, task: Task, *, split: str | None = None, limit: int | None = None,
             num_fewshot: int | None = None, template: int | None = None, data_dir=None, batch_size: int = 16,
             seed: int = DEFAULT_SEED, bootstrap_iters: int = 1000, chat_template: bool = True,
             max_new_tokens: int | None = None, max_seq_len: int = 1024, label: str = "model",
             meta: dict | None = None, out_file: str | Path | None = None, report: bool = False,
             shard: bool | None = None, rows: list[dict] | None = None) -> dict[str, Any]:
    """Score one task through its prompt family (`family`); results.json (`out_file`, an EvalDir's
    results_file) keeps every example's record beside the metrics, and with `report` a generation
    task's report.md (side-by-side samples) goes beside it.

    `template`: a FLAN phrasing to generate with (None: the task's default family). `shard`: None
    shares the examples out over a running process group, False keeps them here. `rows`: score these
    examples instead of the split's first `limit` (the scorecard's perturbed copies, jobs/scorecard.py);
    few-shot examples still come from the split."""
    if limit is not None and limit < 1:
        raise TunevalError(f"--limit must be at least 1, got {limit}")
    start = time.perf_counter()
    split = split or task.eval_split
    all_docs = load_rows(task, split, data_dir)
    docs = rows if rows is not None else all_docs[:limit] if limit else all_docs
    k = task.num_fewshot if num_fewshot is None else num_fewshot
    s = _Setup(model, tokenizer, arch, task, docs, batch_size, label, shard, chat_template, max_new_tokens, max_seq_len)
    how = family(task, template)
    if how == "conversation":
        scored = _by_conversation(s, k)
    elif how == "template":
        scored = _by_template(s, template, k)
    else:
        fewshot = _fewshot_pool(task, split, data_dir, all_docs) if k > 0 else ([], False)
        scored = _by_scoring_prompt(s, k, seed, fewshot)
    results = {
        "task": task.name, "source": task.source, "label": label, "split": split, "num_examples": len(docs),
        "split_size": len(all_docs), "limit": limit, "num_fewshot": k, "seed": seed, "group": task.group,
        "category": task.category, "tags": task.tags,
        **_results(task, scored, bootstrap_iters=bootstrap_iters, seed=seed,
                   seconds=round(time.perf_counter() - start, 2)),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(meta or {}),
        "examples": scored.examples,
    }
    if out_file is not None and is_main():
        report_md = eval_report(results) if report and scored.output_type == "generate_until" else None
        EvalDir(Path(out_file).parent).write(results, report_md)
    return results
