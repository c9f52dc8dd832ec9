"""LN tuning (Zhao et al. 2023) through PEFT: train only the normalisation layers' weights.

PEFT keeps a trainable copy of each targeted norm (LayerNorm/RMSNorm) and saves only
those; `target_modules: null` picks the norms per architecture (Llama:
input_layernorm, post_attention_layernorm, norm; T5: layer_norm, final_layer_norm).
"""

from __future__ import annotations

from dataclasses import dataclass

import peft
import torch

from tuneval.methods.registry import MethodSpec, register
from tuneval.methods.common import peft_task_type, wrap_peft


@dataclass
class LNTuningSettings:
    target_modules: list[str] | None = None


def apply(model: torch.nn.Module, s: LNTuningSettings, arch: str) -> torch.nn.Module:
    config = peft.LNTuningConfig(task_type=peft_task_type(arch), target_modules=s.target_modules)
    return wrap_peft("ln_tuning", model, config)


register(MethodSpec("ln_tuning", LNTuningSettings, apply, saves="adapter", family="selective",
                    summary="norm weights only (PEFT LN tuning)"))
