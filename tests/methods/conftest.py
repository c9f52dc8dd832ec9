"""Fixtures for the method tests: a tiny Llama with bias terms (Qwen2-style), for BitFit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import _build_tokenizer


@pytest.fixture(scope="session")
def tiny_biased_llama_dir(tmp_path_factory) -> Path:
    """The tiny Llama of conftest.py, but with biases in attention and MLP projections."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = _build_tokenizer(chat=True)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         tie_word_embeddings=True, attention_bias=True, mlp_bias=True)
    path = tmp_path_factory.mktemp("tiny-biased-llama")
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # non-zero biases, so a reload that dropped them would show
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0, 0.02)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
