"""Evaluation over several processes: each rank scores a strided share, every rank gets it all back.

`torchrun --nproc_per_node N -m tuneval.cli eval ...` (or `accelerate launch -m tuneval.cli eval ...`)
starts N copies of the command, as `accelerate launch -m lm_eval` does for lm-eval. Each copy
loads the model on its own device and takes examples i = rank, rank + N, ... (strided, so long
and short examples spread evenly over the ranks); the per-example outputs are gathered back into
the original order. Every rank receives the whole list (`all_gather_object`, which gloo and NCCL
both support), so the metrics are computed from the same numbers everywhere: a caller such as
the Trainer choosing its best checkpoint sees the same dict on every rank. Only rank 0 writes
files. Greedy generation and log-likelihood scoring of an example do not depend on which other
examples share its batch (tests/evaluate/test_eval.py::test_batched_generation_matches_one_at_a_time),
so N processes write what one process writes (tests/evaluate/test_distributed_eval.py).

A model sharded by FSDP is not split: its forward pass is itself a collective, and ranks running
different examples (or a different number of decoding steps) would wait on each other forever.
Such a model scores every example on every rank, as before.
"""

from __future__ import annotations

import atexit
import os
from typing import Any, Callable, Sequence

import torch


def world() -> tuple[int, int]:
    """(rank, world size) of the running process group; (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process writes files and prints: rank 0, or the only process."""
    return world()[0] == 0


def init_from_env() -> bool:
    """Join the process group a launcher set up (WORLD_SIZE > 1 in the environment); True if joined.

    `tuneval eval`, `forgetting` and `demo` call this first. Training needs no call: the Trainer
    (accelerate) joins the group itself and finds it already there when the demo started it.
    The GPU is chosen before the group starts, so "cuda" means cuda:LOCAL_RANK from then on and
    every rank loads its model onto its own card.
    """
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        atexit.register(_leave)
    return True


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def splits(model) -> bool:
    """Whether `model`'s examples are shared out over the ranks (not for an FSDP-sharded model)."""
    if world()[1] == 1:
        return False
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - torch without FSDP2
        return True
    return not any(isinstance(m, FSDPModule) for m in model.modules())


def map_examples(model, items: Sequence, run: Callable[[list], tuple[list, dict[str, Any]]],
                 shard: bool | None = None) -> tuple[list, dict[str, Any]]:
    """`run(items)` -> (one output per item, numeric counters), computed over the ranks.

    Returns every item's output in input order and the counters summed over the ranks (plus
    "processes" when shared out), on every rank. `shard` None shares out whenever a process
    group of 2+ ranks is up and the model allows it (`splits`); False keeps everything in this
    process (a caller running on rank 0 alone).
    """
    items = list(items)
    rank, size = world()
    if not (splits(model) if shard is None else shard and size > 1):
        return run(items)
    import torch.distributed as dist

    mine = items[rank::size]
    outputs, counters = run(mine) if mine else ([], {})
    gathered: list = [None] * size
    dist.all_gather_object(gathered, (list(outputs), dict(counters)))
    merged: list = [None] * len(items)
    totals: dict[str, Any] = {}
    for r, (part, counts) in enumerate(gathered):
        merged[r::size] = part
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v if isinstance(v, (int, float)) and not isinstance(v, bool) else v
    return merged, {**totals, "processes": size}

