"""Fold an adapter into its base: one plain transformers model, no PEFT needed to serve it.

A merged model answers like base+adapter (the logits agree to float tolerance; tested) but
runs at base speed, since the low-rank update is added into the weights once instead of
computed on every token. The price: one full copy of the weights per task. Methods whose
learned state is not a weight change (prompt tuning and the other prompt-learning methods:
their virtual tokens are extra *inputs*) cannot be merged, and are refused with that reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneval.errors import TunevalError, first_line
from tuneval.io import atomic_dir
from tuneval.runs import RunDir
from tuneval.serve.adapters import AdapterDir, check_adapter_dir

# PEFT types whose adapter is an input (virtual tokens, prefixes), not a weight update.
INPUT_ADAPTERS = {"PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "MULTITASK_PROMPT_TUNING", "ADAPTION_PROMPT",
                  "CPT", "CARTRIDGE"}


def base_model_of(run: Path, vetted: AdapterDir) -> str:
    """The base a run was trained on: its recipe's `model`, else what PEFT recorded."""
    for where in (RunDir(run), RunDir.of(run)):  # a run directory, or the run above an old run's adapter/
        model = where.base_model()
        if model:
            return model
    recorded = vetted.config.get("base_model_name_or_path")
    if recorded:
        return str(recorded)
    raise TunevalError(f"{run}: cannot tell which base model the adapter belongs to; pass --model")


def check_mergeable(vetted: AdapterDir, where: str | Path, instead: str | None = None) -> None:
    """`instead`: what to do with such an adapter (default: serve it as one)."""
    if vetted.peft_type in INPUT_ADAPTERS:
        raise TunevalError(
            f"{where}: {vetted.peft_type} adapters cannot be merged: what they learn are virtual tokens added to "
            "every input, not a change to any weight, so there is nothing to fold into the base. "
            + (instead or f"Serve it as an adapter instead (tuneval serve --adapter NAME={where})")
        )


def check_out(out: Path, overwrite: bool, source: Path) -> None:
    """A non-empty `out` is replaced only with --overwrite, and never when it holds `source` (what is being read)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise TunevalError(f"{out}: already exists and is not empty; pass --overwrite to replace it")
        if out.resolve() in (source, *source.parents):
            raise TunevalError(f"{out}: would overwrite {source}, which is being read")


def merged_model(run: Path, vetted: AdapterDir, base: str, args):
    """(base with the adapter folded in, the loaded base): loaded and merged in fp32, not yet saved.

    fp32 because adding a bf16-rounded update to bf16-rounded weights would round twice;
    the caller casts the result once to the dtype it saves."""
    import dataclasses

    from peft import PeftModel

    from tuneval.models import load_model
    from tuneval.models.templates import use_saved_template

    loaded = load_model(base, precision="fp32", args=dataclasses.replace(args, dtype="float32"))
    use_saved_template(loaded.tokenizer, vetted.path)  # the chat template the run trained with goes out with it
    try:
        peft_model = PeftModel.from_pretrained(loaded.model, str(vetted.path))
    except Exception as e:
        raise TunevalError(f"{run}: adapter does not fit base '{base}': {first_line(e)}") from None
    try:
        merged = peft_model.merge_and_unload(safe_merge=True)  # safe_merge: refuse NaN/inf weights
    except (AttributeError, NotImplementedError, ValueError, TypeError) as e:
        raise TunevalError(f"{run}: PEFT cannot merge {vetted.peft_type} adapters ({e})") from None
    return merged, loaded


def merge_run(run: str | Path, out: str | Path, model: str | None = None, overwrite: bool = False,
              precision: str = "auto", model_args=None) -> dict[str, Any]:
    """Merge a run's (or an adapter directory's) adapter into its base; write `out` as safetensors.

    The merge itself is computed in fp32 (adding a bf16-rounded update to bf16-rounded weights
    would round twice); the result is saved in the precision policy's dtype, or in
    `model_args.dtype` where that names one (its revision, remote code and attention apply to the base).
    """
    from tuneval.model_args import ModelArgs
    from tuneval.precision import resolve_precision

    precision = resolve_precision(precision)  # a bad value fails before anything loads

    run, out = Path(run), Path(out)
    vetted = check_adapter_dir(run)
    check_mergeable(vetted, run)
    check_out(out, overwrite, vetted.path)
    base = model or base_model_of(run, vetted)
    from tuneval.methods.loading import run_model_args

    args = run_model_args(run, model_args) or ModelArgs()  # the run's own model_args under the flags given
    merged, loaded = merged_model(run, vetted, base, args)
    merged.config.name_or_path = str(out)
    dtype = args.torch_dtype(precision)
    merged = merged.to(dtype)
    info = {"base": base, "adapter": str(vetted.path), "peft_type": vetted.peft_type, "out": str(out), "precision": precision,
            "dtype": str(dtype).removeprefix("torch."), "revision": args.revision,
            "params": sum(p.numel() for p in merged.parameters())}
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp)  # transformers 5 writes safetensors only
        loaded.tokenizer.save_pretrained(tmp)
        (tmp / "merge.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info
