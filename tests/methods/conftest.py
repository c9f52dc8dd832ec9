"""Fixtures for the method tests: a tiny Llama with bias terms (Qwen2-style), for BitFit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import _build_tokenizer, tiny_llama_config


@pytest.fixture(scope="session")
def tiny_biased_llama_dir(tmp_path_factory) -> Path:
    """The tiny Llama of conftest.py, but with biases in attention and MLP projections."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    tok = _build_tokenizer(chat=True)
    config = tiny_llama_config(tok, attention_bias=True, mlp_bias=True)
    path = tmp_path_factory.mktemp("tiny-biased-llama")
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # non-zero biases, so a reload that dropped them would show
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0, 0.02)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
