"""`tuneval inspect`: a soft prompt's nearest vocabulary tokens by cosine similarity."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.methods.test_methods import recipe
from tuneval.cli import main
from tuneval.methods.soft_prompts import nearest_tokens
from tuneval.models import load_model
from tuneval.train.trainer import train


def test_nearest_tokens_of_a_trained_prompt(tiny_llama_dir, tiny_data_dir, tmp_path, capsys):
    run = tmp_path / "pt"
    options = {"num_virtual_tokens": 4, "prompt_tuning_init": "TEXT", "prompt_tuning_init_text": "hello meeting"}
    train(recipe(tiny_llama_dir, tiny_data_dir, "prompt_tuning", run, options, learning_rate=1e-3))
    # plant known vectors: virtual token 0 = the embedding of vocabulary token 50, token 1 = -(token 60)
    weights_file = run / "adapter_model.safetensors"
    saved = load_file(str(weights_file))
    vocab = load_model(str(tiny_llama_dir)).model.get_input_embeddings().weight.detach()
    saved["prompt_embeddings"][0] = 3 * vocab[50]
    saved["prompt_embeddings"][1] = -vocab[60]
    save_file(saved, str(weights_file))

    info = nearest_tokens(run, top_k=3)
    assert info["num_virtual_tokens"] == 4 and len(info["tokens"]) == 4
    first = info["tokens"][0]["nearest"]
    assert first[0]["id"] == 50 and first[0]["cosine"] == pytest.approx(1.0, abs=1e-4)
    assert all(n["id"] != 60 for n in info["tokens"][1]["nearest"])  # opposite direction: furthest, not nearest
    for t in info["tokens"]:
        cos = [n["cosine"] for n in t["nearest"]]
        assert cos == sorted(cos, reverse=True) and all(-1 <= c <= 1.0001 for c in cos)
    assert [t["init_token"] for t in info["tokens"]][:2] != [None, None]  # TEXT init shown

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["inspect", str(run), "--top-k", "2", "--json"])
    assert e.value.code == 0
    assert json.loads(capsys.readouterr().out)["tokens"][0]["nearest"][0]["id"] == 50
    with pytest.raises(SystemExit):
        main(["inspect", str(run)])
    assert "nearest tokens" in capsys.readouterr().out


def test_inspect_refuses_runs_without_a_soft_prompt(tiny_llama_dir, tiny_data_dir, tmp_path, capsys):
    run = tmp_path / "lora"
    train(recipe(tiny_llama_dir, tiny_data_dir, "lora", run))
    with pytest.raises(SystemExit) as e:
        main(["inspect", str(run)])
    assert e.value.code == 2
    assert "only prompt_tuning runs have" in capsys.readouterr().err
