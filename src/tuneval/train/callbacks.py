"""Trainer callbacks and meters: a rich progress bar (loss, tokens/s) and peak memory."""

from __future__ import annotations

import threading
import time

import psutil
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import TrainerCallback


class RichProgressCallback(TrainerCallback):
    """One bar per training run: steps, loss, and real (non-padding) tokens per second."""

    def __init__(self, description: str = "train"):
        self.description = description
        self.progress: Progress | None = None
        self.bar = None
        self.loss = float("nan")
        self.start_tokens = 0
        self.start_time = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(), TimeRemainingColumn(),
        )
        self.progress.start()
        self.bar = self.progress.add_task(self.description, total=state.max_steps, completed=state.global_step,
                                          loss="-", tps="-")
        self.start_tokens = state.num_input_tokens_seen
        self.start_time = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is None:
            return
        elapsed = time.perf_counter() - self.start_time
        tps = (state.num_input_tokens_seen - self.start_tokens) / elapsed if elapsed > 0 else 0.0
        self.progress.update(self.bar, completed=state.global_step, tps=f"{tps:.0f}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is not None and logs and "loss" in logs:
            self.progress.update(self.bar, loss=f"{logs['loss']:.3f}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class PeakMemory:
    """Peak memory while the block runs: CUDA allocator peak on GPU, else process RSS sampled at 20 Hz."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cuda = torch.cuda.is_available()

    def _sample(self):
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.peak_bytes = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, psutil.Process().memory_info().rss)
        return False

    @property
    def kind(self) -> str:
        return "cuda_max_allocated" if self.cuda else "process_rss"

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20
