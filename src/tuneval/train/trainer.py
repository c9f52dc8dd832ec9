"""Train one recipe: data -> instructions -> method -> HF Trainer -> saved run directory.

Run directory:
  config.yaml        the resolved recipe (itself a recipe: `tuneval train RUN/config.yaml --resume`)
  checkpoints/       Trainer checkpoints (model, optimizer, scheduler, RNG) for --resume
  adapter/ | model/  the result: a PEFT adapter, or full weights + tokenizer
  train_log.jsonl    every logged step
  metrics.json       parameters, size on disk, peak memory, tokens/s, wall time, loss
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from transformers import (
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import get_last_checkpoint

from tuneval.config import Recipe
from tuneval.data.collate import DataCollator, PromptFormatter
from tuneval.data.tasks import load_split, load_task
from tuneval.errors import TunevalError
from tuneval.io import atomic_dir, atomic_write_json, atomic_write_text, atomic_write_yaml, dir_size_mb
from tuneval.methods import count_parameters, get_method
from tuneval.methods.common import save_trained
from tuneval.models import LoadedModel, load_model
from tuneval.train.callbacks import PeakMemory, RichProgressCallback
from tuneval.train.distributed import is_main_process
from tuneval.train.loss import FastCausalTrainer


def cpu_has_bf16() -> bool:
    """Native bf16 matmul on this CPU (AVX512-BF16 or AMX); without it bf16 is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_bf16(setting: str) -> bool:
    s = str(setting).lower()
    if s in ("true", "1", "yes"):
        return True
    if s in ("false", "0", "no"):
        return False
    if s != "auto":
        raise TunevalError(f"train.bf16: expected auto, true or false, got {setting!r}")
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()


def build_examples(recipe: Recipe, loaded: LoadedModel) -> tuple[list[dict], dict[str, Any]]:
    """Tokenised training examples and a summary of what was drawn (saved with the run)."""
    if recipe.mixture is not None or recipe.data.replay is not None:
        from tuneval.data.mixtures import build_mixture_examples  # several tasks: see data/mixtures.py

        return build_mixture_examples(recipe, loaded)
    from tuneval.data.mixtures import draw_templates, train_templates

    task = load_task(recipe.task)
    rows = load_split(task, recipe.data.train_split, recipe.data.data_dir)
    rng = random.Random(recipe.seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    if recipe.data.train_examples is not None:
        order = order[: recipe.data.train_examples]
    rows = [rows[i] for i in order]
    n_templates = len(task.templates.prompts)
    allowed = train_templates(task, fixed=recipe.data.template, holdout=recipe.data.holdout_templates)
    indices = draw_templates(len(rows), recipe.seed, allowed)  # = TemplateSet.draw when nothing is held out
    fmt = PromptFormatter(loaded.tokenizer, loaded.arch, recipe.data.chat_template,
                          recipe.data.max_seq_len, recipe.data.max_target_tokens)
    examples = [fmt.training_example(task.templates, i, row, task.input_fields) for row, i in zip(rows, indices)]
    lengths = [len(e["input_ids"]) for e in examples]
    summary = {
        "task": task.name,
        "examples": len(examples),
        "per_template": {str(t): indices.count(t) for t in range(n_templates)},
        **({"holdout_templates": sorted(recipe.data.holdout_templates)} if recipe.data.holdout_templates else {}),
        "chat_template": fmt.uses_chat,
        "tokens": sum(lengths),
        "mean_length": round(sum(lengths) / len(lengths), 1),
        "max_length": max(lengths),
    }
    return examples, summary


def training_arguments(recipe: Recipe, run_dir: Path, arch: str, bf16: bool):
    t = recipe.train
    cls = Seq2SeqTrainingArguments if arch == "seq2seq" else TrainingArguments
    return cls(
        output_dir=str(run_dir / "checkpoints"),
        learning_rate=t.learning_rate,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
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
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def prepare_run_dir(recipe: Recipe, resume: bool, overwrite: bool) -> Path:
    run_dir = recipe.run_dir
    config_file = run_dir / "config.yaml"
    if resume:
        if not config_file.is_file():
            raise TunevalError(f"{run_dir}: nothing to resume (no config.yaml there)")
        import yaml

        saved = yaml.safe_load(config_file.read_text())
        now = recipe.to_dict()
        diffs = [k for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
        if diffs:
            raise TunevalError(f"{config_file}: the recipe differs from the run being resumed in {diffs}")
        return run_dir
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise TunevalError(f"{run_dir}: run directory is not empty; pass --resume to continue it or --overwrite")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_yaml(config_file, recipe.to_dict())
    return run_dir


def _save_result(model, tokenizer, target: Path, full: bool, save=None) -> None:
    """A crash never leaves a half-written adapter/model (see io.atomic_dir)."""
    with atomic_dir(target) as tmp:
        (save or model.save_pretrained)(tmp)  # safetensors; PEFT saves only the adapter
        if full:
            tokenizer.save_pretrained(tmp)


def train(recipe: Recipe, *, resume: bool = False, overwrite: bool = False, callbacks: list | None = None,
          loaded: LoadedModel | None = None) -> tuple[dict[str, Any], torch.nn.Module, LoadedModel]:
    """Run one recipe; return (metrics, trained model, loaded base record)."""
    spec = get_method(recipe.method)
    main = is_main_process()  # under torchrun/accelerate only rank 0 writes the run directory
    run_dir = prepare_run_dir(recipe, resume, overwrite) if main else recipe.run_dir
    set_seed(recipe.seed)
    loaded = loaded or load_model(recipe.model, device="cpu")  # the Trainer places it
    examples, data_summary = build_examples(recipe, loaded)
    if "mixture" in data_summary and main:
        atomic_write_json(run_dir / "mixture.json", data_summary["mixture"])
    set_seed(recipe.seed)  # the method's new weights (LoRA A, soft prompts) start from the seed too
    model = spec.apply(loaded.model, recipe.method_args, loaded.arch)
    model.config.use_cache = False
    trainable, total = count_parameters(model)
    bf16 = resolve_bf16(recipe.train.bf16)
    args = training_arguments(recipe, run_dir, loaded.arch, bf16)
    t = recipe.train
    trainer_cls, levers = (Seq2SeqTrainer, {}) if loaded.arch == "seq2seq" else (
        FastCausalTrainer, {"logits_to_keep": t.logits_to_keep, "drop_padding_mask": t.drop_padding_mask})
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=examples,
        data_collator=DataCollator(loaded.tokenizer.pad_token_id, pad_to_multiple_of=t.pad_to_multiple_of),
        processing_class=loaded.tokenizer,
        callbacks=[RichProgressCallback(f"train {recipe.method}"), *(callbacks or [])],
        **levers,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    checkpoint = get_last_checkpoint(str(run_dir / "checkpoints")) if resume and (run_dir / "checkpoints").is_dir() else None
    tokens_before = 0
    if checkpoint:
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
        tokens_before = state.get("num_input_tokens_seen", 0)
    start = time.perf_counter()
    with PeakMemory() as memory:
        output = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    model.config.use_cache = True
    result_dir = run_dir / ("adapter" if spec.saves == "adapter" else "model")
    if main:
        _save_result(trainer.model, loaded.tokenizer, result_dir, full=spec.saves == "model",
                     save=lambda d: save_trained(spec, recipe.method_args, loaded.arch, trainer.model, d))
    trainer.accelerator.wait_for_everyone()
    tokens = trainer.state.num_input_tokens_seen - tokens_before
    metrics = {
        "method": recipe.method,
        "model": recipe.model,
        "arch": loaded.arch,
        "trainable_params": trainable,
        "all_params": total,
        "trainable_percent": 100 * trainable / total,
        "checkpoint_dir": str(result_dir),
        "checkpoint_mb": dir_size_mb(result_dir),
        "peak_memory_mb": memory.peak_mb,
        "peak_memory_kind": memory.kind,
        "train_tokens": tokens,
        "train_seconds": seconds,
        "train_tokens_per_second": tokens / seconds if seconds > 0 else 0.0,
        "train_loss": output.training_loss,
        "train_examples": len(examples),
        "global_step": trainer.state.global_step,
        "resumed_from": checkpoint,
        "bf16": bf16,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
        "data": data_summary,
    }
    if main:
        atomic_write_text(run_dir / "train_log.jsonl", "".join(json.dumps(r) + "\n" for r in trainer.state.log_history))
        atomic_write_json(run_dir / "metrics.json", metrics)
    return metrics, trainer.model, loaded
