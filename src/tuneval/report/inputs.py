"""Recognise saved tuneval results by their files, so `tuneval report` takes any mix of paths.

lm-evaluation-harness's own output (`--output_path DIR --log_samples`: results.LmEvalDir) is
read too, as a benchmark suite (evaluate/lm_eval_format.py): the directory, its model
subdirectory or one results_<timestamp>.json file.

Every command already leaves a signature file: a run directory has config.yaml + metrics.json
(runs.RunDir), and every result directory its type's SIGNATURE (results.py: EvalDir, SuiteDir,
DemoDir, SweepDir, ForgettingDir). Reading these, through those types and nothing else, keeps
the report a pure function of what was saved, so it can be rebuilt anywhere, long after the
models are gone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneval.errors import TunevalError
from tuneval.results import (KINDS, DemoDir, EvalDir, ForgettingDir, LmEvalDir, ScorecardCompareDir, ScorecardDir, SuiteDir,
                             SweepDir, read_json)
from tuneval.runs import CONFIG, METRICS, RunDir
from tuneval.train.curves import read_log

SIGNATURES = tuple(kind.SIGNATURE for kind in KINDS) + (METRICS,)


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
    before: dict[str, Any] | None = None  # the before/ suite's summary, for per-side intervals
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
    demos: list[dict[str, Any]] = field(default_factory=list)  # the demo's comparison (machine, model, settings)
    scorecards: list[dict[str, Any]] = field(default_factory=list)  # scorecard.json (ScorecardDir)
    scorecard_compares: list[dict[str, Any]] = field(default_factory=list)  # scorecard_compare.json
    _seen: set[Path] = field(default_factory=set, repr=False)


def is_generation_results(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("metrics"), dict) and "rouge1" in data["metrics"]


def _add_run(inputs: Inputs, d: Path) -> None:
    run = RunDir(d)
    inputs.runs.append(Run(d.name, d, run.metrics(), run.config(), read_log(run.log_file)))
    scored = EvalDir(run.eval_dir)  # a run scores its result into eval/ (train, sweep points)
    if scored.exists() and (scored.path.resolve() not in inputs._seen):
        data = scored.read()
        if is_generation_results(data):  # a benchmark-task evaluation has no samples or ROUGE to compare
            inputs._seen.add(scored.path.resolve())
            inputs.evals.append(Eval(d.name, scored.path, data))


def _add_eval(inputs: Inputs, d: Path, data: dict, label: str | None = None) -> None:
    inputs.evals.append(Eval(label or data.get("label") or d.name, d, data))


def _add_demo(inputs: Inputs, d: Path) -> None:
    """The demo's rows in its order; each row's examples from eval-<label>/ or from its run's eval/."""
    demo = DemoDir(d)
    comparison = demo.read()
    inputs.demos.append({k: v for k, v in comparison.items() if k != "rows"} | {"path": str(d)})
    for row in comparison.get("rows", []):
        label = row["label"]
        runs = [demo.run(label)] + [demo.run(Path(row[k]).name) for k in ("run", "adapter") if row.get(k)]
        where = [demo.eval_of(label)] + [EvalDir(run.eval_dir) for run in runs]
        found = next((w for w in where if w.exists()), None)
        if found is None:  # scores without examples: no intervals, no samples, but the row still shows
            _add_eval(inputs, d, row, label)
        elif found.path.resolve() not in inputs._seen:
            inputs._seen.add(found.path.resolve())
            _add_eval(inputs, found.path, found.read() | {k: row[k] for k in ("method",) if k in row}, label)
    for child in sorted(p for p in d.iterdir() if p.is_dir()):
        if RunDir(child).finished():
            _add_path(inputs, child)


def is_lm_eval_results(file: Path) -> bool:
    """A JSON file as lm-eval writes its results (results, configs)."""
    if file.suffix != ".json":
        return False
    data = read_json(file)
    return isinstance(data, dict) and isinstance(data.get("results"), dict) and isinstance(data.get("configs"), dict)


def _add_lm_eval(inputs: Inputs, path: Path) -> None:
    """lm-eval's output as one more suite: its tasks' scores, with intervals where its samples are there."""
    from tuneval.evaluate.lm_eval_format import lm_eval_summary

    summary = lm_eval_summary(path)
    inputs.suites.append(Suite(summary["label"], path, summary))


def _add_path(inputs: Inputs, path: Path) -> None:
    if path.is_file():
        if path.name not in SIGNATURES and is_lm_eval_results(path):
            if path.resolve() not in inputs._seen:
                inputs._seen.add(path.resolve())
                _add_lm_eval(inputs, path)
            return
        if path.name not in SIGNATURES:
            raise TunevalError(f"{path}: not a tuneval result file (expected one of {', '.join(SIGNATURES)}, "
                               f"an lm-eval {LmEvalDir.RESULTS_PREFIX}<timestamp>.json, or the directory holding it)")
        path = path.parent
    if not path.is_dir():
        raise TunevalError(f"{path}: no such file or directory")
    key = path.resolve()
    if key in inputs._seen:
        return
    inputs._seen.add(key)
    forgetting = ForgettingDir(path)
    if DemoDir(path).exists():
        _add_demo(inputs, path)
    elif SweepDir(path).exists():
        inputs.sweeps.append(Sweep(path.name, path, SweepDir(path).read()))
    elif forgetting.exists():
        sides = {"before": forgetting.before, "after": forgetting.after}
        inputs.forgettings.append(Forgetting(path.name, path, forgetting.read(),
                                             **{s: d.read() if d.exists() else None for s, d in sides.items()}))
    elif ScorecardDir(path).exists():
        inputs.scorecards.append(ScorecardDir(path).read())
    elif ScorecardCompareDir(path).exists():
        inputs.scorecard_compares.append(ScorecardCompareDir(path).read())
    elif RunDir(path).finished():
        _add_run(inputs, path)
    elif SuiteDir(path).exists():
        summary = SuiteDir(path).read()
        inputs.suites.append(Suite(summary.get("label") or path.name, path, summary))
    elif EvalDir(path).exists():
        data = EvalDir(path).read()
        if not is_generation_results(data):
            raise TunevalError(f"{EvalDir(path).results_file}: one benchmark task's results; give the directory "
                               f"above it (the one with {SuiteDir.SUMMARY})")
        _add_eval(inputs, path, data)
    elif RunDir(path).config_file.is_file():
        raise TunevalError(f"{path}: a run that has not finished (no {METRICS} yet)")
    elif LmEvalDir(path).exists():
        _add_lm_eval(inputs, path)
    else:
        raise TunevalError(f"{path}: not a tuneval run, evaluation, demo, sweep or forgetting directory "
                           f"(none of {CONFIG} + {METRICS}, {', '.join(SIGNATURES[:5])} there), nor lm-eval's "
                           f"output ({LmEvalDir.RESULTS_PREFIX}<timestamp>.json)")


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
