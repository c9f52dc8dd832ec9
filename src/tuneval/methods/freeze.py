"""Freeze tuning: train chosen transformer blocks (or parameter types, or name patterns); freeze the rest.

  trainable_layers   k > 0: the top k blocks of every stack (the decoder; encoder and decoder
                     of a seq2seq model); k < 0: the bottom |k|; 0: none; null: all blocks
  layers             explicit block indices instead (0 = bottom), e.g. [0, 29]
  trainable_modules  within those blocks, which parameters: [all] (default), or types
                     (attention, mlp, norm, bias) and/or name fragments (q_proj, wo, ...)
  patterns           regular expressions over full parameter names, trained wherever they
                     are (e.g. 'embed_tokens', '^model\\.norm\\.'), in addition to the above

Saves only the trained tensors; reloading applies the same selection to a fresh base.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator

import torch

from tuneval.errors import TunevalError
from tuneval.methods.registry import MethodSpec, register
from tuneval.methods.common import load_trained_tensors, pattern_list, save_trained_tensors, train_only

BLOCK = re.compile(r"^((?:.*?\.)?(?:layers|layer|block|blocks|h))\.(\d+)\.(.*)$")
TYPES = {
    "attention": re.compile(r"(^|\.)(self_attn|attn|attention|SelfAttention|EncDecAttention|encoder_attn|cross_attn)\."),
    "mlp": re.compile(r"(^|\.)(mlp|DenseReluDense|feed_forward|ffn|fc1|fc2)(\.|$)"),
    "norm": re.compile(r"(norm|ln_\w*|layernorm)(\.|$)", re.IGNORECASE),
    "bias": re.compile(r"\.bias$|^bias$"),
}


@dataclass
class FreezeSettings:
    trainable_layers: int | None = 2
    layers: list[int] | None = None
    trainable_modules: list[str] = field(default_factory=lambda: ["all"])
    patterns: list[str] | None = None

    def check(self) -> Iterator[tuple[str, str]]:
        if not self.trainable_modules:
            yield "trainable_modules", "must name at least one type or name fragment ([all]: every parameter)"
        for i, p in enumerate(self.patterns or []):
            try:
                re.compile(p)
            except re.error as e:
                yield f"patterns[{i}]", f"{p!r} is not a valid regular expression ({e})"


def blocks(model: torch.nn.Module) -> dict[str, int]:
    """Each stack of numbered blocks (by name prefix) and how many blocks it has."""
    stacks: dict[str, int] = {}
    for name, _ in model.named_parameters():
        m = BLOCK.match(name)
        if m:
            stacks[m.group(1)] = max(stacks.get(m.group(1), 0), int(m.group(2)) + 1)
    return stacks


def chosen_layers(s: FreezeSettings, n: int) -> set[int]:
    if s.layers is not None:
        bad = [i for i in s.layers if not -n <= i < n]
        if bad:
            raise TunevalError(f"freeze.layers: {bad[0]} is out of range for a stack of {n} blocks (0..{n - 1})")
        return {i % n for i in s.layers}
    k = s.trainable_layers
    if k is None:
        return set(range(n))
    if abs(k) > n:
        raise TunevalError(f"freeze.trainable_layers: {k} but the model has {n} blocks")
    return set(range(n - k, n)) if k > 0 else set(range(0, -k))


def module_match(s: FreezeSettings, rest: str) -> bool:
    for item in s.trainable_modules:
        if item == "all":
            return True
        if item in TYPES:
            if TYPES[item].search(rest):
                return True
        elif item in rest.split(".") or item in rest:
            return True
    return False


def trainable_names(model: torch.nn.Module, s: FreezeSettings) -> list[str]:
    stacks = blocks(model)
    if not stacks and (s.trainable_layers not in (None, 0) or s.layers):
        raise TunevalError("freeze: found no numbered transformer blocks (layers.N / block.N / h.N) in this model; "
                           "use freeze.patterns")
    per_stack = {prefix: chosen_layers(s, n) for prefix, n in stacks.items()}
    regexes = pattern_list("freeze", "patterns", s.patterns)
    names = []
    for name, _ in model.named_parameters():
        m = BLOCK.match(name)
        in_layers = bool(m) and int(m.group(2)) in per_stack[m.group(1)] and module_match(s, m.group(3))
        if in_layers or any(r.search(name) for r in regexes):
            names.append(name)
    return names


def apply(model: torch.nn.Module, s: FreezeSettings, arch: str) -> torch.nn.Module:
    unknown = [t for t in s.trainable_modules if t != "all" and t not in TYPES and not any(
        t in n for n, _ in model.named_parameters())]
    if unknown:
        raise TunevalError(f"freeze.trainable_modules: '{unknown[0]}' is neither a type "
                           f"({', '.join(['all', *TYPES])}) nor part of any parameter name")
    return train_only("freeze", model, trainable_names(model, s),
                      "the selection (trainable_layers/layers, trainable_modules, patterns) matches no parameter")


register(MethodSpec("freeze", FreezeSettings, apply, saves="adapter", family="selective",
                    save=save_trained_tensors, load=load_trained_tensors(apply),
                    summary="train chosen blocks / parameter types only"))
