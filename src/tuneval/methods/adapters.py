"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2020), one small module of our own.

Each adapter is down-projection -> non-linearity -> up-projection plus a residual,
h + up(f(down(h))), applied to the output of a sublayer before the block's own residual
add: after attention (`mh_adapter`: self- and cross-attention output projections) and/or
after the feed-forward block (`output_adapter`: its down/output projection). Houlsby =
both (the default); Pfeiffer = output_adapter only. Bottleneck width = hidden size /
`reduction_factor`. The up-projection starts at zero, so training starts from exactly the
base model. Option names are AdapterHub's (`adapters` library), which cannot be used
here: it pins transformers 4.x.

The adapter is a child module `bottleneck_adapter` of the projection it follows, run by a
forward hook, so the base model's own parameter names do not change. Saves only the
adapter tensors; reloading adds the same adapters to a fresh base and loads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from tuneval.errors import TunevalError
from tuneval.methods.registry import MethodSpec, register
from tuneval.methods.common import freeze_all, load_trained_tensors, save_trained_tensors
from tuneval.typed import checked

CHILD = "bottleneck_adapter"
ACTIVATIONS = {"relu": nn.ReLU, "swish": nn.SiLU, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh}
# (attention output projections, feed-forward output projections) by module-name suffix, tried in order.
LAYOUTS = {
    "llama-style": (["self_attn.o_proj"], ["mlp.down_proj"]),
    "t5": (["SelfAttention.o", "EncDecAttention.o"], ["DenseReluDense.wo"]),
    "gpt2": (["attn.c_proj"], ["mlp.c_proj"]),
    "bart-style": (["self_attn.out_proj", "encoder_attn.out_proj"], ["fc2"]),
}


@dataclass
class AdapterSettings:
    reduction_factor: int = checked(16, ge=1)
    non_linearity: str = checked("swish", choices=tuple(ACTIVATIONS))
    mh_adapter: bool = True  # after attention
    output_adapter: bool = True  # after the feed-forward block
    attention_modules: list[str] | None = None  # override: name suffixes of attention output projections
    ffn_modules: list[str] | None = None  # override: name suffixes of feed-forward output projections

    def check(self) -> Iterator[tuple[str, str]]:
        if not (self.mh_adapter or self.output_adapter):
            yield "output_adapter", "and adapters.mh_adapter are both false, so there would be no adapter"


class Bottleneck(nn.Module):
    def __init__(self, hidden: int, bottleneck: int, activation: str):
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, hidden)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(self.act(self.down(h.to(self.down.weight.dtype)))).to(h.dtype)


def _hook(module: nn.Module, inputs, output):
    return getattr(module, CHILD)(output)


def _out_features(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.out_features
    if type(module).__name__ == "Conv1D":  # GPT-2's transposed linear
        return module.weight.shape[1]
    return None


def _targets(model: nn.Module, s: AdapterSettings) -> list[tuple[str, nn.Module]]:
    names = dict(model.named_modules())

    def find(suffixes: list[str]) -> list[str]:
        return [n for n in names if any(n == x or n.endswith("." + x) for x in suffixes)]

    layouts = [("settings", (s.attention_modules or [], s.ffn_modules or []))] if (
        s.attention_modules or s.ffn_modules) else list(LAYOUTS.items())
    for _, (attn, ffn) in layouts:
        chosen = (find(attn) if s.mh_adapter else []) + (find(ffn) if s.output_adapter else [])
        if chosen:
            return [(n, names[n]) for n in chosen]
    kind = getattr(getattr(model, "config", None), "model_type", "?")
    if s.attention_modules or s.ffn_modules:
        raise TunevalError(f"adapters: no module of this model (model_type '{kind}') ends with "
                           f"{(s.attention_modules or []) + (s.ffn_modules or [])}")
    raise TunevalError(f"adapters: don't know where the attention and feed-forward outputs are in model_type "
                       f"'{kind}'; name them with adapters.attention_modules / adapters.ffn_modules")


def apply(model: nn.Module, s: AdapterSettings, arch: str) -> nn.Module:
    found = _targets(model, s)
    freeze_all(model)
    for name, module in found:
        hidden = _out_features(module)
        if hidden is None:
            raise TunevalError(f"adapters: '{name}' is a {type(module).__name__}, not a linear layer")
        if hasattr(module, CHILD):
            continue
        ref = module.weight
        adapter = Bottleneck(hidden, max(1, hidden // s.reduction_factor), s.non_linearity)
        module.add_module(CHILD, adapter.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point() else None))
        module.register_forward_hook(_hook)
    return model


register(MethodSpec("adapters", AdapterSettings, apply, saves="adapter", family="additive",
                    save=save_trained_tensors, load=load_trained_tensors(apply),
                    summary="bottleneck adapters after attention / FFN (Houlsby, Pfeiffer)"))
