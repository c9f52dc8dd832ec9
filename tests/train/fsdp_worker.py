"""A few FSDP2 training steps of a tuneval method, for tests/train/test_distributed.py.

Under torchrun (2 gloo CPU processes) the model is sharded with torch's `fully_shard`, one unit
per decoder layer (the model's `_no_split_modules`, as accelerate's TRANSFORMER_BASED_WRAP
picks them) and one at the root, each rank taking half of every global batch. Called in-process
(`run(...)`, no process group) it is the one-process reference at the same global batch.

Why not the Trainer: accelerate 1.15 applies an FSDP plugin only for GPU-class devices (its
AcceleratorState enables FSDP for MULTI_GPU/NPU/XPU/..., not MULTI_CPU), so on a CPU
`accelerate launch --config_file <FSDP config with use_cpu: true>` runs plain multi-CPU data
parallelism instead. This worker drives the same pieces tuneval uses under FSDP: the method's
`apply`, the collator, and at the end the full state dict gathered to rank 0 with the options
accelerate's `get_state_dict` uses for FSDP2, written by `save_trained(..., state_dict)`.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/train/fsdp_worker.py MODEL DATA OUT METHOD
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

STEPS, GLOBAL_BATCH = 3, 4


def recipe_for(model_dir, data_dir, out, method):
    from tuneval.config import recipe_from_dict

    raw = {"model": str(model_dir), "task": "dialogsum", "method": method, "seed": 7, "output_dir": str(out),
           "data": {"data_dir": str(data_dir), "train_examples": STEPS * GLOBAL_BATCH, "max_seq_len": 256}}
    if method == "lora":
        raw["lora"] = {"lora_dropout": 0.0}  # dropout draws differ per process
    return recipe_from_dict(raw, "fsdp-test")


def run(model_dir, data_dir, out, method: str) -> list[float]:
    """Train STEPS steps; write OUT/losses.json and the result (at OUT's root, as a run keeps it) from rank 0."""
    import torch.distributed as dist

    from tuneval.data.collate import DataCollator
    from tuneval.methods import get_method
    from tuneval.methods.common import save_trained
    from tuneval.models import load_model
    from tuneval.runs import RunDir
    from tuneval.train.trainer import build_examples

    sharded = dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if sharded else (0, 1)
    recipe = recipe_for(model_dir, data_dir, out, method)
    loaded = load_model(str(model_dir), precision="fp32", device="cpu")
    examples, _ = build_examples(recipe, loaded)
    spec = get_method(method)
    torch.manual_seed(recipe.seed)
    model = spec.apply(loaded.model, recipe.method_args, loaded.arch)
    model.config.use_cache = False
    if sharded:
        from torch.distributed.fsdp import fully_shard

        units = set(loaded.model._no_split_modules)
        for module in list(model.modules()):
            if type(module).__name__ in units:
                fully_shard(module)
        fully_shard(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    collate = DataCollator(loaded.tokenizer.pad_token_id)
    share = GLOBAL_BATCH // world
    losses = []
    for step in range(STEPS):
        mine = examples[step * GLOBAL_BATCH:(step + 1) * GLOBAL_BATCH][rank * share:(rank + 1) * share]
        batch = collate(mine)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        total = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1), ignore_index=-100,
                                reduction="sum")
        sums = torch.stack([total.detach(), (labels != -100).sum().float()])
        if sharded:
            dist.all_reduce(sums)
        # FSDP averages gradients over the ranks; scaled so they equal the global batch's mean-token loss
        (total / sums[1] * world).backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(sums[0] / sums[1]))
    state = None
    if sharded:  # every rank joins the gather; rank 0 gets the full weights on the CPU
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        Path(out).mkdir(parents=True, exist_ok=True)
        with RunDir(out).saving_result() as result:  # as train/trainer.py saves a run's result
            save_trained(spec, recipe.method_args, loaded.arch, model, result, state)
            if spec.saves == "model":
                loaded.tokenizer.save_pretrained(result)
        (Path(out) / "losses.json").write_text(json.dumps(losses))
        (Path(out) / "sharded.json").write_text(json.dumps({"world": world, "fsdp": sharded}))
    if sharded:
        dist.barrier()
    return losses


if __name__ == "__main__":
    import torch.distributed as dist

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    dist.init_process_group("gloo")
    try:
        run(*sys.argv[1:5])
    finally:
        dist.destroy_process_group()
