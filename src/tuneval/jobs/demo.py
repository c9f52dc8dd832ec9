"""The main job: is instruction fine-tuning worth it, and is LoRA as good as full?

Zero-shot base model, full fine-tuning, LoRA fine-tuning, each scored on the same
DialogSum validation examples with the same template, then one comparison table whose
every score carries its 95% bootstrap interval and whose differences are paired.

The demo runs to a time budget (`--minutes`, 20 by default), because machines differ by
4x and more on the same work (an AMX Xeon against an AVX2-only EPYC, issue 17): before
anything is trained it measures, on this machine and with the real model, what costs the
time, namely a few optimizer steps of each method's actual recipe on real training examples
(tokens/s after 3 warm-up steps, and everything around the steps: loading, set-up, saving)
and the greedy generation of a batch of validation examples (trained LoRA is merged before it
generates, so every model generates at the base's speed). From
those it plans how many evaluation examples (200 where the budget holds them with room to
train) and training examples fit, prints the plan and then runs it. `--train-examples` and
`--eval-examples` fix the counts instead, for exact repeats.

The original (untrained) model's scores are cached under $TUNEVAL_HOME (evaluate/score_cache.py: keyed by
the model's files, the examples, prompt, precision, generation settings, scoring code and machine): a
second demo on this machine reads them instead of generating them again, plans the time for training, and
says where the scores came from when it prints them and in comparison.json (the original row's `cache`).
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from transformers import TrainerCallback

from tuneval.config import Recipe, recipe_from_dict
from tuneval.errors import TunevalError
from tuneval.evaluate.distributed import is_main, world
from tuneval.evaluate.harness import run_task
from tuneval.evaluate import score_cache
from tuneval.evaluate.report import comparison_table, eval_report, paired_comparisons, samples_table
from tuneval.results import DemoDir, EvalDir, read_json
from tuneval.jobs.budget import check_minutes
from tuneval.methods.loading import load_result
from tuneval.metrics.compare import SEED
from tuneval.precision import resolve_precision
from tuneval.runs import RunDir, machine
from tuneval.tasks import get_task, load_rows
from tuneval.tasks.mixtures import build_examples
from tuneval.train.trainer import train

DEFAULT_MINUTES = 20.0
METHODS = ("full", "lora")
TARGET_EVAL_EXAMPLES = 200  # ROUGE-1's 95% interval is about +-0.02 at 200 examples, +-0.04 at 32 (issue 17)
MIN_EVAL_EXAMPLES = 20  # fewer and the intervals say nothing: a budget that cannot hold them is refused
MIN_TRAIN_SHARE = 0.4  # evaluation gives up examples below 200 before training gets less of the time than this
MIN_TRAIN_EXAMPLES = 8  # one optimizer step
PROBE_STEPS = 6  # optimizer steps run per method to time it; tokens/s over the steps after PROBE_WARMUP
PROBE_WARMUP = 3  # steps that warm up kernels and the allocator. With tcmalloc, full fine-tuning's steps 2-4 ran at
# 397-427 tokens/s and steps 4-9 at 433-463; a 20-minute demo timed on steps 2-4 planned 372 and trained at 452
# (17.1 min against 20.0 predicted). Steps 4-6 gave 448 in the same test (bench/README-demo.md).
PROBE_EVAL_EXAMPLES = 16  # validation examples generated to time scoring: one batch
LENGTH_SAMPLE = 4096  # training examples tokenised to know the planned examples' lengths (a prefix of the draw)
EVAL_SETTINGS = {"batch_size": 64, "max_new_tokens": 64}
# batch 64: each prompt is prefilled alone whatever the batch, so the batch sets how many rows decode together;
# 64 rows kept the decode's matmuls busier than 16 (bench/results/generate_throughput_cpu.md, issue 34).
# How the trained results are scored: LoRA merged into its base first (`tuneval eval --merge`: unmerged,
# all-linear LoRA generated 1.5x slower than full on the same examples), and no validation loss (not in the
# table; a second pass over the examples that cost 10% of the 20 minutes).
EVAL_RECIPE = {"merge": True, "loss": False}

# The demo's recipes: what differs from the recipe defaults (config.py), in one place.
# Evidence (issue 17, on DialogSum dialogues held out from training): the previous LoRA (r 32 on q/v, no warmup)
# reached ROUGE-1 0.257 against full's 0.320 after 96 examples; LoRA on every linear layer with r 16, alpha 32,
# lr 1e-3, 5% warmup and linear decay reached 0.388 after 700 examples (12 min on the AMX host), the recipe
# there that learns fastest per example. Full fine-tuning: lr 3e-4, which reached ROUGE-1 0.4034 on validation
# 0-199 after the 450 examples where lr 1e-4 reached 0.3878 (and lr 2e-4 with batch 4, 0.3975); LoRA at lr 2e-3
# gave 0.3922 against 0.3943 at 1e-3 (bench/README-demo.md). rsLoRA (scale alpha/sqrt(r) = 8 instead of
# alpha/r = 2): +0.0052 ROUGE-1 at 450 examples on the AMX Xeon (not significant), +0.0159 [+0.0013, +0.0313]
# at 271 on a Zen 4 EPYC, paired on validation 0-199 (significant; BLEU +1.69 [+0.45, +3.18]).
# Both train one epoch over the planned examples with the same warmup and schedule, so the comparison is
# about the method; no mid-run checkpoints (the result is saved at the end), whose optimizer state (1.6 GB
# for full) would take budget time the plan cannot see.
_SCHEDULE = {"num_train_epochs": 1, "warmup_steps": 0.05, "lr_scheduler_type": "linear", "save_strategy": "no"}
METHOD_SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"train": {**_SCHEDULE, "learning_rate": 3e-4}},
    "lora": {"train": {**_SCHEDULE, "learning_rate": 1e-3},
             "lora": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": ["all-linear"],
                      "use_rslora": True}},
}


# Fewer planned optimizer steps than this and the demo trains without warmup. 5% of a short run rounds up
# to one warmup step, and transformers' linear warmup runs its first step at learning rate 0: `--train-examples 8`
# planned a single step, which then trained nothing (every lora_B stayed 0, full's weights did not move; issue
# 34). Below 20 steps that one step is a share of the run the schedule cannot spare; from 20 on, 5% warms up
# as before (the recipes above were chosen on runs of 56 steps and more).
MIN_WARMUP_STEPS = 20


def planned_steps(recipe: Recipe) -> int:
    """Optimizer steps the recipe will take: `max_steps`, else one epoch over its examples at about
    per_device_train_batch_size examples a step and process (packed rows keep that count: data/packing.py)."""
    t = recipe.train
    if t.max_steps > 0:
        return t.max_steps
    per_step = t.per_device_train_batch_size * t.gradient_accumulation_steps * world()[1]
    return max(1, math.ceil((recipe.data.train_examples or 0) / per_step))


def demo_recipe(model: str, method: str, *, out_dir: str | Path, data_dir: str | None, precision: str, seed: int,
                train_examples: int, eval_examples: int, max_steps: int | None = None) -> Recipe:
    """The recipe the demo trains `method` with; `max_steps` makes it a timing probe (no evaluation after)."""
    settings = copy.deepcopy(METHOD_SETTINGS[method])
    if max_steps is not None:
        settings["train"]["max_steps"] = max_steps
    raw = {"model": model, "task": "dialogsum", "method": method, "seed": seed, "output_dir": str(out_dir),
           "precision": precision, "data": {"data_dir": data_dir, "train_examples": train_examples},
           "eval": {"limit": eval_examples, **EVAL_SETTINGS, **EVAL_RECIPE, "after_training": max_steps is None},
           **settings}
    recipe = recipe_from_dict(raw, f"demo:{method}")
    if planned_steps(recipe) < MIN_WARMUP_STEPS:
        recipe.train.warmup_steps = 0.0
    return recipe


# ---- what the time goes on, and the plan --------------------------------------------------------


@dataclass
class Costs:
    """What the demo's phases cost on this machine: measured (measure_costs), or given (tests)."""

    spent_seconds: float  # measuring, the base model's load included: already part of the budget
    reload_seconds: float  # loading a trained result to score it (measured: loading the base model)
    generate_seconds: float  # per validation example and model: greedy generation, ROUGE/BLEU, bootstrap
    train_overhead_seconds: dict[str, float]  # per method, all but the steady steps: load, set-up, warm-up, save
    train_tokens_per_second: dict[str, float]  # per method, after PROBE_WARMUP warm-up steps
    tokenize_seconds: float  # per training example
    example_tokens: list[int]  # the training examples' lengths in the order the demo draws them (a prefix)
    train_rows: int  # the training split: one epoch at most
    eval_rows: int  # the validation split
    original_cached: bool = False  # the original's scores are in the cache (evaluate/score_cache.py): not generated

    @property
    def models_generating(self) -> int:
        """Models whose scoring costs time: full and LoRA, and the original unless it is cached."""
        return len(METHODS) + (not self.original_cached)

    def train_tokens(self, n: int) -> float:
        """Tokens in the first n examples drawn; past the measured prefix, at its mean length."""
        known = self.example_tokens[:n]
        mean = sum(self.example_tokens) / max(len(self.example_tokens), 1)
        return sum(known) + max(0, n - len(known)) * mean

    def train_seconds(self, method: str, n: int) -> float:
        return self.train_tokens(n) / self.train_tokens_per_second[method] + n * self.tokenize_seconds

    def phases(self, train_examples: int, eval_examples: int) -> dict[str, float]:
        """Predicted seconds per phase, in the order the demo runs them."""
        out = {"measure": self.spent_seconds,
               "original": 0.0 if self.original_cached else eval_examples * self.generate_seconds}
        for m in METHODS:
            out[m] = (self.train_overhead_seconds[m] + self.train_seconds(m, train_examples) + self.reload_seconds
                      + eval_examples * self.generate_seconds)
        return out

    def summary(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "example_tokens"}
        n = len(self.example_tokens)
        return {**d, "mean_example_tokens": round(sum(self.example_tokens) / n, 1) if n else None,
                "eval_seconds_per_example": self.generate_seconds}


@dataclass
class Plan:
    """How many examples the demo trains (per method, the same for both) and scores (per model)."""

    train_examples: int
    eval_examples: int
    minutes: float | None = None  # None: both counts were given, nothing planned
    planned: list[str] = field(default_factory=list)  # the counts the budget decided: "train", "eval"
    predicted: dict[str, float] = field(default_factory=dict)  # seconds per phase
    notes: list[str] = field(default_factory=list)
    costs: Costs | None = None

    @property
    def predicted_seconds(self) -> float | None:
        return sum(self.predicted.values()) if self.predicted else None

    def to_json(self) -> dict[str, Any]:
        return _rounded({
            "minutes": self.minutes, "planned": self.planned, "train_examples": self.train_examples,
            "eval_examples": self.eval_examples, "split": "the same training examples for full and LoRA",
            "predicted_seconds": {**self.predicted, "total": self.predicted_seconds} if self.predicted else None,
            "measured": self.costs.summary() if self.costs else None, "notes": self.notes})


def _rounded(value: Any) -> Any:
    """Timings to 4 decimals: what a clock measures to, not what a float prints."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return [_rounded(v) for v in value] if isinstance(value, list) else value


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _fit_train(costs: Costs, seconds: float) -> int:
    """The most training examples (one epoch at most) both methods can train on in `seconds`."""
    lo, hi = 0, costs.train_rows
    while lo < hi:  # the cost grows with the count: bisect
        mid = (lo + hi + 1) // 2
        if sum(costs.train_seconds(m, mid) for m in METHODS) <= seconds:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _unit_costs(costs: Costs) -> tuple[float, float]:
    """(seconds whatever the counts, seconds per validation example): measuring, and each method's load,
    set-up, save and reload; three models generate per example (two where the original's are cached)."""
    fixed = sum(costs.phases(0, 0).values())
    return fixed, sum(costs.phases(0, 1).values()) - fixed


def _minimum_minutes(costs: Costs, train_examples: int | None = None, eval_examples: int | None = None) -> float:
    """The least budget plan_budget accepts on this machine with these counts (to a tenth of a minute, up)."""
    fixed, per_eval = _unit_costs(costs)
    evals = (eval_examples or min(MIN_EVAL_EXAMPLES, costs.eval_rows)) * per_eval
    train = sum(costs.train_seconds(m, train_examples or MIN_TRAIN_EXAMPLES) for m in METHODS)
    both = train_examples is None and eval_examples is None  # only then does training keep its share
    return math.ceil((fixed + max(evals / (1 - MIN_TRAIN_SHARE) if both else 0, evals + train)) / 6) / 10


def plan_budget(costs: Costs, minutes: float, *, train_examples: int | None = None,
                eval_examples: int | None = None) -> Plan:
    """The counts that fill `minutes` on this machine: 200 evaluation examples where the budget also
    leaves MIN_TRAIN_SHARE of its variable part to training (fewer, and the plan says so, where not),
    then as many training examples as the rest holds. A count given is kept and only the other planned."""
    check_minutes(minutes)
    fixed, per_eval = _unit_costs(costs)
    rest = minutes * 60 - fixed
    least = _minimum_minutes(costs, train_examples, eval_examples)
    if rest <= 0:
        raise TunevalError(f"--minutes {minutes:g} is too little on this machine: measuring, loading and saving alone "
                           f"take {fixed / 60:.1f} min; give --minutes {least:g} or more")
    notes, planned = [], []
    n = eval_examples
    if n is None:
        planned.append("eval")
        wanted = min(TARGET_EVAL_EXAMPLES, costs.eval_rows)
        if train_examples is None:
            room, beside = (1 - MIN_TRAIN_SHARE) * rest, f"leave {MIN_TRAIN_SHARE:.0%} of the time to training"
        else:
            room = rest - sum(costs.train_seconds(m, train_examples) for m in METHODS)
            beside = f"train {train_examples} examples per method"
        n = min(wanted, int(max(room, 0) // per_eval))
        if n < min(MIN_EVAL_EXAMPLES, wanted):
            raise TunevalError(f"--minutes {minutes:g} is too little on this machine to evaluate "
                               f"{min(MIN_EVAL_EXAMPLES, wanted)} examples per model and {beside}; "
                               f"give --minutes {least:g} or more")
        if n < wanted:
            notes.append(f"evaluating {n} examples, not {wanted}: {costs.models_generating} models x {wanted} would take "
                         f"{wanted * per_eval / 60:.1f} min of the {rest / 60:.1f} min left after set-up, "
                         f"too much to {beside}")
    t = train_examples
    if t is None:
        planned.append("train")
        t = _fit_train(costs, rest - n * per_eval)
        if t < MIN_TRAIN_EXAMPLES:
            raise TunevalError(f"--minutes {minutes:g} is too little on this machine to train {MIN_TRAIN_EXAMPLES} "
                               f"examples per method after evaluating {n}; give --minutes {least:g} or more")
        if t == costs.train_rows and sum(costs.phases(t, n).values()) < 0.95 * minutes * 60:
            notes.append(f"the whole training split ({t} examples, one epoch) fits: the demo will finish early")
    predicted = costs.phases(t, n)
    return Plan(t, n, minutes, planned, predicted, notes, costs)


def replan(plan: Plan, scored_seconds: float, cached: bool = False) -> Plan:
    """The plan again once the original row is scored: its `plan.eval_examples` took `scored_seconds`, a
    better measure of scoring than the probe's one batch of 16 (on a Zen 4 EPYC whose step times swung
    by 40% the probe said 0.88 s per example and the 200 took 0.62, so that demo ended 15% early). The
    training count is planned again for the time the real scoring rate leaves; the evaluation count
    stays, since every row must score the same examples. Unchanged where training was not planned, or
    where the new plan would be refused (the printed one then stands). `cached`: the original's scores came
    from the cache, and `scored_seconds` is what they took when they were computed on this machine."""
    if "train" not in plan.planned or plan.costs is None or plan.eval_examples == 0 or scored_seconds <= 0:
        return plan
    costs = replace(plan.costs, generate_seconds=scored_seconds / plan.eval_examples, original_cached=cached)
    try:
        new = plan_budget(costs, plan.minutes, eval_examples=plan.eval_examples)
    except TunevalError:
        return plan
    how = "as the cache recorded scoring the original" if cached else "after scoring the original"
    note = (f"re-planned {how} ({costs.generate_seconds:.2f} s per example, not "
            f"{plan.costs.generate_seconds:.2f}): {new.train_examples} training examples per method, not "
            f"{plan.train_examples}")
    return replace(new, planned=plan.planned, notes=[*plan.notes, note])


def describe(plan: Plan, *, precision: str) -> str:
    """The plan as printed before the demo starts (and kept in comparison.md)."""
    n, t = plan.eval_examples, plan.train_examples
    if plan.costs is None:
        return (f"Fixed: {t} training examples per method (the same for full and LoRA), {n} validation examples "
                f"(rows 0-{n - 1}) per model; machine {machine()}, precision {precision}.")
    c, p = plan.costs, plan.predicted
    speeds = ", ".join(f"{m} {c.train_tokens_per_second[m]:.0f}" for m in METHODS)
    mean = sum(c.example_tokens) / max(len(c.example_tokens), 1)
    lines = [
        f"Plan for {plan.minutes:g} minutes on {machine()}, precision {precision}:",
        f"- measured: training {speeds} tokens/s (after {PROBE_WARMUP} warm-up steps; {mean:.0f} tokens per example); "
        f"{c.generate_seconds:.2f} s per validation example scored (generation, ROUGE, BLEU); loading, set-up and saving "
        + ", ".join(f"{m} {c.train_overhead_seconds[m] + c.reload_seconds:.0f} s" for m in METHODS)
        + f"; measuring took {_duration(c.spent_seconds)}",
        f"- train: {t} examples per method{' (planned)' if 'train' in plan.planned else ''}, the same for full and "
        "LoRA, one epoch: " + ", ".join(f"{m} ~{_duration(c.train_seconds(m, t))}" for m in METHODS),
        f"- evaluate: {n} validation examples (rows 0-{n - 1}) per model{' (planned)' if 'eval' in plan.planned else ''}"
        + ("; the original's scores come from the cache" if c.original_cached else ""),
        f"- predicted: {_duration(plan.predicted_seconds)} in all ("
        + ", ".join(f"{k} {_duration(v)}" for k, v in p.items()) + ")",
        *(f"- note: {note}" for note in plan.notes),
    ]
    return "\n".join(lines)


# ---- measuring --------------------------------------------------------------------------------


class StepClock(TrainerCallback):
    """When each optimizer step ended and how many real tokens had been trained on by then."""

    def __init__(self):
        self.marks: list[tuple[float, int]] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.marks.append((time.perf_counter(), int(state.num_input_tokens_seen)))

    def tokens_per_second(self, warmup: int = PROBE_WARMUP) -> float:
        """Over the steps after the first `warmup` (which warm up kernels and the allocator)."""
        if len(self.marks) <= warmup or self.marks[-1][0] <= self.marks[warmup - 1][0] \
                or self.marks[-1][1] <= self.marks[warmup - 1][1]:
            raise TunevalError(f"timing the training steps needs more than {warmup} of them, got {len(self.marks)}")
        (t0, n0), (t1, n1) = self.marks[warmup - 1], self.marks[-1]
        return (n1 - n0) / (t1 - t0)


def _time_training(recipe: Recipe) -> tuple[float, float]:
    """(tokens/s after the warm-up step, seconds spent on all but the steady steps) of a short run."""
    clock = StepClock()
    start = time.perf_counter()
    train(recipe, overwrite=True, callbacks=[clock])
    wall = time.perf_counter() - start
    speed = clock.tokens_per_second()
    return speed, max(0.0, wall - clock.marks[-1][1] / speed)


def measure_costs(*, model: str, loaded, net, data_dir: str | None, precision: str, seed: int, started: float,
                  load_seconds: float, console: Console) -> Costs:
    """Times what the demo spends its time on, here, with the real model and data (see the module's doc).
    `loaded`/`net`: the base model, already loaded (in `load_seconds`, counted from `started`) and kept
    to score the original row."""
    task = get_task("dialogsum")
    console.print(f"measuring this machine: {PROBE_STEPS} steps of each method, {PROBE_EVAL_EXAMPLES} generations ...")
    with tempfile.TemporaryDirectory(prefix="tuneval-demo-") as tmp:
        recipes = {m: demo_recipe(model, m, out_dir=Path(tmp) / m, data_dir=data_dir, precision=precision, seed=seed,
                                  train_examples=8 * (PROBE_STEPS + 1), eval_examples=PROBE_EVAL_EXAMPLES,
                                  max_steps=PROBE_STEPS) for m in METHODS}
        timed = {m: _time_training(recipes[m]) for m in METHODS}
        # Generation is timed after training: as the first heavy work of the process it measured 0.47 s per
        # example where the 200 examples then took 0.39 (the same warm-up as the first training steps).
        start = time.perf_counter()
        probe = run_task(net, loaded.tokenizer, loaded.arch, task, split="validation", limit=PROBE_EVAL_EXAMPLES,
                         template=task.template_index(None), data_dir=data_dir, label="timing", **EVAL_SETTINGS)
        generate = (time.perf_counter() - start) / probe["num_examples"]
        start = time.perf_counter()
        lengths = demo_recipe(model, "lora", out_dir=Path(tmp) / "lengths", data_dir=data_dir, precision=precision,
                              seed=seed, train_examples=LENGTH_SAMPLE, eval_examples=1)
        examples, _ = build_examples(lengths, loaded)
        tokenize = (time.perf_counter() - start) / len(examples)
    return Costs(spent_seconds=time.perf_counter() - started, reload_seconds=load_seconds,
                 generate_seconds=generate,
                 train_overhead_seconds={m: timed[m][1] for m in METHODS},
                 train_tokens_per_second={m: timed[m][0] for m in METHODS}, tokenize_seconds=tokenize,
                 example_tokens=[len(e["input_ids"]) for e in examples],
                 train_rows=len(load_rows(task, "train", data_dir)), eval_rows=len(load_rows(task, "validation", data_dir)))


def _from_main(value: Any) -> Any:
    """Rank 0's `value` on every process (itself without a process group)."""
    if world()[1] > 1:
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return value


def _agree(plan: Plan | str) -> Plan:
    """Every process runs rank 0's plan (or stops on its refusal, a message): they measured apart, and
    must train and score the same examples."""
    plan = _from_main(plan)
    if isinstance(plan, str):
        raise TunevalError(plan)
    return plan


# ---- the original's scores, cached ------------------------------------------------------------


@dataclass
class Original:
    """The original row's entry in the score cache (evaluate/score_cache.py) for its first `n` validation
    examples: `key` None where the model cannot be named (a hub id without a commit: nothing cached), `hit`
    what the cache holds for the key (None: nothing yet, or an entry that could not be read)."""

    n: int
    key: dict[str, Any] | None
    hit: score_cache.Hit | None


def original_settings(model: str, task, precision: str, tokenizer) -> dict[str, Any]:
    """How the original row is scored (run_task's arguments beside the model, data and count), all of
    it in the cache key; run_task's other defaults are code, hashed as such."""
    return {"task": task.name, "split": "validation", "template": task.template_index(None), "label": "original",
            "meta": {"model": model, "adapter": None, "precision": precision}, "report": True, **EVAL_SETTINGS,
            "tokenizer_chat_template": getattr(tokenizer, "chat_template", None)}


def find_original(model: str, base, task, n: int, *, data_dir: str | None, precision: str) -> Original:
    """Rank 0 looks the original's scores up (hashing the model's files once per process); every
    process gets its answer, so all of them score the original, or none."""
    found = None
    if is_main():
        hub = getattr(base.model.config, "_commit_hash", None)
        identity = score_cache.model_identity(model, base.path, hub)
        key = None if identity is None else score_cache.score_key(
            model=identity, rows=load_rows(task, "validation", data_dir)[:n], precision=precision, dtype=base.dtype,
            settings=original_settings(model, task, precision, base.tokenizer), machine=machine())
        found = Original(n, key, None if key is None else score_cache.lookup(key))
    return _from_main(found)


def score_original(model: str, base, net, task, found: Original, *, data_dir: str | None, precision: str,
                   out: Path) -> dict[str, Any]:
    """The original row: from the cache where `found` holds it (written to eval-original/ as if scored
    now), else scored as `tuneval eval --task dialogsum` scores it and stored for next time. Its
    `cache` field says which, and where the entry is."""
    where = DemoDir(out).original
    if found.hit is not None:
        row = {**found.hit.results, "cache": {"hit": True, "file": str(found.hit.file), "created": found.hit.created}}
        if is_main():
            where.write(row, eval_report(row))
        return row
    settings = {k: v for k, v in original_settings(model, task, precision, base.tokenizer).items()
                if k not in ("task", "tokenizer_chat_template")}
    row = run_task(net, base.tokenizer, base.arch, task, limit=found.n, data_dir=data_dir,
                   out_file=where.results_file, **settings)
    cache: dict[str, Any] = {"hit": False, "file": None}
    if found.key is not None and is_main():
        try:
            cache["file"] = str(score_cache.store(found.key, row))
        except OSError as e:  # a read-only or full $TUNEVAL_HOME costs the next demo its cache, not this one its run
            cache["error"] = f"not cached: {e}"
    return {**row, "cache": cache}


def cache_note(row: dict[str, Any]) -> str:
    """What the printed line says of the original's scores: read from the cache, or scored now."""
    cache = row.get("cache") or {}
    if cache.get("hit"):
        return f" (from the cache, scored {cache.get('created') or 'earlier'} on this machine: {cache['file']})"
    return f" (scored now; cached in {cache['file']})" if cache.get("file") else ""


# ---- the demo ---------------------------------------------------------------------------------


def _train_row(model: str, method: str, plan: Plan, *, out: Path, data_dir: str | None, precision: str, seed: int,
               main: bool) -> dict[str, Any] | None:
    """Train `method` as planned; its row is what train() saved, the result reloaded and scored as
    `tuneval eval --adapter RUN` scores it (RUN/eval/results.json). None on ranks other than 0."""
    recipe = demo_recipe(model, method, out_dir=out / method, data_dir=data_dir, precision=precision, seed=seed,
                         train_examples=plan.train_examples, eval_examples=plan.eval_examples)
    metrics, net, _ = train(recipe, overwrite=True)
    del net
    if not main:  # rank 0 wrote RUN/eval/results.json
        return None
    result = read_json(EvalDir(RunDir(recipe.run_dir).eval_dir).results_file)
    result["method"], result["train"] = method, metrics
    return result


def _plan(model: str, *, loaded, net, data_dir, precision, seed, started, load_seconds, minutes, train_examples,
          eval_examples, cached_n: int | None, console: Console) -> Plan:
    """`cached_n`: the count of validation examples whose original scores the cache holds (None: none);
    planned for that count, the original costs no time, and the budget goes to training."""
    if train_examples is not None and eval_examples is not None:
        return Plan(train_examples, eval_examples)
    costs = measure_costs(model=model, loaded=loaded, net=net, data_dir=data_dir, precision=precision, seed=seed,
                          started=started, load_seconds=load_seconds, console=console)
    try:
        plan: Plan | str = plan_budget(replace(costs, original_cached=cached_n is not None), minutes,
                                       train_examples=train_examples, eval_examples=eval_examples)
        if cached_n is not None and plan.eval_examples != cached_n:  # another count: the original is scored
            plan = plan_budget(costs, minutes, train_examples=train_examples, eval_examples=eval_examples)
    except TunevalError as e:  # passed on, so that no process waits for a plan that never comes
        plan = str(e)
    return _agree(plan)


def _original_row(model: str, base, net, task, plan: Plan, found: Original, *, data_dir, precision, out: Path,
                  console: Console) -> tuple[dict[str, Any], Plan]:
    """The original row (from the cache or scored now), printed; and the plan again for what its scoring
    took (replan): the time recorded with the cached entry, measured on this machine, where it was cached."""
    mark = time.perf_counter()
    if plan.eval_examples != found.n:
        found = find_original(model, base, task, plan.eval_examples, data_dir=data_dir, precision=precision)
    row = score_original(model, base, net, task, found, data_dir=data_dir, precision=precision, out=out)
    row["method"] = "none"
    seconds = time.perf_counter() - mark
    console.print(f"original: rouge1={row['metrics']['rouge1']:.4f}{cache_note(row)}", highlight=False)
    cached = found.hit is not None
    if cached:
        seconds = float((row.get("stats") or {}).get("seconds") or 0.0)
    before, plan = plan.train_examples, _agree(replan(plan, seconds, cached))
    if plan.train_examples != before:
        console.print(f"{plan.notes[-1]} (predicted {_duration(plan.predicted_seconds)} in all)", highlight=False)
    return row, plan


def run_demo(*, model: str, data_dir: str | None, out: Path, console: Console, train_examples: int | None = None,
             eval_examples: int | None = None, minutes: float = DEFAULT_MINUTES, seed: int = 42,
             precision: str = "auto") -> dict[str, Any]:
    """Each model is scored as `tuneval eval` would score it: trained results are reloaded from their
    run directories at the demo's precision, so every row can be reproduced from what was saved.

    `minutes` plans whichever of `train_examples`/`eval_examples` is not given (module doc).
    Under torchrun / accelerate launch every rank trains and scores its share of the examples
    (evaluate/distributed.py); rank 0 alone prints and writes the comparison, and the other ranks
    return the rows without it."""
    started = time.perf_counter()
    check_minutes(minutes)
    main = is_main()
    if not main:
        console = Console(quiet=True)
    precision = resolve_precision(precision)
    task = get_task("dialogsum")
    base, net = load_result(model, precision=precision)
    load_seconds = time.perf_counter() - started
    wanted = eval_examples or min(TARGET_EVAL_EXAMPLES, len(load_rows(task, "validation", data_dir)))
    found = find_original(model, base, task, wanted, data_dir=data_dir, precision=precision)
    plan = _plan(model, loaded=base, net=net, data_dir=data_dir, precision=precision, seed=seed, started=started,
                 load_seconds=load_seconds, minutes=minutes, train_examples=train_examples,
                 eval_examples=eval_examples, cached_n=found.n if found.hit else None, console=console)
    console.rule(f"[bold]tuneval demo[/bold]: {model} on DialogSum, {plan.train_examples} training / "
                 f"{plan.eval_examples} eval examples")
    console.print(describe(plan, precision=precision), highlight=False)
    wall = {"measure": time.perf_counter() - started}

    mark = time.perf_counter()
    # Scored as `tuneval eval --task dialogsum` scores it (api.simple_evaluate), as the trained runs' eval/ are.
    original, plan = _original_row(model, base, net, task, plan, found, data_dir=data_dir, precision=precision,
                                   out=out, console=console)
    rows = [original]
    del base, net
    wall["original"] = time.perf_counter() - mark

    for method in METHODS:
        mark = time.perf_counter()
        row = _train_row(model, method, plan, out=out, data_dir=data_dir, precision=precision, seed=seed, main=main)
        wall[method] = time.perf_counter() - mark
        if row is not None:
            rows.append(row)
            console.print(f"{method}: rouge1={row['metrics']['rouge1']:.4f}")
    if not main:
        return {"rows": rows, "report": None, "plan": plan}
    return _write_comparison(rows, plan, wall, started, model=model, out=out, seed=seed, precision=precision,
                             console=console)


def _write_comparison(rows: list[dict[str, Any]], plan: Plan, wall: dict[str, float], started: float, *, model: str,
                      out: Path, seed: int, precision: str, console: Console) -> dict[str, Any]:
    """comparison.md and comparison.json, and the table printed: scores with intervals, paired differences."""
    mark = time.perf_counter()
    paired = paired_comparisons(rows, iters=1000, seed=SEED)
    table = comparison_table(rows, paired)
    samples = samples_table(rows, n=3)
    wall["compare"] = time.perf_counter() - mark
    wall["total"] = time.perf_counter() - started
    n, t = plan.eval_examples, plan.train_examples
    timing = f"Took {_duration(wall['total'])}" + (
        f" (budget {plan.minutes:g} min, predicted {_duration(plan.predicted_seconds)})" if plan.predicted else "")
    header = (f"Model `{model}`, task DialogSum (validation, first {n} examples, template "
              f"{rows[0]['prompt']['template']}), {t} training examples per method, seed {seed}, "
              f"precision {precision}. Machine: {machine()}. {timing}.")
    if (rows[0].get("cache") or {}).get("hit"):
        header += (f" The original model's scores come from the cache (scored {rows[0]['cache'].get('created')} on "
                   "this machine, with the same model files, examples, prompt, precision, settings and scoring code).")
    plan_text = describe(plan, precision=precision)
    report = f"# tuneval demo\n\n{header}\n\n{table}\n\n## Plan\n\n{plan_text}\n\n## Side-by-side samples\n\n{samples}\n"
    where = DemoDir(out)
    where.write({
        "machine": machine(), "model": model, "precision": precision, "train_examples": t, "eval_examples": n,
        "plan": plan.to_json(), "wall_seconds": {k: round(v, 1) for k, v in wall.items()},
        "bootstrap": {"iterations": 1000, "seed": SEED, "level": 0.95}, "paired": paired,
        "rows": [{k: v for k, v in r.items() if k != "examples"} for r in rows],
    }, report)
    console.print(Markdown(f"{header}\n\n{table}"))
    console.print(Markdown("## Side-by-side samples\n\n" + samples))
    console.print(f"\nsaved: {where.md_file}, {where.json_file}")
    return {"rows": rows, "report": report, "plan": plan}
