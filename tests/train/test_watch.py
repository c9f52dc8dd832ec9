"""Training you can watch and steer: evaluation during training, the best checkpoint kept,
every TrainingArguments field, trackers, plain logs, train_log.jsonl as the run goes, curves.png."""

import json
import re

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from tuneval.config import recipe_from_dict
from tuneval.errors import TunevalError
from tuneval.train.trainer import train


def recipe(model_dir, data_dir, out, train=None, eval=None, **top):
    return recipe_from_dict({
        "model": str(model_dir), "task": "dialogsum", "method": "lora", "seed": 7, "output_dir": str(out),
        "data": {"data_dir": str(data_dir), "train_examples": 16, "max_seq_len": 256},
        "lora": {"lora_dropout": 0.0},
        "train": {"max_steps": 4, "per_device_train_batch_size": 4, "learning_rate": 1e-2, "logging_steps": 1,
                  "save_steps": 1, **(train or {})},
        "eval": {"limit": 4, "max_new_tokens": 8, **(eval or {})},
        **top,
    }, "test.yaml")


def read_log(run):
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def test_evaluation_during_training_logs_loss_and_generation_metrics(tiny_llama_dir, tiny_data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    metrics, *_ = train(recipe(tiny_llama_dir, tiny_data_dir, run, eval={"every_steps": 2}))
    evals = [r for r in read_log(run) if "eval_loss" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert all(0 <= r["eval_rouge1"] <= 1 and r["eval_bleu"] >= 0 for r in evals)
    assert evals[0]["eval_loss"] != evals[1]["eval_loss"]  # the model moved between them
    # after training, the eval section ran on the saved result and its scores are in metrics.json
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["eval"]["examples"] == 4 and set(saved["eval"]) >= {"loss", "rouge1", "bleu", "precision"}
    assert json.loads((run / "eval" / "results.json").read_text())["num_examples"] == 4
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out  # not a terminal: one plain line per logging step and per evaluation
    assert "train lora step 1/4 epoch 0.25 loss " in out and " tok/s" in out
    assert "train lora step 2/4 epoch 0.50 eval_loss " in out and " rouge1 " in out


def test_benchmark_task_evaluates_with_its_loglikelihood_metrics(tiny_llama_dir, tmp_path):
    data = tmp_path / "data" / "glue" / "sst2"
    data.mkdir(parents=True)
    words = "good bad fine movie plot great awful".split()
    rows = "".join(f"{words[i % 7]} {words[(i * 3) % 7]} movie\t{i % 2}\n" for i in range(12))
    (data / "dev.tsv").write_text("sentence\tlabel\n" + rows)
    (data / "train.txt").write_text("".join(f"{i % 2} {words[i % 7]} film\n" for i in range(16)))
    r = recipe_from_dict({"model": str(tiny_llama_dir), "task": "sst2", "method": "lora", "output_dir": str(tmp_path / "r"),
                          "data": {"data_dir": str(tmp_path / "data"), "train_examples": 8},
                          "train": {"max_steps": 2, "per_device_train_batch_size": 4, "logging_steps": 1},
                          "eval": {"every_steps": 2, "limit": 6}}, "test")
    metrics, *_ = train(r)
    evals = [x for x in read_log(tmp_path / "r") if "eval_loss" in x]
    assert len(evals) == 1 and 0 <= evals[0]["eval_acc"] <= 1 and "eval_balanced_acc" in evals[0]
    assert "acc" in metrics["eval"] and "rouge1" not in metrics["eval"]


def test_the_kept_result_is_the_best_steps(tiny_llama_dir, tiny_data_dir, tmp_path):
    """metric_for_best_model keeps the best checkpoint, and adapter/ is that checkpoint's, as
    load_best_model_at_end does. Asking for the *highest* validation loss makes best != last."""
    run = tmp_path / "run"
    metrics, *_ = train(recipe(tiny_llama_dir, tiny_data_dir, run, eval={"every_steps": 1, "after_training": False},
                               train={"metric_for_best_model": "loss", "greater_is_better": True,
                                      "save_total_limit": 1}))
    evals = {r["step"]: r["eval_loss"] for r in read_log(run) if "eval_loss" in r}
    best = max(evals, key=evals.get)
    assert best != metrics["global_step"], "the test needs the worst loss before the last step"
    assert metrics["best_step"] == metrics["result_step"] == best
    assert metrics["metric_for_best_model"] == "loss" and metrics["best_metric"] == pytest.approx(evals[best])
    kept = load_file(str(run / "checkpoints" / f"checkpoint-{best}" / "adapter_model.safetensors"))
    result = load_file(str(run / "adapter_model.safetensors"))
    assert kept.keys() == result.keys() and all(torch.equal(kept[k], result[k]) for k in kept)


def test_without_load_best_model_at_end_the_last_step_is_kept(tiny_llama_dir, tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    metrics, *_ = train(recipe(tiny_llama_dir, tiny_data_dir, run, eval={"every_steps": 1, "after_training": False},
                               train={"metric_for_best_model": "loss", "greater_is_better": True,
                                      "load_best_model_at_end": False}))
    assert metrics["result_step"] == metrics["global_step"] == 4 and metrics["best_step"] != 4


def test_any_training_argument_passes_through_and_is_checked(tiny_llama_dir, tiny_data_dir, tmp_path):
    from tuneval.train.arguments import training_arguments

    r = recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "run",
               train={"max_grad_norm": 0.25, "optim": "adafactor", "adam_beta2": 0.95, "dataloader_num_workers": 0})
    args = training_arguments(r, tmp_path / "run", "causal", bf16=False)
    assert (args.max_grad_norm, args.optim.value, args.adam_beta2) == (0.25, "adafactor", 0.95)
    assert r.to_dict()["train"]["max_grad_norm"] == 0.25  # saved flat in config.yaml, as written
    assert recipe_from_dict(r.to_dict(), "again").train.trainer_args == r.train.trainer_args
    for bad, needle in [({"max_grad_norm": "lots"}, "'train.max_grad_norm': expected a number"),
                        ({"adam_beta": 0.9}, "unknown key 'train.adam_beta'"),
                        ({"output_dir": "x"}, "'train.output_dir' is set by output_dir (top level)"),
                        ({"bf16": True, "fp16": True}, "'train.fp16' is set by precision")]:
        with pytest.raises(TunevalError, match=re.escape(needle)):
            recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "run", train=bad)


def test_inconsistent_arguments_fail_before_the_model_loads(tiny_llama_dir, tiny_data_dir, tmp_path, monkeypatch):
    import tuneval.train.trainer as trainer

    monkeypatch.setattr(trainer, "load_model", lambda *a, **k: pytest.fail("loaded the model"))
    r = recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "run", train={"metric_for_best_model": "rouge1", "save_steps": 3},
               eval={"every_steps": 2})
    with pytest.raises(TunevalError, match="transformers refuses these TrainingArguments: .*multiple"):
        train(r)
    assert not (tmp_path / "run").exists()


class StopAt(TrainerCallback):
    """A kill at a given step, after that step's checkpoint and log line are written."""

    def __init__(self, step):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_log_is_written_as_the_run_goes_and_a_resumed_run_does_not_repeat_steps(tiny_llama_dir, tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    r = recipe(tiny_llama_dir, tiny_data_dir, run, train={"save_steps": 2}, eval={"every_steps": 2})
    with pytest.raises(KeyboardInterrupt):
        train(r, callbacks=[StopAt(2)])
    before = read_log(run)  # the killed run kept its history
    assert [x["step"] for x in before if "loss" in x] == [1, 2] and any("eval_loss" in x for x in before)
    train(r, resume=True)
    log = read_log(run)
    losses = [x["step"] for x in log if "loss" in x]
    evals = [x["step"] for x in log if "eval_loss" in x]
    assert losses == [1, 2, 3, 4] and evals == [2, 4]


def test_tensorboard_and_trackio_record_loss_and_eval_metrics(tiny_llama_dir, tiny_data_dir, tmp_path):
    """Both trackers are local and offline; run as a user runs it, in a fresh process (trackio
    reads TRACKIO_DIR at import)."""
    import os
    import sqlite3
    import subprocess
    import sys

    import yaml

    pytest.importorskip("tensorboard")
    pytest.importorskip("trackio")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "run", eval={"every_steps": 2, "after_training": False},
               train={"report_to": ["tensorboard", "trackio"], "project": "tuneval-test", "run_name": "tiny"})
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(r.to_dict()))
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "tuneval.cli", "train", str(tmp_path / "r.yaml")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr

    events = EventAccumulator(str(next((tmp_path / "run" / "checkpoints" / "runs").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "eval/loss", "eval/rouge1", "eval/bleu"} <= set(tags)
    assert [e.step for e in events.Scalars("eval/rouge1")] == [2, 4]

    (db,) = (tmp_path / "trackio").rglob("tuneval-test*.db")
    with sqlite3.connect(db) as conn:
        rows = [(step, json.loads(m)) for step, m in conn.execute("SELECT step, metrics FROM metrics ORDER BY id")]
    assert any("train/loss" in m for _, m in rows)
    assert len([m for _, m in rows if "eval/rouge1" in m]) == 2  # trackio numbers its own steps
