"""Checkpoints that a kill cannot pass off as whole, so `--resume` never starts from a torn one.

The Trainer (transformers 5.23, `Trainer._save_checkpoint`) writes a checkpoint file by file
— weights, optimizer, scheduler, RNG state, trainer_state.json last — then deletes old
checkpoints beyond save_total_limit, and only then calls `on_save`. A process killed in
between leaves `checkpoint-N/` looking like a checkpoint; resuming from it crashed.

`MarkComplete` (an `on_save` callback) flushes the checkpoint's files to disk and then writes
COMPLETE into it. A checkpoint counts as complete when:
- COMPLETE is there (every checkpoint tuneval writes from now on), or
- it has no COMPLETE but trainer_state.json parses and names its step, with weights and
  optimizer state beside it: checkpoints from before the marker, and the one case the marker
  misses — a kill after rotation and before `on_save`, when the older complete checkpoint may
  already be deleted. Since trainer_state.json is written last, a readable one means every
  file before it was written whole (true when the process dies; only the marker, with its
  fsync, also covers a power cut).
Rotation itself cannot keep a torn checkpoint over a complete one: it runs only after the new
checkpoint's trainer_state.json is written, and `resume_checkpoint` removes torn checkpoints,
so none is left among those that rotation sorts by time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import torch
from transformers import TrainerCallback

from tuneval.io import atomic_write_json
from tuneval.runs import COMPLETE

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_NOT_WEIGHTS = ("optimizer", "scheduler", "scaler", "rng_state", "training_args")


def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for root, _, files in os.walk(path):
        for name in files:
            _fsync(os.path.join(root, name))
        _fsync(root)


class MarkComplete(TrainerCallback):
    """Write COMPLETE into a checkpoint once the Trainer has finished saving it."""

    def on_save(self, args, state, control, **kwargs):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()  # every rank has written its RNG state before the marker says "whole"
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if args.should_save and path.is_dir():
            _fsync_tree(path)
            atomic_write_json(path / COMPLETE, {"global_step": state.global_step})
            _fsync(path)  # the marker's rename reaches the disk too


def is_complete(path: Path) -> bool:
    """See the module docstring for why a checkpoint without the marker may still count."""
    match = _CHECKPOINT.match(path.name)
    if not match or not path.is_dir() or not (path / "trainer_state.json").is_file():
        return False
    if (path / COMPLETE).is_file():
        return True
    try:
        state = json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(state, dict) or state.get("global_step") != int(match.group(1)):
        return False
    names = [p.name for p in path.iterdir()]
    weights = any((n.endswith((".safetensors", ".bin")) and not n.startswith(_NOT_WEIGHTS))
                  or n.startswith(("pytorch_model_fsdp", "global_step")) for n in names)  # + FSDP, DeepSpeed
    optimizer = any(n.startswith(("optimizer", "global_step")) for n in names)
    return weights and optimizer


def checkpoints(folder: Path) -> list[Path]:
    """Checkpoint directories in `folder`, newest step first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found, reverse=True)]


def last_complete(folder: Path) -> Path | None:
    return next((p for p in checkpoints(folder) if is_complete(p)), None)


def resume_checkpoint(folder: Path, main: bool = True) -> str | None:
    """The newest complete checkpoint; torn ones after it are named on stderr and removed (by rank 0).

    A torn checkpoint holds nothing to resume from, and the resumed run writes that step again.
    """
    chosen = last_complete(folder)
    for path in checkpoints(folder):
        if path == chosen:
            break
        if main:
            print(f"skipping incomplete checkpoint {path} (cut off while being written; removed), resuming from "
                  f"{chosen.name if chosen else 'the start'}", file=sys.stderr, flush=True)
            shutil.rmtree(path, ignore_errors=True)
    return str(chosen) if chosen else None
