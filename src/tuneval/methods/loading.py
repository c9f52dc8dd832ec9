"""From saved weights to the model to score: a base model with a trained result over it.

This lives with the methods, not in models/: putting a result back means asking its method
(tuneval_method.json names it) to rebuild it, and models/ sits below methods/.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tuneval.errors import TunevalError
from tuneval.methods.common import load_trained
from tuneval.models import LoadedModel, ModelArgs, load_model
from tuneval.runs import MARKER, PEFT_CONFIG, RunDir


def run_label(model: str, adapter: str | Path | None = None) -> str:
    """How results name a model: `model`, or `model+RUN` with a trained result (RUN: its directory's name)."""
    return f"{model}+{Path(adapter).name}" if adapter else model


def load_adapter(loaded: LoadedModel, adapter_dir: str | Path) -> torch.nn.Module:
    """Put a trained result back over the base: a PEFT adapter, or any tuneval method's result.

    A directory with tuneval_method.json (every `tuneval train` adapter) is rebuilt by its
    method (QLoRA re-quantizes the base first; bitfit/freeze/bottleneck adapters load their
    trained tensors); a plain PEFT adapter directory goes through PeftModel.from_pretrained.
    """
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if RunDir(adapter_dir).has_adapter:  # a run directory
        adapter_dir = RunDir(adapter_dir).adapter_dir
    if (adapter_dir / MARKER).is_file():
        return load_trained(loaded.model, adapter_dir, loaded.arch)
    if not (adapter_dir / PEFT_CONFIG).is_file():
        run = RunDir(adapter_dir)
        if run.has_model:
            raise TunevalError(f"adapter '{adapter_dir}': this run saved a whole model; pass --model {run.model_dir}")
        raise TunevalError(f"adapter '{adapter_dir}': no {PEFT_CONFIG} or {MARKER} there")
    return PeftModel.from_pretrained(loaded.model, str(adapter_dir))


def load_result(model: str, adapter: str | Path | None = None, precision: str = "auto",
                device: str | None = None, args: ModelArgs | None = None) -> tuple[LoadedModel, torch.nn.Module]:
    """(loaded base, model to score) for `model` with an optional trained result over it.

    The one path from saved weights to a scored model: `tuneval eval`, the forgetting suite,
    and the demo and sweep after training all come through here, so a score taken right
    after training is the score `tuneval eval` gives on the saved run at the same precision.
    A run directory of full fine-tuning (it holds model/) stands for its own weights.
    `args` (model_args.py) says how the base is loaded: dtype, revision, remote code, attention.
    """
    if adapter is not None and RunDir(adapter).has_model:
        loaded = load_model(str(RunDir(adapter).model_dir), precision=precision, device=device, args=args)
        return loaded, loaded.model
    loaded = load_model(model, precision=precision, device=device, args=args)
    return loaded, (load_adapter(loaded, adapter) if adapter is not None else loaded.model)
