"""Batched log-likelihood of continuations given contexts, as lm-evaluation-harness scores them.

Each request is a (context, continuation) pair of strings. Tokenization follows lm-eval's
HFLM exactly: trailing spaces of the context move to the continuation; causal models encode
context+continuation as one string and take the continuation as the tokens past the
context's own encoding; seq2seq models encode the two apart (the continuation is the
decoder's labels). The score is the sum of the continuation tokens' log-probabilities,
plus whether every token was the greedy choice.

Speed: requests whose model input is the same or a prefix of another's (the choices of one
question that are a single token each, like " True"/" False" or "A".."D") share one row, and
the LM head runs only at the positions some request needs (`logits_to_keep`), so the
vocabulary projection is not paid for every prompt token. On a plain causal model under sdpa
the rows are packed end to end, longest first, into forwards of up to batch_size x PACK_TOKENS
tokens, their position ids restarting per row and `sdpa_varlen` (data/varlen_attention.py, the
training's per-example attention) keeping them apart: no padding is computed. Why: left-padded
batches of BoolQ's passages (15 to 600+ tokens) computed up to 2.5x their real tokens at batch
64 (2.4 s an example against 0.56 at batch 16, 2-core AVX2 EPYC, fp32). Each row still attends
over its own tokens alone, the call one unpadded forward makes. Other models (seq2seq,
prompt-learning PEFT, other attention kernels) take left-padded batches of batch_size rows.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from itertools import accumulate

import torch

from tuneval.console import progress
from tuneval.data import varlen_attention
from tuneval.errors import TunevalError
from tuneval.models.attention import swapped_attention


def encode_pair(tokenizer, context: str, continuation: str, arch: str) -> tuple[list[int], list[int]]:
    """lm-eval's `_encode_pair` (and its empty-context rule: condition on BOS, else EOS)."""
    if context == "":
        cont = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        return ([prefix], cont) if cont[:1] != [prefix] else (cont[:1], cont[1:])
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    if arch == "causal":
        whole = tokenizer(context + continuation)["input_ids"]
        ctx = tokenizer(context)["input_ids"]
        return ctx, whole[len(ctx):]
    return tokenizer(context)["input_ids"], tokenizer(continuation, add_special_tokens=False)["input_ids"]


def max_length(model) -> int:
    """The model's context in tokens (an endpoint model: its `max_length=`)."""
    if isinstance(getattr(model, "context_length", None), int):
        return model.context_length
    config = getattr(model, "config", None)
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048


PACK_TOKENS = 256  # tokens per unit of batch_size in one packed forward (batch 16: 4,096 tokens)


@dataclass
class _Req:
    row: int  # which unique input row serves this request
    end: int  # the request's input length (its last needed logit is at end - 1 in row coordinates)
    target: list[int]


@torch.inference_mode()
def loglikelihoods(model, tokenizer, arch: str, requests: list[tuple[str, str]], *, batch_size: int = 16,
                   description: str = "scoring") -> tuple[list[tuple[float, bool]], dict[str, int]]:
    """[(sum of continuation log-probs, all tokens greedy)] in request order, and token counts."""
    model.eval()
    pairs = [encode_pair(tokenizer, c, x, arch) for c, x in requests]
    for (c, x), (_, cont) in zip(requests, pairs):
        if not cont:
            raise TunevalError(f"continuation {x!r} after context ending {c[-40:]!r} encodes to no tokens")
    if arch == "causal":
        return _causal(model, pairs, batch_size, description)
    return _seq2seq(model, tokenizer, pairs, batch_size, description)


def _causal(model, pairs, batch_size, description):
    rows, reqs = _shared_rows(model, pairs)
    by_row: dict[int, list[int]] = {}
    for i, r in enumerate(reqs):
        by_row.setdefault(r.row, []).append(i)
    order = sorted(range(len(rows)), key=lambda r: -len(rows[r]))
    packed = packable(model)
    batches = _packs(rows, order, batch_size * PACK_TOKENS) if packed else \
        [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    results: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
    tokens = computed = 0
    score = _score_pack if packed else _score_padded
    swap = swapped_attention(model, varlen_attention.register) if packed else nullcontext()  # one SDPA call per row
    with progress(description, len(pairs)) as shown, swap:  # plain lines when not a terminal
        for batch in batches:
            real, run = score(model, [rows[r] for r in batch], [[reqs[i] for i in by_row[r]] for r in batch],
                              [by_row[r] for r in batch], results)
            tokens, computed = tokens + real, computed + run
            shown.advance(sum(len(by_row[r]) for r in batch))
    return results, {"rows": len(rows), "requests": len(pairs), "input_tokens": tokens, "computed_tokens": computed,
                     "packed": packed}


def _shared_rows(model, pairs) -> tuple[list[list[int]], list[_Req]]:
    """The model inputs to run and, per request, which row serves it: requests whose input is the same as
    or a prefix of another's (of the same context) share that row."""
    limit = max_length(model)
    rows: list[list[int]] = []
    groups: dict[tuple[int, ...], list[int]] = {}  # context -> rows built for it, longest first
    placed: dict[int, _Req] = {}
    for i in sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1]))):
        ctx, cont = pairs[i]
        if len(cont) > limit:
            raise TunevalError(f"a continuation of {len(cont)} tokens is longer than the model's {limit}")
        inp = (ctx + cont)[-(limit + 1):][:-1]
        key = tuple(ctx)
        row = next((r for r in groups.get(key, []) if rows[r][:len(inp)] == inp), None)
        if row is None:
            row = len(rows)
            rows.append(inp)
            groups.setdefault(key, []).append(row)
        placed[i] = _Req(row=row, end=len(inp), target=cont)
    return rows, [placed[i] for i in range(len(pairs))]


def packable(model) -> bool:
    """Rows can share a forward end to end (position ids restarting per row, no padding): a plain causal
    model (not prompt-learning PEFT) under sdpa, whose rows `sdpa_varlen` keeps apart."""
    from tuneval.evaluate.generation import plain_causal

    return plain_causal(model) and getattr(model.config, "_attn_implementation", None) in ("sdpa", varlen_attention.NAME)


def _packs(rows: list[list[int]], order: list[int], capacity: int) -> list[list[int]]:
    """Rows per forward, first-fit decreasing (`order` is longest first) into packs of `capacity` tokens (a
    longer row alone). A one-token row stays alone: the varlen attention reads a row's trailing one-token
    spans as padding."""
    packs: list[list[int]] = []
    room: list[int] = []
    for r in order:
        n = len(rows[r])
        k = next((k for k, free in enumerate(room) if free >= n), None) if n > 1 else None
        if k is None:
            packs.append([r])
            room.append(max(capacity, n) - n if n > 1 else 0)
        else:
            packs[k].append(r)
            room[k] -= n
    return packs


def _score_pack(model, rows, reqs, which, results) -> tuple[int, int]:
    """One forward over `rows` laid end to end; the LM head runs at the positions requests need only."""
    device = next(model.parameters()).device
    starts = [0, *accumulate(map(len, rows[:-1]))]
    ids = torch.tensor([t for row in rows for t in row], device=device)[None]
    positions = torch.tensor([p for row in rows for p in range(len(row))], device=device)[None]
    need = sorted({starts[k] + q.end - n for k, qs in enumerate(reqs) for q in qs for n in range(1, len(q.target) + 1)})
    at = {pos: j for j, pos in enumerate(need)}
    out = model(input_ids=ids, position_ids=positions, logits_to_keep=torch.tensor(need, device=device), use_cache=False)
    logprobs = torch.log_softmax(out.logits[0].float(), dim=-1)
    for k, qs in enumerate(reqs):
        for q, i in zip(qs, which[k]):
            first = at[starts[k] + q.end - len(q.target)]
            results[i] = _scored(logprobs[first:first + len(q.target)], q.target)
    return ids.shape[1], ids.shape[1]  # real tokens, tokens computed


def _score_padded(model, rows, reqs, which, results) -> tuple[int, int]:
    """One forward over `rows` left-padded to the longest; the LM head runs on the last positions some request needs."""
    device = next(model.parameters()).device
    width = max(map(len, rows))
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, width - len(row):] = torch.tensor(row)
        mask[b, width - len(row):] = 1
    keep = max(len(row) - q.end + len(q.target) for row, qs in zip(rows, reqs) for q in qs)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                logits_to_keep=keep, use_cache=False)
    logprobs = torch.log_softmax(out.logits[:, -keep:].float(), dim=-1)
    for b, (row, qs) in enumerate(zip(rows, reqs)):
        for q, i in zip(qs, which[b]):
            stop = keep - (len(row) - q.end)  # index in the kept positions just past the request's last
            results[i] = _scored(logprobs[b, stop - len(q.target):stop], q.target)
    return int(mask.sum()), mask.numel()  # real tokens, tokens computed (padding too)


def _scored(lp: torch.Tensor, target: list[int]) -> tuple[float, bool]:
    """(sum of the target's log-probs, whether each target token was the greedy one) from its rows of log-probs."""
    t = torch.tensor(target, device=lp.device)
    return float(lp.gather(-1, t[:, None]).sum()), bool((lp.argmax(-1) == t).all())


def _seq2seq(model, tokenizer, pairs, batch_size, description):
    limit = max_length(model) if hasattr(model.config, "n_positions") else 1024
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
    results: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
    tokens = 0
    with progress(description, len(pairs)) as shown:  # a bar on a terminal, plain lines otherwise
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            enc = [pairs[i][0][-limit:] for i in batch]
            dec = [pairs[i][1] for i in batch]
            w_enc, w_dec = max(map(len, enc)), max(map(len, dec))
            ids = torch.tensor([e + [pad] * (w_enc - len(e)) for e in enc], device=device)
            mask = torch.tensor([[1] * len(e) + [0] * (w_enc - len(e)) for e in enc], device=device)
            labels = torch.tensor([d + [-100] * (w_dec - len(d)) for d in dec], device=device)
            out = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False)
            logprobs = torch.log_softmax(out.logits.float(), dim=-1)
            for b, i in enumerate(batch):
                results[i] = _scored(logprobs[b, :len(dec[b])], dec[b])
            tokens += int(mask.sum()) + sum(map(len, dec))
            shown.advance(len(batch))
    return results, {"rows": len(pairs), "requests": len(pairs), "input_tokens": tokens}
