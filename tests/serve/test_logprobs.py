"""Log-probabilities over HTTP in OpenAI's shapes, read back the way lm-evaluation-harness reads them.

The numbers are checked against a direct forward pass through the same adapter
(conftest.direct_logprobs); lm-eval's own `LocalCompletionsAPI` builds the requests and parses
the answers, so the server is scored exactly as `lm_eval --model local-completions` scores it.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from fastapi.testclient import TestClient

from tests.serve.conftest import direct_logprobs
from tuneval.models import load_model
from tuneval.serve.api import ServeSettings, create_app
from tuneval.serve.bank import AdapterBank, Row

PROMPT = "hello how are you"


@pytest.fixture(scope="module")
def served(lively_llama, llama_adapters):
    bank = AdapterBank(load_model(str(lively_llama)), base_name="tiny")
    bank.load("lora_a", llama_adapters["lora_a"])
    with TestClient(create_app(bank, ServeSettings())) as client:
        yield client, bank


def score(client, model, prompt, k=2, **kw):
    body = {"model": model, "prompt": prompt, "max_tokens": 0, "echo": True, "logprobs": k, **kw}
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_echo_with_max_tokens_0_scores_the_prompt_through_the_adapter(served, lively_llama, llama_adapters):
    client, bank = served
    ids = bank.tokenizer(PROMPT)["input_ids"]
    seen = []
    for model, adapter in (("tiny", None), ("lora_a", llama_adapters["lora_a"])):
        body = score(client, model, PROMPT)
        choice = body["choices"][0]
        assert choice["text"] == PROMPT and choice["finish_reason"] == "length"
        assert body["usage"] == {"prompt_tokens": len(ids), "completion_tokens": 0, "total_tokens": len(ids)}
        lp = choice["logprobs"]
        assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None  # the first token has no context
        assert lp["tokens"] == [bank.tokenizer.decode([i]) for i in ids] and "".join(lp["tokens"]) == PROMPT
        assert lp["text_offset"] == [sum(len(t) for t in lp["tokens"][:j]) for j in range(len(ids))]
        ref = direct_logprobs(lively_llama, adapter, ids)
        want = [ref[j - 1, ids[j]].item() for j in range(1, len(ids))]
        assert lp["token_logprobs"][1:] == pytest.approx(want, abs=1e-5)
        for j in range(1, len(ids)):
            top = lp["top_logprobs"][j]
            best = [bank.tokenizer.decode([i]) for i in ref[j - 1].topk(2).indices.tolist()]
            assert list(top)[:2] == best  # the k most likely, best first
            chosen_in_top = ids[j] in ref[j - 1].topk(2).indices.tolist()
            assert len(top) == (2 if chosen_in_top else 3) and lp["tokens"][j] in top  # + the chosen one
        seen.append(lp["token_logprobs"][1:])
    assert seen[0] != pytest.approx(seen[1], abs=1e-3)  # base and adapter differ


def test_token_id_prompts_equal_string_prompts(served):
    client, bank = served
    texts = [PROMPT, "the meeting is at noon"]
    ids = [bank.tokenizer(t)["input_ids"] for t in texts]
    by_text = score(client, "lora_a", texts)["choices"]
    by_ids = score(client, "lora_a", ids)["choices"]
    one = score(client, "lora_a", ids[1])["choices"]
    assert [c["index"] for c in by_ids] == [0, 1]
    assert [c["logprobs"] for c in by_ids] == [c["logprobs"] for c in by_text]
    assert [c["text"] for c in by_ids] == texts  # echo of token ids: their decoded text
    alone, batched = one[0]["logprobs"], by_ids[1]["logprobs"]  # padded in a batch: equal up to float rounding
    assert alone["tokens"] == batched["tokens"] and alone["text_offset"] == batched["text_offset"]
    assert alone["token_logprobs"][1:] == pytest.approx(batched["token_logprobs"][1:], abs=1e-5)


def _lm_eval_request(model: str, prompts: list[list[int]]) -> dict:
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    return LocalCompletionsAPI._create_payload(SimpleNamespace(model=model), prompts, generate=False)


def test_lm_eval_parses_our_answer_as_a_direct_computation(served, lively_llama, llama_adapters):
    """lm-eval 0.4.13's loglikelihood request (max_tokens 1, logprobs 1, echo) and its parse_logprobs."""
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    client, bank = served
    context = bank.tokenizer(PROMPT)["input_ids"]
    greedy = bank.generate([Row(context, "lora_a", 3)])[0].tokens
    other = [t + 1 for t in greedy]
    payload = _lm_eval_request("lora_a", [context + greedy, context + other])
    assert payload["max_tokens"] == 1 and payload["echo"] is True and payload["logprobs"] == 1
    r = client.post("/v1/completions", json=payload)
    assert r.status_code == 200, r.text
    parsed = LocalCompletionsAPI.parse_logprobs(outputs=r.json(), tokens=None, ctxlens=[len(context)] * 2)
    for (total, is_greedy), continuation in zip(parsed, (greedy, other)):
        ids = context + continuation
        ref = direct_logprobs(lively_llama, llama_adapters["lora_a"], ids)
        steps = range(len(context), len(ids))
        assert total == pytest.approx(sum(ref[j - 1, ids[j]].item() for j in steps), abs=1e-4)
        assert is_greedy == all(int(ref[j - 1].argmax()) == ids[j] for j in steps)
    assert [g for _, g in parsed] == [True, False]


def test_generated_tokens_carry_logprobs(served):
    client, bank = served
    body = {"model": "lora_a", "prompt": PROMPT, "max_tokens": 5, "temperature": 0, "logprobs": 3}
    choice = client.post("/v1/completions", json=body).json()["choices"][0]
    lp = choice["logprobs"]
    out = bank.generate([Row(bank.tokenizer(PROMPT)["input_ids"], "lora_a", 5)])[0]
    assert lp["tokens"] == [bank.tokenizer.decode([t]) for t in out.tokens] and choice["text"] == out.text
    for value, top in zip(lp["token_logprobs"], lp["top_logprobs"]):
        assert value == max(top.values()) and len(top) == 3  # greedy: the chosen token is the most likely

    echoed = client.post("/v1/completions", json={**body, "echo": True}).json()["choices"][0]
    n = len(bank.tokenizer(PROMPT)["input_ids"])
    assert echoed["text"] == PROMPT + choice["text"]
    assert echoed["logprobs"]["token_logprobs"][n:] == pytest.approx(lp["token_logprobs"], abs=1e-4)


def test_chat_logprobs(served):
    client, _ = served
    body = {"model": "lora_a", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 4, "temperature": 0,
            "logprobs": True, "top_logprobs": 2}
    r = client.post("/v1/chat/completions", json=body).json()
    content = r["choices"][0]["logprobs"]["content"]
    assert len(content) == r["usage"]["completion_tokens"]
    for item in content:
        assert len(item["top_logprobs"]) == 2
        assert item["top_logprobs"][0]["token"] == item["token"] and item["top_logprobs"][0]["logprob"] == item["logprob"]
        assert item["bytes"] == list(item["token"].encode()) and item["logprob"] <= 0
    plain = client.post("/v1/chat/completions", json={**body, "logprobs": False, "top_logprobs": None}).json()
    assert plain["choices"][0]["logprobs"] is None
    assert plain["choices"][0]["message"] == r["choices"][0]["message"]


def test_scoring_errors(served, lively_t5):
    client, _ = served
    cases = [({"stream": True, "echo": True, "logprobs": None}, "echo"),
             ({"stream": True}, "logprobs")]
    for extra, param in cases:
        r = client.post("/v1/completions", json={"model": "tiny", "prompt": PROMPT, "echo": True, "logprobs": 1,
                                                 "max_tokens": 1, **extra})
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    with TestClient(create_app(AdapterBank(load_model(str(lively_t5)), base_name="t5"))) as t5:
        r = t5.post("/v1/completions", json={"model": "t5", "prompt": PROMPT, "echo": True, "logprobs": 1, "max_tokens": 0})
        assert r.status_code == 400 and r.json()["error"]["param"] == "echo" and "decoder-only" in r.text
        r = t5.post("/v1/completions", json={"model": "t5", "prompt": PROMPT, "logprobs": 1, "max_tokens": 2})
        assert r.status_code == 200 and len(r.json()["choices"][0]["logprobs"]["tokens"]) >= 1


def test_scoring_stays_in_fp32_over_a_bf16_base(lively_llama):
    bank = AdapterBank(load_model(str(lively_llama), precision="bf16"), base_name="tiny")
    out = bank.generate([Row([5, 6, 7, 8], None, 0, logprobs=0, score_prompt=True)])[0]
    assert isinstance(out.prompt_logprobs[0].logprob, float)
    assert torch.tensor([e.logprob for e in out.prompt_logprobs]).lt(0).all()
