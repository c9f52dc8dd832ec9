"""The run directory `tuneval train` writes: the one place that knows its layout.

  .tuneval-run       RUN_MARKER: marks a tuneval run, the only kind of directory `--overwrite` deletes
  config.yaml        CONFIG: the resolved recipe (itself a recipe: `tuneval train RUN/config.yaml --resume`)
  checkpoints/       Trainer checkpoints (model, optimizer, scheduler, RNG) for --resume; each gets
                     COMPLETE once fully written, and --resume skips (and removes) a newer one cut
                     off mid-write (train/checkpoints.py)
  the result       at the root, so peers open the run by its own path (PeftModel.from_pretrained(base,
                     RUN), AutoModelForCausalLM.from_pretrained(RUN), lm-eval `peft=RUN`, vLLM
                     `--lora-modules name=RUN`); the method decides which files:
                       adapter_config.json + adapter_model.safetensors + tuneval_method.json: PEFT adapter
                       adapter_model.safetensors + tuneval_method.json: trained tensors (bitfit, freeze...)
                       config.json + model.safetensors + generation_config.json + tokenizer: full weights
                     with `data.chat_template: NAME|FILE` the tokenizer is saved beside an adapter too, its
                     chat_template.jinja the template every later use of the run renders with
  adapter/ | model/  where runs from before 2026-12 kept the result (still read: `result_dir`)
  train_log.jsonl    every logged step and evaluation, appended as the run goes
  curves.png         training/validation loss and the task metric per step, kept step marked
  mixture.json       what a multi-task run drew from each source
  eval/              the recipe's eval section on the result (an EvalDir, results.py: every prediction)
  metrics.json       parameters, size on disk, peak memory, tokens/s, wall time, loss, best step,
                     and the result's eval scores (train/trainer.py)
  score.json         a sweep point's row (jobs/sweep.py)

Every reader and writer of a run directory (training, loading a result, serving, merging,
inspecting soft prompts, the report, the sweep, the demo) goes through `RunDir` and these
names. An adapter directory written by hand (or by PEFT), or a saved model, reads the same way:
its result is at its root.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Mapping

import yaml

from tuneval.errors import TunevalError
from tuneval.io import atomic_dir, atomic_write_json, atomic_write_text, atomic_write_yaml

RUN_MARKER = ".tuneval-run"
CONFIG = "config.yaml"
CHECKPOINTS = "checkpoints"
COMPLETE = "tuneval_complete"  # in checkpoints/checkpoint-N/ once the checkpoint is whole (train/checkpoints.py)
ADAPTER = "adapter"  # runs from before 2026-12: the adapter in RUN/adapter/
MODEL = "model"  # and full weights in RUN/model/
MARKER = "tuneval_method.json"  # beside every adapter `tuneval train` saves: the method and its settings
TENSORS_FILE = "adapter_model.safetensors"  # PEFT's weights file, and trained-tensors-only results'
PEFT_CONFIG = "adapter_config.json"
MODEL_CONFIG = "config.json"  # transformers' config: the result is full weights
LOG = "train_log.jsonl"
CURVES = "curves.png"
MIXTURE = "mixture.json"
EVAL = "eval"
METRICS = "metrics.json"
SCORE = "score.json"
OWN = (RUN_MARKER, CONFIG, CHECKPOINTS, LOG, CURVES, MIXTURE, EVAL, METRICS, SCORE, ADAPTER, MODEL)  # not the result
FINAL = (MARKER, PEFT_CONFIG, MODEL_CONFIG)  # the files that say a result is there: moved in last
RESULT_TMP = ".result"  # where the result is saved before its files move to the root
# transformers' tokenizer files: a run trained with a named chat template saves its tokenizer with the result
# (an adapter's too), and whoever uses the run reads the template back (models/templates.py)
CHAT_TEMPLATE_FILE = "chat_template.jinja"
TOKENIZER_CONFIG = "tokenizer_config.json"


class RunDir:
    """One run directory's paths, and reading (or starting) what it holds."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # -- paths -------------------------------------------------------------------------------

    @property
    def marker_file(self) -> Path:
        return self.path / RUN_MARKER

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def log_file(self) -> Path:
        return self.path / LOG

    @property
    def curves_file(self) -> Path:
        return self.path / CURVES

    @property
    def mixture_file(self) -> Path:
        return self.path / MIXTURE

    @property
    def eval_dir(self) -> Path:
        return self.path / EVAL

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS

    @property
    def score_file(self) -> Path:
        return self.path / SCORE

    @classmethod
    def of(cls, path: str | os.PathLike) -> "RunDir":
        """The run `path` is, or the one above it when it is an old run's adapter/ or model/ given directly."""
        path = Path(path)
        return RunDir(path.parent) if path.name in (ADAPTER, MODEL) else RunDir(path)

    @staticmethod
    def adapter_files(path: str | os.PathLike) -> Path:
        """Where an adapter's files are: the run's result (its root, or an old run's adapter/), else `path`."""
        run = RunDir(path)
        return run.result_dir if run.has_adapter else run.path

    # -- what is there -----------------------------------------------------------------------

    @property
    def result_dir(self) -> Path:
        """The saved result: the run's root; for a run from before 2026-12 its model/ or adapter/."""
        for d in (self.path, self.path / MODEL, self.path / ADAPTER):
            if any((d / name).is_file() for name in FINAL):
                return d
        return self.path

    @property
    def has_adapter(self) -> bool:
        """The result is an adapter or trained tensors: tuneval's method marker or a PEFT adapter config."""
        return any((self.result_dir / name).is_file() for name in (MARKER, PEFT_CONFIG))

    @property
    def has_model(self) -> bool:
        """The result is full weights (a full fine-tuning run, or a saved model given as one)."""
        return (self.result_dir / MODEL_CONFIG).is_file() and not self.has_adapter

    def result_files(self) -> list[Path]:
        """The result's files and folders: at the root, everything but the run's own (OWN) and temporaries."""
        d = self.result_dir
        own = OWN if d == self.path else ()
        return sorted(p for p in d.iterdir() if p.name not in own and not p.name.startswith(".")) if d.is_dir() else []

    def result_mb(self) -> float:
        """Size on disk of the result alone (no checkpoints, logs or evaluations), in MB (10^6 bytes)."""
        files = [f for p in self.result_files() for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
        return sum(f.stat().st_size for f in files) / 1e6

    def is_run(self) -> bool:
        """A tuneval run: the marker, or (runs from before it) a config.yaml that reads as a recipe."""
        if self.marker_file.is_file():
            return True
        saved = self.config()
        return saved is not None and {"model", "method"} <= saved.keys()

    def finished(self) -> bool:
        """A run that got to the end: its recipe and its metrics are both there."""
        return self.metrics_file.is_file() and self.config_file.is_file()

    # -- reading -----------------------------------------------------------------------------

    def config(self) -> dict[str, Any] | None:
        """The saved recipe as a mapping; None when config.yaml is missing, unreadable or not a mapping."""
        try:
            saved = yaml.safe_load(self.config_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return None
        return saved if isinstance(saved, dict) else None

    def base_model(self) -> str | None:
        """The base model the run trained on (its recipe's `model`), if config.yaml names one."""
        model = (self.config() or {}).get("model")
        return str(model) if model else None

    def metrics(self) -> Any:
        """metrics.json as written at the end of training."""
        try:
            return json.loads(self.metrics_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise TunevalError(f"{self.metrics_file}: cannot read as JSON ({e})") from None

    # -- writing -----------------------------------------------------------------------------

    def begin(self, config: Mapping[str, Any]) -> None:
        """Mark the (existing) directory as a tuneval run and save its recipe."""
        atomic_write_text(self.marker_file, "tuneval run directory: `tuneval train --overwrite` may replace it\n")
        atomic_write_yaml(self.config_file, dict(config))

    def write_metrics(self, metrics: Mapping[str, Any]) -> None:
        atomic_write_json(self.metrics_file, dict(metrics))

    @contextmanager
    def saving_result(self) -> Iterator[Path]:
        """A fresh directory to save the result into (save_pretrained's target); on success its files
        move to the run's root, the ones that mark a result (FINAL) last, so a reader never takes half
        a result for a whole one; an old run's adapter/ or model/ then goes. On failure nothing moves."""
        saved = self.path / RESULT_TMP
        with atomic_dir(saved) as tmp:
            yield tmp
        try:
            for item in sorted(saved.iterdir(), key=lambda p: p.name in FINAL):
                if item.name in OWN:
                    raise TunevalError(f"{self.path}: the result holds {item.name}, a name the run itself uses")
                target = self.path / item.name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                os.replace(item, target)
        finally:
            shutil.rmtree(saved, ignore_errors=True)
        for old in (self.path / ADAPTER, self.path / MODEL):
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)


VERSIONED = ("tuneval", "torch", "transformers", "peft", "accelerate", "datasets", "rouge-score", "sacrebleu",
             "bitsandbytes", "matplotlib")


def environment() -> dict[str, str]:
    """Python, platform and the versions of the libraries a run's numbers depend on: saved in every
    run's metrics.json, so a run can be repeated on the same stack (or a difference explained)."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in VERSIONED:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def machine() -> str:
    """The machine a number was measured on, as every table names it: the GPU, else the CPU model,
    the threads torch uses (the same CPU gives different numbers with 1 and 16 threads) and the
    memory allocator (tcmalloc trained 1.23x faster than glibc's malloc on the same run: allocator.py)."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    from tuneval.allocator import current

    return f"{cpu}, {torch.get_num_threads()} threads, {current()} allocator"
