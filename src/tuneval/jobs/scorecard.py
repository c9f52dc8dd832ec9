"""`tuneval scorecard`: a model (with its adapter) over the scorecard's scenarios, or two saved
scorecards compared (before/after fine-tuning). The scoring itself is evaluate/scorecard.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from tuneval.errors import TunevalError
from tuneval.evaluate import scorecard as sc
from tuneval.evaluate.harness import DEFAULT_SEED
from tuneval.results import ScorecardCompareDir, ScorecardDir
from tuneval.tasks import load_registry
from tuneval.tasks.perturb import FAIRNESS, ROBUSTNESS, get


def scenario_plan(scenarios: str | list[str] | None, limit: int | None, tasks_dir=None) -> list[tuple[Any, int | None]]:
    """(task, limit) per scenario: the names (tasks or groups, e.g. bbh) given, else the default list."""
    if limit is not None and limit < 1:
        raise TunevalError(f"--limit must be at least 1, got {limit}")
    registry = load_registry(tasks_dir)
    names = [s.strip() for s in scenarios.split(",") if s.strip()] if isinstance(scenarios, str) else scenarios
    names = registry.expand(names) if names else sc.default_scenarios(registry)
    plan = [(registry.tasks[n], limit) for n in names]
    for task, _ in plan:
        sc.perturb_fields(task)  # a scenario with nothing to perturb fails before the model loads
    return plan


def pick_perturbations(names: str | list[str] | None):
    if not names:
        return ROBUSTNESS + FAIRNESS
    names = [n.strip() for n in names.split(",") if n.strip()] if isinstance(names, str) else names
    return tuple(get(n) for n in names)


def run_scorecard(model: str, adapter=None, *, scenarios=None, limit: int | None = None, out: str | Path,
                  tasks_dir=None, data_dir=None, batch_size: int = 16, seed: int = DEFAULT_SEED,
                  bootstrap_iters: int = 1000, perturbations=None, toxicity_model: str | None = None,
                  toxicity_label: str | None = None, precision: str = "auto", model_args=None,
                  on_scenario: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Load the model (or open the endpoint), score every scenario's variants, write the card."""
    from tuneval.evaluate import remote
    from tuneval.metrics.toxicity import ToxicityClassifier

    plan = scenario_plan(scenarios, limit, tasks_dir)
    perts = pick_perturbations(perturbations)
    where = ScorecardDir(out)
    classifier = ToxicityClassifier(toxicity_model, toxicity_label) if toxicity_model else None
    loaded, net = remote.open_model(model, adapter, precision=precision, model_args=model_args, merge=False,
                                    requests_file=where.requests_file)
    label = remote.label(model, adapter, model_args)
    meta = {"model": model, "adapter": str(adapter) if adapter else None, **loaded.meta}
    runner = sc.Runner(net, loaded.tokenizer, loaded.arch, where, data_dir=data_dir, batch_size=batch_size, seed=seed,
                       label=label, classifier=classifier, meta=meta, perturbations=perts)
    card = sc.run_card(runner, plan, iters=bootstrap_iters, on_scenario=on_scenario)
    return {**card, "out": where.path, "markdown": where.md_file}


def compare_scorecards(before: str | Path, after: str | Path, *, out: str | Path, bootstrap_iters: int = 1000,
                       seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Two saved scorecards (same scenarios, same examples): after - before per cell, paired intervals."""
    cards = []
    for path in (before, after):
        d = ScorecardDir(path)
        if not d.exists():
            raise TunevalError(f"{path}: no {ScorecardDir.JSON} here (expected a `tuneval scorecard --out` directory)")
        cards.append(d.read())
    result = sc.compare(cards[0], cards[1], iters=bootstrap_iters, seed=seed)
    where = ScorecardCompareDir(out)
    where.write(result, sc.compare_markdown(result))
    return {**result, "out": where.path, "markdown": where.md_file}
