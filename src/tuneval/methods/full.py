"""Full fine-tuning: every weight trains; the run saves a whole model."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tuneval.methods.registry import MethodSpec, register


@dataclass
class FullSettings:
    """No options: all parameters train."""


def apply(model: torch.nn.Module, settings: FullSettings, arch: str) -> torch.nn.Module:
    for p in model.parameters():
        p.requires_grad_(True)
    return model


register(MethodSpec("full", FullSettings, apply, saves="model", summary="update every weight", family="full"))
