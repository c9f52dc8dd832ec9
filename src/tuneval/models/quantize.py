"""4-bit (NF4/FP4) quantization of a loaded model's linear layers through bitsandbytes.

The same thing `from_pretrained(quantization_config=BitsAndBytesConfig(load_in_4bit=True))`
does, applied to a model already in memory, so every path that has a model (training,
`tuneval params`, reloading a QLoRA adapter for evaluation) quantizes it the same way and
a reloaded adapter sees bit-identical base weights. bitsandbytes >= 0.45 runs 4-bit
matmuls on the CPU, so QLoRA trains here without a GPU.

Kept in full precision, as transformers keeps them: the output head (lm_head, often tied
to the input embeddings), embeddings and norms (not Linear), and a model's
`_keep_in_fp32_modules` (T5's `wo`).
"""

from __future__ import annotations

import ctypes
import gc

import torch

from tuneval.errors import TunevalError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
QUANT_TYPES = ("nf4", "fp4")
BLOCKSIZE = 64


def _bnb():
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise TunevalError("qlora needs bitsandbytes: pip install bitsandbytes==0.50.2") from None
    return bnb


def is_4bit(model: torch.nn.Module) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False))


def quantize_4bit(model: torch.nn.Module, quant_type: str = "nf4", double_quant: bool = True,
                  compute_dtype: str = "float32", skip: tuple[str, ...] = ("lm_head",)) -> torch.nn.Module:
    """Replace every nn.Linear (but `skip` and fp32-kept modules) by a bitsandbytes Linear4bit, in place."""
    if quant_type not in QUANT_TYPES:
        raise TunevalError(f"qlora.bnb_4bit_quant_type: expected one of {', '.join(QUANT_TYPES)}, got '{quant_type}'")
    if compute_dtype not in DTYPES:
        raise TunevalError(f"qlora.bnb_4bit_compute_dtype: expected one of {', '.join(DTYPES)}, got '{compute_dtype}'")
    if is_4bit(model):
        return model
    bnb = _bnb()
    keep = set(skip) | set(getattr(model, "_keep_in_fp32_modules", None) or [])
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    replaced = 0
    for name, module in list(model.named_modules()):
        if type(module) is not torch.nn.Linear or module is output or any(k in name.split(".") for k in keep):
            continue
        if module.weight.device.type == "meta":
            raise TunevalError("qlora: cannot quantize a model whose weights are not loaded (meta device)")
        q = bnb.nn.Linear4bit(module.in_features, module.out_features, bias=module.bias is not None,
                              compute_dtype=DTYPES[compute_dtype], compress_statistics=double_quant,
                              quant_type=quant_type, device="meta")
        weight = bnb.nn.Params4bit(module.weight.data.to(torch.float32), requires_grad=False, blocksize=BLOCKSIZE,
                                   compress_statistics=double_quant, quant_type=quant_type, module=q)
        q.weight = weight._quantize(module.weight.device)
        if module.bias is not None:
            q.bias = torch.nn.Parameter(module.bias.data, requires_grad=False)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, q)
        replaced += 1
    if not replaced:
        raise TunevalError("qlora: the model has no linear layers to quantize")
    # What transformers sets on a model it loaded in 4-bit; PEFT and the Trainer read these.
    model.is_loaded_in_4bit = True
    model.quantization_method = "bitsandbytes"
    _release_freed_memory()
    return model


def _release_freed_memory() -> None:
    """Hand the freed full-precision weights back to the OS, so process memory shows the 4-bit model."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
