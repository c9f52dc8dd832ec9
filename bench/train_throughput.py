"""Training throughput: the standard recipe, TRL's SFTTrainer and tuneval, side by side, on the same examples.

* standard: transformers' Trainer as a typical notebook uses it: fp32, every example padded to
  --pad-to (512) tokens, random order (no length grouping), the model's own loss over
  full-vocabulary logits at every position, with the padding attention mask.
* trl: TRL's `SFTTrainer` (pinned in the `bench` extra) set up as TRL's SFT docs set up this case:
  a conversational prompt/completion dataset (the same instructions and targets, the chat template
  applied by TRL), `completion_only_loss=True`, the same peft `LoraConfig` (passed as `peft_config`),
  batch size, learning rate, schedule and seed, `bf16` where the host has it natively
  (`tuneval.precision.native_bf16`), `gradient_checkpointing=False` (TRL's default is True; off as in
  the other paths, so TRL is not slowed by recomputation). TRL documents `padding_free` (and BFD
  `packing`, which implies it) as supported with FlashAttention 2/3 only, so the `trl` path uses it
  only under a FlashAttention implementation and pads batches otherwise (sdpa/eager on a CPU).
  `trl, padding_free` runs TRL's padding-free batches (each batch flattened into one row with
  position ids) beyond its docs where the attention is sdpa or eager: transformers 5.23 builds a
  block-diagonal mask from the position ids there and TRL passes `use_cache=False`, so examples stay
  apart (the worker checks it with `tuneval.data.packing.check_packed_attention` before training).
  It keeps `batch-size` examples a step; `packing=True` would count packed rows instead, changing the
  number of steps and examples per step, so it is not the like-for-like peer. TRL's completion ends
  with the chat template's end of turn and the newline after it, so TRL trains on one more (easy)
  token per example than the other paths: its real-token count is higher by --examples and its mean
  loss per token lower for that reason alone (one near-free target among each example's few dozen).
* tuneval: `tuneval.train.trainer.train` with the recipe defaults: examples packed into rows of up
  to `max_seq_len` (= --pad-to) tokens kept apart by position ids (`data.packing`, about
  --batch-size examples a step), length-grouped rows, logits and loss only where a next-token label
  is (`train.logits_to_keep: labels`), no padding mask under causal right padding
  (`train.drop_padding_mask`); bf16 only where the hardware has it (`precision: auto`).

All: the embedded SmolLM2-135M-Instruct, LoRA r=32 (alpha 32, dropout 0.05) on q_proj/v_proj,
the same --examples DialogSum training examples (cut to --pad-to tokens; the response-only
loss of tuneval's formatter), batch --batch-size, learning rate --lr, AdamW, linear decay, seed
--seed, one epoch. Each path runs in a process of its own, so its peak memory (process RSS on
a CPU, the CUDA allocator's peak on a GPU) is its own. Printed for each: real (non-padding)
tokens/s, padding share, peak memory, mean training loss over the epoch (the same examples,
once each), loss on the first --eval-examples validation examples after training, and model
FLOP/s (4 x parameters per real token for LoRA, 6 x for full) beside the precision the path ran in,
that precision's measured matmul peak (its roofline: a square and the model's own shapes, best of
repeats, with the spread printed: `matmul_peak`) and the share of it, and the share of the fp32 and
bf16 peaks. Only peaks the host has are measured: without native bf16 (no AVX512-BF16/AMX, no CUDA
bf16) every bf16 cell reads "n/a (no native bf16)" (bench/peaks.py), never a share of emulated bf16.

Measured run (~15 min on 2 quiet CPU cores; the two TRL paths take about as long as the standard one):
    .venv/bin/python bench/train_throughput.py --data-dir ../shared/data
What each lever gives (tuneval with one lever off at a time; ~5 more tuneval runs):
    .venv/bin/python bench/train_throughput.py --data-dir ../shared/data --levers
On a host whose speed drifts (a Zen 4 EPYC here: one run per path could not resolve 15%), rounds
over all paths, interleaved, each row the median run and every round's tok/s beside it:
    .venv/bin/python bench/train_throughput.py --data-dir ../shared/data --repeats 3
Smoke test:
    .venv/bin/python bench/train_throughput.py --data-dir ../shared/data --examples 4 --batch-size 2 \\
        --eval-examples 2 --out runs/bench-train-throughput-smoke
Writes OUT/train_throughput.json and .md. The last line printed is `speedup: <ratio>x`
(tuneval's real tokens/s over the best TRL path's).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from peaks import cell, no_native, peak_cells, this_host

# --levers: tuneval's default path with one lever turned off (or, for padding, on) at a time; a `data.` key
# is a data-section option, any other a train-section one.
LEVERS: dict[str, dict[str, Any]] = {
    "tuneval, packing=false": {"data.packing": False},
    "tuneval, varlen_attention=false": {"data.varlen_attention": False},
    "tuneval, logits_to_keep=all": {"logits_to_keep": "all"},
    "tuneval, drop_padding_mask=false": {"drop_padding_mask": False},
    "tuneval, group_by_length=false": {"group_by_length": False},
    "tuneval, pad_to_multiple_of=64": {"pad_to_multiple_of": 64},
}
# TRL's SFTTrainer: as its docs set it up for the attention in use, and padding-free (see the docstring).
TRL_PATHS = ["trl", "trl, padding_free"]
COLUMNS = [("path", "path", "{}"), ("tokens_per_second", "real tok/s", "{:.1f}"), ("rounds", "tok/s per round", "{}"),
           ("padding_share", "padding share", "{:.1%}"), ("peak_memory_mb", "peak MB", "{:.0f}"),
           ("train_loss", "mean train loss", "{:.4f}"), ("val_loss", "val loss", "{:.4f}"),
           ("seconds", "train s", "{:.1f}"), ("steps", "steps", "{}"),
           ("precision", "precision", "{}"), ("model_gflops", "model GFLOP/s", "{:.1f}"),
           ("roofline_gflops", "its roofline GFLOP/s", "{:.1f}"), ("share_roofline", "% of its roofline", "{:.1%}"),
           ("share_fp32", "% fp32 peak", "{:.1%}"), ("share_bf16", "% bf16 peak", "{:.1%}"),
           ("loadavg", "load avg (start/end)", "{}")]


def recipe_for(a: argparse.Namespace, out: Path, **opts):
    from tuneval.config import recipe_from_dict

    data_opts = {k.removeprefix("data."): v for k, v in opts.items() if k.startswith("data.")}
    train_opts = {k: v for k, v in opts.items() if not k.startswith("data.")}
    raw = {
        "model": a.model, "task": "dialogsum", "method": a.method, "seed": a.seed, "output_dir": str(out),
        "data": {"data_dir": a.data_dir, "train_examples": a.examples, "max_seq_len": a.pad_to, **data_opts},
        "train": {"learning_rate": a.lr, "num_train_epochs": 1, "per_device_train_batch_size": a.batch_size,
                  "logging_steps": 1, "save_steps": 10**9, **train_opts},
        "eval": {"limit": max(a.eval_examples, 1), "batch_size": a.batch_size, "after_training": False},  # scored in finish()
    }
    if a.method == "lora":
        raw["lora"] = {"r": 32, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
    return recipe_from_dict(raw, "bench:train_throughput")


def counting(collator_cls, counter=None):
    """A collator class that also counts real tokens and padded slots (for the padding share), on
    `counter` (a class with `real` and `slots`; the new class itself if None). Packed and padding-free
    batches have no attention_mask: `real_token_mask` reads their padding from the position ids."""
    class Counting(collator_cls):
        real = 0
        slots = 0

        def __call__(self, *args, **kwargs):
            from tuneval.data.packing import real_token_mask

            batch = super().__call__(*args, **kwargs)
            mask = real_token_mask(batch)
            (counter or Counting).real += int(mask.sum())
            (counter or Counting).slots += mask.numel()
            return batch
    return Counting


def run_standard(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    import torch
    from transformers import Trainer, TrainingArguments, set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from tuneval.data.collate import DataCollator
    from tuneval.methods import count_parameters, get_method
    from tuneval.models import load_model
    from tuneval.train.callbacks import PeakMemory, RichProgressCallback
    from tuneval.train.trainer import build_examples

    recipe = recipe_for(a, out)
    set_seed(a.seed)
    loaded = load_model(a.model)
    examples, _ = build_examples(recipe, loaded)
    set_seed(a.seed)
    model = get_method(a.method).apply(loaded.model, recipe.method_args, loaded.arch)
    model.config.use_cache = False
    Collator = counting(DataCollator)
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=a.batch_size, learning_rate=a.lr,
                             num_train_epochs=1, logging_steps=1, save_strategy="no", report_to="none",
                             seed=a.seed, data_seed=a.seed, remove_unused_columns=False, disable_tqdm=True,
                             use_cpu=not torch.cuda.is_available())
    trainer = Trainer(model=model, args=args, train_dataset=examples,
                      data_collator=Collator(loaded.tokenizer.pad_token_id, pad_to_multiple_of=a.pad_to),
                      callbacks=[RichProgressCallback("standard recipe")])
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    start = time.perf_counter()
    with PeakMemory() as memory:
        output = trainer.train()
    seconds = time.perf_counter() - start
    row = finish(a, recipe, model, loaded, Collator, seconds, memory.peak_mb, output.training_loss,
                 trainer.state, count_parameters(model)[1])
    row["setup"] = f"fp32, every example padded to {a.pad_to}, random order, full-vocabulary logits, padding mask"
    row["precision"] = "fp32"
    return row


def chat_records(recipe, loaded) -> tuple[list[dict[str, Any]], list[dict]]:
    """tuneval's training examples, and the same examples as TRL's conversational prompt/completion
    records: the instruction as tuneval rendered it (its longest field cut to fit as tuneval cut it)
    and the target text (cut to max_target_tokens as tuneval cut it; TRL adds the end of turn)."""
    from tuneval.data.collate import PromptFormatter
    from tuneval.train.trainer import build_examples

    records: list[dict[str, Any]] = []
    original = PromptFormatter.training_example

    def recording(self, templates, index, row, fields):
        target_ids = self.encode_target(templates.render(row, index)[1])
        instruction, _ = self.fit_prompt(templates, index, row, self.max_seq_len - len(target_ids), fields)
        records.append({"prompt": [{"role": "user", "content": instruction}],
                        "completion": [{"role": "assistant", "content": self.tokenizer.decode(target_ids[:-1])}]})
        return original(self, templates, index, row, fields)

    PromptFormatter.training_example = recording
    try:
        examples, _ = build_examples(recipe, loaded)
    finally:
        PromptFormatter.training_example = original
    if len(records) != len(examples):
        raise SystemExit(f"trl: recorded {len(records)} chat records for {len(examples)} examples")
    return records, examples


def run_trl(a: argparse.Namespace, out: Path, padding_free: bool) -> dict[str, Any]:
    """TRL's SFTTrainer on the same examples (see the module docstring for how it is set up and why)."""
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import SFTConfig, SFTTrainer

    from tuneval.data.packing import check_packed_attention
    from tuneval.methods import count_parameters
    from tuneval.methods.lora import lora_config
    from tuneval.models import load_model
    from tuneval.precision import native_bf16
    from tuneval.train.callbacks import PeakMemory, RichProgressCallback
    from tuneval.train.trainer import plain_model

    recipe = recipe_for(a, out)
    set_seed(a.seed)
    loaded = load_model(a.model, precision="fp32", device="cpu")  # fp32 master weights, as tuneval trains
    records, _ = chat_records(recipe, loaded)
    attn = loaded.model.config._attn_implementation
    documented = attn in ("flash_attention_2", "flash_attention_3")  # where TRL documents padding_free
    flat = padding_free or documented
    config = SFTConfig(
        output_dir=str(out), per_device_train_batch_size=a.batch_size, learning_rate=a.lr, num_train_epochs=1,
        lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0, seed=a.seed, data_seed=a.seed,
        logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(), bf16=native_bf16(), gradient_checkpointing=False,
        completion_only_loss=True, padding_free=flat,
        max_length=None if flat else a.pad_to,  # TRL refuses max_length with padding_free unpacked; cut already
    )
    set_seed(a.seed)  # LoRA's A starts from the seed, as in the other paths
    peft_config = lora_config(recipe.method_args, loaded.arch) if a.method == "lora" else None
    trainer = SFTTrainer(model=loaded.model, args=config, train_dataset=Dataset.from_list(records),
                         processing_class=loaded.tokenizer, peft_config=peft_config,
                         callbacks=[RichProgressCallback("trl" + (", padding_free" if flat else ""))])
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if flat:  # TRL passes use_cache=False on every training forward; check examples stay apart as it trains
        cache, trainer.model.config.use_cache = trainer.model.config.use_cache, False
        check_packed_attention(trainer.model)
        trainer.model.config.use_cache = cache
    collator = counting(type(trainer.data_collator))
    trainer.data_collator.__class__ = collator  # count what TRL's own collator pads (read at train())
    start = time.perf_counter()
    with PeakMemory() as memory:
        output = trainer.train()
    seconds = time.perf_counter() - start
    model = plain_model(trainer)
    row = finish(a, recipe, model, loaded, collator, seconds, memory.peak_mb, output.training_loss,
                 trainer.state, count_parameters(model)[1])
    row["precision"] = "bf16" if config.bf16 else "fp32"
    row["setup"] = (f"attn {attn}, bf16 {config.bf16}, padding_free {flat}"
                    + (" (documented for this attention)" if documented else " (beyond TRL's docs; examples checked apart)"
                       if flat else " (TRL documents padding_free for FlashAttention only)"))
    return row


def run_tuneval(a: argparse.Namespace, out: Path, levers: dict[str, Any]) -> dict[str, Any]:
    from tuneval.data.collate import DataCollator
    from tuneval.data.packing import PackedCollator
    from tuneval.train import trainer as tuneval_trainer

    Collator = counting(DataCollator)
    tuneval_trainer.DataCollator = Collator  # count what tuneval's own collators pad
    tuneval_trainer.PackedCollator = counting(PackedCollator, counter=Collator)
    recipe = recipe_for(a, out, **levers)
    metrics, model, loaded = tuneval_trainer.train(recipe, overwrite=True)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    row = finish(a, recipe, model, loaded, Collator, metrics["train_seconds"], metrics["peak_memory_mb"],
                 metrics["train_loss"], None, metrics["all_params"], log=log)
    row["setup"] = (f"packing {metrics['packing']}" + (f" ({metrics['packed_rows']} rows)" if metrics["packing"] else "")
                    + f", precision {metrics['precision']}, attn "
                    + ("sdpa per example (varlen)" if metrics.get("varlen_attention") else model.config._attn_implementation))
    row["precision"] = metrics["precision"]
    return row


def finish(a, recipe, model, loaded, Collator, seconds, peak_mb, train_loss, state, params, log=None):
    from tuneval.train.evaluation import TaskEvaluation

    log = log if log is not None else state.log_history
    losses = [r["loss"] for r in log if "loss" in r]
    val = TaskEvaluation(recipe, loaded.tokenizer, loaded.arch).loss(model) if a.eval_examples else None
    tps = Collator.real / seconds if seconds > 0 else 0.0
    return {"tokens": Collator.real, "slots": Collator.slots, "padding_share": 1 - Collator.real / max(Collator.slots, 1),
            "seconds": seconds, "tokens_per_second": tps, "peak_memory_mb": peak_mb, "train_loss": train_loss,
            "step_losses": losses, "steps": len(losses), "val_loss": val, "params": params,
            "flops_per_token": (6 if a.method == "full" else 4) * params,
            "training": recipe.to_dict()["train"]}


# (m, k, n) of the peak measurement: a square, then SmolLM2-135M's own matmuls over 2,048 tokens
# (a batch of ~8 DialogSum examples): MLP up/gate, MLP down, q/o projections, k/v projections.
PEAK_SHAPES = [(2048, 2048, 2048), (2048, 576, 1536), (2048, 1536, 576), (2048, 576, 576), (2048, 576, 192)]


def matmul_peak(shapes=PEAK_SHAPES, repeats: int = 7, budget_s: float = 0.5,
                precisions: tuple[str, ...] = ("fp32", "bf16")) -> dict[str, Any]:
    """This machine's practical matmul ceiling per dtype of `precisions` (those the host has natively:
    peaks.Host.precisions), in GFLOP/s, and how steady it is.

    Each shape is warmed up twice, then timed `repeats` times; a shape's rate is its best repeat,
    the peak is the best shape's, and the spread (min / median / max over that shape's repeats) is
    printed beside it: a single timing swung 3x on this kind of host. A shape whose warm-up takes
    over `budget_s` is skipped (bf16 without native support runs hundreds of times slower); a
    256^3 square stands in where every shape is.
    """
    import statistics

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"

    def once(x, y) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        x @ y
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    def timed(m: int, k: int, n: int, dtype, limit: float) -> list[float] | None:
        """GFLOP/s of each repeat, sorted, after two warm-ups; None where the first takes over `limit`."""
        x = torch.randn(m, k, device=device).to(dtype)
        y = torch.randn(k, n, device=device).to(dtype)
        if once(x, y) > limit:
            return None
        once(x, y)
        return sorted(2 * m * k * n / once(x, y) / 1e9 for _ in range(repeats))

    result: dict[str, Any] = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        if name not in precisions:
            continue
        found = {f"{m}x{k}x{n}": timed(m, k, n, dtype, budget_s) for m, k, n in shapes}
        rates = {s: r for s, r in found.items() if r is not None}
        if not rates:
            rates = {"256x256x256": timed(256, 256, 256, dtype, math.inf)}
        shape = max(rates, key=lambda s: rates[s][-1])
        best = rates[shape]
        result[name] = best[-1]
        result[f"{name}_shape"] = shape
        result[f"{name}_spread"] = [best[0], statistics.median(best), best[-1]]
        result[f"{name}_shapes"] = {s: r[-1] for s, r in rates.items()}
    return result


def peak_text(peak: dict[str, Any]) -> str:
    """'fp32 152.8 GFLOP/s (2048x2048x2048; its repeats min / median / max 140.1 / 150.2 / 152.8; other
    shapes 2048x576x1536 148, ...); bf16 ...' for the report."""
    parts = []
    for name in ("fp32", "bf16"):
        if name not in peak:
            parts.append(f"{name} {no_native(name)}: not measured (an emulated rate is no roofline)")
            continue
        lo, mid, hi = peak[f"{name}_spread"]
        others = ", ".join(f"{s} {r:.0f}" for s, r in peak[f"{name}_shapes"].items() if s != peak[f"{name}_shape"])
        parts.append(f"{name} {hi:.1f} GFLOP/s ({peak[f'{name}_shape']}; its repeats min / median / max "
                     f"{lo:.1f} / {mid:.1f} / {hi:.1f}{'; other shapes ' + others if others else ''})")
    return "; ".join(parts)


def median_run(found: list[dict[str, Any]]) -> dict[str, Any]:
    """A path's row over its rounds: the run with the median tokens/s (the lower middle of an even count),
    with every round's tokens/s beside it when there were several."""
    ordered = sorted(found, key=lambda r: r["tokens_per_second"])
    row = dict(ordered[(len(ordered) - 1) // 2])
    if len(found) > 1:
        row["rounds"] = " / ".join(f"{r['tokens_per_second']:.1f}" for r in found)
    return row


def slug(name: str) -> str:
    """'tuneval, logits_to_keep=all' -> 'tuneval-logits_to_keep-all' (a file and directory name)."""
    return name.replace(", ", "-").replace("=", "-")


def worker(name: str, a: argparse.Namespace) -> dict[str, Any]:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    out = Path(a.out) / slug(name)
    load_start = os.getloadavg()[0]
    if name == "peak":
        row = matmul_peak(precisions=this_host().precisions)
    elif name == "standard":
        row = run_standard(a, out)
    elif name.startswith("trl"):
        row = run_trl(a, out, padding_free=name == "trl, padding_free")
    else:
        row = run_tuneval(a, out, {} if name == "tuneval" else LEVERS[name])
    if name != "peak":
        row["loadavg"] = f"{load_start:.1f}/{os.getloadavg()[0]:.1f}"
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [cell(r.get(k), f) for k, _, f in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    from tuneval import allocator

    allocator.maybe_reexec()  # every path (and worker process) on the allocator `tuneval` itself runs with
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--data-dir", default=None, help="Local data directory (else $TUNEVAL_DATA_DIR).")
    p.add_argument("--method", default="lora", choices=["lora", "full"])
    p.add_argument("--examples", type=int, default=40, help="Training examples (one epoch) for each path.")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--pad-to", type=int, default=512, help="The standard recipe's fixed length (examples are cut to it).")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-examples", type=int, default=16, help="Validation examples for the loss after training (0: skip).")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--levers", action="store_true", help="Also run tuneval with each lever off in turn.")
    p.add_argument("--repeats", type=int, default=1, help="Rounds over all paths, interleaved; each row is its median run.")
    p.add_argument("--out", default="runs/bench-train-throughput")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    out = Path(a.out)
    if a.worker:
        row = worker(a.worker, a)
        from tuneval.io import atomic_write_json

        atomic_write_json(out / "rows" / f"{slug(a.worker)}.json", row)
        return
    from tuneval.runs import machine
    from tuneval.io import atomic_write_json, atomic_write_text

    names = ["peak", "standard", *TRL_PATHS, "tuneval", *(LEVERS if a.levers else [])]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(a.repeats):  # interleaved: the host's drift lands on every path alike
        for name in names:
            print(f"[{name}] round {round_ + 1}/{a.repeats} running...", flush=True)
            start = time.perf_counter()
            row_file = out / "rows" / f"{slug(name)}.json"
            row_file.unlink(missing_ok=True)
            done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--worker", name])
            if done.returncode != 0 or not row_file.is_file():
                raise SystemExit(f"[{name}] worker exited with {done.returncode}")
            runs[name].append({"path": name, **json.loads(row_file.read_text())})
            print(f"[{name}] {time.perf_counter() - start:.0f} s", flush=True)
    host = this_host()
    peak = max(runs.pop("peak"), key=lambda r: r.get("bf16", r["fp32"]))  # a ceiling: the best measurement
    rows = {name: median_run(found) for name, found in runs.items()}
    for r in rows.values():
        r["model_gflops"] = r["flops_per_token"] * r["tokens_per_second"] / 1e9
        r.update(peak_cells(r["model_gflops"], r["precision"], peak, host))
    std, tv = rows["standard"], rows["tuneval"]
    best_trl = max(TRL_PATHS, key=lambda n: rows[n]["tokens_per_second"])
    speedup = tv["tokens_per_second"] / rows[best_trl]["tokens_per_second"]
    md = (f"# Training throughput: standard recipe, TRL SFTTrainer and tuneval\n\nMachine: {machine()} ({host.describe()}). "
          f"Each path's precision and its roofline (that precision's matmul peak) are in the table. Matmul peak "
          f"(m x k x n; the best shape's best repeat): {peak_text(peak)}. Model `{a.model}`, {a.method}"
          f"{' r=32 q/v' if a.method == 'lora' else ''}, {std['tokens']} real tokens in {a.examples} DialogSum "
          f"examples, batch {a.batch_size}, lr {a.lr:g}, one epoch, seed {a.seed}. Model FLOPs: "
          f"{6 if a.method == 'full' else 4} x {std['params']:,} parameters per real token. Peak memory: process "
          f"RSS (CUDA allocator peak on GPU). Val loss: first {a.eval_examples} validation examples after training. "
          f"Load average before/after each run is shown: above the core count means other jobs shared the CPU.\n\n"
          f"{table(list(rows.values()))}\n\nHow each path ran:\n\n"
          + "".join(f"- {n}: {r['setup']}\n" for n, r in rows.items() if r.get("setup"))
          + f"\nSpeedup (tuneval real tokens/s over the best TRL path's, `{best_trl}`): **{speedup:.2f}x**; over the "
          f"standard recipe's: {tv['tokens_per_second'] / std['tokens_per_second']:.2f}x.\n")
    if a.levers:
        md += "\nEach lever alone (tuneval with that one setting changed; tok/s relative to tuneval's default):\n\n"
        md += "\n".join(f"- `{n.split(', ', 1)[1]}`: {rows[n]['tokens_per_second'] / tv['tokens_per_second']:.2f}x "
                        f"speed, peak {rows[n]['peak_memory_mb']:.0f} MB" for n in LEVERS) + "\n"
    atomic_write_json(out / "train_throughput.json", {"machine": machine(), "host": host.describe(), "args": vars(a),
                                                      "matmul_peak_gflops": peak,
                                                      "rows": list(rows.values()), "runs": runs, "best_trl": best_trl,
                                                      "speedup": speedup})
    atomic_write_text(out / "train_throughput.md", md)
    print(md)
    print(f"saved: {out / 'train_throughput.md'}, train_throughput.json")
    print(f"speedup: {speedup:.2f}x")


if __name__ == "__main__":
    main()
