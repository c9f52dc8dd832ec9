"""Batched log-likelihood scoring against a hand computation (one unpadded forward per pair)."""

import pytest
import torch

from tuneval.evaluate.loglik import _packs, encode_pair, loglikelihoods
from tuneval.models import load_model

REQUESTS = [
    ("hello how are you", " fine"),  # single-token-ish choices of one context share a row
    ("hello how are you", " thanks the meeting"),
    ("hello how are you", " sure"),
    ("the meeting is at noon can we move it to", " monday"),
    ("please bring report ", "I will call Tom later"),  # trailing space moves to the continuation
    ("book a table for two tonight it is cold outside and", " hello"),
]


def by_hand(loaded, context, continuation):
    """Sum of log p(continuation token | everything before it), from one forward of the full sequence."""
    ctx, cont = encode_pair(loaded.tokenizer, context, continuation, loaded.arch)
    with torch.no_grad():
        if loaded.arch == "causal":
            ids = torch.tensor([ctx + cont])
            logprobs = torch.log_softmax(loaded.model(input_ids=ids).logits[0].double(), -1)
            rows = logprobs[len(ctx) - 1: len(ctx) + len(cont) - 1]
        else:
            out = loaded.model(input_ids=torch.tensor([ctx]), labels=torch.tensor([cont]))
            rows = torch.log_softmax(out.logits[0].double(), -1)
    total = sum(float(rows[i, t]) for i, t in enumerate(cont))
    greedy = all(int(rows[i].argmax()) == t for i, t in enumerate(cont))
    return total, greedy


def test_encode_pair_follows_lm_eval(tiny_llama_dir):
    tok = load_model(str(tiny_llama_dir)).tokenizer
    ctx, cont = encode_pair(tok, "please bring report ", "I will", "causal")
    assert ctx == tok("please bring report")["input_ids"]
    assert ctx + cont == tok("please bring report I will")["input_ids"]


@pytest.mark.parametrize("batch_size", [1, 4])
def test_batched_loglik_equals_hand_computation(tiny_model_dir, batch_size):
    loaded = load_model(str(tiny_model_dir))
    scored, stats = loglikelihoods(loaded.model, loaded.tokenizer, loaded.arch, REQUESTS, batch_size=batch_size)
    assert stats["requests"] == len(REQUESTS)
    for (context, continuation), (ll, greedy) in zip(REQUESTS, scored):
        want, want_greedy = by_hand(loaded, context, continuation)
        assert ll == pytest.approx(want, abs=1e-4), (context, continuation)
        assert greedy == want_greedy
    if loaded.arch == "causal":
        assert stats["packed"] and loaded.model.config._attn_implementation == "sdpa"  # packed, and handed back
        # the three choices of the first context end in single tokens? then they share one row
        singles = [r for r in REQUESTS[:3] if len(encode_pair(loaded.tokenizer, *r, "causal")[1]) == 1]
        assert stats["rows"] <= len(REQUESTS) - max(0, len(singles) - 1)


def test_greedy_continuation_is_flagged(tiny_llama_dir):
    loaded = load_model(str(tiny_llama_dir))
    ids = loaded.tokenizer("hello how are you")["input_ids"]
    with torch.no_grad():
        out = loaded.model.generate(torch.tensor([ids]), max_new_tokens=3, do_sample=False,
                                    pad_token_id=loaded.tokenizer.pad_token_id)
    greedy_text = loaded.tokenizer.decode(out[0, len(ids):])
    context_ids, cont_ids = encode_pair(loaded.tokenizer, "hello how are you", greedy_text, "causal")
    if context_ids + cont_ids != out[0].tolist():
        pytest.skip("the greedy text does not re-tokenize to the same ids")
    (_, greedy), = loglikelihoods(loaded.model, loaded.tokenizer, "causal", [("hello how are you", greedy_text)])[0]
    assert greedy


def test_matches_lm_eval_hflm(tiny_llama_dir):
    """Same numbers as lm-evaluation-harness's own HFLM on the same model (when lm-eval is installed)."""
    pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    loaded = load_model(str(tiny_llama_dir))
    lm = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=2)
    instances = [Instance(request_type="loglikelihood", doc={}, arguments=r, idx=i) for i, r in enumerate(REQUESTS)]
    theirs = lm.loglikelihood(instances, disable_tqdm=True)
    ours, _ = loglikelihoods(loaded.model, loaded.tokenizer, "causal", REQUESTS, batch_size=4)
    for (a, ga), (b, gb) in zip(ours, theirs):
        assert a == pytest.approx(b, abs=1e-4) and ga == gb


def test_packs_fill_first_fit_longest_first_and_keep_one_token_rows_alone():
    rows = [[1] * n for n in (9, 6, 5, 4, 3, 1, 12)]
    order = sorted(range(len(rows)), key=lambda r: -len(rows[r]))  # 12, 9, 6, 5, 4, 3, 1
    assert _packs(rows, order, capacity=10) == [[6], [0], [1, 3], [2, 4], [5]]
    # 12 is longer than a pack: alone; 9 leaves 1; 6 + 4; 5 + 3 (+1 would fit, but a one-token row stays alone)


def test_packed_scores_equal_padded_scores(tiny_llama_dir):
    """The same requests through packed forwards and through left-padded batches (an eager-attention model
    cannot pack): the same log-likelihoods."""
    loaded = load_model(str(tiny_llama_dir))
    packed, stats = loglikelihoods(loaded.model, loaded.tokenizer, "causal", REQUESTS * 3, batch_size=2)
    loaded.model.set_attn_implementation("eager")
    padded, plain = loglikelihoods(loaded.model, loaded.tokenizer, "causal", REQUESTS * 3, batch_size=2)
    assert stats["packed"] and not plain["packed"] and stats["computed_tokens"] < plain["computed_tokens"]
    assert stats["input_tokens"] == plain["input_tokens"] == stats["computed_tokens"]
    for (a, ga), (b, gb) in zip(packed, padded):
        assert a == pytest.approx(b, abs=1e-4) and ga == gb


def test_packed_scores_at_bf16_equal_one_forward_per_pair(tiny_llama_dir):
    """Packing at bf16 (the precision `auto` picks on hosts with native bf16): each request as one unpadded
    bf16 forward of its own scores it, to bf16's rounding (packed forwards sum in other shapes)."""
    loaded = load_model(str(tiny_llama_dir), precision="bf16")
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    scored, stats = loglikelihoods(loaded.model, loaded.tokenizer, "causal", REQUESTS * 2, batch_size=2)
    assert stats["packed"]
    for (context, continuation), (ll, _) in zip(REQUESTS * 2, scored):
        want, _ = by_hand(loaded, context, continuation)
        assert ll == pytest.approx(want, rel=2e-2, abs=5e-2), (context, continuation)
