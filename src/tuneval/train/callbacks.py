"""Trainer callbacks and meters: what a run shows while it goes (a bar on a terminal, plain
lines elsewhere), what it keeps (train_log.jsonl as it goes, curves.png), and peak memory."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import psutil
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import TrainerCallback

from tuneval.io import atomic_write_text
from tuneval.train.curves import SKIP, plot_curves


def _speed(state, start_tokens: int, start_time: float) -> float:
    elapsed = time.perf_counter() - start_time
    return (state.num_input_tokens_seen - start_tokens) / elapsed if elapsed > 0 else 0.0


def _eval_text(logs: dict, metric: str | None) -> str:
    """'eval_loss 1.234 rouge1 0.3012' from an evaluation record (the chosen metric, else all)."""
    keys = [k for k in logs if k.startswith("eval_") and k not in SKIP and isinstance(logs[k], (int, float))]
    if metric and f"eval_{metric}" in keys:
        keys = [f"eval_{metric}"]
    parts = ([f"eval_loss {logs['eval_loss']:.4f}"] if "eval_loss" in logs else [])
    return " ".join(parts + [f"{k.removeprefix('eval_')} {logs[k]:.4f}" for k in keys])


class RichProgressCallback(TrainerCallback):
    """On a terminal: one bar per run with loss, learning rate, real (non-padding) tokens/s and
    the latest evaluation."""

    def __init__(self, description: str = "train", metric: str | None = None):
        self.description, self.metric = description, metric
        self.progress: Progress | None = None
        self.bar = None
        self.start_tokens = 0
        self.start_time = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("lr {task.fields[lr]}"),
            TextColumn("{task.fields[tps]} tok/s"), TextColumn("{task.fields[eval]}"),
            TimeElapsedColumn(), TimeRemainingColumn(),
        )
        self.progress.start()
        self.bar = self.progress.add_task(self.description, total=state.max_steps, completed=state.global_step,
                                          loss="-", lr="-", tps="-", eval="")
        self.start_tokens = state.num_input_tokens_seen
        self.start_time = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            tps = _speed(state, self.start_tokens, self.start_time)
            self.progress.update(self.bar, completed=state.global_step, tps=f"{tps:.0f}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is None or not logs:
            return
        if "loss" in logs:
            self.progress.update(self.bar, loss=f"{logs['loss']:.3f}", lr=f"{logs.get('learning_rate', 0):.2e}")
        if "eval_loss" in logs or any(k.startswith("eval_") for k in logs):
            self.progress.update(self.bar, eval=_eval_text(logs, self.metric))

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class PlainLogCallback(TrainerCallback):
    """When stdout is not a terminal (a batch job, CI, nohup), a bar prints nothing until the
    end; this prints one plain line per logging step and per evaluation instead."""

    def __init__(self, description: str = "train", metric: str | None = None, stream=None):
        self.description, self.metric, self.stream = description, metric, stream
        self.start_tokens = 0
        self.start_time = 0.0

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def on_train_begin(self, args, state, control, **kwargs):
        self.start_tokens = state.num_input_tokens_seen
        self.start_time = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        head = f"{self.description} step {state.global_step}/{state.max_steps} epoch {state.epoch or 0:.2f}"
        if "loss" in logs:
            tps = _speed(state, self.start_tokens, self.start_time)
            self._print(f"{head} loss {logs['loss']:.4f} lr {logs.get('learning_rate', 0):.2e} {tps:.0f} tok/s")
        elif "eval_loss" in logs or any(k.startswith("eval_") for k in logs):
            self._print(f"{head} {_eval_text(logs, self.metric)}")


def progress_callback(description: str, metric: str | None = None) -> TrainerCallback:
    """The bar on a terminal, plain lines otherwise."""
    if Console().is_terminal:
        return RichProgressCallback(description, metric)
    return PlainLogCallback(description, metric)


class JsonlLog(TrainerCallback):
    """train_log.jsonl, appended as the run goes, so a killed run keeps its history.

    On --resume the Trainer restores log_history from the checkpoint; the file is rewritten
    from it first, so the steps replayed after the checkpoint are not in it twice.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in state.log_history))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and state.log_history:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(state.log_history[-1]) + "\n")


class CurvesCallback(TrainerCallback):
    """curves.png in the run directory, drawn again after each evaluation and at the end."""

    def __init__(self, path: Path, metric: str | None = None, title: str = ""):
        self.path, self.metric, self.title = Path(path), metric, title

    def _draw(self, state) -> None:
        if state.is_world_process_zero:
            plot_curves(state.log_history, self.path, metric=self.metric, best_step=state.best_global_step,
                        title=self.title)

    def on_evaluate(self, args, state, control, **kwargs):
        self._draw(state)

    def on_train_end(self, args, state, control, **kwargs):
        self._draw(state)


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
