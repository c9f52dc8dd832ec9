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
from tuneval.models.templates import use_saved_template
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

    adapter_dir = RunDir.adapter_files(adapter_dir)
    if (adapter_dir / MARKER).is_file():
        return load_trained(loaded.model, adapter_dir, loaded.arch)
    if not (adapter_dir / PEFT_CONFIG).is_file():
        run = RunDir(adapter_dir)
        if run.has_model:
            raise TunevalError(f"adapter '{adapter_dir}': this run saved a whole model; pass --model {run.result_dir}")
        raise TunevalError(f"adapter '{adapter_dir}': no {PEFT_CONFIG} or {MARKER} there")
    return PeftModel.from_pretrained(loaded.model, str(adapter_dir))


def run_model_args(adapter: str | Path | None, args: ModelArgs | None) -> ModelArgs | None:
    """How the run `adapter` loaded its base (its recipe's model_args), under the values `args` sets
    itself: a model trained from a revision or with remote code is scored, merged and exported the
    same way without repeating the flags. Any other directory: `args` as given."""
    import dataclasses

    from tuneval.typed import build_dataclass

    if adapter is None:
        return args
    run = RunDir.of(adapter)
    saved = (run.config() or {}).get("model_args")
    if not isinstance(saved, dict):
        return args
    base = build_dataclass(ModelArgs, saved, str(run.config_file), "model_args.")
    if args is None:
        return base
    default = ModelArgs()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(ModelArgs)
             if getattr(args, f.name) != getattr(default, f.name)}
    return dataclasses.replace(base, **given)


def load_result(model: str, adapter: str | Path | None = None, precision: str = "auto",
                device: str | None = None, args: ModelArgs | None = None,
                merge: bool = False) -> tuple[LoadedModel, torch.nn.Module]:
    """(loaded base, model to score) for `model` with an optional trained result over it.

    The one path from saved weights to a scored model: `tuneval eval`, the forgetting suite,
    and the demo and sweep after training all come through here, so a score taken right
    after training is the score `tuneval eval` gives on the saved run at the same precision.
    A run directory of full fine-tuning (full weights at its root) stands for its own weights.
    `args` (model_args.py) says how the base is loaded: dtype, revision, remote code, attention;
    a run's own model_args fill in what `args` leaves at its defaults (run_model_args).
    The base's tokenizer takes the chat template the run saved, if it saved one (data.chat_template:
    NAME|FILE; models/templates.py), so generation renders conversations as training did.
    `merge`: fold a PEFT weight update (LoRA, DoRA, IA3, ...) into the base first, so generation
    runs at the base's speed (issue 17: unmerged all-linear LoRA generated 1.5x slower); see
    `_merged`. `loaded.meta["merged"]` records whether it was.
    """
    args = run_model_args(adapter, args)
    if adapter is not None and RunDir(adapter).has_model:
        loaded = load_model(str(RunDir(adapter).result_dir), precision=precision, device=device, args=args)
        return loaded, loaded.model
    quantization = _quantization(adapter)
    if merge and adapter is not None and quantization is None and _weight_update(adapter):
        loaded, net = _merged(model, adapter, precision, device, args)
    else:
        loaded = load_model(model, precision=precision, device=device, args=args, quantization=quantization)
        net = load_adapter(loaded, adapter) if adapter is not None else loaded.model
    if adapter is not None:  # a run trained under a named chat template saved it: use the run as it trained
        use_saved_template(loaded.tokenizer, RunDir.adapter_files(adapter))
    return loaded, net


def _weight_update(adapter: str | Path) -> bool:
    """A PEFT adapter whose learned state is a change to weights PEFT can fold in: not virtual input
    tokens (prompt learning), and not a method that rebuilds its base itself (QLoRA's 4-bit base,
    bitfit/freeze/bottleneck adapters' own tensors)."""
    from peft import PeftConfig

    from tuneval.methods.common import marked_method

    files = RunDir.adapter_files(adapter)
    marked = marked_method(files)
    if (marked is not None and marked[0].load is not None) or not (files / PEFT_CONFIG).is_file():
        return False
    try:
        return not PeftConfig.from_pretrained(str(files)).is_prompt_learning
    except (ValueError, TypeError, OSError):
        return False  # load_adapter then says what is wrong with it


def _merged(model: str, adapter: str | Path, precision: str, device: str | None,
            args: ModelArgs | None) -> tuple[LoadedModel, torch.nn.Module]:
    """Base and adapter merged in fp32, then cast once to the policy's dtype (as `tuneval merge` does:
    a bf16 update added to bf16 weights would round twice). An explicit model_args.dtype still wins."""
    import dataclasses

    from tuneval.precision import resolve_precision

    args = args or ModelArgs()
    policy = resolve_precision(precision)
    loaded = load_model(model, precision="fp32", device=device, args=args)
    merged = load_adapter(loaded, adapter).merge_and_unload(safe_merge=True)
    dtype = args.torch_dtype(policy)
    with torch.no_grad():  # the weights only, as from_pretrained(dtype=...) loads them: buffers such as
        for param in merged.parameters():  # RoPE's inv_freq stay fp32 (a bf16 inv_freq shifts every position)
            param.data = param.data.to(dtype)
    merged.config.dtype = dtype
    loaded = dataclasses.replace(loaded, model=merged, precision=policy, dtype=str(dtype).removeprefix("torch."),
                                 merged=True)
    return loaded, merged


def _quantization(adapter: str | Path | None) -> dict | None:
    """How the run's method loads its base (QLoRA: maybe quantized as it loads), from its marker."""
    from tuneval.methods.registry import base_quantization
    from tuneval.methods.common import marked_method

    marked = marked_method(RunDir.adapter_files(adapter)) if adapter is not None else None
    return base_quantization(*marked[:2]) if marked else None
