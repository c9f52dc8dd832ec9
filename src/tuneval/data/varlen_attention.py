"""Attention per packed example (`data.varlen_attention`), instead of one masked attention per row.

A packed row holds several examples (data/packing.py). Under `sdpa`, transformers 5 keeps them
apart with a block-diagonal mask built from the position ids: correct, but every query is then
scored against the whole row (a 1024-token row of four 256-token examples does ~4x the attention
work an example needs), and the masked kernel is slower than SDPA's `is_causal` path. The
FlashAttention kernels avoid both with variable-length ("varlen") attention over the examples'
boundaries; they need a GPU. This is the same idea on any device: one `is_causal` SDPA call per
example, on that example's slice of the row. Its output is what the masked row computes, to
float rounding (tests/data/test_varlen_attention.py checks logits and gradients against sdpa).

Registered with transformers' AttentionInterface as `sdpa_varlen`, beside a mask function that
is sdpa's own wherever the batch has a padding mask, and builds none without one (the block-
diagonal mask would be thrown away). A batch that is not packed (evaluation's padded batches,
generation with a KV cache) goes to sdpa with its mask unchanged, so only packed training rows
take the per-example path: no padding mask, no KV cache (query and key lengths equal), and the
position ids restart inside a row. The row's padding tail (one-token pads at position 0, see
PackedCollator) is one block of its own: no real token sees it, and its outputs carry label -100.
Plain causal attention only: the trainer leaves models with a sliding window shorter than
`data.max_seq_len` on sdpa's mask.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "sdpa_varlen"


def segments(position_ids: torch.Tensor) -> list[list[tuple[int, int]]]:
    """Per row, the [start, end) spans of its examples, then its padding tail as one span.

    An example starts where its position id is 0; the row's real tokens end at its last position
    id above 0 (every packed example has at least 2 tokens), and what follows is padding.
    """
    out = []
    for row in position_ids.tolist():
        last = max((i for i, p in enumerate(row) if p > 0), default=len(row) - 1)
        starts = [i for i in range(last + 1) if row[i] == 0] or [0]
        spans = list(zip(starts, starts[1:] + [last + 1]))
        if last + 1 < len(row):
            spans.append((last + 1, len(row)))
        out.append(spans)
    return out


def varlen_mask(*, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor | None:
    """sdpa's own mask wherever a padding mask was given; none without one: then the rows are causal
    sequences (sdpa's `is_causal` path) or packed rows, which the attention splits by position ids."""
    if attention_mask is None:
        return None
    return sdpa_mask(attention_mask=attention_mask, **kwargs)


def _is_packed(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None,
               position_ids: torch.Tensor | None) -> bool:
    """Packed rows: no padding mask (a left-padded batch restarts positions too), no KV cache, and a
    position id of 0 after a row's first token."""
    if mask is not None or position_ids is None or query.shape[2] != key.shape[2] or query.shape[2] < 2:
        return False
    return bool((position_ids[:, 1:] == 0).any())


def sdpa_varlen_attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                                  value: torch.Tensor, attention_mask: torch.Tensor | None, dropout: float = 0.0,
                                  scaling: float | None = None, is_causal: bool | None = None,
                                  **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' attention signature: (batch, heads, length, dim) in, (batch, length, heads, dim) out."""
    position_ids = kwargs.get("position_ids")
    if not _is_packed(query, key, attention_mask, position_ids):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    if position_ids.shape[0] != query.shape[0]:
        position_ids = position_ids.expand(query.shape[0], -1)
    rows = []
    for r, spans in enumerate(segments(position_ids)):
        parts = [sdpa_attention_forward(module, query[r:r + 1, :, s:e], key[r:r + 1, :, s:e], value[r:r + 1, :, s:e],
                                        None, dropout=dropout, scaling=scaling, is_causal=True)[0]
                 for s, e in spans]
        rows.append(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])
    return torch.cat(rows, dim=0), None


def register() -> str:
    """Make `sdpa_varlen` a name transformers accepts (idempotent); returns it."""
    AttentionInterface.register(NAME, sdpa_varlen_attention_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, varlen_mask)
    return NAME
