"""Training runs unchanged under torchrun: 2 CPU processes (gloo) x batch 2 follow 1 process x batch 4."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from tuneval.config import recipe_from_dict
from tuneval.train.trainer import train


def raw_recipe(model_dir, data_dir, out, batch):
    return {
        "model": str(model_dir), "task": "dialogsum", "method": "lora", "seed": 7, "output_dir": str(out),
        "data": {"data_dir": str(data_dir), "train_examples": 16, "max_seq_len": 256},
        "lora": {"lora_dropout": 0.0},  # dropout draws differ per process; everything else is deterministic
        "train": {"max_steps": 3, "per_device_train_batch_size": batch, "learning_rate": 1e-2, "logging_steps": 1,
                  "save_steps": 2},
    }


def losses(run_dir):
    rows = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.mark.skipif(torch.cuda.is_available(), reason="compares CPU gloo processes with one CPU process")
def test_two_processes_match_one_with_the_same_global_batch(tiny_llama_dir, tiny_data_dir, tmp_path):
    single, *_ = train(recipe_from_dict(raw_recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "one", 4), "test"))
    recipe_file = tmp_path / "ddp.yaml"
    recipe_file.write_text(yaml.safe_dump(raw_recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "two", 2)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tuneval.cli", "train", str(recipe_file)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert ddp["global_step"] == single["global_step"] == 3
    assert ddp["train_tokens"] == single["train_tokens"]  # gathered over both processes: same examples seen
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 3
    assert two == pytest.approx(one, rel=2e-4)
    assert two[-1] < two[0]  # it trained
    assert (tmp_path / "two" / "adapter" / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.name.endswith(".tmp")) == []


@pytest.mark.parametrize("name", ["ddp", "fsdp", "deepspeed_zero2"])
def test_shipped_accelerate_configs_load(name):
    """accelerate's own loader accepts them (unknown keys would fail) and they leave precision to the recipe."""
    from pathlib import Path

    from accelerate.commands.config.config_args import load_config_from_file

    path = Path(__file__).resolve().parents[2] / "recipes" / "accelerate" / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert str(config.distributed_type).rsplit(".", 1)[-1] == {"ddp": "MULTI_GPU", "fsdp": "FSDP",
                                                               "deepspeed_zero2": "DEEPSPEED"}[name]
    assert str(config.mixed_precision) == "no"
    if name == "deepspeed_zero2":
        assert config.deepspeed_config["zero_stage"] == 2 and "gradient_accumulation_steps" not in config.deepspeed_config
