"""Train one recipe: data -> instructions -> method -> HF Trainer -> saved run directory.

What a run directory holds, and every file's name: tuneval/runs.py. When it is created, replaced
or removed again: train/rundir.py. The directory is created (or an old run replaced) only after
the model and data have loaded, and a run that fails before its first complete checkpoint
removes it again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import Seq2SeqTrainer, set_seed
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from tuneval.allocator import current as allocator_in_use
from tuneval.config import Recipe
from tuneval.data import varlen_attention
from tuneval.data.collate import DataCollator
from tuneval.data.packing import (PackedCollator, check_packed_attention, pack_examples, packing_applies, real_token_mask,
                                  rows_per_step)
from tuneval.io import atomic_write_json
from tuneval.methods import base_quantization, count_parameters, get_method
from tuneval.methods.common import save_trained
from tuneval.models import LoadedModel, load_config, load_model, templates
from tuneval.precision import resolve_precision
from tuneval.runs import RunDir, environment
from tuneval.tasks.mixtures import build_examples as tasks_build_examples
from tuneval.train.arguments import evaluates, training_arguments
from tuneval.train.callbacks import CurvesCallback, JsonlLog, PeakMemory, progress_callback
from tuneval.train.checkpoints import MarkComplete, resume_checkpoint
from tuneval.train.distributed import is_main_process
from tuneval.train.evaluation import TaskEvaluation, evaluate_result, with_task_metrics
from tuneval.train.loss import FastCausalTrainer
from tuneval.train.rundir import check_run_dir, prepare_run_dir


def build_examples(recipe: Recipe, loaded: LoadedModel) -> tuple[list[dict], dict[str, Any]]:
    """Tokenised training examples and a summary of what was drawn (saved with the run): the
    recipe's task alone, or its mixture (tasks/mixtures.py), shown as a table when it is one (the user's own
    data: a line of what was read, console.data_line). A chat
    template named by data.chat_template is set on the tokenizer first (models/templates.py)."""
    templates.apply(loaded.tokenizer, recipe.data.chat_template)
    examples, summary = tasks_build_examples(recipe, loaded)
    if ("mixture" in summary or "data" in summary) and is_main_process():
        from rich.console import Console

        from tuneval.console import data_line, mixture_table

        if "mixture" in summary:
            Console().print(mixture_table(summary))
        else:  # the user's own data: what was read, kept and dropped (also in metrics.json)
            Console(soft_wrap=True).print(data_line(summary["data"]), highlight=False, markup=False)
    return examples, summary


def _load_device(quantization: dict | None) -> str:
    """Training loads on the CPU and the Trainer places the model; a base quantized as it loads
    goes straight to its process's GPU, where bitsandbytes quantizes it (there is one when at-load
    quantization is the default: methods/qlora.py)."""
    if quantization is None or not torch.cuda.is_available():
        return "cpu"
    import os

    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"


def plain_model(trainer) -> torch.nn.Module:
    """The trained model as a caller expects it: no autocast forward left on it.

    Under bf16 accelerate replaces `model.forward` with an autocast wrapper for training and
    leaves it there; a caller scoring the returned model would then run bf16 while the saved
    result reloads in the dtype it asks for, and the two would disagree.
    """
    model = trainer.accelerator.unwrap_model(trainer.model)
    original = model.__dict__.pop("_original_forward", None)
    if original is not None:
        if getattr(original, "__func__", None) is getattr(type(model), "forward", None):
            model.__dict__.pop("forward", None)  # the class's own forward again
        else:
            model.forward = original
    return model


def _save_result(model, tokenizer, run: RunDir, full: bool, save=None) -> None:
    """The result at the run's root; a crash never leaves half of one (see RunDir.saving_result)."""
    with run.saving_result() as tmp:
        (save or model.save_pretrained)(tmp)  # safetensors; PEFT saves only the adapter
        if full:
            tokenizer.save_pretrained(tmp)


def _saves_tokenizer(spec, recipe: Recipe) -> bool:
    """The tokenizer goes with full weights, and with an adapter trained under a named chat template,
    which eval, chat, serve and export then read back from the run (models/templates.py)."""
    return spec.saves == "model" or isinstance(recipe.data.chat_template, str)


def _gathered_state(trainer) -> dict[str, torch.Tensor] | None:
    """Under FSDP, the full weights on rank 0 (every rank must call this); None otherwise.

    FSDP leaves each rank a shard (DTensor) of every parameter, so the module as it stands cannot
    be saved; accelerate gathers the full state dict into rank 0's CPU memory (the others get an
    empty one), which save_pretrained then writes as one process would.
    """
    if not getattr(trainer, "is_fsdp_enabled", False):
        return None
    return trainer.accelerator.get_state_dict(trainer.model)


def _pack(recipe: Recipe, arch: str, model, examples: list[dict], args) -> tuple[bool, list[dict]]:
    """(True, packed rows) where `data.packing` applies (data/packing.py), each device batch then about
    per_device_train_batch_size examples' worth of rows, as unpacked; else (False, the examples)."""
    if not packing_applies(recipe.data.packing, arch, model):
        return False, examples
    window = getattr(model.config, "sliding_window", None)  # per example is plain causal attention only
    if (recipe.data.varlen_attention and getattr(model.config, "_attn_implementation", None) == "sdpa"
            and (not window or window >= recipe.data.max_seq_len)):
        model.set_attn_implementation(varlen_attention.register())  # packed rows only; other batches stay sdpa
        check_packed_attention(model)
    rows = pack_examples(examples, recipe.data.max_seq_len)
    args.per_device_train_batch_size = rows_per_step(args.per_device_train_batch_size, len(examples), len(rows))
    return True, rows


def _restore_attention(model) -> bool:
    """Hand the result back on sdpa, what it was loaded with (it is used unpacked from here on); True
    where training attended per example (`data.varlen_attention`)."""
    if getattr(model.config, "_attn_implementation", None) != varlen_attention.NAME:
        return False
    model.set_attn_implementation("sdpa")
    return True


def _counting(cls: type) -> type:
    """`cls` that counts each training batch's real tokens and slots (metrics.json's padding share), and
    counts a packed batch's real tokens from its position ids (it has no attention_mask; the Trainer
    would count `input_ids != pad_token_id`, missing every EOS where EOS pads). See data/packing.py."""
    class Counting(cls):
        real_tokens = 0
        token_slots = 0

        def _track_num_input_tokens(self, inputs):  # the Trainer's hook for include_num_input_tokens_seen
            mask = real_token_mask(inputs)
            self.real_tokens += int(mask.sum())
            self.token_slots += mask.numel()
            super()._track_num_input_tokens(inputs if "attention_mask" in inputs else {**inputs, "attention_mask": mask})

    return Counting


def _make_trainer(recipe: Recipe, model, args, examples, loaded: LoadedModel, evaluation: TaskEvaluation | None,
                  callbacks: list | None, packed: bool = False):
    """The HF Trainer for this architecture, with tuneval's speed levers, evaluation and callbacks.

    `packed`: `examples` are packed rows (data/packing.py), collated without an attention mask.
    """
    t = recipe.train
    cls, levers = (Seq2SeqTrainer, {}) if loaded.arch == "seq2seq" else (
        FastCausalTrainer, {"logits_to_keep": t.logits_to_keep, "drop_padding_mask": t.drop_padding_mask})
    during = evaluation is not None and evaluates(recipe)
    cls = _counting(with_task_metrics(cls) if during else cls)
    metric = (args.metric_for_best_model or (evaluation.primary if evaluation else "")).removeprefix("eval_") or None
    run = RunDir(recipe.run_dir)
    trainer = cls(
        model=model,
        args=args,
        train_dataset=examples,
        eval_dataset=evaluation.loss_examples if during else None,
        data_collator=(PackedCollator if packed else DataCollator)(loaded.tokenizer.pad_token_id,
                                                                   pad_to_multiple_of=t.pad_to_multiple_of),
        processing_class=loaded.tokenizer,
        callbacks=[progress_callback(f"train {recipe.method}", metric), MarkComplete(),
                   JsonlLog(run.log_file),
                   CurvesCallback(run.curves_file, metric, f"{recipe.method} on {recipe.task} ({recipe.model})"),
                   *(callbacks or [])],
        **levers,
    )
    if during:
        trainer.task_evaluation = evaluation
    trainer.packed_rows = len(examples) if packed else None
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def _best(trainer) -> dict[str, Any]:
    """Which step the result comes from, when a best checkpoint was tracked."""
    args, state = trainer.args, trainer.state
    if not args.metric_for_best_model or state.best_global_step is None:
        return {}
    return {"best_step": state.best_global_step, "best_metric": state.best_metric,
            "metric_for_best_model": args.metric_for_best_model,
            "result_step": state.best_global_step if args.load_best_model_at_end else state.global_step}


@dataclass
class _Outcome:
    """What one `trainer.train` call did: its output, where it resumed from, tokens, time, memory."""

    output: Any  # transformers' TrainOutput
    checkpoint: str | None
    tokens: int  # seen by this invocation (a resumed run's earlier tokens not counted)
    seconds: float
    memory: PeakMemory


def _run_trainer(trainer, run: RunDir, resume: bool, main: bool) -> _Outcome:
    """Train, from the newest complete checkpoint under --resume; measure time, tokens and peak memory."""
    checkpoint = resume_checkpoint(run.checkpoints_dir, main) if resume else None
    tokens_before = 0
    if checkpoint:
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
        tokens_before = state.get("num_input_tokens_seen", 0)
    start = time.perf_counter()
    with PeakMemory() as memory:
        output = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    return _Outcome(output, checkpoint, trainer.state.num_input_tokens_seen - tokens_before, seconds, memory)


def _metrics(recipe: Recipe, loaded: LoadedModel, params: tuple[int, int], run: RunDir, trainer,
             outcome: _Outcome, examples: int, precision: str, data_summary: dict[str, Any]) -> dict[str, Any]:
    """metrics.json (less the result's eval scores, which `train` adds)."""
    trainable, total = params
    tokens, seconds = outcome.tokens, outcome.seconds
    return {
        "method": recipe.method,
        "model": recipe.model,
        "arch": loaded.arch,
        "trainable_params": trainable,
        "all_params": total,
        "trainable_percent": 100 * trainable / total,
        "checkpoint_dir": str(run.result_dir),
        "checkpoint_mb": run.result_mb(),  # the result's files alone
        "peak_memory_mb": outcome.memory.peak_mb,
        "peak_memory_kind": outcome.memory.kind,
        "train_tokens": tokens,
        "train_seconds": seconds,
        "train_tokens_per_second": tokens / seconds if seconds > 0 else 0.0,
        **_padding(trainer),
        "train_loss": outcome.output.training_loss,
        "train_examples": examples,
        "global_step": trainer.state.global_step,
        **_best(trainer),
        "resumed_from": outcome.checkpoint,
        "precision": precision,
        "dtype": loaded.dtype,  # the base weights' dtype (fp32 master weights unless model_args.dtype says)
        "revision": loaded.args.revision,
        "attn_implementation": loaded.args.attn_implementation,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
        "allocator": allocator_in_use(),
        "versions": environment(),
        "data": data_summary,
    }


def _padding(trainer) -> dict[str, Any]:
    """Whether the run packed examples (and into how many rows), and the share of batch slots that were padding."""
    slots = getattr(trainer, "token_slots", 0)
    share = 1 - trainer.real_tokens / slots if slots else None
    rows = getattr(trainer, "packed_rows", None)
    return {"packing": rows is not None, **({"packed_rows": rows} if rows is not None else {}), "padding_share": share}


def _warn_cpu_fallback() -> None:
    """accelerate 1.15 turns FSDP and DeepSpeed on only for GPUs: on a CPU the same config trains as
    plain DDP, silently. Say so, since memory will not be sharded."""
    import os
    import sys

    wanted = [name for name, var in (("FSDP", "ACCELERATE_USE_FSDP"), ("DeepSpeed", "ACCELERATE_USE_DEEPSPEED"))
              if os.environ.get(var, "").lower() == "true"]
    if wanted and not torch.cuda.is_available():
        print(f"warning: {' and '.join(wanted)} needs GPUs in accelerate; on this CPU the run is plain DDP "
              "(nothing is sharded)", file=sys.stderr)


def train(recipe: Recipe, *, resume: bool = False, overwrite: bool = False, callbacks: list | None = None,
          loaded: LoadedModel | None = None) -> tuple[dict[str, Any], torch.nn.Module, LoadedModel]:
    """Run one recipe; return (metrics, trained model, loaded base record).

    Everything that can fail on the user's input (output directory, TrainingArguments, model,
    data, evaluation split) is checked before the run directory is touched.
    """
    spec = get_method(recipe.method)
    main = is_main_process()  # under torchrun/accelerate only rank 0 writes the run directory
    run = RunDir(recipe.run_dir)
    if main:
        check_run_dir(recipe, resume, overwrite)  # a bad output_dir fails now, not after loading the model
        _warn_cpu_fallback()
    precision = resolve_precision(recipe.precision)
    arch = loaded.arch if loaded is not None else load_config(recipe.model, recipe.model_args)[1]
    args = training_arguments(recipe, run.path, arch, bf16=precision == "bf16")
    set_seed(recipe.seed)
    # fp32 master weights unless model_args.dtype names one (model_args.py); the Trainer places the model
    quantization = base_quantization(spec, recipe.method_args)  # QLoRA may quantize as the weights load
    loaded = loaded or load_model(recipe.model, precision="fp32", device=_load_device(quantization),
                                  args=recipe.model_args, quantization=quantization)
    examples, data_summary = build_examples(recipe, loaded)
    wanted = evaluates(recipe) or recipe.eval.after_training
    evaluation = TaskEvaluation(recipe, loaded.tokenizer, loaded.arch) if wanted else None
    set_seed(recipe.seed)  # the method's new weights (LoRA A, soft prompts) start from the seed too
    model = spec.apply(loaded.model, recipe.method_args, loaded.arch)
    model.config.use_cache = False  # packing needs it too: a KV cache turns its mask off (data/packing.py)
    params = count_parameters(model)
    packed, rows = _pack(recipe, loaded.arch, model, examples, args)  # refused where packed examples would leak
    # Recipe, model and data have passed: only now is an old run replaced (see train/rundir.py).
    new_run = prepare_run_dir(recipe, resume, overwrite) if main else None
    try:
        if "mixture" in data_summary and main:
            atomic_write_json(run.mixture_file, data_summary["mixture"])
        trainer = _make_trainer(recipe, model, args, rows, loaded, evaluation, callbacks, packed)
        outcome = _run_trainer(trainer, run, resume, main)
    except BaseException:
        if new_run is not None:
            new_run.discard()  # nothing half-made stays, unless a complete checkpoint makes it resumable
        raise
    trained = plain_model(trainer)
    varlen = _restore_attention(trained)
    trained.config.use_cache = True
    state = _gathered_state(trainer)
    if main:
        _save_result(trained, loaded.tokenizer, run, full=_saves_tokenizer(spec, recipe),
                     save=lambda d: save_trained(spec, recipe.method_args, loaded.arch, trained, d, state))
    state = None  # FSDP: the gathered copy of the weights is not kept
    trainer.accelerator.wait_for_everyone()
    metrics = _metrics(recipe, loaded, params, run, trainer, outcome, len(examples), precision, data_summary)
    metrics["varlen_attention"] = varlen
    if evaluation is not None and recipe.eval.after_training:
        # every rank reloads the saved result and scores its share (evaluate/distributed.py);
        # several machines need output_dir on a filesystem they share
        metrics["eval"] = evaluate_result(recipe, evaluation, run.path)
    if main:
        run.write_metrics(metrics)
    trainer.accelerator.wait_for_everyone()  # the caller may read what rank 0 wrote
    return metrics, trained, loaded
