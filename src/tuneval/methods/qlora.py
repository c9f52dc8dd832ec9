"""QLoRA (Dettmers et al. 2023): LoRA over a frozen 4-bit NF4 base, through bitsandbytes.

The base's linear layers are quantized in place (NF4, 64-value blocks, double-quantized
block scales by default), then PEFT's usual k-bit preparation runs
(`prepare_model_for_kbit_training`: freeze the base, keep non-quantized weights in fp32,
gradient checkpointing on by default, as PEFT does), then LoRA with the same options as
`lora:`. The LoRA weights themselves stay full precision. Runs on a CPU: bitsandbytes has
CPU 4-bit kernels. Reloading an adapter quantizes a fresh base the same way, so outputs
are identical to the trained model's.

Where the base is quantized: `quantize_at_load: true` has `from_pretrained` do it through
`BitsAndBytesConfig` (transformers streams the weights in and quantizes them as they come, so
host memory never holds the full-precision model: what a 7B base needs); `false` loads it in
full precision and quantizes it in place (models/quantize.py). The default is at load on a GPU,
in place on the CPU, from what was measured on SmolLM2-135M (bench/results/qlora_load.md): the
packed 4-bit weights are bit-identical either way and at load saved the full-precision copy (peak
RSS 909-912 MB against 1,040-1,052 MB, though libraries dominate at this size), but bitsandbytes'
CPU matmul for weights quantized by from_pretrained was off the dequantized weights by up to 0.24
on a q_proj output, where the in-place path matched them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import peft
import torch

from tuneval.methods.registry import MethodSpec, register
from tuneval.methods.common import wrap_peft
from tuneval.methods.lora import LoraSettings, lora_config
from tuneval.models.quantize import DTYPES, QUANT_TYPES, quantize_4bit
from tuneval.typed import checked


@dataclass
class QLoraSettings(LoraSettings):
    bnb_4bit_quant_type: str = checked("nf4", choices=QUANT_TYPES)
    bnb_4bit_use_double_quant: bool = True
    # bfloat16 pays off only where the CPU/GPU has native bf16
    bnb_4bit_compute_dtype: str = checked("float32", choices=tuple(DTYPES))
    use_gradient_checkpointing: bool = True  # prepare_model_for_kbit_training's default
    quantize_at_load: bool | None = None  # None: at from_pretrained on a GPU, in place on the CPU (see above)


def lora_part(s: QLoraSettings) -> LoraSettings:
    return LoraSettings(**{f.name: getattr(s, f.name) for f in fields(LoraSettings)})


def at_load(s: QLoraSettings) -> dict | None:
    """BitsAndBytesConfig's options for loading the base already quantized, or None (quantize in place)."""
    wanted = s.quantize_at_load if s.quantize_at_load is not None else torch.cuda.is_available()
    if not wanted:
        return None
    return {"bnb_4bit_quant_type": s.bnb_4bit_quant_type, "bnb_4bit_use_double_quant": s.bnb_4bit_use_double_quant,
            "bnb_4bit_compute_dtype": DTYPES[s.bnb_4bit_compute_dtype], "llm_int8_skip_modules": ["lm_head"]}


def quantize(model: torch.nn.Module, s: QLoraSettings) -> torch.nn.Module:
    return quantize_4bit(model, quant_type=s.bnb_4bit_quant_type, double_quant=s.bnb_4bit_use_double_quant,
                         compute_dtype=s.bnb_4bit_compute_dtype)


def apply(model: torch.nn.Module, s: QLoraSettings, arch: str) -> torch.nn.Module:
    config = lora_config(lora_part(s), arch)
    model = quantize(model, s)
    model = peft.prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=s.use_gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )
    return wrap_peft("qlora", model, config)


def load(model: torch.nn.Module, directory: Path, s: QLoraSettings, arch: str) -> Any:
    return peft.PeftModel.from_pretrained(quantize(model, s), str(directory))


register(MethodSpec("qlora", QLoraSettings, apply, saves="adapter", load=load, family="reparameterisation",
                    summary="LoRA over a 4-bit NF4 base (bitsandbytes)", load_quantization=at_load))
