"""The recipe: one typed, validated source of truth for a run.

A recipe is YAML; `--set key=value` overrides any key (dotted for sections). Unknown keys
are errors naming the file and the key, because a typo like `lora.rank` silently falling
back to a default is the worst kind of bug in an experiment. The resolved recipe is saved
in every run directory, so a run can be repeated from it and its seed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tuneval.errors import TunevalError


@dataclass
class ReplayConfig:
    """Mix a fraction of general instruction data into a run (against forgetting)."""

    task: str = "self_instruct"
    fraction: float = 0.1  # share of the run's training examples drawn from this task
    max_examples: int | None = None  # the task's pool: first N of its seeded shuffle; None = all


@dataclass
class DataConfig:
    data_dir: str | None = None  # None: $TUNEVAL_DATA_DIR, else the task's hub dataset
    train_split: str = "train"
    train_examples: int | None = None  # first N of a seeded shuffle; None = all
    max_seq_len: int = 1024  # prompt + response tokens; the longest input field is cut to fit
    max_target_tokens: int = 128
    chat_template: bool = True  # wrap prompts in the tokenizer's chat template when it has one
    template: int | None = None  # None: draw one template per example (seeded); N: always template N
    holdout_templates: list[int] = field(default_factory=list)  # phrasings of `task` never trained on
    replay: ReplayConfig | None = None  # e.g. {task: self_instruct, fraction: 0.1}


# train.logits_to_keep: "labels" (lm_head + loss only where a next-token label is) or "all".
LOGITS_TO_KEEP = ("labels", "all")


def check_logits_to_keep(value: str, where: str = "train.logits_to_keep") -> str:
    """One check for the recipe (at load) and for FastCausalTrainer built directly from code."""
    if value not in LOGITS_TO_KEEP:
        raise TunevalError(f"{where}: expected one of {', '.join(LOGITS_TO_KEEP)}, got {value!r}")
    return value


@dataclass
class TrainConfig:
    """Names follow transformers.TrainingArguments."""

    learning_rate: float = 2e-4
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    warmup_steps: float = 0.0  # an int is steps, a float < 1 a share of the run
    weight_decay: float = 0.0
    lr_scheduler_type: str = "linear"
    logging_steps: int = 5
    save_steps: int = 50
    save_total_limit: int = 2
    bf16: str = "auto"  # auto: on where the CPU has native bf16 (AVX512-BF16/AMX) or on CUDA
    group_by_length: bool = True
    gradient_checkpointing: bool = False
    # Speed levers (train/loss.py; measured in bench/README-speed.md). Each is exact; turn one off to compare.
    logits_to_keep: str = "labels"  # one of LOGITS_TO_KEEP
    drop_padding_mask: bool = True  # right padding is invisible to causal attention: let SDPA run is_causal
    pad_to_multiple_of: int | None = None  # pad each batch's length up to a multiple (fewer shapes, more pads)


@dataclass
class EvalConfig:
    split: str = "validation"
    limit: int | None = 50  # the first N examples of the split, always the same ones
    batch_size: int = 16
    max_new_tokens: int = 64
    template: int | None = None  # None: the task's fixed evaluation template


@dataclass
class MixtureTask:
    task: str = ""
    weight: float = 1.0  # strategy rates: the task's rate; proportional/temperature: multiplies min(n, cap)
    max_examples: int | None = None  # the task's pool: first N of its seeded shuffle; None = all
    templates: list[int] | None = None  # phrasings to train on; None = all not held out
    holdout_templates: list[int] = field(default_factory=list)  # phrasings never trained on
    split: str | None = None  # None: data.train_split


MIXING_STRATEGIES = ("rates", "proportional", "temperature")


@dataclass
class MixtureConfig:
    """Several tasks in one run, mixed as seqio/FLAN mix them (see data/mixtures.py)."""

    strategy: str = "proportional"  # rates | proportional (examples-proportional) | temperature
    cap: int | None = None  # FLAN's per-task cap K (seqio's `maximum`): rate ∝ min(n, K)
    temperature: float = 1.0  # strategy temperature: rate ∝ min(n, K) ** (1 / T)
    tasks: list[MixtureTask] = field(default_factory=list)


@dataclass
class Recipe:
    model: str = "smollm2-135m-instruct"
    task: str = "dialogsum"
    method: str = "lora"
    seed: int = 42
    output_dir: str = "runs/{task}-{method}"
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    mixture: MixtureConfig | None = None  # several tasks; `task` is then the primary one (evaluated)
    # The chosen method's options, typed by the method's own settings class (see methods/).
    method_args: Any = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("method_args")
        # Multi-task keys only when used: a single-task run's config.yaml reads as it did before them.
        for section, key, unset in ((d, "mixture", None), (d["data"], "replay", None), (d["data"], "holdout_templates", [])):
            if section.get(key) == unset:
                section.pop(key)
        if self.method_args is not None and dataclasses.fields(self.method_args):
            d[self.method] = dataclasses.asdict(self.method_args)
        return d

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir.format(task=self.task, method=self.method, model=Path(self.model).name))


SECTIONS = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type, or raise naming `where`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except TunevalError as e:
                errors.append(str(e))
        raise TunevalError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise TunevalError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item, where) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        raise TunevalError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TunevalError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise TunevalError(f"{where}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise TunevalError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)  # YAML reads 1e-3 as a string
        except (TypeError, ValueError):
            raise TunevalError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise TunevalError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def _typed(value: Any, tp: Any, source: str, name: str) -> Any:
    """Like _coerce, but nested sections (dataclasses, optional or in lists) get their keys checked too."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        rest = [a for a in args if a is not type(None)]
        tp = rest[0] if len(rest) == 1 else tp
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, source, f"{name}.")
    if typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
        if not isinstance(value, list):
            raise TunevalError(f"{source}: '{name}' must be a list, got {value!r}")
        return [build_dataclass(typing.get_args(tp)[0], v, source, f"{name}[{i}].") for i, v in enumerate(value)]
    return _coerce(value, tp, f"{source}: '{name}'")


def build_dataclass(cls: type, values: dict[str, Any], source: str, prefix: str = "") -> Any:
    """Instantiate `cls` from a mapping, refusing unknown keys with the file and key named."""
    if not isinstance(values, dict):
        raise TunevalError(f"{source}: '{prefix.rstrip('.') or 'recipe'}' must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise TunevalError(
                f"{source}: unknown key '{prefix}{key}' (known: {', '.join(sorted(known)) or 'none'})"
            )
        kwargs[key] = _typed(value, hints[key], source, f"{prefix}{key}")
    return cls(**kwargs)


def recipe_from_dict(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    from tuneval.methods import get_method  # the registry knows each method's options

    raw = dict(raw or {})
    top = {f.name for f in dataclasses.fields(Recipe)} - {"method_args"} - set(SECTIONS)
    method = str(raw.get("method", Recipe.method))
    spec = get_method(method)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS:
            kwargs[key] = build_dataclass(SECTIONS[key], value or {}, source, f"{key}.")
        elif key == spec.name:
            kwargs["method_args"] = build_dataclass(spec.settings, value or {}, source, f"{key}.")
        elif key in top:
            kwargs[key] = _typed(value, typing.get_type_hints(Recipe)[key], source, key)
        else:
            hint = f" (options of method '{key}' need method: {key})" if _is_method(key) else ""
            allowed = sorted(top | set(SECTIONS) | {spec.name})
            raise TunevalError(f"{source}: unknown key '{key}'{hint} (known: {', '.join(allowed)})")
    kwargs.setdefault("method_args", spec.settings())
    if kwargs.get("mixture") is not None:
        _check_mixture(kwargs["mixture"], source)
        kwargs.setdefault("task", kwargs["mixture"].tasks[0].task)  # the primary task: evaluated, names the run
        names = [t.task for t in kwargs["mixture"].tasks]
        if kwargs["task"] not in names:
            raise TunevalError(f"{source}: task '{kwargs['task']}' is not in mixture.tasks ({', '.join(names)})")
    train = kwargs.get("train")
    if train is not None:  # checked here, not when training starts: a bad value fails before the model loads
        check_logits_to_keep(train.logits_to_keep, f"{source}: train.logits_to_keep")
        if train.pad_to_multiple_of is not None and train.pad_to_multiple_of < 1:
            raise TunevalError(f"{source}: train.pad_to_multiple_of: expected a positive integer or null, "
                               f"got {train.pad_to_multiple_of}")
    replay = kwargs["data"].replay if "data" in kwargs else None
    if replay is not None and not 0 < replay.fraction < 1:
        raise TunevalError(f"{source}: 'data.replay.fraction' must be between 0 and 1 (exclusive), got {replay.fraction}")
    return Recipe(**kwargs)


def _check_mixture(m: MixtureConfig, source: str) -> None:
    """Values the types cannot say: known strategy, positive cap/temperature/weights, options that apply."""
    where = f"{source}: 'mixture"
    if m.strategy not in MIXING_STRATEGIES:
        raise TunevalError(f"{where}.strategy': unknown strategy '{m.strategy}' (known: {', '.join(MIXING_STRATEGIES)})")
    if not m.tasks:
        raise TunevalError(f"{where}.tasks' must list at least one task")
    if m.strategy == "rates" and m.cap is not None:
        raise TunevalError(f"{where}.cap' applies to strategies proportional and temperature, not rates")
    if m.strategy != "temperature" and m.temperature != 1.0:
        raise TunevalError(f"{where}.temperature' needs strategy: temperature (got strategy: {m.strategy})")
    if m.cap is not None and m.cap < 1:
        raise TunevalError(f"{where}.cap' must be at least 1, got {m.cap}")
    if m.temperature <= 0:
        raise TunevalError(f"{where}.temperature' must be positive, got {m.temperature}")
    seen = set()
    for i, t in enumerate(m.tasks):
        if not t.task:
            raise TunevalError(f"{where}.tasks[{i}].task' is missing")
        if t.task in seen:
            raise TunevalError(f"{where}.tasks[{i}].task': '{t.task}' is listed twice")
        seen.add(t.task)
        if t.weight < 0:
            raise TunevalError(f"{where}.tasks[{i}].weight' must not be negative, got {t.weight}")
        if t.max_examples is not None and t.max_examples < 1:
            raise TunevalError(f"{where}.tasks[{i}].max_examples' must be at least 1, got {t.max_examples}")
    if not any(t.weight > 0 for t in m.tasks):
        raise TunevalError(f"{where}.tasks': every weight is 0")


def _is_method(name: str) -> bool:
    from tuneval.methods import METHODS

    return name in METHODS


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key=value` / `section.key=value` strings to a raw recipe mapping."""
    raw = dict(raw or {})
    for item in overrides:
        if "=" not in item:
            raise TunevalError(f"--set {item}: expected key=value")
        key, _, text = item.partition("=")
        value = yaml.safe_load(text) if text.strip() else None
        parts = key.strip().split(".")
        node = raw
        for p in parts[:-1]:
            child = node.get(p)
            node[p] = dict(child) if isinstance(child, dict) else {}
            node = node[p]
        node[parts[-1]] = value
    return raw


def load_recipe(path: str | Path | None, overrides: list[str] | None = None) -> Recipe:
    raw: dict[str, Any] = {}
    source = "recipe"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise TunevalError(f"{path}: recipe file not found")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise TunevalError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(raw, dict):
            raise TunevalError(f"{path}: a recipe must be a YAML mapping")
    if overrides:
        raw = apply_overrides(raw, overrides)
        source = f"{source} (with --set)" if path else "--set"
    return recipe_from_dict(raw, source)
