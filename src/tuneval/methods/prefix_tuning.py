"""Prefix tuning (Li & Liang 2021) through PEFT: trained key/value prefixes in every attention layer.

`num_virtual_tokens` prefix positions per layer; `prefix_projection: true` trains them
through a two-layer MLP reparameterisation (hidden `encoder_hidden_size`, default the
model's hidden size), as the paper does for stability; without it the prefixes are
trained directly. Works for causal and encoder-decoder models.
"""

from __future__ import annotations

from dataclasses import dataclass

import peft
import torch

from tuneval.methods.registry import MethodSpec, register
from tuneval.methods.common import peft_task_type, wrap_peft
from tuneval.typed import checked


@dataclass
class PrefixTuningSettings:
    num_virtual_tokens: int = checked(20, ge=1)
    prefix_projection: bool = False
    encoder_hidden_size: int | None = checked(None, ge=1, null="the model's hidden size")  # the projection MLP's width


def apply(model: torch.nn.Module, s: PrefixTuningSettings, arch: str) -> torch.nn.Module:
    kwargs = {"encoder_hidden_size": s.encoder_hidden_size} if s.encoder_hidden_size else {}
    if s.prefix_projection and not kwargs:
        kwargs["encoder_hidden_size"] = model.config.get_text_config().hidden_size
    config = peft.PrefixTuningConfig(task_type=peft_task_type(arch), num_virtual_tokens=s.num_virtual_tokens,
                                     prefix_projection=s.prefix_projection, **kwargs)
    return wrap_peft("prefix_tuning", model, config)


register(MethodSpec("prefix_tuning", PrefixTuningSettings, apply, saves="adapter", family="additive",
                    summary="trained key/value prefixes in every layer (PEFT)"))
