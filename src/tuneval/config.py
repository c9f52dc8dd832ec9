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
class DataConfig:
    data_dir: str | None = None  # None: $TUNEVAL_DATA_DIR, else the task's hub dataset
    train_split: str = "train"
    train_examples: int | None = None  # first N of a seeded shuffle; None = all
    max_seq_len: int = 1024  # prompt + response tokens; the longest input field is cut to fit
    max_target_tokens: int = 128
    chat_template: bool = True  # wrap prompts in the tokenizer's chat template when it has one
    template: int | None = None  # None: draw one template per example (seeded); N: always template N


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


@dataclass
class EvalConfig:
    split: str = "validation"
    limit: int | None = 50  # the first N examples of the split, always the same ones
    batch_size: int = 16
    max_new_tokens: int = 64
    template: int | None = None  # None: the task's fixed evaluation template


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
    # The chosen method's options, typed by the method's own settings class (see methods/).
    method_args: Any = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("method_args")
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
        kwargs[key] = _coerce(value, hints[key], f"{source}: '{prefix}{key}'")
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
            kwargs[key] = _coerce(value, typing.get_type_hints(Recipe)[key], f"{source}: '{key}'")
        else:
            hint = f" (options of method '{key}' need method: {key})" if _is_method(key) else ""
            allowed = sorted(top | set(SECTIONS) | {spec.name})
            raise TunevalError(f"{source}: unknown key '{key}'{hint} (known: {', '.join(allowed)})")
    kwargs.setdefault("method_args", spec.settings())
    return Recipe(**kwargs)


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
