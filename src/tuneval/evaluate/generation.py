"""Batched greedy generation: length-sorted batches, KV cache, stop at EOS.

Sorting by prompt length keeps padding (wasted compute) small; causal models pad on the
left so every row's next token sits at the same position.

Causal decoder-only models with a plain KV cache take `_greedy_causal`, built so that each
output is what `model.generate` gives for that prompt alone, at any dtype: each prompt is
prefilled alone (no padding to compute, and the prefill's matmul shapes are generate's own);
its cache is copied, left-padded, into the batch's buffers, sized for the whole decode so a
step writes in place (`GrowingLayer`); the batch decodes together, and rows that reach EOS
leave it (the last live rows move into their places: `refill`). In the decoding steps the
linear layers run batched and attention runs per row on its own unpadded keys (`sdpa_rows`),
the call generate makes for one prompt. Why: under bf16 a padded (16 x 396)-row prefill
rounds differently from a 396-row one, and a padding mask changes SDPA's kernel, so plain
batched `generate` changed most greedy outputs against one-at-a-time `generate`. A batched
linear is not always bit-equal to a one-row one either (the LM head on a 2-core AVX2 EPYC,
fp32, differs by ~1e-6), so identity is measured, not assumed: bench/generate_throughput.py
counts the identical outputs (bench/results/generate_throughput_*.md). Other models
(seq2seq, prompt-learning PEFT, sliding-window caches) use `model.generate` on the padded
batch.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface, DynamicCache, GenerationConfig
from transformers.cache_utils import Cache, DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

from tuneval.console import progress
from tuneval.models.attention import swapped_attention

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
        per_prompt = arch == "causal" and plain_causal(model)
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


def plain_causal(model) -> bool:
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
    filled = prefill(model, prompts, config.max_new_tokens, device)
    if filled is None:
        return None
    firsts, cache = filled
    return decode_batch(model, firsts, cache, torch.tensor([len(p) for p in prompts], device=device), config, eos_ids)


def prefill(model, prompts: list[list[int]], room: int, device) -> tuple[list[torch.Tensor], _BatchCache] | None:
    """Each prompt's forward alone (the call one-at-a-time `generate` makes): its greedy first token, and its
    cache copied at once into the batch's buffers (with `room` positions to grow), so none is kept twice.
    None when a prompt's cache is not plain `DynamicLayer`s."""
    width = max(map(len, prompts))
    firsts, cache = [], None
    for row, p in enumerate(prompts):
        out = model(input_ids=torch.tensor([p], device=device), use_cache=True, logits_to_keep=1)
        kv = out.past_key_values
        if not isinstance(kv, DynamicCache) or any(type(layer) is not DynamicLayer for layer in kv.layers):
            return None
        firsts.append(out.logits[0, -1].float().argmax())
        if cache is None:
            cache = _BatchCache.shaped_like(kv, len(prompts), width, room)
        cache.place(row, kv)
    return firsts, cache


def decode_batch(model, firsts, cache, lengths: torch.Tensor, config, eos_ids) -> list[list[int]]:
    """The batched decode after `prefill`, row by row attention on sdpa models (`sdpa_rows`)."""
    with swapped_attention(model, _register_rows):
        return _decode(model, firsts, cache, lengths, config, eos_ids)


class GrowingLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values sit in buffers sized for the whole decode: a step writes its
    position in place and the layer hands out views, where `DynamicLayer.update` `torch.cat`s a fresh copy of
    the layer's whole cache every step. Why: on a 2-core AVX2 EPYC (fp32) those copies, most of their time
    page faults of fresh allocations, took a quarter of a 16-row decode. The values are the same tensors'
    values, so the attention computes exactly what it computed over the concatenated copies."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int):
        super().__init__()
        self.key_buffer, self.value_buffer, self.length, self.rows = keys, values, length, len(keys)
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self._views()

    def _views(self) -> None:
        self.keys = self.key_buffer[:self.rows, :, :self.length]
        self.values = self.value_buffer[:self.rows, :, :self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self.length + key_states.shape[-2]
        if end > self.key_buffer.shape[2]:
            raise RuntimeError(f"GrowingLayer holds {self.key_buffer.shape[2]} positions, asked for {end}")
        self.key_buffer[:self.rows, :, self.length:end] = key_states
        self.value_buffer[:self.rows, :, self.length:end] = value_states
        self.length = end
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep rows `indices`, in that order, by copying rows within the buffers (a fresh gathered copy of
        every layer cost as much as the `torch.cat`s). Safe for orders where no row is read after another
        moved onto it: ascending ones, and `refill`'s."""
        written = set()
        for dst, src in enumerate(indices.tolist()):
            if src in written:
                raise RuntimeError(f"GrowingLayer cannot keep rows in the order {indices.tolist()} in place")
            if src != dst:
                self.key_buffer[dst].copy_(self.key_buffer[src])
                self.value_buffer[dst].copy_(self.value_buffer[src])
                written.add(dst)
        self.rows = len(indices)
        self._views()


class _BatchCache(DynamicCache):
    """The batch's cache: one `GrowingLayer` per layer, each prompt's keys and values left-padded to the longest
    prompt, with room for the tokens to come."""

    def __init__(self, layers: list[DynamicLayer]):
        Cache.__init__(self, layers=layers)

    @classmethod
    def shaped_like(cls, one: DynamicCache, rows: int, width: int, room: int) -> _BatchCache:
        """Zeroed buffers for `rows` prompts of at most `width` tokens, shaped as the one-prompt cache `one`."""
        layers = []
        for layer in one.layers:
            _, heads, _, dim = layer.keys.shape
            keys = layer.keys.new_zeros((rows, heads, width + room, dim))
            values = layer.values.new_zeros((rows, heads, width + room, layer.values.shape[3]))
            layers.append(GrowingLayer(keys, values, width))
        return cls(layers)

    def place(self, row: int, one: DynamicCache) -> None:
        """Row `row`'s prompt cache, right-aligned at the batch's prompt width (its padding on the left)."""
        for mine, theirs in zip(self.layers, one.layers):
            start = mine.length - theirs.keys.shape[2]
            mine.key_buffer[row, :, start:mine.length] = theirs.keys[0]
            mine.value_buffer[row, :, start:mine.length] = theirs.values[0]


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
            keep = torch.tensor(refill(live.tolist()), device=live.device)
            cache.batch_select_indices(keep)
            rows, token, mask, lengths = rows[keep], token[keep], mask[keep], lengths[keep]
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=-1)
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=(lengths + step)[:, None],
                    past_key_values=cache, use_cache=True)
        token = out.logits[:, -1].float().argmax(-1)
    return news


def refill(live: list[bool]) -> list[int]:
    """The rows to keep, by place: each finished row's place goes to the last live rows beyond the kept count,
    so only those rows move in the cache's buffers."""
    kept = sum(live)
    movers = iter([i for i in range(kept, len(live)) if live[i]])
    return [i if live[i] else next(movers) for i in range(kept)]


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


def _register_rows() -> str:
    AttentionInterface.register(ROWS, rows_attention_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ROWS, padding_mask)
    return ROWS


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
