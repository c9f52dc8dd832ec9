"""Multi-task mixtures, FLAN/T5 style: which task each training example comes from.

A mixture gives each task a *rate* (seqio's word) and draws every training example from a
task picked at that rate, seeded:

- `rates`: the rates are the listed weights;
- `proportional` ("examples-proportional mixing", T5 / FLAN): rate ∝ weight · min(n, cap),
  so big tasks do not drown small ones once they pass the cap K;
- `temperature`: rate ∝ (weight · min(n, cap)) ** (1 / T); T = 1 is proportional, large T
  tends to equal rates (T5 §3.5.2, mT5's language sampling).

A task drawn more often than it has rows repeats them (a new shuffle per pass), which is
what temperature sampling does to small tasks. `replay` is one more task with a fixed share
of the examples (general instruction data against forgetting). Templates can be held out
per task: training draws only from the others, evaluation can use an unseen phrasing.

A one-task run is the mixture of one task, drawn as one seeded shuffle of its rows (the
first `data.train_examples` of it, each row once) with templates drawn from the same seed:
the draw every single-task number so far was trained on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from tuneval.config import MixtureConfig, MixtureTask, Recipe
from tuneval.data.formats import trained_turns, turn_counts
from tuneval.errors import TunevalError
from tuneval.tasks.registry import Registry, load_registry
from tuneval.tasks.rows import load_rows
from tuneval.tasks.task import Task
from tuneval.tasks.user_data import data_task

# -- templates ----------------------------------------------------------------------------------


def train_templates(task: Task, *, fixed: int | None = None, templates: list[int] | None = None,
                    holdout: list[int] | None = None, where: str = "data") -> list[int]:
    """The phrasings training may draw from: `templates` (or all), minus `holdout`; or one fixed index."""
    n = len(task.templates.prompts)
    holdout = list(holdout or [])
    for key, values in (("template", [] if fixed is None else [fixed]), ("templates", templates or []),
                        ("holdout_templates", holdout)):
        for i in values:
            if not 0 <= i < n:
                raise TunevalError(f"{where}.{key}: {i} is out of range 0..{n - 1} (task '{task.name}' has {n} templates)")
    if fixed is not None:
        if fixed in holdout:
            raise TunevalError(f"{where}.template: {fixed} is also in {where}.holdout_templates")
        return [fixed]
    allowed = [i for i in (templates if templates is not None else range(n)) if i not in holdout]
    if not allowed:
        raise TunevalError(f"{where}: every template of task '{task.name}' is held out; keep at least one to train on")
    return sorted(set(allowed))


def draw_templates(n: int, seed: int | str, allowed: list[int]) -> list[int]:
    """One template index per example from `allowed`, repeatable from the seed."""
    rng = random.Random(seed)
    return [allowed[rng.randrange(len(allowed))] for _ in range(n)]


# -- rates and sampling -------------------------------------------------------------------------


def mixing_rates(sizes: dict[str, int], weights: dict[str, float], strategy: str, cap: int | None = None,
                 temperature: float = 1.0) -> dict[str, float]:
    """Normalised rates per task (they sum to 1)."""
    if strategy == "rates":
        raw = dict(weights)
    elif strategy in ("proportional", "temperature"):
        raw = {}
        for name, n in sizes.items():
            base = weights[name] * (min(n, cap) if cap is not None else n)
            raw[name] = base ** (1.0 / temperature) if strategy == "temperature" else base
    else:
        raise TunevalError(f"unknown mixing strategy '{strategy}' (known: rates, proportional, temperature)")
    total = sum(raw.values())
    if total <= 0:
        raise TunevalError("the mixture's rates are all 0")
    return {name: value / total for name, value in raw.items()}


def sample_tasks(rates: dict[str, float], total: int, seed: int | str) -> list[str]:
    """The task of each of `total` examples, drawn independently at the given rates (seeded)."""
    names = list(rates)
    return random.Random(seed).choices(names, weights=[rates[n] for n in names], k=total)


def take(pool_size: int, count: int, seed: int | str) -> list[int]:
    """`count` row indices from a pool: a seeded shuffle, then a fresh shuffle for each further pass."""
    rng = random.Random(seed)
    out: list[int] = []
    while len(out) < count:
        order = list(range(pool_size))
        rng.shuffle(order)
        out.extend(order[: count - len(out)])
    return out


# -- resolving a recipe --------------------------------------------------------------------------


@dataclass
class Component:
    """One task of a resolved mixture: its spec, its pool of rows, the phrasings it trains on."""

    entry: MixtureTask
    spec: Task
    pool: list[dict[str, Any]]
    available: int  # rows in the split before max_examples
    allowed: list[int]
    holdout: list[int]
    replay: bool = False
    rate: float = 0.0
    drawn: list[int] = field(default_factory=list)  # pool indices, in the order they are used


def _entries(recipe: Recipe) -> list[MixtureTask]:
    if recipe.mixture is not None:
        return list(recipe.mixture.tasks)
    return [MixtureTask(task=recipe.task)]


def recipe_registry(recipe: Recipe) -> Registry:
    """The tasks a recipe can name: built-in, the user's YAMLs (data.tasks_dir), and the recipe's
    own data (data.path / data.dataset), which is the task named by `task`."""
    registry = load_registry(recipe.data.tasks_dir)
    d = recipe.data
    if d.path or d.dataset:
        task = data_task(path=d.path, dataset=d.dataset, format=d.format, columns=d.columns,
                         validation_share=d.validation_share, seed=recipe.seed, name=recipe.task,
                         where="data.path" if d.path else "data.dataset", sample_by=d.sample_by,
                         dataset_info=d.dataset_info)
        registry.tasks[task.name] = task
    return registry


def one_task(recipe: Recipe) -> bool:
    """A run of the recipe's task alone (no mixture, no replay)."""
    return recipe.mixture is None and recipe.data.replay is None


def _component(recipe: Recipe, registry: Registry, entry: MixtureTask, where: str, replay: bool = False) -> Component:
    spec = registry.task(entry.task)
    if spec.evaluation_only:  # a benchmark whose data asks never to be trained on (BIG-bench's canary)
        raise TunevalError(f"{where}: task '{spec.name}' is evaluation-only and never goes into a training mix "
                           f"({spec.evaluation_only}; {spec.source})")
    if spec.templates is None and not spec.conversational:
        raise TunevalError(f"{where}: task '{spec.name}' ({spec.source}) has no FLAN 'templates' to train with")
    rows = load_rows(spec, entry.split or recipe.data.train_split, recipe.data.data_dir)
    order = list(range(len(rows)))
    random.Random(recipe.seed if one_task(recipe) else f"{recipe.seed}/{entry.task}").shuffle(order)
    if entry.max_examples is not None:
        order = order[: entry.max_examples]
    primary = entry.task == recipe.task and not replay
    # data.template / data.holdout_templates speak for the recipe's own task, unless its entry says otherwise.
    fixed = recipe.data.template if primary and entry.templates is None else None
    holdout = entry.holdout_templates or (recipe.data.holdout_templates if primary else [])
    allowed = [] if spec.conversational else train_templates(spec, fixed=fixed, templates=entry.templates,
                                                             holdout=holdout, where=where)
    return Component(entry, spec, [rows[i] for i in order], len(rows), allowed, sorted(holdout), replay)


def resolve_mixture(recipe: Recipe) -> tuple[list[Component], list[str]]:
    """Components with their rates and drawn rows, and the task of each training example in order."""
    mixture = recipe.mixture or MixtureConfig(strategy="rates", tasks=_entries(recipe))
    where = "mixture.tasks[{}]" if recipe.mixture is not None else "data"
    registry = recipe_registry(recipe)
    comps = [_component(recipe, registry, e, where.format(i)) for i, e in enumerate(mixture.tasks)]
    if one_task(recipe):
        c = comps[0]
        total = min(recipe.data.train_examples or len(c.pool), len(c.pool))
        c.rate, c.drawn = 1.0, list(range(total))
        return comps, [c.spec.name] * total
    rates = mixing_rates({c.spec.name: len(c.pool) for c in comps}, {c.spec.name: c.entry.weight for c in comps},
                         mixture.strategy, mixture.cap, mixture.temperature)
    natural = sum(min(len(c.pool), mixture.cap) if mixture.cap else len(c.pool) for c in comps)
    replay = recipe.data.replay
    if replay is not None:
        if replay.task in rates:
            raise TunevalError(f"data.replay.task: '{replay.task}' is already in the mixture; give it a weight there instead")
        rates = {name: r * (1 - replay.fraction) for name, r in rates.items()}
        rates[replay.task] = replay.fraction
        comps.append(_component(recipe, registry, MixtureTask(task=replay.task, max_examples=replay.max_examples),
                                "data.replay", replay=True))
        natural = round(natural / (1 - replay.fraction))
    total = recipe.data.train_examples if recipe.data.train_examples is not None else natural
    if total < 1:
        raise TunevalError(f"data.train_examples must be at least 1, got {total}")
    picks = sample_tasks(rates, total, recipe.seed)
    for c in comps:
        c.rate = rates[c.spec.name]
        count = picks.count(c.spec.name)
        c.drawn = take(len(c.pool), count, f"{recipe.seed}/{c.spec.name}/passes")
    return comps, picks


def build_examples(recipe: Recipe, loaded) -> tuple[list[dict], dict[str, Any]]:
    """Tokenised training examples and the summary saved with the run (for a mixture, or a run
    with replay, console.mixture_table(summary) shows it as a table)."""
    from tuneval.data.collate import PromptFormatter

    comps, picks = resolve_mixture(recipe)
    total = len(picks)
    fmt = PromptFormatter(loaded.tokenizer, loaded.arch, recipe.data.chat_template,
                          recipe.data.max_seq_len, recipe.data.max_target_tokens)
    by_name = {c.spec.name: c for c in comps}
    single = one_task(recipe)
    templates = {c.spec.name: iter(draw_templates(len(c.drawn), recipe.seed if single else
                                                  f"{recipe.seed}/{c.spec.name}/templates", c.allowed))
                 for c in comps if not c.spec.conversational}
    rows = {c.spec.name: iter(c.drawn) for c in comps}
    stats = {c.spec.name: {"per_template": {str(t): 0 for t in c.allowed}, "tokens": 0, "skipped": 0} for c in comps}
    examples, texts = [], []
    for name in picks:  # the sampled order: tasks interleaved as drawn
        c = by_name[name]
        row = c.pool[next(rows[name])]
        if c.spec.conversational:
            example = _record_example(fmt, row, texts, stats[name])
            if example is None:
                continue
        else:
            index = next(templates[name])
            example = fmt.training_example(c.spec.templates, index, row, c.spec.input_fields)
            stats[name]["per_template"][str(index)] += 1
        examples.append(example)
        stats[name]["tokens"] += len(example["input_ids"])
    examples += fmt.text_examples(texts) if texts else []  # continued pre-training text, packed into blocks
    if not examples:
        raise TunevalError("no training examples: every conversation's first answer starts past data.max_seq_len")
    lengths = [len(e["input_ids"]) for e in examples]
    shape = {"chat_template": fmt.uses_chat, "tokens": sum(lengths), "mean_length": round(sum(lengths) / len(lengths), 1),
             "max_length": max(lengths)}
    if single and comps[0].spec.conversational:
        c = comps[0]
        return examples, {"task": c.spec.name, "examples": len(examples), "data": _data_summary(c, stats), **shape}
    if single:
        c = comps[0]
        counts = stats[c.spec.name]["per_template"]
        return examples, {"task": c.spec.name, "examples": len(examples),
                          "per_template": {str(t): counts.get(str(t), 0) for t in range(len(c.spec.templates.prompts))},
                          **({"holdout_templates": c.holdout} if c.holdout else {}), **shape}
    return examples, {"task": recipe.task, "tasks": [c.spec.name for c in comps], "examples": len(examples),
                      "mixture": _mixture_summary(recipe, comps, stats, total), **shape}


def _data_summary(c: Component, stats: dict[str, dict]) -> dict[str, Any]:
    """What a run on the user's own data records of it (metrics.json's data.data, and the line printed as
    training starts): where, the format read (recognised or given) and the column of each field, the
    rows read, how many were trained on and, for each reason, how many were not; a chat record's turns."""
    spec, info = c.spec, c.spec.read_info or {}
    split, skipped = spec.split_info or {}, stats[spec.name]["skipped"]
    untrained = stats[spec.name].get("no_trained_turn", 0)
    out = {"source": spec.source, **{k: spec.metadata[k] for k in ("dataset_info",) if k in spec.metadata},
           "format": info.get("format", spec.format), "format_given": spec.format, "columns": info.get("columns"),
           **({"sample_by": spec.sample_by} if info.get("format") == "text" else {}),
           "rows": info.get("rows", c.available), "train_rows": c.available, "kept": len(c.drawn) - skipped - untrained,
           "dropped": {"held_out_for_validation": split.get("validation_rows", 0),
                       "beyond_data_train_examples": c.available - len(c.drawn),
                       "first_answer_past_max_seq_len": skipped, "no_trained_turn": untrained},
           "turns": stats[spec.name].get("turns", {}), "validation": spec.split_info}
    return out


def _record_example(fmt, record: dict[str, Any], texts: list[str], stats: dict[str, Any]) -> dict | None:
    """A data-format record as a training example: a conversation labelled on the assistant turns it
    trains (None when every answer is weighted 0, or the first trained one starts past max_seq_len:
    nothing to learn; counted in `stats`, with the record's turns), or, for a text record, None
    after keeping the text for packing."""
    if "text" in record:
        texts.append(record["text"])
        return None
    counts = stats.setdefault("turns", {})
    for key, n in turn_counts(record).items():
        counts[key] = counts.get(key, 0) + n
    if not trained_turns(record):
        stats["no_trained_turn"] = stats.get("no_trained_turn", 0) + 1
        return None
    example = fmt.record_example(record)
    if any(label != -100 for label in example["labels"]):
        return example
    stats["skipped"] += 1
    return None


def _mixture_summary(recipe: Recipe, comps: list[Component], stats: dict[str, dict], total: int) -> dict[str, Any]:
    m = recipe.mixture
    tasks = []
    for c in comps:
        s, n = stats[c.spec.name], len(c.drawn)
        tasks.append({
            "task": c.spec.name, "replay": c.replay, "split": c.entry.split or recipe.data.train_split,
            "available": c.available, "pool": len(c.pool), "weight": c.entry.weight if not c.replay else None,
            "rate": round(c.rate, 6), "drawn": n, "share": round(n / total, 6),
            "unique": len(set(c.drawn)), "passes": round(n / len(c.pool), 3),
            "templates": c.allowed, "holdout_templates": c.holdout, "per_template": s["per_template"],
            "tokens": s["tokens"], "mean_length": round(s["tokens"] / n, 1) if n else 0.0,
        })
    return {
        "strategy": m.strategy if m else "rates", "cap": m.cap if m else None,
        "temperature": m.temperature if m else 1.0, "seed": recipe.seed, "examples": total,
        "replay": {"task": recipe.data.replay.task, "fraction": recipe.data.replay.fraction} if recipe.data.replay else None,
        "tasks": tasks,
    }
