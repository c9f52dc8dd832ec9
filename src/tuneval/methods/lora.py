"""LoRA (Hu et al. 2021) through PEFT: low-rank A·B updates beside frozen weights.

Defaults follow the course lab: r=32, alpha=32, dropout 0.05 on the attention query and
value projections. `target_modules: null` lets PEFT pick those per architecture
(q_proj/v_proj for Llama, q/v for T5); `[all-linear]` targets every linear layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import peft
import torch

from tuneval.errors import TunevalError
from tuneval.methods import MethodSpec, register


@dataclass
class LoraSettings:
    r: int = 32
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] | None = None
    bias: str = "none"
    use_rslora: bool = False
    use_dora: bool = False


def peft_task_type(arch: str) -> peft.TaskType:
    return peft.TaskType.SEQ_2_SEQ_LM if arch == "seq2seq" else peft.TaskType.CAUSAL_LM


def apply(model: torch.nn.Module, s: LoraSettings, arch: str) -> torch.nn.Module:
    targets: list[str] | str | None = s.target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    config = peft.LoraConfig(
        task_type=peft_task_type(arch),
        r=s.r,
        lora_alpha=s.lora_alpha,
        lora_dropout=s.lora_dropout,
        target_modules=targets,
        bias=s.bias,
        use_rslora=s.use_rslora,
        use_dora=s.use_dora,
    )
    try:
        return peft.get_peft_model(model, config)
    except ValueError as e:  # e.g. target modules not found in the model
        raise TunevalError(f"lora: {e}") from None


register(MethodSpec("lora", LoraSettings, apply, saves="adapter", summary="low-rank adapters (PEFT LoRA)"))
