"""Batched log-likelihood of continuations given contexts, as lm-evaluation-harness scores them.

Each request is a (context, continuation) pair of strings. Tokenization follows lm-eval's
HFLM exactly: trailing spaces of the context move to the continuation; causal models encode
context+continuation as one string and take the continuation as the tokens past the
context's own encoding; seq2seq models encode the two apart (the continuation is the
decoder's labels). The score is the sum of the continuation tokens' log-probabilities,
plus whether every token was the greedy choice.

Speed: requests whose model input is the same or a prefix of another's (the choices of one
question that are a single token each, like " True"/" False" or "A".."D") share one row,
rows are sorted by length and left-padded, and only the last positions that some request
needs go through the LM head (`logits_to_keep`), so the vocabulary projection is not paid
for every prompt token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tuneval.console import progress
from tuneval.errors import TunevalError


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
    limit = max_length(model)
    rows: list[list[int]] = []
    groups: dict[tuple[int, ...], list[int]] = {}  # context -> rows built for it, longest first
    reqs: list[_Req] = []
    order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
    placed: dict[int, _Req] = {}
    for i in order:
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
    reqs = [placed[i] for i in range(len(pairs))]
    by_row: dict[int, list[int]] = {}
    for i, r in enumerate(reqs):
        by_row.setdefault(r.row, []).append(i)
    device = next(model.parameters()).device
    pad = 0
    results: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
    row_order = sorted(range(len(rows)), key=lambda r: -len(rows[r]))
    tokens = 0
    with progress(description, len(pairs)) as shown:  # a bar on a terminal, plain lines otherwise
        for start in range(0, len(row_order), batch_size):
            batch = row_order[start:start + batch_size]
            width = max(len(rows[r]) for r in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for b, r in enumerate(batch):
                ids[b, width - len(rows[r]):] = torch.tensor(rows[r])
                mask[b, width - len(rows[r]):] = 1
            keep = max(len(rows[r]) - reqs[i].end + len(reqs[i].target) for r in batch for i in by_row[r])
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                        logits_to_keep=keep, use_cache=False)
            logprobs = torch.log_softmax(out.logits[:, -keep:].float(), dim=-1)
            for b, r in enumerate(batch):
                for i in by_row[r]:
                    req = reqs[i]
                    n = len(req.target)
                    stop = keep - (len(rows[r]) - req.end)  # index in the kept positions just past the request's last
                    lp = logprobs[b, stop - n:stop]
                    target = torch.tensor(req.target, device=lp.device)
                    results[i] = (float(lp.gather(-1, target[:, None]).sum()), bool((lp.argmax(-1) == target).all()))
                shown.advance(len(by_row[r]))
            tokens += int(mask.sum())
    return results, {"rows": len(rows), "requests": len(pairs), "input_tokens": tokens}


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
                target = torch.tensor(dec[b], device=device)
                lp = logprobs[b, :len(dec[b])]
                results[i] = (float(lp.gather(-1, target[:, None]).sum()), bool((lp.argmax(-1) == target).all()))
            tokens += int(mask.sum()) + sum(map(len, dec))
            shown.advance(len(batch))
    return results, {"rows": len(pairs), "requests": len(pairs), "input_tokens": tokens}
