"""LoRA (Hu et al. 2021) through PEFT: low-rank A·B updates beside frozen weights.

Defaults follow the course lab: r=32, alpha=32, dropout 0.05 on the attention query and
value projections. `target_modules: null` lets PEFT pick those per architecture
(q_proj/v_proj for Llama, q/v for T5); `[all-linear]` targets every linear layer.
`use_rslora` scales by alpha/sqrt(r) instead of alpha/r (Kalajdzievski 2023); `use_dora`
splits each weight into magnitude and direction (Liu et al. 2024); `bias` is PEFT's
(none | all | lora_only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import peft
import torch

from tuneval.methods.registry import MethodSpec, register
from tuneval.methods.common import peft_task_type, targets, wrap_peft
from tuneval.typed import checked

__all__ = ["LoraSettings", "apply", "lora_config", "peft_task_type"]

BIAS = ("none", "all", "lora_only")


@dataclass
class LoraSettings:
    r: int = checked(32, ge=1)
    lora_alpha: int = checked(32, gt=0)
    lora_dropout: float = checked(0.05, ge=0, lt=1)
    target_modules: list[str] | None = None
    bias: str = checked("none", choices=BIAS)
    use_rslora: bool = False
    use_dora: bool = False

    def check(self) -> Iterator[tuple[str, str]]:
        if self.target_modules == []:  # PEFT would fail only once the model is loaded
            yield "target_modules", "must name at least one module (or be null: PEFT's default for the architecture)"


def lora_config(s: LoraSettings, arch: str) -> peft.LoraConfig:
    return peft.LoraConfig(
        task_type=peft_task_type(arch),
        r=s.r,
        lora_alpha=s.lora_alpha,
        lora_dropout=s.lora_dropout,
        target_modules=targets(s.target_modules),
        bias=s.bias,
        use_rslora=s.use_rslora,
        use_dora=s.use_dora,
    )


def apply(model: torch.nn.Module, s: LoraSettings, arch: str) -> torch.nn.Module:
    return wrap_peft("lora", model, lora_config(s, arch))


register(MethodSpec("lora", LoraSettings, apply, saves="adapter", summary="low-rank adapters (PEFT LoRA)",
                    family="reparameterisation"))
