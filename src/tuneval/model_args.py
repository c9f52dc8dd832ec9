"""How a model's weights are loaded: the recipe's `model_args:` and the same flags on every command.

- `dtype`: auto | bfloat16 | float16 | float32. `auto` follows the precision policy
  (precision.py): inference (eval, forgetting, serve, merge's base) loads in the policy's dtype,
  and training loads fp32 master weights with bf16 autocast over them. An explicit dtype is
  the dtype of the loaded weights in both: training then keeps the base in it (bfloat16 halves
  a frozen base under LoRA; PEFT keeps the adapter's own weights in fp32). float16 is
  for inference only: training in it needs fp16 AMP with loss scaling, which tuneval does not
  set up, so a recipe refuses it.
- `revision`: the hub branch, tag or commit (config, tokenizer and weights all at it).
- `trust_remote_code`: run a model repository's own Python code. Off by default; a model that
  needs it is refused with one line saying how to turn it on.
- `attn_implementation`: eager, sdpa, flash_attention_2, ... (None: the model's default).

It sits beside precision.py, below models/ and config.py, which both use it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Iterator

from tuneval.typed import checked

DTYPE_NAMES = ("auto", "bfloat16", "float16", "float32")
ATTN_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")


@dataclass
class ModelArgs:
    """What from_pretrained is told besides the model's name (see the module docstring)."""

    dtype: str = checked("auto", choices=DTYPE_NAMES)  # auto: the precision policy's (inference) or fp32 (training)
    revision: str | None = None  # None: the hub's default branch; ignored for embedded names and directories
    trust_remote_code: bool = False
    attn_implementation: str | None = None  # one of ATTN_IMPLEMENTATIONS, or a hub kernel 'org/repo'; None: default

    def check(self) -> Iterator[tuple[str, str]]:
        a = self.attn_implementation
        if a is not None and a not in ATTN_IMPLEMENTATIONS and a.count("/") != 1:
            yield "attn_implementation", (f"must be one of {', '.join(ATTN_IMPLEMENTATIONS)} "
                                          f"or a hub kernel 'org/repo', got {a!r}")

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        """The keys every from_pretrained call gets (the weights' dtype is decided by the loader)."""
        kw: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if self.revision is not None:
            kw["revision"] = self.revision
        return kw

    def torch_dtype(self, policy: str):
        """The weights' torch dtype: the explicit one, else `policy` ('bf16' or 'fp32')."""
        import torch

        name = {"bf16": "bfloat16", "fp32": "float32"}[policy] if self.dtype == "auto" else self.dtype
        return getattr(torch, name)


def overlay(base: ModelArgs, given: ModelArgs | None) -> ModelArgs:
    """`base` (a recipe's or a run's model_args) under the fields `given` sets: those not at their
    defaults, which is what a command's flags left unset. `tuneval train --dtype bfloat16` keeps the
    recipe's revision; `given` None: `base` as it is."""
    if given is None:
        return base
    default = ModelArgs()
    return replace(base, **{f.name: getattr(given, f.name) for f in fields(ModelArgs)
                            if getattr(given, f.name) != getattr(default, f.name)})


def check_training_dtype(args: ModelArgs, where: str) -> None:
    """float16 training would need fp16 AMP (loss scaling), which tuneval does not set up."""
    from tuneval.errors import TunevalError

    if args.dtype == "float16":
        raise TunevalError(f"{where}: float16 is for inference only (training in it needs fp16 AMP, which tuneval "
                           "does not set up); use bfloat16, float32 or auto")
