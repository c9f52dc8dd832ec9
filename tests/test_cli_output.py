"""Normal command output is tuneval's own; --verbose shows what the libraries say too.

Run as a user runs it (a fresh process), since library warnings and logs are set up at import.
"""

import os
import subprocess
import sys

import yaml


def _train(args, tmp_path, model_dir, data_dir):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": str(model_dir), "method": "lora", "output_dir": str(tmp_path / "run"), "precision": "bf16",
        "data": {"data_dir": str(data_dir), "train_examples": 8},
        "train": {"max_steps": 2, "per_device_train_batch_size": 4}}))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "tuneval.cli", *args, "train", str(recipe), "--overwrite"],
                          capture_output=True, text=True, env=env, timeout=300)


def test_train_prints_no_third_party_noise(tmp_path, tiny_llama_dir, tiny_data_dir):
    done = _train([], tmp_path, tiny_llama_dir, tiny_data_dir)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no bitsandbytes kernels line, no FutureWarning, no load bars
    assert "lora done" in done.stdout and "Warning" not in done.stdout


def test_verbose_keeps_library_output(tmp_path, tiny_llama_dir, tiny_data_dir):
    done = _train(["--verbose"], tmp_path, tiny_llama_dir, tiny_data_dir)
    assert done.returncode == 0, done.stderr
    assert "Loading weights" in done.stderr  # transformers' own load bar, hidden without --verbose
