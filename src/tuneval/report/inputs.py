"""Recognise saved tuneval results by their files, so `tuneval report` takes any mix of paths.

Every command already leaves a signature file: a run directory has config.yaml + metrics.json,
a `--task` evaluation results.json, a `--suite` evaluation summary.json, the demo
comparison.json, a sweep sweep.json, a forgetting check forgetting.json. Reading these (and
nothing else) keeps the report a pure function of what was saved, so it can be rebuilt
anywhere, long after the models are gone.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneval.errors import TunevalError
from tuneval.runs import CONFIG, EVAL_RESULTS, METRICS, RunDir
from tuneval.train.curves import read_log

SIGNATURES = ("comparison.json", "sweep.json", "forgetting.json", "summary.json", EVAL_RESULTS, METRICS)


@dataclass
class Eval:
    """One generation evaluation; `results` may lack examples (a demo row without its eval dir)."""
    label: str
    path: Path
    results: dict[str, Any]


@dataclass
class Run:
    label: str
    path: Path
    metrics: dict[str, Any]
    config: dict[str, Any] | None
    log: list[dict[str, Any]]


@dataclass
class Suite:
    label: str
    path: Path
    summary: dict[str, Any]


@dataclass
class Forgetting:
    label: str
    path: Path
    result: dict[str, Any]
    before: dict[str, Any] | None = None  # before/summary.json, for per-side intervals
    after: dict[str, Any] | None = None


@dataclass
class Sweep:
    label: str
    path: Path
    data: dict[str, Any]


@dataclass
class Inputs:
    paths: list[Path] = field(default_factory=list)
    evals: list[Eval] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    suites: list[Suite] = field(default_factory=list)
    forgettings: list[Forgetting] = field(default_factory=list)
    sweeps: list[Sweep] = field(default_factory=list)
    demos: list[dict[str, Any]] = field(default_factory=list)  # comparison.json (machine, model, settings)
    _seen: set[Path] = field(default_factory=set, repr=False)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TunevalError(f"{path}: cannot read as JSON ({e})") from None


def is_generation_results(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("metrics"), dict) and "rouge1" in data["metrics"]


def _add_run(inputs: Inputs, d: Path) -> None:
    run = RunDir(d)
    inputs.runs.append(Run(d.name, d, run.metrics(), run.config(), read_log(run.log_file)))
    scored = run.eval_results_file  # a run scores its result into eval/ (train, sweep points)
    if scored.is_file() and (scored.parent.resolve() not in inputs._seen):
        data = _json(scored)
        if is_generation_results(data):  # a benchmark-task evaluation has no samples or ROUGE to compare
            inputs._seen.add(scored.parent.resolve())
            inputs.evals.append(Eval(d.name, scored.parent, data))


def _add_eval(inputs: Inputs, d: Path, data: dict, label: str | None = None) -> None:
    inputs.evals.append(Eval(label or data.get("label") or d.name, d, data))


def _add_demo(inputs: Inputs, d: Path) -> None:
    """The demo's rows in its order; each row's examples from eval-<label>/ or from its run's eval/."""
    comparison = _json(d / "comparison.json")
    inputs.demos.append({k: v for k, v in comparison.items() if k != "rows"} | {"path": str(d)})
    for row in comparison.get("rows", []):
        label = row["label"]
        where = [d / f"eval-{label}", RunDir(d / label).eval_dir] + [RunDir(d / Path(row[k]).name).eval_dir
                                                                     for k in ("run", "adapter") if row.get(k)]
        found = next((w for w in where if (w / EVAL_RESULTS).is_file()), None)
        if found is None:  # scores without examples: no intervals, no samples, but the row still shows
            _add_eval(inputs, d, row, label)
        elif found.resolve() not in inputs._seen:
            inputs._seen.add(found.resolve())
            _add_eval(inputs, found, _json(found / EVAL_RESULTS) | {k: row[k] for k in ("method",) if k in row}, label)
    for child in sorted(p for p in d.iterdir() if p.is_dir()):
        if RunDir(child).finished():
            _add_path(inputs, child)


def _add_path(inputs: Inputs, path: Path) -> None:
    if path.is_file():
        if path.name not in SIGNATURES:
            raise TunevalError(f"{path}: not a tuneval result file (expected one of {', '.join(SIGNATURES)}, "
                               "or the directory holding it)")
        path = path.parent
    if not path.is_dir():
        raise TunevalError(f"{path}: no such file or directory")
    key = path.resolve()
    if key in inputs._seen:
        return
    inputs._seen.add(key)
    if (path / "comparison.json").is_file():
        _add_demo(inputs, path)
    elif (path / "sweep.json").is_file():
        inputs.sweeps.append(Sweep(path.name, path, _json(path / "sweep.json")))
    elif (path / "forgetting.json").is_file():
        side = {s: _json(path / s / "summary.json") if (path / s / "summary.json").is_file() else None
                for s in ("before", "after")}
        inputs.forgettings.append(Forgetting(path.name, path, _json(path / "forgetting.json"), **side))
    elif RunDir(path).finished():
        _add_run(inputs, path)
    elif (path / "summary.json").is_file():
        summary = _json(path / "summary.json")
        if not isinstance(summary, dict) or "tasks" not in summary:
            raise TunevalError(f"{path / 'summary.json'}: not a tuneval eval summary (no 'tasks')")
        inputs.suites.append(Suite(summary.get("label") or path.name, path, summary))
    elif (path / EVAL_RESULTS).is_file():
        data = _json(path / EVAL_RESULTS)
        if not is_generation_results(data):
            raise TunevalError(f"{path / EVAL_RESULTS}: one benchmark task's results; give the directory above it "
                               "(the one with summary.json)")
        _add_eval(inputs, path, data)
    elif RunDir(path).config_file.is_file():
        raise TunevalError(f"{path}: a run that has not finished (no {METRICS} yet)")
    else:
        raise TunevalError(f"{path}: not a tuneval run, evaluation, demo, sweep or forgetting directory "
                           f"(none of {CONFIG} + {METRICS}, {', '.join(SIGNATURES[:5])} there)")


def _unique(items: list, sources: dict[int, Path]) -> None:
    """Two inputs with one label (two demos both have 'original') get the shortest end of the path
    they were given that tells them apart: 'a/demo/original', 'b/demo/original'."""
    counts = Counter(i.label for i in items)
    clashing = [i for i in items if counts[i.label] > 1]
    for label in {i.label for i in clashing}:
        same = [i for i in clashing if i.label == label]
        parts = [sources[id(i)].resolve().parts for i in same]
        for k in range(1, max(map(len, parts)) + 1):
            if len({p[-k:] for p in parts}) == len(parts) or k == max(map(len, parts)):
                break
        for item, p in zip(same, parts):
            item.label = "/".join(p[-k:]).lstrip("/") + "/" + label
    seen: Counter = Counter()
    for item in items:  # still equal (one input holding two of a label): number them
        seen[item.label] += 1
        if seen[item.label] > 1:
            item.label = f"{item.label} #{seen[item.label]}"


def load_inputs(paths: list[str | Path]) -> Inputs:
    if not paths:
        raise TunevalError("report: give at least one run, evaluation, demo, sweep or forgetting directory")
    inputs = Inputs(paths=[Path(p) for p in paths])
    kinds = (inputs.evals, inputs.runs, inputs.suites, inputs.forgettings, inputs.sweeps)
    sources: dict[int, Path] = {}
    for p in inputs.paths:
        _add_path(inputs, p)
        for kind in kinds:
            for item in kind:
                sources.setdefault(id(item), p)
    for kind in kinds:
        _unique(kind, sources)
    return inputs
