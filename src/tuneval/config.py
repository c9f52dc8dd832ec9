"""The recipe: one typed, validated source of truth for a run.

A recipe is YAML; `--set key=value` overrides any key (dotted for sections). Unknown keys
are errors naming the file and the key, because a typo like `lora.rank` silently falling
back to a default is the worst kind of bug in an experiment. The resolved recipe is saved
in every run directory, so a run can be repeated from it and its seed.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from tuneval.errors import TunevalError
from tuneval.model_args import ModelArgs, check_training_dtype, overlay
from tuneval.typed import build_dataclass, check_values, checked, coerce, typed_value

# Each field says what values it may take (`checked`), a section may add a `check(self)`, and
# build_dataclass applies both as a recipe is built, before any model loads (see typed.py).


@dataclass
class ReplayConfig:
    """Mix a fraction of general instruction data into a run (against forgetting)."""

    task: str = "self_instruct"
    fraction: float = 0.1  # share of the run's training examples drawn from this task
    max_examples: int | None = checked(None, ge=1, null="all")  # the task's pool: first N of its seeded shuffle


@dataclass
class DataConfig:
    data_dir: str | None = None  # None: $TUNEVAL_DATA_DIR, else the task's hub dataset
    tasks_dir: str | None = None  # the user's task YAMLs (a directory or one file), beside the built-in tasks
    # Your own data instead of a task (README "Bring your own data"): a file or directory (jsonl, json,
    # csv, tsv, parquet) or a hub dataset id, in one of data/formats.FORMATS; it becomes the run's task.
    path: str | None = None
    dataset: str | None = None  # a hub dataset id (through `datasets`)
    format: str | None = None  # alpaca | messages | sharegpt | prompt_completion | text | columns; None: guessed
    columns: dict[str, str] | None = None  # format field -> your column, e.g. {prompt: question, response: answer}
    # A plain-text file (.txt) in format text: one document per paragraph (split on blank lines), per line, or the
    # whole file; HF datasets' `text` builder names the same choice `sample_by`.
    sample_by: str = checked("paragraph", choices=("paragraph", "line", "document"))
    # A LLaMA-Factory dataset_info.json: data.path is then the name of one of its entries (data/dataset_info.py).
    dataset_info: str | None = None
    validation_share: float | None = checked(None, gt=0, lt=1, null="0.1 when the data has no validation split")
    train_split: str = "train"
    train_examples: int | None = checked(None, ge=1, null="all")  # first N of a seeded shuffle
    max_seq_len: int = checked(1024, ge=8)  # prompt + response tokens; the longest input field is cut to fit
    max_target_tokens: int = checked(128, ge=1)
    # true: wrap prompts in the tokenizer's chat template when it has one; false: plain text; or a template by
    # name (chatml, llama3, llama2, mistral, zephyr, gemma, qwen2.5) or a .jinja file, set on the tokenizer and saved
    # with the run (models/templates.py)
    chat_template: bool | str = True
    # Causal LMs: whole examples packed into rows of up to max_seq_len tokens, kept apart by position ids
    # (data/packing.py), so batches hold next to no padding; a batch keeps about per_device_train_batch_size
    # examples. Seq2seq and prompt-learning methods train unpacked; false: unpacked for every model.
    packing: bool = True
    # Packed rows under sdpa: attention per example (data/varlen_attention.py) instead of one block-diagonal
    # mask over the row, which scores every query against the whole row; same numbers. false: the mask.
    varlen_attention: bool = True
    template: int | None = checked(None, ge=0, null="drawn per example")  # N: always template N (seeded draw if None)
    holdout_templates: list[int] = checked(default_factory=list, ge=0)  # phrasings of `task` never trained on
    replay: ReplayConfig | None = None  # e.g. {task: self_instruct, fraction: 0.1}

    def check(self) -> Iterator[tuple[str, str]]:
        if self.path and self.dataset:
            yield "path", f"give data.path or data.dataset, not both (got {self.path!r} and {self.dataset!r})"
        if (self.format or self.columns or self.validation_share) and not (self.path or self.dataset):
            yield "format", "data.format, data.columns and data.validation_share describe data.path or data.dataset"
        if self.dataset_info and not self.path:
            yield "dataset_info", "names the file data.path's dataset comes from: give data.path (the dataset's name)"
        if self.dataset_info and (self.format or self.columns):
            yield "dataset_info", "the dataset_info.json entry says the format and columns; give no data.format or data.columns"
        if isinstance(self.chat_template, str):
            from tuneval.models.templates import resolve

            try:
                resolve(self.chat_template, "data.chat_template")
            except TunevalError as e:
                yield "chat_template", str(e).removeprefix("data.chat_template: ")
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
    # Any other transformers.TrainingArguments field (max_grad_norm, optim, eval_strategy, report_to,
    # metric_for_best_model, ...), written flat in `train:` and checked against the dataclass itself
    # (train/arguments.py), so the surface tracks transformers instead of a copy of it.
    trainer_args: dict[str, Any] = field(default_factory=dict)

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
    # During training: validation loss plus the task's metrics (ROUGE/BLEU, or a benchmark's
    # log-likelihood metrics) on these same examples every N steps (= train.eval_strategy: steps,
    # train.eval_steps: N). After training: the same on the result, into metrics.json.
    every_steps: int | None = checked(None, ge=1, null="off")
    after_training: bool = True
    loss: bool = True  # after training, the validation loss too: one more pass over the examples (the demo skips it)
    # After training: fold a LoRA-family adapter into the base before generating (= `tuneval eval --merge`):
    # generation at the base's speed (unmerged all-linear LoRA generated 1.5x slower, issue 17).
    merge: bool = False


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
    """Several tasks in one run, mixed as seqio/FLAN mix them (see tasks/mixtures.py)."""

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
    # dtype, revision, trust_remote_code, attn_implementation (model_args.py); dtype auto: fp32 master weights
    model_args: ModelArgs = field(default_factory=ModelArgs)
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
        # Multi-task keys and model_args only when used: a plain run's config.yaml reads as it did before them.
        for section, key, unset in ((d, "mixture", None), (d["data"], "replay", None), (d["data"], "holdout_templates", []),
                                    (d, "model_args", dataclasses.asdict(ModelArgs()))):
            if section.get(key) == unset:
                section.pop(key)
        if self.method_args is not None and dataclasses.fields(self.method_args):
            d[self.method] = dataclasses.asdict(self.method_args)
        d["train"].update(d["train"].pop("trainer_args"))  # written flat, as the user wrote them
        return d

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir.format(task=self.task, method=self.method, model=Path(self.model).name))


SECTIONS = {"model_args": ModelArgs, "data": DataConfig, "train": TrainConfig, "eval": EvalConfig}


def recipe_from_dict(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    from tuneval.methods import get_method  # the registry knows each method's options

    raw = _legacy_bf16(dict(raw or {}), source)
    top = {f.name for f in dataclasses.fields(Recipe)} - {"method_args"} - set(SECTIONS)
    method = str(raw.get("method", Recipe.method))
    spec = get_method(method)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "train":
            kwargs[key] = build_dataclass(TrainConfig, split_trainer_args(value or {}, source), source, "train.")
        elif key in SECTIONS:
            kwargs[key] = build_dataclass(SECTIONS[key], value or {}, source, f"{key}.")
        elif key == spec.name:
            kwargs["method_args"] = build_dataclass(spec.settings, value or {}, source, f"{key}.")
        elif key in top:
            kwargs[key] = typed_value(value, typing.get_type_hints(Recipe)[key], source, key)
        else:
            hint = f" (options of method '{key}' need method: {key})" if _is_method(key) else ""
            allowed = sorted(top | set(SECTIONS) | {spec.name})
            raise TunevalError(f"{source}: unknown key '{key}'{hint} (known: {', '.join(allowed)})")
    kwargs.setdefault("method_args", spec.settings())
    data = kwargs.get("data")
    if data is not None and (data.path or data.dataset) and "task" not in kwargs:
        # your own data is the run's task, named after the file (or the hub dataset)
        kwargs["task"] = Path(data.path).stem if data.path else str(data.dataset).rstrip("/").split("/")[-1]
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
    if "model_args" in kwargs:  # a recipe trains: float16 would need fp16 AMP
        check_training_dtype(kwargs["model_args"], f"{source}: 'model_args.dtype'")
    recipe = Recipe(**kwargs)
    check_values(recipe, source)  # the top-level keys (sections were checked as they were built)
    return recipe


# TrainingArguments fields a recipe sets elsewhere, each with where.
OWNED_TRAINER_ARGS = {
    "output_dir": "output_dir (top level)", "seed": "seed (top level)", "data_seed": "seed (top level)",
    "bf16": "precision (top level)", "fp16": "precision (top level)", "use_cpu": "precision and the device",
    "train_sampling_strategy": "train.group_by_length", "activation_checkpointing": "train.gradient_checkpointing",
    "gradient_checkpointing": "train.gradient_checkpointing", "per_device_eval_batch_size": "eval.batch_size",
    "remove_unused_columns": "nothing: tuneval's collator needs its columns",
    "include_num_input_tokens_seen": "nothing: tuneval counts real tokens for tokens/s",
    "disable_tqdm": "nothing: tuneval draws its own progress",
}


def split_trainer_args(values: dict[str, Any], source: str) -> dict[str, Any]:
    """The `train:` mapping with every key TrainConfig does not name moved under `trainer_args`,
    each checked to be a field of transformers' (Seq2Seq)TrainingArguments and of its type."""
    if not isinstance(values, dict):
        raise TunevalError(f"{source}: 'train' must be a mapping, got {values!r}")
    from transformers import Seq2SeqTrainingArguments

    own = {f.name for f in dataclasses.fields(TrainConfig)} - {"trainer_args"}
    hf = {f.name: f for f in dataclasses.fields(Seq2SeqTrainingArguments) if f.init}
    hints = typing.get_type_hints(Seq2SeqTrainingArguments)
    kept, extra = {}, dict(values.get("trainer_args") or {})
    for key, value in values.items():
        if key in own:
            kept[key] = value
        elif key in OWNED_TRAINER_ARGS:
            raise TunevalError(f"{source}: 'train.{key}' is set by {OWNED_TRAINER_ARGS[key]}")
        elif key != "trainer_args":
            if key not in hf:
                raise TunevalError(f"{source}: unknown key 'train.{key}' (not a tuneval train key "
                                   f"({', '.join(sorted(own))}) nor a transformers TrainingArguments field)")
            extra[key] = _coerce_loose(value, hints.get(key, Any), f"{source}: 'train.{key}'")
    kept["trainer_args"] = extra
    return kept


def _coerce_loose(value: Any, tp: Any, where: str) -> Any:
    """typed.coerce for TrainingArguments' annotations: enums and other classes take their string values as given."""
    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    if value is None:
        return None
    simple = [a for a in args if a in (bool, int, float, str) or typing.get_origin(a) in (list, dict)]
    if len(simple) < len(args):  # an enum, a dict or a class among the options: transformers parses it
        return value
    return coerce(value, tp, where)


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


def yaml_problem(e: yaml.YAMLError) -> str:
    """A YAML error's problem as one line (PyYAML's own message spans several)."""
    return " ".join(str(getattr(e, "problem", None) or e).split())


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key=value` / `section.key=value` strings to a raw recipe mapping."""
    raw = dict(raw or {})
    for item in overrides:
        if "=" not in item:
            raise TunevalError(f"--set {item}: expected key=value")
        key, _, text = item.partition("=")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            raise TunevalError(f"--set {item}: the value is not valid YAML ({yaml_problem(e)}); quote a string "
                               "that YAML would read otherwise") from None
        parts = key.strip().split(".")
        if not all(p.strip() for p in parts):
            raise TunevalError(f"--set {item}: empty key (write section.key=value)")
        node = raw
        for p in parts[:-1]:
            child = node.get(p)
            node[p] = dict(child) if isinstance(child, dict) else {}
            node = node[p]
        node[parts[-1]] = value
    return raw


def read_recipe(path: str | Path | None) -> dict[str, Any]:
    """A recipe file's mapping ({} for None), or one line saying why it is not a recipe."""
    from tuneval.io import read_text  # a binary file given as the recipe: one line, not a traceback

    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise TunevalError(f"{path}: recipe file not found")
    try:
        raw = yaml.safe_load(read_text(path)) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise TunevalError(f"{where}: not valid YAML ({yaml_problem(e)})") from None
    if not isinstance(raw, dict):
        raise TunevalError(f"{path}: a recipe must be a YAML mapping")
    return raw


def load_recipe(path: str | Path | None, overrides: list[str] | None = None) -> Recipe:
    """A recipe file (None: the defaults) with `--set key=value` overrides: build_recipe with nothing else given."""
    return build_recipe(path, overrides)


def build_recipe(recipe: str | Path | Mapping[str, Any] | None = None, overrides: list[str] | None = None, *,
                 data: Mapping[str, Any] | None = None, precision: str | None = None,
                 model_args: ModelArgs | None = None) -> Recipe:
    """The recipe a run trains, as `tuneval train` builds it: `recipe` (a file, a mapping, or None for
    the defaults) with `--set key=value` overrides, then the `data:` keys given (None: not given,
    e.g. {"path": "mine.jsonl"}), then `precision` and the fields `model_args` sets (model_args.overlay)
    laid onto the typed recipe; each checked as the recipe's own keys are."""
    from tuneval.precision import check_precision

    if isinstance(recipe, Mapping):
        raw, source = apply_overrides(dict(recipe), list(overrides or [])), "recipe (mapping)"
    else:
        raw, source = read_recipe(recipe), str(recipe) if recipe is not None else "recipe"
        if overrides:
            raw, source = apply_overrides(raw, overrides), f"{source} (with --set)" if recipe is not None else "--set"
    given = {k: v for k, v in (data or {}).items() if v is not None}
    if given:
        raw["data"] = {**(raw["data"] if isinstance(raw.get("data"), dict) else {}), **given}
    r = recipe_from_dict(raw, source)
    if precision is not None:
        r = dataclasses.replace(r, precision=check_precision(precision, "--precision"))
    if model_args is not None:
        args = overlay(r.model_args, model_args)
        check_values(args, source, "model_args.")
        check_training_dtype(args, f"{source}: 'model_args.dtype'")
        r = dataclasses.replace(r, model_args=args)
    return r
