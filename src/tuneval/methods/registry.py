"""The method registry: what a method is (MethodSpec), the methods known (METHODS), and how one is
found by name. Each method module calls `register` once; methods/__init__.py imports them all.

Its own module, below the methods, so a method imports this and never its package (the PEFT way:
one registration per method, in the method's own module).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from tuneval.errors import TunevalError


@dataclass(frozen=True)
class MethodSpec:
    name: str
    settings: type  # a dataclass; its fields are the recipe section `<name>:`
    apply: Callable[[torch.nn.Module, Any, str], torch.nn.Module]  # (model, settings, arch)
    saves: str  # "adapter" (small, goes over the base) or "model" (full weights)
    summary: str
    family: str = "other"  # selective | reparameterisation | additive | full
    # (model, directory): write the result; None = model.save_pretrained (PEFT adapter or full model)
    save: Callable[[torch.nn.Module, Path], None] | None = None
    # (base model, directory, settings, arch) -> model; None = PeftModel.from_pretrained
    load: Callable[[torch.nn.Module, Path, Any, str], torch.nn.Module] | None = None
    # settings -> quantization options for loading the base (models.load_model's `quantization`), or
    # None to load it in full precision first (QLoRA quantizing at from_pretrained: methods/qlora.py)
    load_quantization: Callable[[Any], dict | None] | None = None


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    METHODS[spec.name] = spec
    return spec


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise TunevalError(f"unknown method '{name}' (known: {', '.join(sorted(METHODS))})")
    return METHODS[name]


def base_quantization(spec: MethodSpec, settings: Any) -> dict | None:
    """How the method wants its base loaded (None: as is), for training and for reloading alike."""
    return spec.load_quantization(settings) if spec.load_quantization is not None else None


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total), counted as PEFT counts them (a packed 4-bit weight counts its 4-bit values)."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def format_parameters(trainable: int, total: int) -> str:
    """PEFT's own line, so numbers can be compared with print_trainable_parameters()."""
    return f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"
