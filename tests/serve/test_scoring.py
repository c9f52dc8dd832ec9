"""Log-probabilities from the bank: prompts scored per adapter in mixed batches, and generated tokens'.

Every number is checked against a plain forward pass of a fresh model with the adapter loaded
through PEFT alone (conftest.direct_logprobs), so a row scored through the wrong adapter, a
shifted position or a temperature-scaled distribution would show.
"""

from __future__ import annotations

import pytest
import torch

from tests.serve.conftest import PROMPTS, direct_logprobs
from tuneval.errors import TunevalError
from tuneval.models import load_model
from tuneval.serve.bank import AdapterBank, Row
from tuneval.serve.scoring import StepLogprobs, TokenLogprob, chunks, pick

KINDS = ["lora_a", "lora_b", "ia3", "prompt", "dora"]


@pytest.fixture(scope="module")
def bank(lively_llama, llama_adapters) -> AdapterBank:
    bank = AdapterBank(load_model(str(lively_llama)), base_name="tiny")
    for kind in KINDS:
        bank.load(kind, llama_adapters[kind])
    return bank


def test_pick_and_chunks():
    lp = torch.tensor([[-1.0, -0.5, -3.0], [-0.25, -2.0, -4.0]])
    assert pick(lp, [2, 0], 2) == [TokenLogprob(-3.0, ((1, -0.5), (0, -1.0))), TokenLogprob(-0.25, ((0, -0.25), (1, -2.0)))]
    assert pick(lp, [1, 1], 0) == [TokenLogprob(-0.5), TokenLogprob(-2.0)]
    assert pick(lp, [0], 9)[0].top == ((1, -0.5), (0, -1.0), (2, -3.0))  # k past the vocabulary: all of it
    assert TokenLogprob(-1.0, ((1, -0.5), (0, -1.0))).first(1) == TokenLogprob(-1.0, ((1, -0.5),))
    # rows x longest x vocabulary within the budget; a row alone always gets a pass
    assert chunks([3, 3, 10, 2], vocabulary=1, budget=9) == [[0, 1], [2], [3]]
    assert chunks([50], vocabulary=1000, budget=10) == [[0]]


def test_scored_prompts_equal_a_direct_forward_pass_per_adapter(bank, lively_llama, llama_adapters):
    """Base and every kind of adapter scored in one call (a mixed LoRA forward, the others alone)."""
    prompts = PROMPTS + [PROMPTS[0][:5]]
    names = [None, *KINDS]
    rows = [Row(p, name, max_new_tokens=0, logprobs=3, score_prompt=True) for name in names for p in prompts]
    outs = bank.generate(rows)
    assert any(label.startswith("score:mixed:") for label, _ in bank.last_plan)
    assert all(o.tokens == [] and o.finish_reason == "length" for o in outs)
    firsts = set()
    for row, out in zip(rows, outs):
        ref = direct_logprobs(lively_llama, llama_adapters[row.adapter] if row.adapter else None, row.prompt)
        got = torch.tensor([e.logprob for e in out.prompt_logprobs])
        want = ref[:-1].gather(1, torch.tensor(row.prompt[1:])[:, None])[:, 0]
        assert torch.allclose(got, want, atol=1e-5), (row.adapter, got, want)
        for entry, dist in zip(out.prompt_logprobs, ref[:-1]):
            assert [i for i, _ in entry.top] == dist.topk(3).indices.tolist()
        firsts.add(round(out.prompt_logprobs[0].logprob, 4))
    assert len(firsts) >= len(names)  # six models, six different distributions


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_generated_tokens_logprobs_are_the_raw_distribution(bank, lively_llama, llama_adapters, temperature):
    """Greedy and sampled alike: log_softmax of the logits, before temperature (vLLM's raw_logprobs)."""
    torch.manual_seed(0)
    rows = [Row(PROMPTS[0], "lora_a", 6, temperature=temperature, logprobs=2),
            Row(PROMPTS[1], None, 6, temperature=temperature, logprobs=0),
            Row(PROMPTS[2], "prompt", 6, temperature=temperature)]
    outs = bank.generate(rows)
    assert outs[2].token_logprobs is None
    for row, out in zip(rows[:2], outs[:2]):
        assert len(out.token_logprobs) == len(out.tokens) == 6
        ids = row.prompt + out.tokens
        ref = direct_logprobs(lively_llama, llama_adapters[row.adapter] if row.adapter else None, ids)
        for s, (token, entry) in enumerate(zip(out.tokens, out.token_logprobs)):
            dist = ref[len(row.prompt) - 1 + s]
            assert entry.logprob == pytest.approx(dist[token].item(), abs=1e-4)
            assert len(entry.top) == row.logprobs
            if temperature == 0:
                assert token == int(dist.argmax())
            if temperature == 0 and row.logprobs:
                assert entry.top[0][0] == token


def test_one_greedy_token_after_scoring_equals_generate(bank):
    """echo + max_tokens 1 (lm-eval's request) takes its token from the scoring pass: the one generate picks."""
    for name in (None, "lora_a", "prompt"):
        plain = bank.generate([Row(p, name, 1) for p in PROMPTS])
        scored = bank.generate([Row(p, name, 1, logprobs=1, score_prompt=True) for p in PROMPTS])
        assert not any(label.startswith(("base", "adapter:", "mixed:")) for label, _ in bank.last_plan)  # no generate
        for a, b in zip(plain, scored):
            assert (a.tokens, a.text, a.finish_reason) == (b.tokens, b.text, b.finish_reason)
            assert b.token_logprobs[0].top[0][0] == b.tokens[0]


def test_scoring_needs_a_causal_model_but_generated_logprobs_work_on_seq2seq(lively_t5):
    bank = AdapterBank(load_model(str(lively_t5)))
    with pytest.raises(TunevalError, match="decoder-only"):
        bank.generate([Row(PROMPTS[0], max_new_tokens=0, logprobs=1, score_prompt=True)])
    out = bank.generate([Row(PROMPTS[0], max_new_tokens=4, logprobs=1)])[0]
    assert len(out.token_logprobs) == len(out.tokens) >= 1
    assert all(e.logprob <= 0 and e.top[0][1] >= e.logprob for e in out.token_logprobs)


def test_step_logprobs_change_nothing():
    steps = StepLogprobs()
    scores = torch.tensor([[2.0, 0.0, -1.0]])
    assert steps(torch.tensor([[1]]), scores) is scores
    assert torch.allclose(steps.last, scores.log_softmax(-1))
