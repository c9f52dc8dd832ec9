"""Fine-tuning methods: one small module each, one `register` call each (the PEFT way).

The registry (MethodSpec, METHODS, register, get_method) is registry.py; this package imports
every method module so each registers, and re-exports the registry.

A method is a name, a dataclass of options (its recipe section, named as PEFT names
them) and an `apply` that turns a loaded model into the model to train. Everything
else (training, saving, counting) is shared and method-agnostic.

How a trained result is saved and reloaded (see methods/common.py):
  saves="model"    full weights + tokenizer (full fine-tuning)
  saves="adapter"  something small that goes back over the same base model:
                   a PEFT adapter (default `save`/`load`), or, for methods PEFT does not
                   have (bitfit, freeze, bottleneck adapters), only the trained tensors.
                   Either way `tuneval_method.json` beside it names the method and its
                   options, so `tuneval eval --adapter RUN` rebuilds the same model.
"""

from __future__ import annotations

# Each import registers one method.
from tuneval.methods import (  # noqa: F401
    adapters,
    bitfit,
    freeze,
    full,
    ia3,
    ln_tuning,
    lora,
    prefix_tuning,
    prompt_tuning,
    qlora,
)
from tuneval.methods.registry import (
    METHODS,
    MethodSpec,
    base_quantization,
    count_parameters,
    format_parameters,
    get_method,
    register,
)

__all__ = ["METHODS", "MethodSpec", "base_quantization", "count_parameters", "format_parameters", "get_method",
           "register"]
