"""Which process writes: under `torchrun` / `accelerate launch` every rank runs the same `train()`.

Only the main process (global rank 0) creates, clears and writes the run directory; the
others train and read. The launchers set RANK before the process group exists, which is
when the run directory is prepared, so the environment is what we read.
"""

from __future__ import annotations

import os


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0
