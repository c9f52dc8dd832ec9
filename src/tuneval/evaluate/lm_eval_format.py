"""lm-evaluation-harness 0.4's results format, both ways.

Write (`write_lm_eval`): tuneval's per-task results (what harness.run_task returns) as lm-eval
0.4.13 writes `--output_path DIR --log_samples`: DIR/<model_name_sanitized>/results_<ts>.json
(results with "metric,filter" keys, configs, versions, n-shot, higher_is_better, n-samples,
config, model and tokenizer info, task_hashes) and samples_<task>_<ts>.jsonl (doc_id, doc,
target, arguments, resps, filtered_resps, filter, metrics, the three hashes, each metric's
per-example value), with lm-eval's own quirks: log-likelihoods and is_greedy as strings, the
arguments as {"gen_args_i": {"arg_j": ...}}, the target as a string, filter "none".

Read (`read_lm_eval`): such a directory (written by lm-eval or by tuneval) back into tuneval's
per-task results, so `tuneval forgetting --before/--after` and `tuneval report` take it. Every
sample becomes a tuneval record (gold, pred, pred_norm, probs from the choices' log-likelihoods;
prediction and references for generation) under the id tuneval gives the same row, so a tuneval
run and an lm-eval run of the same task pair up. A metric is kept for paired intervals only where
tuneval's recomputation from the records gives lm-eval's own per-example values (or its corpus
score); the rest keep lm-eval's number without an interval. Without samples files (lm-eval run
without --log_samples) the numbers are there but no example is: nothing can be paired.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from tuneval.errors import TunevalError
from tuneval.evaluate.harness import DEFAULT_SEED
from tuneval.metrics.registry import GEN_METRICS, MC_METRICS, Scorer, bootstrap_ci
from tuneval.results import LmEvalDir

FILTER = "none"  # tuneval applies no lm-eval filter: its answer cut is part of the prediction
ID_FIELDS = ("idx", "id", "fname")  # the row fields tuneval takes an example's id from (harness._record)


def hash_string(text: str) -> str:
    """lm_eval.utils.hash_string."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sanitize_model_name(name: str) -> str:
    """lm_eval.utils.sanitize_model_name: the model's directory under --output_path."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def doc_hash(doc: dict) -> str:
    return hash_string(json.dumps(doc, indent=2, default=str, ensure_ascii=False))


# ---- write ----------------------------------------------------------------------------------------

def _item_value(r: dict, ex: dict, name: str) -> Any:
    """One example's value of a metric as lm-eval logs it: a number for a mean of items, the
    (gold, pred) or (reference, prediction) pair a corpus metric aggregates."""
    if isinstance(ex.get(name), (int, float)):
        return float(ex[name])
    if r["output_type"] == "multiple_choice":
        return [max(ex["probs"]), float(ex["pred"] == ex["gold"])] if name == "ece" else [ex["gold"], ex["pred"]]
    refs = ex["references"]
    return [refs[0] if len(refs) == 1 else refs, ex["prediction"]]


def _requests(r: dict, ex: dict) -> tuple[list[list], list, list]:
    """(arguments, resps, filtered_resps) of one example, as lm-eval's Instances hold them."""
    if r["output_type"] == "multiple_choice":
        delim = (r.get("prompt") or {}).get("target_delimiter", " ")
        pairs = [[str(float(ll)), str(bool(g))] for ll, g in zip(ex["loglik"], ex["is_greedy"])]
        return [[ex["prompt"], delim + c] for c in ex["choices"]], [[p] for p in pairs], pairs
    gen = r.get("generation") or {}
    kwargs = {"until": gen.get("until", []), "max_gen_toks": gen.get("max_new_tokens"), "do_sample": False}
    return [[ex["prompt"], kwargs]], [[ex.get("raw_output", ex["prediction"])]], [ex["prediction"]]


def _target(r: dict, ex: dict) -> str:
    if r["output_type"] == "multiple_choice":
        return str(ex["gold"])
    refs = ex["references"]
    return str(refs[0] if len(refs) == 1 else refs)


def _by_filter(r: dict) -> dict[str, list[tuple[str, str]]]:
    """{filter: [(lm-eval's metric name, tuneval's metric key)]}: a task with a filter_list names its
    metrics `metric,filter` (tasks/filters.py), any other task's are lm-eval's filter "none"."""
    out: dict[str, list[tuple[str, str]]] = {}
    for key in r["higher_is_better"]:
        metric, _, filt = key.partition(",")
        out.setdefault(filt or FILTER, []).append((metric, key))
    return out


def lm_eval_samples(r: dict, docs: list[dict] | None = None) -> list[dict[str, Any]]:
    """One task's samples_<task>_<ts>.jsonl records, one per example and filter as lm-eval logs them.
    `docs`: the rows scored, in order (lm-eval's `doc`); without them each doc is what the record
    keeps of its row (id, input, source)."""
    out = []
    filters = _by_filter(r)
    for i, ex in enumerate(r["examples"]):
        doc = ({k: v for k, v in docs[i].items() if not k.startswith("_")} if docs is not None else
               {k: ex[k] for k in ("id", "input", "source") if ex.get(k) is not None})
        args, resps, filtered = _requests(r, ex)
        target = _target(r, ex)
        for filt, names in filters.items():
            kept = [ex["filtered"][filt]] if filt in (ex.get("filtered") or {}) else filtered
            out.append({
                "doc_id": i, "doc": doc, "target": target,
                "arguments": {f"gen_args_{a}": {f"arg_{b}": v for b, v in enumerate(arg)} for a, arg in enumerate(args)},
                "resps": resps, "filtered_resps": kept, "filter": filt, "metrics": [m for m, _ in names],
                "doc_hash": doc_hash(doc), "prompt_hash": hash_string(ex["prompt"]), "target_hash": hash_string(target),
                **{metric: _item_value(r, ex, key) for metric, key in names},
            })
    return out


def _task_metrics(r: dict) -> dict[str, Any]:
    """lm-eval's per-task entry: name, alias, sample_len, then "metric,filter" and "metric_stderr,filter"."""
    out: dict[str, Any] = {"name": r["task"], "alias": r["task"], "sample_len": r["num_examples"]}
    for filt, names in _by_filter(r).items():
        for metric, key in names:
            if key in r["metrics"]:
                stderr = (r.get("bootstrap") or {}).get(key, {}).get("stderr")
                out[f"{metric},{filt}"] = r["metrics"][key]
                out[f"{metric}_stderr,{filt}"] = "N/A" if stderr is None else stderr
    return out


def _task_config(r: dict) -> dict[str, Any]:
    """What lm-eval's task.dump_config() says, from what tuneval recorded (None values left out, as there)."""
    p = r.get("prompt") or {}
    split_key = "test_split" if r.get("split") == "test" else "validation_split"
    gen = r.get("generation") or {}
    cfg = {"task": r["task"], "tag": r.get("group"), split_key: r.get("split"),
           "doc_to_text": p.get("doc_to_text") or p.get("text"), "doc_to_target": p.get("doc_to_target") or p.get("target"),
           "doc_to_choice": p.get("doc_to_choice"), "description": p.get("description") or "",
           "target_delimiter": p.get("target_delimiter", " "), "fewshot_delimiter": p.get("fewshot_delimiter", "\n\n"),
           "num_fewshot": r["num_fewshot"], "metric_list": r.get("metric_list", []), "output_type": r["output_type"],
           "generation_kwargs": {"until": gen.get("until", []), "max_gen_toks": gen.get("max_new_tokens"),
                                 "do_sample": False} if r["output_type"] == "generate_until" else None,
           "repeats": 1, "should_decontaminate": False,
           "metadata": {"version": r.get("version"), "tuneval_source": r.get("source"), "prompt_family": p.get("family")}}
    return {k: v for k, v in cfg.items() if v is not None}


def _groups(results: list[dict]) -> tuple[dict, dict[str, list[str]]]:
    """lm-eval's group entries ({group: metrics}) and group_subtasks, from tuneval's pooled groups."""
    from tuneval.evaluate.summary import group_item_values, group_scores

    scores, members = group_scores(results), group_item_values(results)
    entries, subtasks = {}, {}
    for name, g in scores.items():
        entries[name] = {"name": name, "alias": name, "sample_len": g["num_examples"],
                         f"{g['metric']},{FILTER}": g["value"], f"{g['metric']}_stderr,{FILTER}": g.get("stderr", "N/A")}
        mine = set(members[name]["tasks"])
        subgroups = [s for s in scores if s != name and s.startswith(f"{name}_") and set(members[s]["tasks"]) <= mine]
        subtasks[name] = subgroups or members[name]["tasks"]
    return entries, subtasks


def _tokenizer_info(tokenizer, max_length: int | None) -> dict[str, Any]:
    """lm-eval's add_tokenizer_info keys (None where no tokenizer is given)."""
    tok = lambda name: ([str(getattr(tokenizer, f"{name}_token")), str(getattr(tokenizer, f"{name}_token_id"))]  # noqa: E731
                        if tokenizer is not None else None)
    return {"tokenizer_pad_token": tok("pad"), "tokenizer_eos_token": tok("eos"), "tokenizer_bos_token": tok("bos"),
            "eot_token_id": getattr(tokenizer, "eos_token_id", None), "max_length": max_length}


def _environment() -> dict[str, Any]:
    """lm-eval's add_env_info keys; this file was written by tuneval, not lm-eval (lm_eval_version None)."""
    import tuneval
    from tuneval.runs import machine

    try:
        import transformers
        version = transformers.__version__
    except ImportError:
        version = None
    return {"pretty_env_info": f"tuneval {tuneval.__version__}; {machine()}", "transformers_version": version,
            "lm_eval_version": None, "upper_git_hash": None}


def write_lm_eval(out_dir: str | Path, results: list[dict[str, Any]], *, model_name: str,
                  model_args: dict[str, Any] | str | None = None, model_source: str = "tuneval",
                  batch_size: int | str | None = None, device: str | None = None, limit: int | None = None,
                  bootstrap_iters: int | None = None, seed: int | None = None, tokenizer=None,
                  max_length: int | None = None, docs: dict[str, list[dict]] | None = None,
                  seconds: float | None = None, stamp: str | None = None) -> dict[str, Path]:
    """Write tuneval's per-task results in lm-eval 0.4's `--output_path out_dir --log_samples` layout:
    out_dir/<model_name sanitized>/results_<ts>.json and samples_<task>_<ts>.jsonl. Returns the paths
    ({"results": file, task: samples file}). `docs`: {task: the rows scored} for lm-eval's `doc`
    (default: each record's id, input and source); `tokenizer`, `max_length`: lm-eval's tokenizer keys."""
    if not results:
        raise TunevalError(f"{out_dir}: no task results to write in lm-eval's format")
    samples = {r["task"]: lm_eval_samples(r, (docs or {}).get(r["task"])) for r in results}
    group_entries, group_subtasks = _groups(results)
    tasks = {r["task"]: r for r in results}
    data: dict[str, Any] = {
        "results": {**{t: _task_metrics(r) for t, r in tasks.items()}, **group_entries},
        **({"groups": group_entries} if group_entries else {}), "group_subtasks": group_subtasks,
        "configs": {t: _task_config(tasks[t]) for t in sorted(tasks)},
        "versions": {t: tasks[t].get("version") for t in sorted(tasks)} | {g: None for g in group_entries},
        "n-shot": {t: tasks[t]["num_fewshot"] for t in sorted(tasks)},
        "higher_is_better": {t: {k.partition(",")[0]: v for k, v in tasks[t]["higher_is_better"].items()}
                             for t in sorted(tasks)}
        | {g: {k.split(",")[0]: True for k in e if k.endswith(f",{FILTER}") and "_stderr" not in k}
           for g, e in group_entries.items()},
        "n-samples": {t: {"original": r.get("split_size", r["num_examples"]), "effective": r["num_examples"]}
                      for t, r in tasks.items()},
        "config": {"model": model_source, "model_args": model_args, "batch_size": batch_size, "batch_sizes": [],
                   "device": device, "use_cache": None, "limit": limit, "bootstrap_iters": bootstrap_iters,
                   "gen_kwargs": None, "random_seed": seed, "numpy_seed": seed, "torch_seed": seed, "fewshot_seed": seed},
        "git_hash": None, "date": time.time(), **_environment(), **_tokenizer_info(tokenizer, max_length),
        "task_hashes": {t: hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in recs))
                        for t, recs in samples.items()},
        "model_source": model_source, "model_name": model_name, "model_name_sanitized": sanitize_model_name(model_name),
        "system_instruction": None, "system_instruction_sha": None, "fewshot_as_multiturn": None,
        **_chat_template(results, tokenizer),
        "total_evaluation_time_seconds": str(seconds if seconds is not None else
                                             sum((r.get("stats") or {}).get("seconds") or 0 for r in results)),
    }
    return LmEvalDir(out_dir).write(data["model_name_sanitized"], data, samples, stamp)


def _chat_template(results: list[dict], tokenizer) -> dict[str, Any]:
    template = getattr(tokenizer, "chat_template", None) if any(r.get("chat_template") for r in results) else None
    return {"chat_template": template, "chat_template_sha": hash_string(template) if template else None}


# ---- read -----------------------------------------------------------------------------------------

def _number(x: Any) -> float:
    return float(x) if not isinstance(x, str) else float(x.strip())


def _record_id(sample: dict) -> Any:
    """The id tuneval gives the same row (its idx/id/fname field, else its position), so a tuneval
    run and an lm-eval run of one task pair up example by example."""
    doc = sample.get("doc") if isinstance(sample.get("doc"), dict) else {}
    return next((doc[k] for k in ID_FIELDS if isinstance(doc.get(k), (int, str))), sample["doc_id"])


def _args(sample: dict) -> list[list]:
    """The requests' arguments, from lm-eval's {"gen_args_i": {"arg_j": ...}} (or a plain list)."""
    a = sample.get("arguments")
    if isinstance(a, dict):
        return [list(v.values()) if isinstance(v, dict) else list(v) for v in a.values()]
    return [list(x) for x in a or []]


def _mc_record(sample: dict, delimiter: str) -> dict[str, Any]:
    """A multiple-choice sample as tuneval's record: pred as argmax log-likelihood, pred_norm over
    the choices' lengths in characters and gold from the target, as lm-eval's process_results."""
    args = _args(sample)
    choices = [a[1][len(delimiter):] if a[1].startswith(delimiter) else a[1] for a in args]
    lls = np.array([_number(r[0]) for r in sample["filtered_resps"]])
    greedy = [str(r[1]) == "True" for r in sample["filtered_resps"]]
    target = str(sample.get("target"))
    gold = int(target) if target.lstrip("-").isdigit() else (choices.index(target) if target in choices else -100)
    probs = np.exp(lls - lls.max())
    probs /= probs.sum()
    lengths = np.array([float(len(c)) for c in choices])
    return {"choices": choices, "loglik": [float(x) for x in lls], "is_greedy": greedy,
            "probs": [float(p) for p in probs], "pred": int(np.argmax(lls)),
            "pred_norm": int(np.argmax(lls / lengths)), "gold": gold}


def _gen_record(sample: dict) -> dict[str, Any]:
    filtered = sample.get("filtered_resps")
    prediction = filtered[0] if isinstance(filtered, list) and filtered else filtered
    resps = sample.get("resps") or [[prediction]]
    raw = resps[0][0] if isinstance(resps[0], list) and resps[0] else resps[0]
    return {"references": [str(sample.get("target"))], "prediction": str(prediction), "raw_output": str(raw)}


def _records(samples: list[dict], output_type: str, delimiter: str) -> list[dict[str, Any]]:
    out = []
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        doc = s.get("doc") if isinstance(s.get("doc"), dict) else {}
        args = _args(s)
        base = {"id": _record_id(s), "doc_id": s["doc_id"], "source": doc.get("source"), "input": doc.get("input"),
                "prompt": str(args[0][0]) if args else ""}
        shaped = _mc_record(s, delimiter) if output_type == "multiple_choice" else _gen_record(s)
        logged = {m: float(s[m]) for m in s.get("metrics", []) if isinstance(s.get(m), (int, float, bool))}
        out.append({**base, **shaped, **logged})
    return out


def _pairable(output_type: str, metric_list: list[dict], records: list[dict], metrics: dict[str, float]) -> list[dict]:
    """The metrics tuneval recomputes from the records exactly as lm-eval scored them: per example
    (a mean of items: lm-eval's logged values) or as a whole (a corpus metric: lm-eval's number)."""
    registry = MC_METRICS if output_type == "multiple_choice" else GEN_METRICS
    keep = []
    for spec in metric_list:
        metric = registry.get(spec.get("metric")) if isinstance(spec.get("metric"), str) else None
        if metric is None or not records:
            continue
        mine = {"metric": metric.name, **{k: spec[k] for k in metric.options if k in spec}}
        try:
            scorer = Scorer(output_type, [mine], records)
            score = scorer.score()
        except (KeyError, TypeError, ValueError, IndexError):  # a record this metric cannot read
            continue
        items_agree = all(name in records[0] and np.allclose(values, [r[name] for r in records])
                          for name, values in scorer.item_values.items())
        if items_agree and all(name in metrics and abs(score[name] - metrics[name]) <= 1e-6 * max(1, abs(metrics[name]))
                               for name in metric.outputs):
            keep.append(mine)
    return keep


def _filter_key(entry: dict) -> str:
    """The filter whose numbers are read: "none" where lm-eval has it, else the first one listed."""
    filters = [k.split(",", 1)[1] for k in entry if "," in k]
    return FILTER if FILTER in filters or not filters else filters[0]


def _numbers(entry: dict, key: str) -> tuple[dict[str, float], dict[str, float]]:
    """({metric: value}, {metric: stderr}) of one results entry under one filter."""
    values, stderrs = {}, {}
    for k, v in entry.items():
        if not k.endswith(f",{key}") or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        name = k.rsplit(",", 1)[0]
        if name.endswith("_stderr"):
            stderrs[name.removesuffix("_stderr")] = float(v)
        else:
            values[name] = float(v)
    return values, stderrs


def _task_results(name: str, data: dict, samples: list[dict] | None, *, where: Path, parent: str | None,
                  bootstrap_iters: int, seed: int) -> dict[str, Any]:
    """One lm-eval task as tuneval's per-task results (harness.run_task's shape)."""
    entry, cfg = data["results"][name], (data.get("configs") or {}).get(name) or {}
    key = _filter_key(entry)
    metrics, stderrs = _numbers(entry, key)
    output_type = cfg.get("output_type") or "unknown"
    listed = [m for m in cfg.get("metric_list") or [] if isinstance(m, dict)] or [{"metric": m} for m in metrics]
    ordered = [m["metric"] for m in listed if m.get("metric") in metrics] or list(metrics)
    records = (_records([s for s in samples if s.get("filter", key) == key], output_type, cfg.get("target_delimiter", " "))
               if samples and output_type in ("multiple_choice", "generate_until") else [])
    specs = _pairable(output_type, listed, records, metrics)
    registry = MC_METRICS if output_type == "multiple_choice" else GEN_METRICS
    paired = [o for s in specs for o in registry[s["metric"]].outputs]
    boot = bootstrap_ci(Scorer(output_type, specs, records), bootstrap_iters, seed) if specs and bootstrap_iters else {}
    counts = (data.get("n-samples") or {}).get(name) or {}
    model_args = (data.get("config") or {}).get("model_args")
    return {
        "task": name, "source": str(where), "label": data.get("model_name") or str(model_args or where.parent.name),
        "split": cfg.get("test_split") or cfg.get("validation_split"),
        "num_examples": counts.get("effective", entry.get("sample_len", len(records))),
        "split_size": counts.get("original"), "limit": (data.get("config") or {}).get("limit"),
        "num_fewshot": (data.get("n-shot") or {}).get(name, cfg.get("num_fewshot", 0)), "seed": seed,
        "group": parent, "category": None, "output_type": output_type,
        "primary_metric": next((m for m in ordered if m in paired), ordered[0] if ordered else None),
        "metric_list": specs, "higher_is_better": (data.get("higher_is_better") or {}).get(name) or {},
        "metrics": metrics,
        "bootstrap": {"iterations": bootstrap_iters if boot else 0, "level": 0.95, **boot},
        "signatures": {}, "prompt": {"family": "lm-eval", **{k: cfg.get(k) for k in (
            "description", "doc_to_text", "doc_to_choice", "doc_to_target", "target_delimiter", "fewshot_delimiter")}},
        "input_field": None, "chat_template": bool(data.get("chat_template")),
        "generation": cfg.get("generation_kwargs") if output_type == "generate_until" else None, "stats": {"seconds": None},
        "lm_eval": {"results_file": str(where), "filter": key, "samples": samples is not None, "stderr": stderrs,
                    "unpaired_metrics": [m for m in ordered if m not in paired]},
        "examples": records,
    }


def read_lm_eval(path: str | Path, *, bootstrap_iters: int = 0, seed: int = DEFAULT_SEED) -> dict[str, dict[str, Any]]:
    """{task: tuneval per-task results} from lm-eval's output (the --output_path directory, its model
    subdirectory or a results file; a directory: its newest results file) and the samples beside it.
    Groups' own numbers are not tasks: each task records its group. `bootstrap_iters` > 0: 95%
    intervals of each paired metric (for the report)."""
    d = LmEvalDir(path)
    if not d.exists():
        raise TunevalError(f"{path}: no lm-eval results here (no {LmEvalDir.RESULTS_PREFIX}*.json in it or its "
                           "model subdirectories)")
    file = d.signature_file
    data = d.read()
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise TunevalError(f"{file}: not lm-evaluation-harness results (no 'results')")
    subtasks = {g: kids for g, kids in (data.get("group_subtasks") or {}).items() if isinstance(kids, list)}
    groups = set(subtasks) | set(data.get("groups") or {})
    parent = {kid: g for g, kids in subtasks.items() for kid in kids}
    return {name: _task_results(name, data, d.read_samples(name, file), where=file, parent=parent.get(name),
                                bootstrap_iters=bootstrap_iters, seed=seed)
            for name in data["results"] if name not in groups}


def paired_results(path: str | Path) -> dict[str, dict[str, Any]]:
    """`read_lm_eval` for a forgetting comparison: every task must have its samples and a metric
    tuneval can pair; else one line saying which and why."""
    results = read_lm_eval(path)
    for name, r in results.items():
        file = r["lm_eval"]["results_file"]
        if not r["lm_eval"]["samples"]:
            raise TunevalError(f"{file}: task '{name}' has no samples file ({LmEvalDir.SAMPLES_PREFIX}{name}_*.jsonl): "
                               "a paired comparison needs every example; rerun lm-eval with --log_samples")
        if not r["metric_list"]:
            raise TunevalError(f"{file}: task '{name}' ({r['output_type']}): tuneval cannot recompute "
                               f"{', '.join(r['metrics']) or 'its metrics'} from the samples to pair them")
    return results


def lm_eval_summary(path: str | Path, *, bootstrap_iters: int = 1000, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """lm-eval's output as a tuneval suite summary (summary.json's shape) for the report: each task's
    primary metric with its 95% bootstrap interval where samples are there (lm-eval's stderr beside
    it), without one where they are not; lm-eval's groups with their own numbers."""
    from tuneval.evaluate.summary import task_row

    results = read_lm_eval(path, bootstrap_iters=bootstrap_iters, seed=seed)
    d = LmEvalDir(path)
    data = d.read()
    tasks = {}
    for name, r in results.items():
        row = task_row(r)
        if row["stderr"] is None:
            row["stderr"] = r["lm_eval"]["stderr"].get(r["primary_metric"])
        tasks[name] = row
    groups = {}
    for g, entry in (data.get("groups") or {}).items():
        values, stderrs = _numbers(entry, _filter_key(entry))
        if values:
            metric = next(iter(values))
            kids = (data.get("group_subtasks") or {}).get(g) or []
            groups[g] = {"metric": metric, "value": values[metric], "num_examples": entry.get("sample_len"),
                         "num_tasks": len(kids), "stderr": stderrs.get(metric), "ci_low": None, "ci_high": None}
    first = next(iter(results.values()), {})
    return {"label": first.get("label") or d.path.name, "model": data.get("model_name"), "source": "lm-eval",
            "results_file": str(d.signature_file), "seconds": None, "bootstrap_iters": bootstrap_iters, "seed": seed,
            "groups": groups, "tasks": tasks}
