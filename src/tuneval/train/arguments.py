"""A recipe's `train:` section as transformers.TrainingArguments.

tuneval sets what it owns (output directory, seed, precision, its collator's needs, its own
progress display) and its own defaults; every other TrainingArguments field written in
`train:` passes through as written (config.split_trainer_args checked its name and type).
Two conveniences, both as users know them from TrainingArguments:
  * `eval.every_steps: N` is `eval_strategy: steps, eval_steps: N`;
  * `metric_for_best_model` alone implies `load_best_model_at_end: true` (set it false to keep
    the last step instead), so the run's result is the best checkpoint's.
The arguments are built before the model loads, so transformers' own consistency checks
(e.g. save steps a multiple of eval steps when the best model is kept) fail in one line first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import Seq2SeqTrainingArguments, TrainingArguments

from tuneval.config import Recipe
from tuneval.errors import TunevalError, first_line
from tuneval.runs import RunDir


def evaluates(recipe: Recipe) -> bool:
    """Whether the run evaluates while it trains."""
    strategy = str(recipe.train.trainer_args.get("eval_strategy", "no")).lower()
    return recipe.eval.every_steps is not None or strategy not in ("no", "intervalstrategy.no")


def passthrough(recipe: Recipe) -> dict[str, Any]:
    """The user's extra TrainingArguments with tuneval's two conveniences applied."""
    extra = dict(recipe.train.trainer_args)
    every = recipe.eval.every_steps
    if every is not None:
        strategy = str(extra.setdefault("eval_strategy", "steps"))
        if strategy != "steps":
            raise TunevalError(f"eval.every_steps needs train.eval_strategy: steps (got {strategy})")
        extra.setdefault("eval_steps", every)
    if extra.get("metric_for_best_model"):
        extra.setdefault("load_best_model_at_end", True)
    extra.setdefault("report_to", "none")
    return extra


def training_arguments(recipe: Recipe, run_dir: Path, arch: str, bf16: bool) -> TrainingArguments:
    t = recipe.train
    cls = Seq2SeqTrainingArguments if arch == "seq2seq" else TrainingArguments
    kwargs: dict[str, Any] = dict(
        output_dir=str(RunDir(run_dir).checkpoints_dir),
        learning_rate=t.learning_rate,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=recipe.eval.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        lr_scheduler_type=t.lr_scheduler_type,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        activation_checkpointing=t.gradient_checkpointing,  # transformers 5's name for it
        activation_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
        seed=recipe.seed,
        data_seed=recipe.seed,
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    kwargs.update(passthrough(recipe))
    try:
        return cls(**kwargs)
    except (ValueError, TypeError, ImportError, RuntimeError) as e:
        raise TunevalError(f"train: transformers refuses these TrainingArguments: {first_line(e)}") from None
