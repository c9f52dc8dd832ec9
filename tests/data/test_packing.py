"""Packed rows train exactly as the same examples padded: same loss, same gradients, no cross-talk."""

from __future__ import annotations

import random

import pytest
import torch

from tuneval.config import recipe_from_dict
from tuneval.data.collate import IGNORE_INDEX, DataCollator
from tuneval.data.packing import (
    PackedCollator,
    check_packed_attention,
    pack_examples,
    packing_applies,
    real_token_mask,
    rows_per_step,
)
from tuneval.errors import TunevalError
from tuneval.methods import get_method
from tuneval.model_args import ModelArgs
from tuneval.models import load_model


def examples(n=7, seed=0, vocab=300):
    """Varied lengths (7-33 tokens): a prompt labelled -100, then a response."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        prompt = [rng.randrange(10, vocab) for _ in range(rng.randint(4, 24))]
        response = [rng.randrange(10, vocab) for _ in range(rng.randint(3, 9))]
        rows.append({"input_ids": prompt + response, "labels": [IGNORE_INDEX] * len(prompt) + response})
    return rows


def model_for(model_dir, method, attn="sdpa"):
    loaded = load_model(str(model_dir), precision="fp32", args=ModelArgs(attn_implementation=attn))
    spec = get_method(method)
    torch.manual_seed(3)
    model = spec.apply(loaded.model, spec.settings(), loaded.arch)
    with torch.no_grad():  # LoRA B starts at zero: move it so its gradients depend on the input
        for name, p in model.named_parameters():
            if p.requires_grad and "lora_B" in name:
                p.add_(torch.randn_like(p) * 0.05)
    for module in model.modules():  # dropout off: two forwards see the same network
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.config.use_cache = False  # as the trainer sets it
    model.train()
    return model, loaded


def loss_and_grads(model, batch):
    """Sum of next-token cross-entropy over labelled tokens / their count, and the trainable gradients."""
    model.zero_grad()
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    labels = batch["labels"][:, 1:]
    keep = labels != IGNORE_INDEX
    loss = torch.nn.functional.cross_entropy(logits[:, :-1][keep], labels[keep], reduction="sum") / keep.sum()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_rows_hold_whole_examples_with_restarting_positions():
    ex = examples(n=12)
    rows = pack_examples(ex, max_seq_len=48)
    assert all(len(r["input_ids"]) <= 48 for r in rows) and len(rows) < len(ex)
    seen = []
    for r in rows:
        starts = [i for i, p in enumerate(r["position_ids"]) if p == 0] + [len(r["input_ids"])]
        for a, b in zip(starts, starts[1:]):
            assert r["position_ids"][a:b] == list(range(b - a))
            original = next(e for e in ex if e["input_ids"] == r["input_ids"][a:b])
            assert r["labels"][a:b] == [IGNORE_INDEX] + original["labels"][1:]  # nothing predicts across a boundary
            seen.append(ex.index(original))
    assert sorted(seen) == list(range(len(ex)))  # every example once, none cut
    assert pack_examples(ex, max_seq_len=48) == rows  # deterministic


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("method", ["lora", "full"])
def test_packed_loss_and_gradients_equal_unpacked(tiny_llama_dir, method, attn):
    model, loaded = model_for(tiny_llama_dir, method, attn)
    ex = examples()
    padded = DataCollator(loaded.tokenizer.pad_token_id)(ex)
    assert (padded["attention_mask"] == 0).any()
    packed = PackedCollator(loaded.tokenizer.pad_token_id)(pack_examples(ex, max_seq_len=64))
    assert "attention_mask" not in packed and packed["input_ids"].shape[0] < len(ex)
    assert (~real_token_mask(packed)).any()  # the packed batch is padded too: pads must stay harmless
    expected_loss, expected = loss_and_grads(model, padded)
    loss, got = loss_and_grads(model, packed)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-5, atol=1e-5)
    assert got.keys() == expected.keys() and expected
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-5, msg=name)


def test_trainer_loss_path_on_packed_rows(tiny_llama_dir):
    """FastCausalTrainer's cheap loss (logits only at labelled positions) gives the same number packed."""
    from tuneval.train.loss import causal_lm_loss

    model, loaded = model_for(tiny_llama_dir, "lora")
    ex = examples()
    padded = DataCollator(loaded.tokenizer.pad_token_id)(ex)
    packed = PackedCollator(loaded.tokenizer.pad_token_id)(pack_examples(ex, max_seq_len=64))
    with torch.no_grad():
        reference = model(**padded).loss  # transformers' own loss, unpacked, with the padding mask
        loss, _ = causal_lm_loss(model, packed)
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-5)


def test_examples_never_attend_across_boundaries(tiny_llama_dir):
    model, loaded = model_for(tiny_llama_dir, "full")
    model.eval()
    ex = examples(n=6, seed=1)
    rows = pack_examples(ex, max_seq_len=80)
    row = max(rows, key=lambda r: r["position_ids"].count(0))
    starts = [i for i, p in enumerate(row["position_ids"]) if p == 0] + [len(row["input_ids"])]
    assert len(starts) >= 4  # at least three examples share this row
    collate = PackedCollator(loaded.tokenizer.pad_token_id)
    changed = dict(row, input_ids=list(row["input_ids"]))
    a, b = starts[1], starts[2]  # the middle example
    changed["input_ids"][a:b] = [(t + 7) % 300 + 10 for t in row["input_ids"][a:b]]
    with torch.no_grad():
        before = model(**{k: v for k, v in collate([row]).items() if k != "labels"}).logits[0]
        after = model(**{k: v for k, v in collate([changed]).items() if k != "labels"}).logits[0]
    assert not torch.allclose(before[a:b], after[a:b])  # the changed example's own logits move
    torch.testing.assert_close(after[:a], before[:a], rtol=0, atol=1e-6)
    torch.testing.assert_close(after[b:], before[b:], rtol=0, atol=1e-6)  # the example after it never saw it


def test_padding_share_on_dialogsum_like_lengths():
    """Lengths like SmolLM2-tokenised DialogSum (108-1024, mean ~290): packed batches are <= 5% padding,
    in the order the Trainer's default sampler (group_by_length) draws rows, and for 1024-token rows
    in any order; the same examples unpacked in random batches are over a quarter padding."""
    from transformers.trainer_pt_utils import get_length_grouped_indices

    rng = random.Random(0)
    lengths = [min(1024, max(108, int(rng.gauss(290, 110)))) for _ in range(700)]
    collate = PackedCollator(pad_token_id=0)

    def share(rows, per_batch, grouped):
        if grouped:
            order = get_length_grouped_indices([len(r["input_ids"]) for r in rows], per_batch,
                                               generator=torch.Generator().manual_seed(1))
        else:
            order = list(range(len(rows)))
            random.Random(1).shuffle(order)
        real = slots = 0
        for i in range(0, len(order), per_batch):
            mask = real_token_mask(collate([rows[j] for j in order[i:i + per_batch]]))
            real, slots = real + int(mask.sum()), slots + mask.numel()
        return 1 - real / slots

    for max_seq_len in (512, 1024):  # the formatter cuts every example to max_seq_len
        ex = [{"input_ids": [5] * min(n, max_seq_len), "labels": [6] * min(n, max_seq_len)} for n in lengths]
        rows = pack_examples(ex, max_seq_len)
        per_batch = rows_per_step(8, len(ex), len(rows))
        assert 8 * 0.75 <= per_batch * len(ex) / len(rows) <= 8 * 1.25  # about 8 examples a step, as unpacked
        assert share(rows, per_batch, grouped=True) <= 0.05
    assert share(rows, per_batch, grouped=False) <= 0.05  # 1024-token rows are nearly all full
    unpacked = [{**e, "position_ids": list(range(len(e["input_ids"])))} for e in ex]
    assert share(unpacked, 8, grouped=False) > 0.25


def test_real_tokens_counted_where_eos_pads():
    """The Trainer's fallback count (input_ids != pad) misses EOS when EOS pads; real_token_mask does not."""
    eos = 2
    rows = pack_examples([{"input_ids": [7, 8, eos], "labels": [-100, 8, eos]},
                          {"input_ids": [9, 10, 11, eos], "labels": [-100, -100, 11, eos]},
                          {"input_ids": [12, eos], "labels": [-100, eos]}], max_seq_len=7)
    batch = PackedCollator(pad_token_id=eos)(rows)
    assert real_token_mask(batch).sum() == 9 and batch["input_ids"].numel() > 9
    assert real_token_mask(DataCollator(eos)([{"input_ids": [1, eos]}, {"input_ids": [3]}])).tolist() == [[True, True], [True, False]]


def test_seq2seq_and_prompt_learning_keep_their_own_path(tiny_t5_dir, tiny_llama_dir):
    with pytest.raises(TunevalError, match="causal LMs"):
        pack_examples([{"input_ids": [5, 6, 7, 8], "labels": [9, 2]}], max_seq_len=16)  # seq2seq-shaped
    with pytest.raises(TunevalError, match="more than data.max_seq_len"):
        pack_examples(examples(n=2), max_seq_len=8)
    t5, loaded = model_for(tiny_t5_dir, "full")
    assert packing_applies(True, loaded.arch, t5) is False
    prompt_tuned, loaded = model_for(tiny_llama_dir, "prompt_tuning")  # PEFT drops position_ids there
    assert packing_applies(True, loaded.arch, prompt_tuned) is False
    lora, loaded = model_for(tiny_llama_dir, "lora")
    assert packing_applies(True, loaded.arch, lora) is True
    assert packing_applies(False, loaded.arch, lora) is False


def test_refused_where_examples_would_leak(tiny_llama_dir):
    """A KV cache switches transformers' packed-sequence mask off: the check sees the leak and refuses."""
    model, _ = model_for(tiny_llama_dir, "lora")
    check_packed_attention(model)
    model.config.use_cache = True
    with pytest.raises(TunevalError, match=r"data.packing: packed examples see each other .*use_cache"):
        check_packed_attention(model)
    assert model.training  # the check leaves the model's mode as it found it


def _recipe(model_dir, data_dir, out, **data):
    return recipe_from_dict({
        "model": str(model_dir), "task": "dialogsum", "method": "lora", "seed": 7, "output_dir": str(out),
        "data": {"data_dir": str(data_dir), "max_seq_len": 256, **data},
        "train": {"num_train_epochs": 1, "per_device_train_batch_size": 4, "learning_rate": 1e-3,
                  "logging_steps": 1, "save_steps": 100},
        "eval": {"after_training": False},
    }, "test")


def test_training_run_records_packing_and_padding(tiny_llama_dir, tiny_data_dir, tmp_path):
    from tuneval.train.trainer import train

    packed, *_ = train(_recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "packed"))
    plain, *_ = train(_recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "plain", packing=False))
    assert packed["packing"] is True and plain["packing"] is False and "packed_rows" not in plain
    assert packed["packed_rows"] < packed["train_examples"] == plain["train_examples"] == 32
    # every real token counted once, packed or not (EOS included)
    assert packed["train_tokens"] == plain["train_tokens"] == packed["data"]["tokens"]
    assert 0 <= packed["padding_share"] < plain["padding_share"]  # few, short rows here; <= 5% at scale (above)
    assert 4 * 0.6 <= 32 / packed["global_step"] <= 4 * 1.5  # about per_device_train_batch_size examples a step
    assert plain["global_step"] == 8
