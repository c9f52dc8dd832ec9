"""A checkpoint cut off mid-write is skipped by --resume, which continues from the newest complete one."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tuneval.runs import COMPLETE
from tuneval.train.checkpoints import is_complete, resume_checkpoint


def make_checkpoint(folder, step, *, marker=False, state="whole", files=("model.safetensors", "optimizer.pt")):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    for name in files:
        (path / name).write_bytes(b"x")
    text = json.dumps({"global_step": step, "num_input_tokens_seen": 10 * step})
    if state == "whole":
        (path / "trainer_state.json").write_text(text)
    elif state == "torn":
        (path / "trainer_state.json").write_text(text[: len(text) // 2])
    elif state == "other step":
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step + 1}))
    if marker:
        (path / COMPLETE).write_text("{}")
    return path


@pytest.mark.parametrize("kw, complete", [
    ({"marker": True}, True),
    ({}, True),  # from before the marker, or killed after the Trainer's rotation but before on_save
    ({"state": "torn"}, False),
    ({"state": None}, False),
    ({"state": "other step"}, False),
    ({"files": ("model.safetensors",)}, False),
    ({"files": ("optimizer.pt",)}, False),
    ({"files": ("adapter_model.safetensors", "optimizer.pt")}, True),
    ({"marker": True, "state": None}, False),
])
def test_what_counts_as_complete(tmp_path, kw, complete):
    assert is_complete(make_checkpoint(tmp_path, 4, **kw)) is complete


def test_resume_takes_the_newest_complete_and_removes_torn_ones_after_it(tmp_path, capsys):
    folder = tmp_path / "checkpoints"
    assert resume_checkpoint(folder) is None
    make_checkpoint(folder, 1, marker=True)
    make_checkpoint(folder, 2)
    make_checkpoint(folder, 3, state=None, files=("model.safetensors",))
    assert resume_checkpoint(folder, main=False) == str(folder / "checkpoint-2")
    assert capsys.readouterr().err == "" and (folder / "checkpoint-3").is_dir()  # only rank 0 speaks and removes
    assert resume_checkpoint(folder) == str(folder / "checkpoint-2")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(folder / "checkpoint-3") in err[0] and "resuming from checkpoint-2" in err[0]
    assert sorted(os.listdir(folder)) == ["checkpoint-1", "checkpoint-2"]


# Runs `tuneval train` with one change: at step 2 trainer_state.json (the last file of a checkpoint)
# is half written, then the process waits there to be killed with SIGKILL.
KILLED_MID_SAVE = """
import dataclasses, json, sys, time
from pathlib import Path
from transformers.trainer_callback import TrainerState

ready, argv = Path(sys.argv[1]), sys.argv[2:]
save = TrainerState.save_to_json

def half_then_hang(self, json_path):
    if self.global_step != 2:
        return save(self, json_path)
    text = json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)
    with open(json_path, "w") as f:
        f.write(text[: len(text) // 2])
    ready.write_text(json_path)
    time.sleep(600)

TrainerState.save_to_json = half_then_hang
from tuneval.cli import main
main(argv)
"""


def test_killed_during_a_checkpoint_write_resumes_from_the_last_complete(tiny_llama_dir, tiny_data_dir, tmp_path):
    out = tmp_path / "run"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": str(tiny_llama_dir), "task": "dialogsum", "method": "lora", "seed": 7, "output_dir": str(out),
        "data": {"data_dir": str(tiny_data_dir), "train_examples": 16, "max_seq_len": 256},
        "train": {"max_steps": 4, "per_device_train_batch_size": 4, "save_steps": 1, "logging_steps": 1}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    ready = tmp_path / "ready"
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", KILLED_MID_SAVE, str(ready), "train", str(recipe)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ready.exists(), (tmp_path / "killed.log").read_text()[-3000:]
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    checkpoints = out / "checkpoints"
    assert (checkpoints / "checkpoint-1" / COMPLETE).is_file()  # written once the Trainer had saved it
    assert not (checkpoints / "checkpoint-2" / COMPLETE).exists()
    with pytest.raises(ValueError):
        json.loads((checkpoints / "checkpoint-2" / "trainer_state.json").read_text())

    done = subprocess.run([sys.executable, "-m", "tuneval.cli", "train", str(recipe), "--resume"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    skipped = [line for line in done.stderr.splitlines() if "incomplete checkpoint" in line]
    assert len(skipped) == 1 and str(checkpoints / "checkpoint-2") in skipped[0], done.stderr[-3000:]
    assert "resuming from checkpoint-1" in skipped[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from"] == str(checkpoints / "checkpoint-1") and metrics["global_step"] == 4
    assert (checkpoints / "checkpoint-4" / COMPLETE).is_file() and (out / "adapter_config.json").is_file()
