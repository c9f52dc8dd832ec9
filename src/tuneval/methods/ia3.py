"""(IA)^3 (Liu et al. 2022) through PEFT: learned vectors that rescale keys, values and FFN activations.

`target_modules`/`feedforward_modules: null` are PEFT's per-architecture defaults (Llama:
k_proj, v_proj, down_proj with down_proj feed-forward; T5: k, v, wo with wo feed-forward).
Feed-forward targets are scaled on their input, the others on their output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import peft
import torch

from tuneval.methods.registry import MethodSpec, register
from tuneval.methods.common import peft_task_type, targets, wrap_peft


@dataclass
class IA3Settings:
    target_modules: list[str] | None = None
    feedforward_modules: list[str] | None = None
    init_ia3_weights: bool = True  # ones: the model starts unchanged

    def check(self) -> Iterator[tuple[str, str]]:
        if self.feedforward_modules is not None and self.target_modules is None:
            yield "feedforward_modules", "needs ia3.target_modules too (it must be a subset of them)"


def apply(model: torch.nn.Module, s: IA3Settings, arch: str) -> torch.nn.Module:
    config = peft.IA3Config(task_type=peft_task_type(arch), target_modules=targets(s.target_modules),
                            feedforward_modules=s.feedforward_modules, init_ia3_weights=s.init_ia3_weights)
    return wrap_peft("ia3", model, config)


register(MethodSpec("ia3", IA3Settings, apply, saves="adapter", family="additive",
                    summary="rescaling vectors on keys, values, FFN (PEFT IA3)"))
