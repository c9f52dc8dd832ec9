"""The recipe: one typed, validated source of truth for a run.

A recipe is YAML; `--set key=value` overrides any key (dotted for sections). Unknown keys
are errors naming the file and the key, because a typo like `lora.rank` silently falling
back to a default is the worst kind of bug in an experiment. The resolved recipe is saved
in every run directory, so a run can be repeated from it and its seed.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from tuneval.errors import TunevalError


# -- value checks ---------------------------------------------------------------------------------
# A value of the right type can still be nonsense (a negative batch size, a learning rate of 0),
# and the trainer would take it and run for minutes, or write an untrained adapter. So each
# field says what it may be (`checked`), a section's dataclass may add what one field cannot say
# (`check(self)`, yielding (key, problem)), and build_dataclass applies both when a recipe (or a
# method's settings) is built: before any model loads. Method settings classes use the same two.

def checked(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, ge: Any = None,
            gt: Any = None, le: Any = None, lt: Any = None, choices: tuple | None = None, null: str | None = None) -> Any:
    """A dataclass field with the values it may take; `null` says what None means where None is allowed.

    A list field's bounds apply to each item."""
    rule = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices, null=null).items() if v is not None}
    return field(default=default, default_factory=default_factory, metadata={"check": rule})


def _describe(rule: dict[str, Any], with_null: bool = True) -> str:
    if "choices" in rule:
        text = "one of " + ", ".join(map(str, rule["choices"]))
    else:
        low = ("[", rule["ge"]) if "ge" in rule else ("(", rule["gt"]) if "gt" in rule else None
        high = (rule["le"], "]") if "le" in rule else (rule["lt"], ")") if "lt" in rule else None
        if low and high:
            text = f"in {low[0]}{low[1]}, {high[0]}{high[1]}"
        elif low:
            text = f"at least {low[1]}" if low[0] == "[" else f"> {low[1]}"
        else:
            text = f"at most {high[0]}" if high[1] == "]" else f"< {high[0]}"
    return text + (f" (or null: {rule['null']})" if with_null and "null" in rule else "")


def _violates(rule: dict[str, Any], v: Any) -> bool:
    if "choices" in rule:
        return v not in rule["choices"]
    return (("ge" in rule and v < rule["ge"]) or ("gt" in rule and not v > rule["gt"])
            or ("le" in rule and v > rule["le"]) or ("lt" in rule and not v < rule["lt"]))


def value_problems(obj: Any) -> Iterator[tuple[str, str]]:
    """(key, problem) for each value of a dataclass instance outside what its fields allow, then its own check()."""
    for f in dataclasses.fields(obj):
        rule, value = f.metadata.get("check"), getattr(obj, f.name)
        if rule is None or value is None:
            continue
        for i, v in (enumerate(value) if isinstance(value, list) else [(None, value)]):
            if _violates(rule, v):
                yield (f.name if i is None else f"{f.name}[{i}]"), f"must be {_describe(rule, i is None)}, got {v!r}"
    yield from getattr(obj, "check", lambda: ())()


def check_values(obj: Any, source: str, prefix: str = "") -> None:
    for key, problem in value_problems(obj):
        raise TunevalError(f"{source}: '{prefix}{key}' {problem}")


def check_option(flag: str, value: Any, cls: type, name: str) -> None:
    """A command-line option that stands for a recipe key gets that key's check, in the option's words."""
    rule = next(f for f in dataclasses.fields(cls) if f.name == name).metadata["check"]
    if value is not None and _violates(rule, value):
        raise TunevalError(f"{flag} must be {_describe(rule, with_null=False)}, got {value!r}")


@dataclass
class ReplayConfig:
    """Mix a fraction of general instruction data into a run (against forgetting)."""

    task: str = "self_instruct"
    fraction: float = 0.1  # share of the run's training examples drawn from this task
    max_examples: int | None = checked(None, ge=1, null="all")  # the task's pool: first N of its seeded shuffle


@dataclass
class DataConfig:
    data_dir: str | None = None  # None: $TUNEVAL_DATA_DIR, else the task's hub dataset
    train_split: str = "train"
    train_examples: int | None = checked(None, ge=1, null="all")  # first N of a seeded shuffle
    max_seq_len: int = checked(1024, ge=8)  # prompt + response tokens; the longest input field is cut to fit
    max_target_tokens: int = checked(128, ge=1)
    chat_template: bool = True  # wrap prompts in the tokenizer's chat template when it has one
    template: int | None = checked(None, ge=0, null="drawn per example")  # N: always template N (seeded draw if None)
    holdout_templates: list[int] = checked(default_factory=list, ge=0)  # phrasings of `task` never trained on
    replay: ReplayConfig | None = None  # e.g. {task: self_instruct, fraction: 0.1}

    def check(self) -> Iterator[tuple[str, str]]:
        if self.max_seq_len <= self.max_target_tokens:  # the prompt would be cut away entirely
            yield "max_seq_len", f"must be greater than data.max_target_tokens ({self.max_target_tokens}), got {self.max_seq_len}"


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

    learning_rate: float = checked(2e-4, gt=0)
    num_train_epochs: float = 1.0  # > 0 unless max_steps decides (see check)
    max_steps: int = -1  # -1: num_train_epochs decides
    per_device_train_batch_size: int = checked(8, ge=1)
    gradient_accumulation_steps: int = checked(1, ge=1)
    warmup_steps: float = checked(0.0, ge=0)  # an int is steps, a float < 1 a share of the run
    weight_decay: float = checked(0.0, ge=0)
    lr_scheduler_type: str = "linear"  # one of transformers' SchedulerType values (see check)
    logging_steps: int = checked(5, ge=1)
    save_steps: int = checked(50, ge=1)
    save_total_limit: int | None = checked(2, ge=1, null="keep all")
    group_by_length: bool = True
    gradient_checkpointing: bool = False
    # Speed levers (train/loss.py; measured in bench/README-speed.md). Each is exact; turn one off to compare.
    logits_to_keep: str = "labels"  # one of LOGITS_TO_KEEP
    drop_padding_mask: bool = True  # right padding is invisible to causal attention: let SDPA run is_causal
    pad_to_multiple_of: int | None = checked(None, ge=1, null="off")  # pad each batch's length up to a multiple

    def check(self) -> Iterator[tuple[str, str]]:
        if self.max_steps != -1 and self.max_steps < 1:
            yield "max_steps", f"must be -1 (train num_train_epochs) or at least 1, got {self.max_steps}"
        if self.max_steps == -1 and not self.num_train_epochs > 0:
            yield "num_train_epochs", f"must be > 0 when train.max_steps is -1, got {self.num_train_epochs}"
        from transformers.trainer_utils import SchedulerType  # torch is loaded by now (methods import it)

        schedulers = [s.value for s in SchedulerType]
        if self.lr_scheduler_type not in schedulers:
            yield "lr_scheduler_type", f"must be one of {', '.join(schedulers)}, got {self.lr_scheduler_type!r}"


@dataclass
class EvalConfig:
    split: str = "validation"
    limit: int | None = checked(50, ge=1, null="all")  # the first N examples of the split, always the same ones
    batch_size: int = checked(16, ge=1)
    max_new_tokens: int = checked(64, ge=1)
    template: int | None = checked(None, ge=0, null="the task's evaluation template")


@dataclass
class MixtureTask:
    task: str = ""
    weight: float = 1.0  # strategy rates: the task's rate; proportional/temperature: multiplies min(n, cap)
    max_examples: int | None = None  # the task's pool: first N of its seeded shuffle; None = all
    templates: list[int] | None = checked(None, ge=0, null="all not held out")  # phrasings to train on
    holdout_templates: list[int] = checked(default_factory=list, ge=0)  # phrasings never trained on
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
    seed: int = checked(42, ge=0, le=2**32 - 1)  # numpy's seed range
    # auto | bf16 | fp32 (precision.py): training autocast, and the dtype the recipe's evaluation loads
    precision: str = "auto"
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
            number = float(value)  # YAML reads 1e-3 as a string
        except (TypeError, ValueError):
            raise TunevalError(f"{where}: expected a number, got {value!r}") from None
        if not math.isfinite(number):  # no setting means anything at nan or inf, and no range check catches nan
            raise TunevalError(f"{where}: expected a finite number, got {value!r}")
        return number
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
    obj = cls(**kwargs)
    check_values(obj, source, prefix)
    return obj


def recipe_from_dict(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    from tuneval.methods import get_method  # the registry knows each method's options

    raw = _legacy_bf16(dict(raw or {}), source)
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
    replay = kwargs["data"].replay if "data" in kwargs else None
    if replay is not None and not 0 < replay.fraction < 1:
        raise TunevalError(f"{source}: 'data.replay.fraction' must be between 0 and 1 (exclusive), got {replay.fraction}")
    recipe = Recipe(**kwargs)
    check_values(recipe, source)  # the top-level keys (sections were checked as they were built)
    return recipe


def _legacy_bf16(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Runs saved before the precision policy say `train.bf16: auto|true|false`; read it as `precision`."""
    train = raw.get("train")
    if isinstance(train, dict) and "bf16" in train:
        if "precision" in raw:
            raise TunevalError(f"{source}: give 'precision' alone ('train.bf16' is its old name)")
        train = dict(train)
        raw = {**raw, "train": train, "precision": train.pop("bf16")}
    if "precision" in raw:
        from tuneval.precision import check_precision

        raw["precision"] = check_precision(raw["precision"], f"{source}: 'precision'")
    return raw


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
    from tuneval.data.sources import read_text  # a binary file given as the recipe: one line, not a traceback

    raw: dict[str, Any] = {}
    source = "recipe"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise TunevalError(f"{path}: recipe file not found")
        try:
            raw = yaml.safe_load(read_text(path)) or {}
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
