"""generate_ids: token ids in input order, cut after the first EOS, and what generate() decodes."""

from __future__ import annotations

import pytest
import torch

from tuneval.evaluate.generation import (GrowingLayer, _until_eos, generate, generate_ids, greedy_config, refill,
                                         rows_attention_forward)
from tuneval.models import load_model


def test_until_eos_cuts_after_the_first_eos_and_drops_the_decoder_start():
    assert _until_eos([7, 8, 2, 0, 0], 2, 0, "causal") == [7, 8, 2]
    assert _until_eos([7, 8, 9], [2, 3], 0, "causal") == [7, 8, 9]  # no EOS: the whole row
    assert _until_eos([7, 3, 2], [2, 3], 0, "causal") == [7, 3]  # any of several EOS ids
    assert _until_eos([0, 7, 2, 0], 2, 0, "seq2seq") == [7, 2]  # the decoder start (pad) is not generated
    assert _until_eos([0, 7, 2, 0], 2, 0, "causal") == [0, 7, 2]


def test_ids_in_input_order_match_one_at_a_time_and_generate(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    tok, arch = loaded.tokenizer, loaded.arch
    torch.manual_seed(0)
    prompts = [torch.randint(10, 300, (n,)).tolist() for n in (5, 12, 8, 3)]
    ids = generate_ids(loaded.model, tok, prompts, arch, batch_size=3, max_new_tokens=6)
    assert len(ids) == len(prompts) and all(1 <= len(r) <= 6 for r in ids)
    alone = [generate_ids(loaded.model, tok, [p], arch, batch_size=1, max_new_tokens=6)[0] for p in prompts]
    assert alone == ids  # sorted, padded batches come back in input order with the same tokens
    texts, n = generate(loaded.model, tok, prompts, arch, batch_size=3, max_new_tokens=6)
    assert n == sum(map(len, ids))
    assert texts == [tok.decode(r, skip_special_tokens=True).strip() for r in ids]


def _one_at_a_time(model, tok, prompts, max_new_tokens):
    """The reference: `model.generate` on each prompt alone (no padding), cut after EOS."""
    config = greedy_config(model, tok, max_new_tokens)
    out = []
    for p in prompts:
        ids = torch.tensor([p])
        row = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)[0, len(p):]
        out.append(_until_eos(row.tolist(), config.eos_token_id, tok.pad_token_id, "causal"))
    return out


@pytest.fixture(scope="module")
def sharp_llama_dir(tmp_path_factory):
    """The tiny Llama with large random weights and fast-turning RoPE: its greedy tokens depend on every
    position and key, so a decode that feeds a wrong position or a padded key changes them."""
    from transformers import LlamaForCausalLM

    from tests.conftest import _build_tokenizer, tiny_llama_config

    torch.manual_seed(0)
    tok = _build_tokenizer(chat=True)
    path = tmp_path_factory.mktemp("sharp-llama")
    LlamaForCausalLM(tiny_llama_config(tok, initializer_range=0.3, rope_theta=10.0)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_batched_causal_greedy_is_generate_on_each_prompt_alone(sharp_llama_dir, precision):
    loaded = load_model(str(sharp_llama_dir), precision=precision)
    model, tok = loaded.model, loaded.tokenizer
    torch.manual_seed(0)
    prompts = [torch.randint(10, 300, (n,)).tolist() for n in (5, 40, 12, 3, 27, 8)]
    free = _one_at_a_time(model, tok, prompts, 12)
    model.generation_config.eos_token_id = free[1][4]  # an EOS some rows reach mid-way: rows leave the batch early
    want = _one_at_a_time(model, tok, prompts, 12)
    assert len({len(r) for r in want}) > 1
    got = generate_ids(model, tok, prompts, "causal", batch_size=4, max_new_tokens=12)
    assert got == want
    assert model.config._attn_implementation == "sdpa"  # the per-row decode attention is handed back


def test_rows_attention_is_each_rows_own_unmasked_attention(tiny_llama_dir):
    """One decoding step: per-row SDPA over each row's unpadded keys equals sdpa over the padded batch with its mask."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    loaded = load_model(str(tiny_llama_dir), precision="fp32")
    module = loaded.model.model.layers[0].self_attn
    torch.manual_seed(1)
    q, k, v = torch.randn(3, 4, 1, 8), torch.randn(3, 2, 9, 8), torch.randn(3, 2, 9, 8)
    mask = torch.tensor([[1] * 9, [0] * 4 + [1] * 5, [0] * 8 + [1]]).bool()
    got, _ = rows_attention_forward(module, q, k, v, mask, scaling=8 ** -0.5)
    want, _ = sdpa_attention_forward(module, q, k, v, mask[:, None, None, :], scaling=8 ** -0.5)
    torch.testing.assert_close(got, want)
    with pytest.raises(RuntimeError, match="one-token decoding"):
        rows_attention_forward(module, torch.randn(3, 4, 2, 8), k, v, mask)


def test_refill_moves_only_the_live_rows_past_the_kept_count_into_finished_places():
    assert refill([True, False, True, False, True]) == [0, 4, 2]
    assert refill([False, True, True, True]) == [3, 1, 2]
    assert refill([True, True, False, False]) == [0, 1]  # nothing moves: the finished rows are last
    assert refill([False, False]) == []


def test_growing_layer_writes_in_place_and_keeps_rows_as_a_gather_would():
    torch.manual_seed(0)
    keys, values = torch.randn(4, 2, 9, 3), torch.randn(4, 2, 9, 3)
    layer = GrowingLayer(keys.clone(), values.clone(), length=5)
    new_k, new_v = torch.randn(4, 2, 1, 3), torch.randn(4, 2, 1, 3)
    got_k, got_v = layer.update(new_k, new_v)
    assert layer.get_seq_length() == 6 and got_k.data_ptr() == layer.key_buffer.data_ptr()
    torch.testing.assert_close(got_k, torch.cat([keys[:, :, :5], new_k], dim=2), rtol=0, atol=0)
    before_k, before_v = got_k.clone(), got_v.clone()
    order = refill([False, True, False, True])  # rows 0 and 2 finished: row 3 takes row 0's place
    layer.batch_select_indices(torch.tensor(order))
    assert torch.equal(layer.keys, before_k[order]) and torch.equal(layer.values, before_v[order])
    layer.update(torch.ones(2, 2, 1, 3), torch.ones(2, 2, 1, 3))  # the kept rows go on growing
    assert layer.keys.shape == (2, 2, 7, 3) and torch.equal(layer.keys[:, :, :6], before_k[order])
    with pytest.raises(RuntimeError, match="in place"):
        layer.batch_select_indices(torch.tensor([1, 0]))  # row 0 would be read after row 1 moved onto it
    with pytest.raises(RuntimeError, match="holds 9 positions"):
        layer.update(torch.ones(2, 2, 3, 3), torch.ones(2, 2, 3, 3))
