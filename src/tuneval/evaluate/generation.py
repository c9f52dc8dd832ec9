"""Batched greedy generation: length-sorted batches, KV cache, stop at EOS.

Sorting by prompt length keeps padding (wasted compute) small; causal models pad on the
left so every row's next token sits at the same position.
"""

from __future__ import annotations

import torch
from rich import get_console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers import GenerationConfig


def greedy_config(model, tokenizer, max_new_tokens: int) -> GenerationConfig:
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        use_cache=True,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=model.generation_config.bos_token_id,
        decoder_start_token_id=getattr(model.generation_config, "decoder_start_token_id", None),
    )


@torch.inference_mode()
def generate_ids(model, tokenizer, prompts: list[list[int]], arch: str, batch_size: int = 16,
                 max_new_tokens: int = 64, description: str = "generating") -> list[list[int]]:
    """Greedy new token ids for token-id prompts, in input order, each cut after its first EOS."""
    model.eval()
    device = next(model.parameters()).device
    config = greedy_config(model, tokenizer, max_new_tokens)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    outputs: list[list[int]] = [[] for _ in prompts]
    pad = tokenizer.pad_token_id
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True, disable=not get_console().is_terminal) as progress:  # a bar is for a person watching
        bar = progress.add_task(description, total=len(prompts))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            longest = max(len(prompts[i]) for i in idx)
            ids, mask = [], []
            for i in idx:
                p = prompts[i]
                gap = [pad] * (longest - len(p))
                ids.append(gap + p if arch == "causal" else p + gap)
                mask.append([0] * len(gap) + [1] * len(p) if arch == "causal" else [1] * len(p) + [0] * len(gap))
            input_ids = torch.tensor(ids, device=device)
            attention_mask = torch.tensor(mask, device=device)
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
            if arch == "causal":
                out = out[:, input_ids.shape[1]:]
            for row, i in zip(out, idx):
                outputs[i] = _until_eos(row.tolist(), config.eos_token_id, pad, arch)
            progress.advance(bar, len(idx))
    return outputs


def generate(model, tokenizer, prompts: list[list[int]], arch: str, batch_size: int = 16,
             max_new_tokens: int = 64, description: str = "generating") -> tuple[list[str], int]:
    """Greedy completions for token-id prompts, in input order; also the number of new tokens."""
    ids = generate_ids(model, tokenizer, prompts, arch, batch_size, max_new_tokens, description)
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids], sum(map(len, ids))


def _until_eos(row: list[int], eos, pad: int, arch: str) -> list[int]:
    """The generated tokens up to and including the first EOS (without seq2seq's decoder start token)."""
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    if arch == "seq2seq" and row and row[0] == pad:  # the decoder start token
        row = row[1:]
    for n, t in enumerate(row):
        if t in eos_ids:
            return row[: n + 1]
    return row
