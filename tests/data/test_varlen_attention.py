"""Attention per packed example computes what the block-diagonal mask computes, and only on packed rows."""

from __future__ import annotations

import pytest
import torch

from tests.data.test_packing import examples, loss_and_grads, model_for
from tuneval.config import recipe_from_dict
from tuneval.data import varlen_attention
from tuneval.data.collate import DataCollator
from tuneval.data.packing import PackedCollator, pack_examples
from tuneval.train.trainer import train


def test_segments_split_examples_and_keep_the_padding_tail_whole():
    pos = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3, 0, 0, 0],   # three examples, three one-token pads
                        [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]])  # two examples, no padding
    assert varlen_attention.segments(pos) == [[(0, 3), (3, 5), (5, 9), (9, 12)], [(0, 6), (6, 12)]]


def counting(monkeypatch):
    """Counts layer calls that took the per-example path (they split the rows: `segments`) and SDPA calls."""
    calls = {"packed": 0, "sdpa": 0}
    segments, sdpa = varlen_attention.segments, varlen_attention.sdpa_attention_forward

    def counted_segments(position_ids):
        calls["packed"] += 1
        return segments(position_ids)

    def counted_sdpa(*args, **kwargs):
        calls["sdpa"] += 1
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(varlen_attention, "segments", counted_segments)
    monkeypatch.setattr(varlen_attention, "sdpa_attention_forward", counted_sdpa)
    return calls


@pytest.mark.parametrize("method", ["lora", "full"])
def test_packed_loss_and_gradients_equal_unpacked(tiny_llama_dir, method, monkeypatch):
    model, loaded = model_for(tiny_llama_dir, method)
    ex = examples()
    padded = DataCollator(loaded.tokenizer.pad_token_id)(ex)
    packed = PackedCollator(loaded.tokenizer.pad_token_id)(pack_examples(ex, max_seq_len=64))
    expected_loss, expected = loss_and_grads(model, padded)  # sdpa, each example its own padded row
    model.set_attn_implementation(varlen_attention.register())
    layers = model.config.num_hidden_layers
    spans = sum(len(s) for s in varlen_attention.segments(packed["position_ids"]))
    calls = counting(monkeypatch)
    loss, got = loss_and_grads(model, packed)
    assert calls == {"packed": layers, "sdpa": layers * spans} and spans > packed["input_ids"].shape[0]
    torch.testing.assert_close(loss, expected_loss, rtol=1e-5, atol=1e-5)
    assert got.keys() == expected.keys() and expected
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-5, msg=name)


def test_unpacked_batches_and_generation_fall_back_to_sdpa(tiny_llama_dir, monkeypatch):
    """Evaluation's padded batches (a 2-D mask) and cached generation take sdpa's path with its mask, unchanged."""
    model, loaded = model_for(tiny_llama_dir, "full")
    model.eval()
    model.config.use_cache = True
    padded = DataCollator(loaded.tokenizer.pad_token_id)(examples(n=3, seed=2))
    mask = padded["attention_mask"]  # left-padded, as evaluation generates: position ids restart after the pads
    inputs = {"input_ids": torch.stack([torch.cat([i[m == 0], i[m == 1]]) for i, m in zip(padded["input_ids"], mask)]),
              "attention_mask": mask.sort(dim=1, stable=True).values}
    assert (inputs["attention_mask"][:, 0] == 0).any()
    with torch.no_grad():
        expected = model(**inputs).logits
        expected_gen = model.generate(**inputs, max_new_tokens=5, do_sample=False)
        model.set_attn_implementation(varlen_attention.register())
        calls = counting(monkeypatch)
        got = model(**inputs).logits
        got_gen = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert calls["packed"] == 0 and calls["sdpa"] > 0
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert torch.equal(got_gen, expected_gen)


@pytest.mark.parametrize("precision, rel", [("fp32", 1e-5), ("bf16", 1e-4)])
def test_training_uses_it_by_default_and_trains_the_same(tiny_llama_dir, tiny_data_dir, tmp_path, precision, rel):
    """The default run trains on packed rows with attention per example; `data.varlen_attention: false`
    trains the same steps under the mask: same losses to float rounding (bf16 autocast, emulated where
    the CPU has no native bf16, rounds each attention's inputs). The result is sdpa again."""
    def run(name, varlen):
        return train(recipe_from_dict({
            "model": str(tiny_llama_dir), "task": "dialogsum", "method": "lora", "seed": 7, "precision": precision,
            "output_dir": str(tmp_path / name),
            "data": {"data_dir": str(tiny_data_dir), "train_examples": 16, "max_seq_len": 256,
                     "varlen_attention": varlen},
            "train": {"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1e-2, "logging_steps": 1,
                      "save_strategy": "no"}}, "test"))

    on, model, _ = run("on", True)
    off, _, _ = run("off", False)
    assert on["packing"] and on["packed_rows"] < 16 and on["varlen_attention"] is True and off["varlen_attention"] is False
    assert model.config._attn_implementation == "sdpa"
    assert on["precision"] == precision
    assert on["train_loss"] == pytest.approx(off["train_loss"], rel=rel)
