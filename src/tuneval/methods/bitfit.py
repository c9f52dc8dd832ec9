"""BitFit (Ben Zaken et al. 2022): train only the bias terms, every weight frozen.

Includes norm biases, as the paper does. `target_modules` restricts it to the biases of
modules whose name contains one of the given names (e.g. [q_proj, v_proj]). Models
without bias terms (Llama, Mistral, SmolLM2, T5) are refused with a clear error: there
is nothing for BitFit to train there. Saves only the biases (trained tensors only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tuneval.errors import TunevalError
from tuneval.methods.registry import MethodSpec, register
from tuneval.methods.common import load_trained_tensors, save_trained_tensors, train_only


@dataclass
class BitFitSettings:
    target_modules: list[str] | None = None  # None: every bias


def bias_names(model: torch.nn.Module, s: BitFitSettings) -> list[str]:
    names = []
    for name, _ in model.named_parameters():
        module, _, leaf = name.rpartition(".")
        if leaf != "bias":
            continue
        if s.target_modules is None or any(t in module.split(".") or module.endswith(t) for t in s.target_modules):
            names.append(name)
    return names


def apply(model: torch.nn.Module, s: BitFitSettings, arch: str) -> torch.nn.Module:
    kind = getattr(model.config, "model_type", "?")
    if not any(n.endswith(".bias") for n, _ in model.named_parameters()):
        raise TunevalError(f"bitfit: this model (model_type '{kind}') has no bias terms, so BitFit would train "
                           "nothing; Llama-style and T5 models have none (try ln_tuning or ia3 instead)")
    return train_only("bitfit", model, bias_names(model, s), f"no bias terms in modules {s.target_modules}")


register(MethodSpec("bitfit", BitFitSettings, apply, saves="adapter", family="selective",
                    save=save_trained_tensors, load=load_trained_tensors(apply), summary="bias terms only"))
