"""QLoRA (Dettmers et al. 2023): LoRA over a frozen 4-bit NF4 base, through bitsandbytes.

The base's linear layers are quantized in place (NF4, 64-value blocks, double-quantized
block scales by default), then PEFT's usual k-bit preparation runs
(`prepare_model_for_kbit_training`: freeze the base, keep non-quantized weights in fp32,
gradient checkpointing on by default, as PEFT does), then LoRA with the same options as
`lora:`. The LoRA weights themselves stay full precision. Runs on a CPU: bitsandbytes has
CPU 4-bit kernels. Reloading an adapter quantizes a fresh base the same way, so outputs
are identical to the trained model's.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import peft
import torch

from tuneval.methods import MethodSpec, register
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


def lora_part(s: QLoraSettings) -> LoraSettings:
    return LoraSettings(**{f.name: getattr(s, f.name) for f in fields(LoraSettings)})


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
                    summary="LoRA over a 4-bit NF4 base (bitsandbytes)"))
