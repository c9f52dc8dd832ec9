"""Batched greedy generation: length-sorted batches, KV cache, stop at EOS.

Sorting by prompt length keeps padding (wasted compute) small; causal models pad on the
left so every row's next token sits at the same position.

Causal decoder-only models with a plain KV cache take `_greedy_causal`, built so that each
output is token for token what `model.generate` gives for that prompt alone, at any dtype:
each prompt is prefilled alone (no padding to compute, and the prefill's matmul shapes are
generate's own), the caches are stacked left-padded, and the batch decodes together, dropping
rows as they reach EOS. In the decoding steps the linear layers run batched (a few rows, where
the CPU kernels round each row as they would alone) and attention runs per row on its own
unpadded keys (`sdpa_rows`), the call generate makes for one prompt. Why: under bf16 a padded
(16 x 396)-row prefill rounds differently from a 396-row one (fp32 does not), and a padding
mask changes SDPA's kernel, so plain batched `generate` changed most greedy outputs against
one-at-a-time `generate` (bench/results/generate_throughput_*.md). Other models (seq2seq,
prompt-learning PEFT, sliding-window caches) use `model.generate` on the padded batch.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface, DynamicCache, GenerationConfig
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

from tuneval.console import progress

ROWS = "sdpa_rows"


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
    with progress(description, len(prompts)) as shown:  # a bar on a terminal, plain lines otherwise
        per_prompt = arch == "causal" and _plain_causal(model)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            news = None
            if per_prompt:
                news = _greedy_causal(model, [prompts[i] for i in idx], config, device)
            if news is None:
                news = _padded_generate(model, [prompts[i] for i in idx], config, arch, pad, device)
            for row, i in zip(news, idx):
                outputs[i] = row
            shown.advance(len(idx))
    return outputs


def _padded_generate(model, prompts: list[list[int]], config: GenerationConfig, arch: str, pad: int,
                     device) -> list[list[int]]:
    """`model.generate` on one padded batch (causal on the left, seq2seq on the right), cut after EOS."""
    longest = max(map(len, prompts))
    ids, mask = [], []
    for p in prompts:
        gap = [pad] * (longest - len(p))
        ids.append(gap + p if arch == "causal" else p + gap)
        mask.append([0] * len(gap) + [1] * len(p) if arch == "causal" else [1] * len(p) + [0] * len(gap))
    input_ids = torch.tensor(ids, device=device)
    out = model.generate(input_ids=input_ids, attention_mask=torch.tensor(mask, device=device), generation_config=config)
    if arch == "causal":
        out = out[:, input_ids.shape[1]:]
    return [_until_eos(row.tolist(), config.eos_token_id, pad, arch) for row in out]


def _plain_causal(model) -> bool:
    """A causal LM whose forward takes token ids and a KV cache as they are (not prompt-learning PEFT)."""
    peft_config = getattr(model, "peft_config", None)
    if peft_config:
        active = getattr(model, "active_adapter", None)
        cfg = peft_config.get(active) if isinstance(active, str) else None
        if cfg is None or getattr(cfg, "is_prompt_learning", False):
            return False
    return not model.config.is_encoder_decoder


def _greedy_causal(model, prompts: list[list[int]], config: GenerationConfig, device) -> list[list[int]] | None:
    """Greedy new tokens per prompt (cut after EOS): per-prompt prefill, then one batched decode.

    None when a prompt's cache is not plain `DynamicLayer`s (sliding windows, hybrid models):
    the caller then uses `model.generate`."""
    eos = config.eos_token_id
    eos_ids = torch.tensor(eos if isinstance(eos, list) else [eos], device=device)
    firsts, caches = [], []
    for p in prompts:
        out = model(input_ids=torch.tensor([p], device=device), use_cache=True, logits_to_keep=1)
        kv = out.past_key_values
        if not isinstance(kv, DynamicCache) or any(type(layer) is not DynamicLayer for layer in kv.layers):
            return None
        firsts.append(out.logits[0, -1].float().argmax())
        caches.append(kv)
    lengths = [len(p) for p in prompts]
    cache = _stacked(caches, lengths)
    del caches, kv, out  # the stacked cache holds their keys and values now: not kept twice while decoding
    with _rows_attention(model):
        return _decode(model, firsts, cache, torch.tensor(lengths, device=device), config, eos_ids)


def _stacked(caches: list[DynamicCache], lengths: list[int]) -> DynamicCache:
    """One cache for the batch: each layer's per-prompt keys/values, left-padded to the longest prompt."""
    width = max(lengths)
    layers = []
    for n in range(len(caches[0].layers)):
        keys, values = [], []
        for cache, length in zip(caches, lengths):
            layer, gap = cache.layers[n], (0, 0, width - length, 0)
            keys.append(torch.nn.functional.pad(layer.keys, gap))
            values.append(torch.nn.functional.pad(layer.values, gap))
        layers.append((torch.cat(keys), torch.cat(values)))
    return DynamicCache(layers)


def _decode(model, firsts, cache: DynamicCache, lengths: torch.Tensor, config, eos_ids) -> list[list[int]]:
    """One batched greedy decode over the stacked cache; rows leave the batch at EOS."""
    width = int(lengths.max())
    mask = (torch.arange(width, device=lengths.device)[None, :] >= (width - lengths)[:, None]).long()
    rows = torch.arange(len(firsts), device=lengths.device)  # which prompt each live row is
    token = torch.stack(firsts)
    news: list[list[int]] = [[] for _ in firsts]
    for step in range(config.max_new_tokens):
        for r, t in zip(rows.tolist(), token.tolist()):
            news[r].append(t)
        live = ~torch.isin(token, eos_ids)
        if step + 1 == config.max_new_tokens or not live.any():
            break
        if not live.all():  # finished rows leave the batch: later steps compute only the live ones
            keep = live.nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            rows, token, mask, lengths = rows[keep], token[keep], mask[keep], lengths[keep]
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=-1)
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=(lengths + step)[:, None],
                    past_key_values=cache, use_cache=True)
        token = out.logits[:, -1].float().argmax(-1)
    return news


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


class _rows_attention:
    """Decode with `sdpa_rows` (when the model runs `sdpa`), and give the model back as it was."""

    def __init__(self, model):
        self.model, self.before = model, getattr(model.config, "_attn_implementation", None)

    def __enter__(self):
        if self.before == "sdpa":
            AttentionInterface.register(ROWS, rows_attention_forward)
            ALL_MASK_ATTENTION_FUNCTIONS.register(ROWS, padding_mask)
            self.model.set_attn_implementation(ROWS)

    def __exit__(self, *exc):
        if self.before == "sdpa":
            self.model.set_attn_implementation("sdpa")


def padding_mask(*, attention_mask: torch.Tensor | None = None, **kwargs) -> torch.Tensor | None:
    """`sdpa_rows`' mask: the 2D padding mask itself; the attention reads each row's padding from it."""
    return attention_mask


def rows_attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                           attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                           is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """One decoding step's attention, row by row over each row's own keys (its left padding cut off):
    the unmasked SDPA call `generate` makes for a single prompt."""
    if attention_mask is None or attention_mask.ndim != 2 or query.shape[2] != 1:
        raise RuntimeError("sdpa_rows serves one-token decoding steps over a left-padded 2D mask")
    starts = (key.shape[2] - attention_mask.sum(-1)).tolist()
    outs = [sdpa_attention_forward(module, query[b:b + 1], key[b:b + 1, :, s:], value[b:b + 1, :, s:], None,
                                   dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs)[0]
            for b, s in enumerate(starts)]
    return torch.cat(outs), None
