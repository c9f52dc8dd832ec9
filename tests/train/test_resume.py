"""A killed run resumes from its last checkpoint and ends where an uninterrupted run ends."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from tuneval.errors import TunevalError
from tuneval.train.trainer import train
from tests.train.test_train import recipe


class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt("killed")


def test_resume_after_interruption(tiny_llama_dir, tiny_data_dir, tmp_path):
    full, *_ = train(recipe(tiny_llama_dir, tiny_data_dir, "lora", tmp_path / "straight", max_steps=4))
    r = recipe(tiny_llama_dir, tiny_data_dir, "lora", tmp_path / "killed", max_steps=4)
    with pytest.raises(KeyboardInterrupt):
        train(r, callbacks=[Kill()])
    assert (tmp_path / "killed" / "checkpoints" / "checkpoint-2").is_dir()
    assert not (tmp_path / "killed" / "adapter_model.safetensors").exists()
    with pytest.raises(TunevalError, match="--resume"):
        train(r)
    resumed, *_ = train(r, resume=True)
    assert resumed["resumed_from"].endswith("checkpoint-2") and resumed["global_step"] == 4
    a = load_file(tmp_path / "straight" / "adapter_model.safetensors")
    b = load_file(tmp_path / "killed" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_resume_refuses_a_changed_recipe(tiny_llama_dir, tiny_data_dir, tmp_path):
    train(recipe(tiny_llama_dir, tiny_data_dir, "lora", tmp_path / "run", max_steps=2))
    with pytest.raises(TunevalError, match=r"differs from the run being resumed in \['train'\]"):
        train(recipe(tiny_llama_dir, tiny_data_dir, "lora", tmp_path / "run", max_steps=5), resume=True)
