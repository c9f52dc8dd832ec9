"""The training-memory estimate: exact bookkeeping for weights/gradients/optimizer, and activations
that equal what autograd really saves on real tensors."""

from __future__ import annotations

import json

import pytest
import torch

from tuneval.methods import get_method
from tuneval.methods.memory import _quantized_bytes, estimate_memory, saved_activations
from tuneval.models import load_model


def real_saved(model_dir, method, batch, seq, target=None):
    """Bytes autograd saves in a real training forward pass of a padded batch."""
    loaded = load_model(str(model_dir))
    spec = get_method(method)
    torch.manual_seed(0)
    net = spec.apply(loaded.model, spec.settings(), loaded.arch)
    net.config.use_cache = False
    net.train()
    ids = torch.randint(5, 100, (batch, seq))
    mask = torch.ones_like(ids)
    mask[0, -2:] = 0  # padded, as training batches are
    labels = torch.randint(5, 100, (batch, target)) if loaded.arch == "seq2seq" else ids
    return saved_activations(net, {"input_ids": ids, "attention_mask": mask, "labels": labels})["total"]


@pytest.mark.parametrize("method", ["full", "lora", "prompt_tuning", "freeze", "adapters"])
def test_activations_match_real_saved_tensors(tiny_model_dir, method):
    est = estimate_memory(str(tiny_model_dir), method, batch_size=3, seq_len=24, target_len=10)
    real = real_saved(tiny_model_dir, method, 3, 24, 10)
    # equal but for attention-mask bookkeeping (a fake batch can't carry a real mask): well under 1%
    assert abs(est.activations - real) <= 0.005 * real, (est.activations, real)


def test_full_fine_tuning_is_16_bytes_per_parameter(tiny_llama_dir):
    e = estimate_memory(str(tiny_llama_dir), "full", batch_size=2, seq_len=16)
    assert e.trainable == e.total
    assert (e.weights, e.gradients, e.optimizer) == (4 * e.total, 4 * e.total, 8 * e.total)
    assert e.bytes_per_parameter == 16
    vocab = load_model(str(tiny_llama_dir)).model.config.vocab_size
    assert e.transient == 2 * 2 * 16 * vocab * 4  # two logits-sized fp32 tensors
    assert e.tensors == e.weights + e.gradients + e.optimizer + e.activations + e.transient


def test_peft_pays_for_trainable_parameters_only_and_qlora_for_4bit_weights(tiny_llama_dir):
    full = estimate_memory(str(tiny_llama_dir), "full", batch_size=2, seq_len=16)
    lora = estimate_memory(str(tiny_llama_dir), "lora", batch_size=2, seq_len=16)
    qlora = estimate_memory(str(tiny_llama_dir), "qlora", batch_size=2, seq_len=16)
    assert lora.gradients == 4 * lora.trainable and lora.optimizer == 8 * lora.trainable
    assert lora.weights == 4 * lora.total
    assert lora.activations < full.activations  # frozen linears keep no inputs for backward
    # every linear of the 2 blocks is quantized; embeddings, norms, LoRA weights stay fp32
    linears = [32 * 32, 32 * 16, 32 * 16, 32 * 32, 32 * 64, 32 * 64, 64 * 32] * 2
    assert lora.weights - qlora.weights == sum(4 * n - _quantized_bytes(n, True) for n in linears)
    assert qlora.gradient_checkpointing and qlora.trainable == lora.trainable


def test_gradient_checkpointing_keeps_less(tiny_llama_dir):
    plain = estimate_memory(str(tiny_llama_dir), "full", batch_size=2, seq_len=64)
    ckpt = estimate_memory(str(tiny_llama_dir), "full", batch_size=2, seq_len=64, gradient_checkpointing=True)
    assert ckpt.activations < plain.activations
    assert ckpt.weights == plain.weights


def test_memory_command(tiny_t5_dir, capsys):
    from tuneval.cli import main

    with pytest.raises(SystemExit) as e:
        main(["memory", str(tiny_t5_dir), "--method", "lora", "--set", "r=4", "--batch-size", "2", "--seq-len", "20", "--json"])
    assert e.value.code == 0
    info = json.loads(capsys.readouterr().out)
    assert info["arch"] == "seq2seq" and info["target_len"] == 20 and info["batch_size"] == 2
    assert info["tensors"] == sum(info[k] for k in ("weights", "gradients", "optimizer", "activations", "transient"))
