"""What the method modules share: PEFT wrapping, saving only trained tensors, the method marker.

Two ways a method's result goes back over its base model:
  * a PEFT adapter (adapter_config.json + adapter_model.safetensors), reloaded with
    PeftModel.from_pretrained;
  * "trained tensors only" for methods PEFT does not have (bitfit, freeze, bottleneck
    adapters): adapter_model.safetensors holds exactly the parameters that trained, under
    their names in the model; reloading applies the method to a fresh base (same
    structure) and copies them in.
Either way `tuneval_method.json` names the method and its options.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Iterable

import peft
import torch

from tuneval.errors import TunevalError, first_line
from tuneval.runs import MARKER, TENSORS_FILE
from tuneval.typed import build_dataclass


def peft_task_type(arch: str) -> peft.TaskType:
    return peft.TaskType.SEQ_2_SEQ_LM if arch == "seq2seq" else peft.TaskType.CAUSAL_LM


def wrap_peft(method: str, model: torch.nn.Module, config: peft.PeftConfig) -> torch.nn.Module:
    """get_peft_model, with PEFT's complaints (no such module, unknown architecture) as one clear line."""
    try:
        return peft.get_peft_model(model, config)
    except (ValueError, KeyError, TypeError) as e:
        kind = getattr(getattr(model, "config", None), "model_type", "?")
        raise TunevalError(f"{method}: cannot apply to this model (model_type '{kind}'): {first_line(e)}") from None


def targets(value: list[str] | None) -> list[str] | str | None:
    """A recipe's target_modules: None (PEFT's default for the architecture), a list, or 'all-linear'."""
    return "all-linear" if value == ["all-linear"] else value


def freeze_all(model: torch.nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def train_only(method: str, model: torch.nn.Module, names: Iterable[str], what: str) -> torch.nn.Module:
    """Freeze everything, then unfreeze the named parameters; refuse to train nothing."""
    names = set(names)
    if not names:
        kind = getattr(getattr(model, "config", None), "model_type", "?")
        raise TunevalError(f"{method}: {what} in this model (model_type '{kind}'), so nothing would train")
    freeze_all(model)
    for name, p in model.named_parameters():
        if name in names:
            p.requires_grad_(True)
    return model


def pattern_list(method: str, key: str, patterns: list[str] | None) -> list[re.Pattern]:
    out = []
    for p in patterns or []:
        try:
            out.append(re.compile(p))
        except re.error as e:
            raise TunevalError(f"{method}.{key}: '{p}' is not a valid regular expression ({e})") from None
    return out


# -- trained tensors only ------------------------------------------------------------------------

def save_trained_tensors(model: torch.nn.Module, directory: Path) -> None:
    """Write the parameters that train (requires_grad), by name; tied weights once."""
    from safetensors.torch import save_file

    tensors = {n: p.detach().to("cpu").contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(tensors, str(Path(directory) / TENSORS_FILE), metadata={"format": "pt", "tuneval": "trained-tensors"})


def load_trained_tensors(apply):
    """A `load` for MethodSpec: apply the method to a fresh base, then copy the saved tensors in."""

    def load(model: torch.nn.Module, directory: Path, settings: Any, arch: str) -> torch.nn.Module:
        from safetensors.torch import load_file

        net = apply(model, settings, arch)
        params = dict(net.named_parameters())
        saved = load_file(str(Path(directory) / TENSORS_FILE))
        unknown = [k for k in saved if k not in params]
        if unknown:
            raise TunevalError(f"{directory}: saved tensor '{unknown[0]}' is not in this base model; "
                               "was it trained on a different model?")
        with torch.no_grad():
            for name, value in saved.items():
                if params[name].shape != value.shape:
                    raise TunevalError(f"{directory}: '{name}' has shape {tuple(value.shape)} but the base model's is "
                                       f"{tuple(params[name].shape)}; was it trained on a different model?")
                params[name].copy_(value)
        return net

    return load


# -- the marker, saving and reloading whatever a method trained ----------------------------------

def save_trained(spec, settings: Any, arch: str, model: torch.nn.Module, directory: Path,
                 state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """Write a trained model as its method saves it, plus the marker for reloading.

    `state_dict`: the full weights gathered from an FSDP-sharded `model`, whose own parameters
    are each rank's shards; only save_pretrained (full weights, PEFT adapters) can take them.
    The gather copies tied weights apart (lm_head and the embeddings), so the tied copies are
    dropped here, as save_pretrained drops them from a model's own state dict."""
    directory = Path(directory)
    if spec.save is not None:
        if state_dict is not None:
            raise TunevalError(f"method '{spec.name}' saves its trained tensors itself and cannot save under FSDP; "
                               "train it with DDP (recipes/accelerate/ddp.yaml)")
        spec.save(model, directory)
    else:
        if state_dict is not None:
            tied = getattr(model, "all_tied_weights_keys", None) or {}
            state_dict = {k: v for k, v in state_dict.items() if k not in tied}
        model.save_pretrained(directory, **({"state_dict": state_dict} if state_dict is not None else {}))
    if spec.saves == "adapter":
        fields = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else {}
        info = {"method": spec.name, "settings": fields, "arch": arch,
                "format": "trained-tensors" if spec.save is not None else "peft"}
        (directory / MARKER).write_text(json.dumps(info, indent=2) + "\n")


def read_marker(directory: Path) -> dict[str, Any] | None:
    path = Path(directory) / MARKER
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise TunevalError(f"{path}: not valid JSON ({e.msg})") from None


def marked_method(directory: Path) -> tuple[Any, Any, dict[str, Any]] | None:
    """(method spec, its settings, the marker) a result directory was saved with; None without a marker."""
    from tuneval.methods.registry import get_method

    info = read_marker(directory)
    if info is None:
        return None
    spec = get_method(info.get("method", ""))
    settings = build_dataclass(spec.settings, info.get("settings") or {}, str(Path(directory) / MARKER), f"{spec.name}.")
    return spec, settings, info


def load_trained(model: torch.nn.Module, directory: Path, arch: str) -> torch.nn.Module:
    """Rebuild a trained model over `model` (a fresh base) from a directory with a marker."""
    directory = Path(directory)
    marked = marked_method(directory)
    if marked is None:
        raise TunevalError(f"{directory}: no {MARKER} there")
    spec, settings, info = marked
    if info.get("arch") and info["arch"] != arch:
        raise TunevalError(f"{directory}: trained on a {info['arch']} model, but the base model is {arch}")
    if spec.load is not None:
        return spec.load(model, directory, settings, arch)
    return peft.PeftModel.from_pretrained(model, str(directory))
