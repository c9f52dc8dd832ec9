"""Prompt tuning (Lester et al. 2021) through PEFT: a trained soft prompt before the input.

`num_virtual_tokens` vectors of the model's hidden size (20-100 is typical; the only
trainable parameters: 20 x 576 = 11,520 for SmolLM2-135M). Initialisation
(`prompt_tuning_init`): RANDOM, TEXT (the embeddings of `prompt_tuning_init_text`'s tokens,
repeated to fill; the paper's advice for small models) or SAMPLE_VOCAB (random vocabulary
tokens). Encoder-decoder models get a prompt for the encoder and one for the decoder, as
in PEFT. `tuneval inspect RUN` shows what the trained vectors are near in the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import peft
import torch

from tuneval.methods.registry import MethodSpec, register
from tuneval.methods.common import peft_task_type, wrap_peft
from tuneval.typed import checked

INITS = ("RANDOM", "TEXT", "SAMPLE_VOCAB")


@dataclass
class PromptTuningSettings:
    num_virtual_tokens: int = checked(20, ge=1)
    prompt_tuning_init: str = "RANDOM"  # RANDOM | TEXT | SAMPLE_VOCAB, any case
    prompt_tuning_init_text: str | None = None

    def check(self) -> Iterator[tuple[str, str]]:
        init = self.prompt_tuning_init.upper()
        if init not in INITS:
            yield "prompt_tuning_init", f"must be one of {', '.join(INITS)}, got {self.prompt_tuning_init!r}"
        if init == "TEXT" and not (self.prompt_tuning_init_text or "").strip():
            yield "prompt_tuning_init_text", "is needed when prompt_tuning_init is TEXT (the words the prompt starts as)"


def config_for(model: torch.nn.Module, s: PromptTuningSettings, arch: str) -> peft.PromptTuningConfig:
    init = s.prompt_tuning_init.upper()
    extra = {}
    if init == "TEXT":
        extra = {"prompt_tuning_init_text": s.prompt_tuning_init_text, "tokenizer_name_or_path": model.name_or_path}
    return peft.PromptTuningConfig(task_type=peft_task_type(arch), num_virtual_tokens=s.num_virtual_tokens,
                                   prompt_tuning_init=init, **extra)


def apply(model: torch.nn.Module, s: PromptTuningSettings, arch: str) -> torch.nn.Module:
    return wrap_peft("prompt_tuning", model, config_for(model, s, arch))


register(MethodSpec("prompt_tuning", PromptTuningSettings, apply, saves="adapter", family="additive",
                    summary="a trained soft prompt of N virtual tokens (PEFT)"))
