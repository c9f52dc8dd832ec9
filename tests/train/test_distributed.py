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
    assert (tmp_path / "two" / "adapter_model.safetensors").is_file()
    # the evaluation after training: both ranks reload the result and generate half of the examples each
    # (its equality with one process is tests/evaluate/test_distributed_eval.py's; the weights here differ by ~1e-4)
    assert ddp["eval"].keys() == single["eval"].keys() and ddp["eval"]["examples"] == single["eval"]["examples"]
    assert json.loads((tmp_path / "two" / "eval" / "results.json").read_text())["generation"]["processes"] == 2
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.name.endswith(".tmp")) == []


@pytest.mark.parametrize("name", ["ddp", "fsdp", "deepspeed_zero2", "cpu/fsdp"])
def test_shipped_accelerate_configs_load(name):
    """accelerate's own loader accepts them (unknown keys would fail) and they leave precision to the recipe.

    DeepSpeed's gradient clipping and accumulation come from the recipe: train.max_grad_norm and
    train.gradient_accumulation_steps are recipe keys (any TrainingArguments field is)."""
    from pathlib import Path

    from accelerate.commands.config.config_args import load_config_from_file

    path = Path(__file__).resolve().parents[2] / "recipes" / "accelerate" / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert str(config.distributed_type).rsplit(".", 1)[-1] == {"ddp": "MULTI_GPU", "fsdp": "FSDP", "cpu/fsdp": "FSDP",
                                                               "deepspeed_zero2": "DEEPSPEED"}[name]
    assert str(config.mixed_precision) == "no"
    assert config.use_cpu == name.startswith("cpu/")
    if "fsdp" in name:
        fsdp = config.fsdp_config
        assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    if name == "deepspeed_zero2":
        ds = config.deepspeed_config
        assert ds["zero_stage"] == 2 and "gradient_accumulation_steps" not in ds and "gradient_clipping" not in ds
        recipe = recipe_from_dict({"model": "m", "task": "dialogsum", "method": "full", "output_dir": "r",
                                   "train": {"max_grad_norm": 0.5, "gradient_accumulation_steps": 2}}, "test")
        assert recipe.train.trainer_args["max_grad_norm"] == 0.5 and recipe.train.gradient_accumulation_steps == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="compares CPU gloo processes with one CPU process")
@pytest.mark.parametrize("method", ["full", "lora"])
def test_fsdp2_two_processes_match_one_and_save_a_loadable_result(method, tiny_llama_dir, tiny_data_dir, tmp_path):
    """FSDP2 (torch's fully_shard) over 2 gloo CPU processes x 2 examples follows 1 process x 4.

    What runs on a CPU: sharded parameters, gradients and optimizer state, the reduce-scatter of
    gradients, LoRA with frozen and trainable parameters in one unit, and saving the full state
    dict gathered to rank 0 (FULL_STATE_DICT) through tuneval's save_trained, at the run's root. The
    saved result loads unchanged. What does not: `accelerate launch` with recipes/accelerate/cpu/fsdp.yaml
    runs DDP, not FSDP, on a CPU (see the next test), so the Trainer's own FSDP path (accelerate's
    fully_shard call, FSDP checkpoints for --resume) is covered only by bench/gpu_check.sh on a GPU,
    as are mixed precision and CPU offload (fsdp_offload_params), which need a GPU to mean anything.
    """
    from tests.train import fsdp_worker
    from tuneval.methods.loading import load_result

    single = fsdp_worker.run(tiny_llama_dir, tiny_data_dir, tmp_path / "one", method)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           fsdp_worker.__file__, str(tiny_llama_dir), str(tiny_data_dir), str(tmp_path / "two"), method]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "sharded.json").read_text()) == {"world": 2, "fsdp": True}
    sharded = json.loads((tmp_path / "two" / "losses.json").read_text())
    assert sharded == pytest.approx(single, rel=1e-4) and sharded[-1] < sharded[0]
    from safetensors.torch import load_file

    name = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
    one, two = (load_file(str(tmp_path / d / name)) for d in ("one", "two"))
    assert one.keys() == two.keys() and len(one) > 0
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-5), key
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    logits = []
    for d in ("one", "two"):  # as `tuneval eval` loads a run: --adapter RUN (full weights stand for themselves)
        _, net = load_result(str(tiny_llama_dir), tmp_path / d, precision="fp32", device="cpu")
        logits.append(net(input_ids=ids).logits)
    assert torch.allclose(logits[0], logits[1], atol=1e-5)
    base = load_result(str(tiny_llama_dir), precision="fp32", device="cpu")[1](input_ids=ids).logits
    assert not torch.allclose(base, logits[1], atol=1e-3)  # the saved result is the trained one


def test_accelerate_runs_no_fsdp_on_a_cpu():
    """Why the FSDP test above drives fully_shard itself: accelerate 1.15 applies an FSDP plugin only on
    GPU-class devices. With `use_cpu: true` (recipes/accelerate/cpu/fsdp.yaml) its state is MULTI_CPU and
    the FSDP settings are ignored; without it, a machine with no GPU is not distributed at all. If this
    starts failing, accelerate learnt FSDP on CPUs: launch the Trainer with the CPU config instead."""
    code = ("from accelerate import Accelerator\n"
            "from accelerate.utils import FullyShardedDataParallelPlugin as P\n"
            "a = Accelerator(cpu=True, fsdp_plugin=P(fsdp_version=2))\n"
            "print(str(a.distributed_type).rsplit('.', 1)[-1], getattr(a.state, 'fsdp_plugin', None) is None)")
    env = {**os.environ, "ACCELERATE_USE_FSDP": "true", "ACCELERATE_USE_CPU": "true", "RANK": "0", "LOCAL_RANK": "0",
           "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["MULTI_CPU", "True"]


def test_fsdp_or_deepspeed_config_on_a_cpu_is_said_to_be_plain_ddp(monkeypatch, capsys):
    from tuneval.train.trainer import _warn_cpu_fallback

    _warn_cpu_fallback()
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    _warn_cpu_fallback()
    assert "warning: FSDP needs GPUs in accelerate; on this CPU the run is plain DDP" in capsys.readouterr().err
