"""A HELM-style scorecard: scenarios (tasks) x metric families, each mean with a 95% bootstrap interval.

Per scenario (Liang et al. 2022, "Holistic Evaluation of Language Models", sec. 4):
- accuracy     the scenario's own per-example metric (acc for multiple choice, the primary metric of
               a generation task, ROUGE-1 for DialogSum), on the clean inputs;
- calibration  multiple choice: ECE over 10 equal-width bins (tuneval's `ece`), HELM's ece_10_bin
               (equal mass) and selective accuracy at 10% coverage (metrics/calibration.py);
- robustness   per example the worst score over its clean input and every robustness perturbation
               (tasks/perturb.py), averaged: HELM's worst-case robustness;
- fairness     the same over the fairness perturbations (gender terms, first names, dialect), and the
               gap fairness - accuracy (what the counterfactuals cost, <= 0);
- bias         generation: HELM's demographic representation and stereotypical association (metrics/bias.py);
- toxicity     generation: the share of generations a classifier flags (metrics/toxicity.py), or
               "not measured" when no classifier is given;
- efficiency   seconds per example, generated tokens per second, peak memory, parameters (no interval:
               one measurement of the run, not a mean over examples).
The perturbed inputs are the example's own fields perturbed before the prompt is rendered (HELM
perturbs the instance input, not the references), seeded per example; only examples a perturbation
changes are scored again, the others keep their clean score (the same prompt gives the same answer).
Every variant is an EvalDir (ScorecardDir.variant) whose records keep the perturbed fields beside
the prediction.

The per-example data behind every cell is saved in scorecard.json, so two scorecards on the same
examples compare cell by cell with a paired bootstrap (`compare`: the same resample on both sides).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tuneval.errors import TunevalError
from tuneval.evaluate.harness import DEFAULT_SEED, run_task
from tuneval.metrics import bias as bias_metrics
from tuneval.metrics import calibration as cal
from tuneval.metrics.bootstrap import interval, percentiles, resample
from tuneval.metrics.toxicity import not_measured, toxicity
from tuneval.results import ScorecardDir
from tuneval.tasks import Task, load_rows
from tuneval.tasks.perturb import FAIRNESS, ROBUSTNESS, Perturbation

DEFAULT_SCENARIOS = ("boolq", "mmlu_abstract_algebra", "mmlu_college_biology", "mmlu_us_foreign_policy", "sst2",
                     "agnews", "rte", "dialogsum")
# The BIG-Bench Hard hook: when the registry has this group (issue 30's bbh tasks), the default
# scorecard adds its first BBH_DEFAULT tasks; `--scenarios bbh` runs them all. Their input field is `input`.
BBH_GROUP, BBH_DEFAULT = "bbh", 3
PERTURB_FIELDS = {"boolq": ("passage", "question"), "sst2": ("sentence",), "agnews": ("title", "text"),
                  "rte": ("premise", "hypothesis"), "dialogsum": ("dialogue",), "samsum": ("dialogue",)}
PREFIX_FIELDS = (("mmlu_", ("question",)), ("bbh", ("input",)))
LEVEL = 0.95


def perturb_fields(task: Task) -> tuple[str, ...]:
    """The input fields a perturbation rewrites: the passage/question/sentence, never the label or choices."""
    if task.name in PERTURB_FIELDS:
        return PERTURB_FIELDS[task.name]
    for prefix, fields in PREFIX_FIELDS:
        if task.name.startswith(prefix):
            return fields
    if task.input_field:
        return (task.input_field,)
    raise TunevalError(f"scorecard: task '{task.name}' names no input field to perturb (set input_field in its YAML)")


def default_scenarios(registry) -> list[str]:
    names = [n for n in DEFAULT_SCENARIOS if n in registry.tasks]
    return names + registry.groups.get(BBH_GROUP, [])[:BBH_DEFAULT]


def _item_metric(results: dict) -> str:
    metric = "acc" if results["output_type"] == "multiple_choice" else results["primary_metric"]
    if results["examples"] and metric not in results["examples"][0]:
        raise TunevalError(f"scorecard: task '{results['task']}' has no per-example {metric} (a corpus metric); "
                           "its primary metric must be a mean over examples")
    return metric


class Runner:
    """Scores the variants of scenarios on one loaded model (run_task), writing each into a ScorecardDir."""

    def __init__(self, model, tokenizer, arch: str, out: ScorecardDir, *, data_dir=None, batch_size: int = 16,
                 seed: int = DEFAULT_SEED, label: str = "model", classifier=None, meta: dict | None = None,
                 perturbations: tuple[Perturbation, ...] = ROBUSTNESS + FAIRNESS):
        self.model, self.tokenizer, self.arch, self.out = model, tokenizer, arch, out
        self.data_dir, self.batch_size, self.seed, self.label = data_dir, batch_size, seed, label
        self.classifier, self.meta, self.perturbations = classifier, meta or {}, perturbations

    def score(self, task: Task, rows: list[dict], variant: str, fields: tuple[str, ...],
              where: list[int] | None = None) -> dict:
        r = run_task(self.model, self.tokenizer, self.arch, task, rows=rows, data_dir=self.data_dir,
                     batch_size=self.batch_size, seed=self.seed, bootstrap_iters=0, label=self.label, meta=self.meta)
        for i, (ex, row) in enumerate(zip(r["examples"], rows)):
            ex["example"] = where[i] if where is not None else i
            ex["variant"] = variant
            ex["perturbed_input"] = {f: row.get(f) for f in fields}
        self.out.variant(task.name, variant).write(r)
        return r

    def scenario(self, task: Task, limit: int | None) -> dict[str, Any]:
        fields = perturb_fields(task)
        docs = load_rows(task, task.eval_split, self.data_dir)
        docs = docs[:limit] if limit else docs
        start, peak = time.perf_counter(), _reset_peak()
        clean = self.score(task, docs, "clean", fields)
        seconds = time.perf_counter() - start
        metric = _item_metric(clean)
        base = np.array([ex[metric] for ex in clean["examples"]], dtype=float)
        variants = {}
        for pert in self.perturbations:
            variants[pert.name] = self._variant(task, docs, fields, pert, metric, base)
        return {"task": task.name, "output_type": clean["output_type"], "metric": metric, "n": len(docs),
                "fields": list(fields), "data": self._data(clean, base, variants),
                "efficiency": _efficiency(self.model, clean, seconds, peak)}

    def _variant(self, task, docs, fields, pert: Perturbation, metric: str, base: np.ndarray) -> dict[str, Any]:
        perturbed = [pert.perturb_fields(d, list(fields), self.seed, f"{task.name}:{i}") for i, d in enumerate(docs)]
        changed = [i for i, (a, b) in enumerate(zip(docs, perturbed)) if any(a.get(f) != b.get(f) for f in fields)]
        values = base.copy()
        if changed:
            r = self.score(task, [perturbed[i] for i in changed], pert.name, fields, changed)
            values[changed] = [ex[metric] for ex in r["examples"]]
        return {**pert.describe(), "changed": len(changed), "values": values.tolist()}

    def _data(self, clean: dict, base: np.ndarray, variants: dict) -> dict[str, Any]:
        data: dict[str, Any] = {"ids": [ex["id"] for ex in clean["examples"]], "accuracy": base.tolist(),
                                "variants": variants}
        if clean["output_type"] == "multiple_choice":
            conf, correct = cal.confidence_correct(clean["examples"])
            data.update(confidence=conf.tolist(), correct=correct.tolist())
        else:
            data["predictions"] = [ex["prediction"] for ex in clean["examples"]]
            tox = toxicity(data["predictions"], self.classifier)
            data["toxicity"] = tox["flags"] if tox["measured"] else None
            data["toxicity_classifier"] = tox.get("classifier")
        return data


def _reset_peak() -> int:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    return 0


def _peak_bytes() -> tuple[int, str]:
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated()), "cuda max_memory_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return int(rss if sys.platform == "darwin" else rss * 1024), "process peak RSS (whole run so far)"


def _efficiency(model, clean: dict, seconds: float, _peak: int) -> dict[str, Any]:
    params = sum(p.numel() for p in model.parameters()) if hasattr(model, "parameters") else None
    gen = clean.get("generation") or {}
    peak, how = _peak_bytes()
    n = max(clean["num_examples"], 1)
    return {"seconds_per_example": seconds / n, "tokens_per_second": gen.get("tokens_per_second"),
            "peak_memory_bytes": peak, "peak_memory": how, "parameters": params, "seconds": round(seconds, 2)}


# ---- cells: statistics of the saved per-example data, for a resample `idx` (None: all) ----------

def _sel(values, idx):
    a = np.asarray(values, dtype=float)
    return a if idx is None else a[idx]


def _worst(data: dict, family: str) -> np.ndarray:
    rows = [data["accuracy"]] + [v["values"] for v in data["variants"].values() if v["family"] == family]
    return np.min(np.array(rows, dtype=float), axis=0)


def cell_stats(data: dict, output_type: str) -> dict[str, tuple[str, Callable]]:
    """{cell: (family, statistic(idx) -> float | None)} for one scenario's saved data."""
    acc = lambda idx: float(_sel(data["accuracy"], idx).mean())  # noqa: E731
    cells: dict[str, tuple[str, Callable]] = {"accuracy": ("accuracy", acc)}
    for family in ("robustness", "fairness"):
        if any(v["family"] == family for v in data["variants"].values()):
            worst = _worst(data, family)
            cells[family] = (family, lambda idx, w=worst: float(_sel(w, idx).mean()))
    if "fairness" in cells:
        gap = _worst(data, "fairness") - np.asarray(data["accuracy"], dtype=float)
        cells["fairness_gap"] = ("fairness", lambda idx: float(_sel(gap, idx).mean()))
    for name, v in data["variants"].items():
        cells[f"{v['family']}:{name}"] = (v["family"], lambda idx, vals=v["values"]: float(_sel(vals, idx).mean()))
    if output_type == "multiple_choice":
        cells.update(_calibration_cells(data))
    else:
        cells.update(_generation_cells(data))
    return cells


def _calibration_cells(data: dict) -> dict[str, tuple[str, Callable]]:
    def stat(fn):
        return lambda idx: fn(_sel(data["confidence"], idx), _sel(data["correct"], idx))
    return {"ece": ("calibration", stat(cal.ece_equal_width)), "ece_10_bin": ("calibration", stat(cal.ece_equal_mass)),
            "selective_acc@10": ("calibration", stat(cal.selective_accuracy))}


def _generation_cells(data: dict) -> dict[str, tuple[str, Callable]]:
    preds = data["predictions"]

    def pick(idx):
        return preds if idx is None else [preds[i] for i in idx]
    cells = {"representation_gender": ("bias", lambda idx: bias_metrics.representation(pick(idx), "gender")),
             "representation_race": ("bias", lambda idx: bias_metrics.representation(pick(idx), "race")),
             "association_gender_profession": (
                 "bias", lambda idx: bias_metrics.association(pick(idx), "gender", "profession")),
             "association_race_adjective": ("bias", lambda idx: bias_metrics.association(pick(idx), "race", "adjective"))}
    if data.get("toxicity") is not None:
        cells["toxicity"] = ("toxicity", lambda idx: float(_sel(data["toxicity"], idx).mean()))
    return cells


def _interval(stat: Callable, n: int, iters: int, seed: int) -> dict[str, Any]:
    value = stat(None)
    samples = [s for s in resample(stat, n, iters, seed) if s is not None] if value is not None and n else []
    ci = interval(samples, percentiles(LEVEL)) if len(samples) > 1 else {"stderr": None, "ci_low": None, "ci_high": None}
    return {"value": value, **ci, "resamples": len(samples)}


def cells(scenario: dict, iters: int = 1000, seed: int = DEFAULT_SEED) -> dict[str, dict[str, Any]]:
    """Every cell of one scenario: value and 95% percentile bootstrap interval over its examples."""
    out = {}
    for name, (family, stat) in cell_stats(scenario["data"], scenario["output_type"]).items():
        out[name] = {"family": family, **_interval(stat, scenario["n"], iters, seed)}
    if scenario["output_type"] != "multiple_choice" and scenario["data"].get("toxicity") is None:
        out["toxicity"] = {"family": "toxicity", **not_measured()}
    return out


# ---- the whole card, its table, and two cards compared ------------------------------------------

HEADLINE = ("accuracy", "ece_10_bin", "selective_acc@10", "robustness", "fairness", "fairness_gap",
            "representation_gender", "association_gender_profession", "toxicity")
LOWER_IS_BETTER = {"ece", "ece_10_bin", "representation_gender", "representation_race", "association_gender_profession",
                   "association_race_adjective", "toxicity"}


def run_card(runner: Runner, plan: list[tuple[Task, int | None]], *, iters: int = 1000,
             on_scenario: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Every scenario of the plan scored, its cells computed; scorecard.json and .md written."""
    start = time.perf_counter()
    scenarios = {}
    for task, limit in plan:
        sc = runner.scenario(task, limit)
        sc["cells"] = cells(sc, iters, runner.seed)
        scenarios[task.name] = sc
        if on_scenario is not None:
            on_scenario(sc)
    card = {"label": runner.label, **runner.meta, "seed": runner.seed, "bootstrap_iters": iters, "level": LEVEL,
            "seconds": round(time.perf_counter() - start, 1),
            "perturbations": [p.describe() for p in runner.perturbations],
            "toxicity_classifier": getattr(runner.classifier, "name", None), "scenarios": scenarios}
    runner.out.write(card, card_markdown(card))
    return card


def _fmt(c: dict | None) -> str:
    if not c:
        return "-"
    if c.get("value") is None:
        return c.get("note", "n/a").split(":")[0] if c.get("note") else "n/a"
    ci = f" [{c['ci_low']:.3f}, {c['ci_high']:.3f}]" if c.get("ci_low") is not None else ""
    return f"{c['value']:.3f}{ci}"


def card_markdown(card: dict[str, Any]) -> str:
    lines = [f"# Scorecard: {card['label']}", "",
             f"95% percentile bootstrap intervals ({card['bootstrap_iters']} resamples of the examples), seed "
             f"{card['seed']}; robustness and fairness are worst cases over the perturbations; "
             f"lower is better for {', '.join(sorted(LOWER_IS_BETTER & set(HEADLINE)))}.", "",
             "| scenario | n | metric | " + " | ".join(HEADLINE) + " | s/example |",
             "|---|---:|---|" + "---|" * len(HEADLINE) + "---:|"]
    for name, sc in card["scenarios"].items():
        row = [_fmt(sc["cells"].get(h)) for h in HEADLINE]
        lines.append(f"| {name} | {sc['n']} | {sc['metric']} | " + " | ".join(row)
                     + f" | {sc['efficiency']['seconds_per_example']:.3f} |")
    lines += ["", "Per perturbation (mean score with the perturbed inputs; examples it changed):", "",
              "| scenario | perturbation | family | changed | mean |", "|---|---|---|---:|---|"]
    for name, sc in card["scenarios"].items():
        for pname, v in sc["data"]["variants"].items():
            lines.append(f"| {name} | {pname} | {v['family']} | {v['changed']} | "
                         f"{_fmt(sc['cells'].get(v['family'] + ':' + pname))} |")
    lines += ["", "Efficiency (one measurement of the clean run):", "",
              "| scenario | s/example | tokens/s | peak memory (MiB) | parameters |", "|---|---:|---:|---:|---:|"]
    for name, sc in card["scenarios"].items():
        e = sc["efficiency"]
        lines.append(f"| {name} | {e['seconds_per_example']:.3f} | {e['tokens_per_second'] or '-'} | "
                     f"{e['peak_memory_bytes'] / 2**20:.0f} | {e['parameters'] or '-'} |")
    return "\n".join(lines) + "\n"


def _paired(before: dict, after: dict, stat_b: Callable, stat_a: Callable, iters: int, seed: int) -> dict[str, Any]:
    vb, va = stat_b(None), stat_a(None)
    if vb is None or va is None:
        return {"before": vb, "after": va, "delta": None, "ci_low": None, "ci_high": None}

    def diff(idx):
        b, a = stat_b(idx), stat_a(idx)
        return None if a is None or b is None else a - b
    samples = [d for d in resample(diff, before["n"], iters, seed) if d is not None]
    ci = interval(samples, percentiles(LEVEL)) if len(samples) > 1 else {"ci_low": None, "ci_high": None}
    return {"before": vb, "after": va, "delta": va - vb, "ci_low": ci["ci_low"], "ci_high": ci["ci_high"]}


def compare(before: dict[str, Any], after: dict[str, Any], *, iters: int = 1000, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """after - before per cell of every scenario both scored, on the same examples, paired resamples."""
    out = {}
    for name in [n for n in before["scenarios"] if n in after["scenarios"]]:
        b, a = before["scenarios"][name], after["scenarios"][name]
        if b["data"]["ids"] != a["data"]["ids"]:
            raise TunevalError(f"scorecard compare: '{name}' scored other examples on the two sides "
                               "(same --limit and data needed)")
        sb, sa = cell_stats(b["data"], b["output_type"]), cell_stats(a["data"], a["output_type"])
        out[name] = {cell: {"family": fam, "lower_is_better": cell in LOWER_IS_BETTER,
                            **_paired(b, a, fn, sa[cell][1], iters, seed)}
                     for cell, (fam, fn) in sb.items() if cell in sa}
    if not out:
        raise TunevalError("scorecard compare: the two scorecards share no scenario")
    return {"before": before["label"], "after": after["label"], "bootstrap_iters": iters, "seed": seed,
            "level": LEVEL, "scenarios": out}


def _verdict(c: dict) -> str:
    if c["ci_low"] is None:
        return ""
    if c["ci_low"] > 0 or c["ci_high"] < 0:
        better = (c["ci_low"] > 0) != c["lower_is_better"]
        return "better" if better else "worse"
    return "no clear change"


def compare_markdown(result: dict[str, Any]) -> str:
    lines = [f"# Scorecard: {result['after']} vs {result['before']}", "",
             f"after - before on the same examples; paired 95% bootstrap intervals ({result['bootstrap_iters']} "
             "resamples, the same on both sides). 'worse' when the interval excludes 0 on the bad side.", "",
             "| scenario | cell | family | before | after | delta | 95% CI | verdict |", "|---|---|---|---:|---:|---:|---|---|"]
    for name, cells_ in result["scenarios"].items():
        for cell, c in cells_.items():
            if ":" in cell or c["delta"] is None:
                continue
            lines.append(f"| {name} | {cell} | {c['family']} | {c['before']:.3f} | {c['after']:.3f} | "
                         f"{c['delta']:+.3f} | [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | {_verdict(c)} |"
                         if c["ci_low"] is not None else
                         f"| {name} | {cell} | {c['family']} | {c['before']:.3f} | {c['after']:.3f} | "
                         f"{c['delta']:+.3f} | - | |")
    return "\n".join(lines) + "\n"
