"""From rendered prompts to token ids, and from token ids to padded batches.

Causal LMs see prompt+response as one sequence with the loss on the response only
(prompt positions are labelled -100). Seq2seq models see the prompt as encoder input and
the response as labels. Batches are padded to their own longest row (dynamic padding),
never to a fixed maximum: on DialogSum (~260 tokens a row) pad-to-512 wastes half the compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tuneval.data.templates import TemplateSet

IGNORE_INDEX = -100


@dataclass
class PromptFormatter:
    tokenizer: Any
    arch: str  # "causal" | "seq2seq"
    chat_template: bool = True
    max_seq_len: int = 1024
    max_target_tokens: int = 128

    @property
    def uses_chat(self) -> bool:
        return self.chat_template and self.arch == "causal" and bool(getattr(self.tokenizer, "chat_template", None))

    def prompt_text(self, instruction: str) -> str:
        if self.uses_chat:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": instruction}], tokenize=False, add_generation_prompt=True
            )
        return instruction + "\n" if self.arch == "causal" else instruction

    def encode_prompt(self, instruction: str) -> list[int]:
        # A chat template writes its own special tokens; plain text gets the tokenizer's (BOS, or T5's </s>).
        return self.tokenizer(self.prompt_text(instruction), add_special_tokens=not self.uses_chat)["input_ids"]

    def encode_target(self, target: str) -> list[int]:
        """Response tokens then EOS, so the model learns to stop (T5's tokenizer would add </s> the same way)."""
        ids = self.tokenizer(target, add_special_tokens=False)["input_ids"][: self.max_target_tokens - 1]
        return ids + [self.tokenizer.eos_token_id]

    def fit_prompt(self, templates: TemplateSet, index: int, row: dict, budget: int, fields: list[str]) -> tuple[str, list[int]]:
        """Render template `index`; if over `budget` tokens, cut the longest input field to fit."""
        row = dict(row)
        for _ in range(4):
            instruction, _ = templates.render(row, index)
            ids = self.encode_prompt(instruction)
            over = len(ids) - budget
            if over <= 0:
                return instruction, ids
            longest = max(fields, key=lambda f: len(row[f]))
            field_ids = self.tokenizer(row[longest], add_special_tokens=False)["input_ids"]
            keep = max(0, len(field_ids) - over - 8)
            row[longest] = self.tokenizer.decode(field_ids[:keep], skip_special_tokens=True)
        return instruction, ids[:budget]

    def generation_budget(self, max_new_tokens: int) -> int:
        return self.max_seq_len - max_new_tokens if self.arch == "causal" else self.max_seq_len

    def training_example(self, templates: TemplateSet, index: int, row: dict, fields: list[str]) -> dict[str, list[int]]:
        _, target = templates.render(row, index)
        target_ids = self.encode_target(target)
        budget = self.max_seq_len - len(target_ids) if self.arch == "causal" else self.max_seq_len
        _, prompt_ids = self.fit_prompt(templates, index, row, budget, fields)
        if self.arch == "seq2seq":
            return {"input_ids": prompt_ids, "labels": target_ids}
        return {
            "input_ids": prompt_ids + target_ids,
            "labels": [IGNORE_INDEX] * len(prompt_ids) + target_ids,
        }


@dataclass
class DataCollator:
    """Pads a list of examples to the longest in the batch (right side for training)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def _pad(self, seqs: list[list[int]], value: int) -> torch.Tensor:
        longest = max(len(s) for s in seqs)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        return torch.tensor([s + [value] * (longest - len(s)) for s in seqs], dtype=torch.long)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [f["input_ids"] for f in features]
        batch = {
            "input_ids": self._pad(ids, self.pad_token_id),
            "attention_mask": self._pad([[1] * len(s) for s in ids], 0),
        }
        if "labels" in features[0]:
            batch["labels"] = self._pad([f["labels"] for f in features], IGNORE_INDEX)
        return batch
