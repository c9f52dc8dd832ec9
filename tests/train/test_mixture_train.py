"""A few real training steps on a multi-task mixture, causal and seq2seq, full and LoRA."""

import json
import math

import pytest
import torch

from tests.data.fixtures import write_task_data
from tuneval.config import load_recipe, recipe_from_dict
from tuneval.evaluate.harness import run_task
from tuneval.tasks import get_task as load_task
from tuneval.train.trainer import train


def mixture_recipe(model_dir, data_dir, method, out, **data):
    return recipe_from_dict({
        "model": str(model_dir), "method": method, "seed": 7, "output_dir": str(out),
        "mixture": {"strategy": "proportional", "cap": 16, "tasks": [
            {"task": "dialogsum", "weight": 2.0}, {"task": "sst2"}, {"task": "trec", "holdout_templates": [5]},
            {"task": "rte", "max_examples": 6}]},
        "data": {"data_dir": str(data_dir), "train_examples": 24, "max_seq_len": 256, **data},
        "train": {"max_steps": 3, "per_device_train_batch_size": 8, "learning_rate": 1e-2, "logging_steps": 1,
                  "save_steps": 50},
    }, "test")


@pytest.mark.parametrize("method", ["full", "lora"])
def test_mixture_trains_and_saves_its_resolved_mixture(tiny_model_dir, tiny_data_dir, tmp_path, method, capsys):
    data_dir = write_task_data(tiny_data_dir)
    recipe = mixture_recipe(tiny_model_dir, data_dir, method, tmp_path / "run")
    metrics, model, loaded = train(recipe)
    assert metrics["global_step"] == 3 and math.isfinite(metrics["train_loss"])
    data = metrics["data"]
    assert data["task"] == "dialogsum" and data["tasks"] == ["dialogsum", "sst2", "trec", "rte"]
    mixture = json.loads((tmp_path / "run" / "mixture.json").read_text())
    assert mixture == data["mixture"] and mixture["examples"] == 24 == data["examples"]
    per_task = {t["task"]: t for t in mixture["tasks"]}
    assert sum(t["drawn"] for t in per_task.values()) == 24
    assert all(sum(t["per_template"].values()) == t["drawn"] for t in per_task.values())
    assert "5" not in per_task["trec"]["per_template"] and per_task["trec"]["holdout_templates"] == [5]
    assert per_task["rte"]["pool"] == 6 and per_task["rte"]["unique"] <= 6
    assert per_task["dialogsum"]["rate"] == pytest.approx(32 / 70)  # 2·min(32, 16) / (32 + 16 + 16 + 6)
    printed = capsys.readouterr().out
    assert "mixture (proportional, cap 16): 24 examples" in printed and "trec" in printed
    # The saved recipe is a recipe again, mixture included.
    again = load_recipe(tmp_path / "run" / "config.yaml")
    assert again.mixture == recipe.mixture and again.task == "dialogsum"
    # Evaluating the run on its primary task goes through the usual path.
    results = run_task(model.eval(), loaded.tokenizer, loaded.arch, load_task("dialogsum"), limit=2,
                       data_dir=str(data_dir), max_new_tokens=4, max_seq_len=256)
    assert results["num_examples"] == 2 and "rouge1" in results["metrics"]


def test_replay_run_on_tiny_llama(tiny_llama_dir, tiny_data_dir, tmp_path):
    data_dir = write_task_data(tiny_data_dir)
    recipe = recipe_from_dict({
        "model": str(tiny_llama_dir), "task": "dialogsum", "method": "lora", "seed": 3, "output_dir": str(tmp_path / "r"),
        "data": {"data_dir": str(data_dir), "train_examples": 16, "max_seq_len": 256, "holdout_templates": [4],
                 "replay": {"task": "self_instruct", "fraction": 0.25}},
        "train": {"max_steps": 2, "per_device_train_batch_size": 8, "save_steps": 50},
    }, "test")
    metrics, *_ = train(recipe)
    tasks = {t["task"]: t for t in metrics["data"]["mixture"]["tasks"]}
    assert tasks["self_instruct"]["replay"] and tasks["self_instruct"]["rate"] == pytest.approx(0.25)
    assert tasks["dialogsum"]["holdout_templates"] == [4] and "4" not in tasks["dialogsum"]["per_template"]
    assert tasks["dialogsum"]["drawn"] + tasks["self_instruct"]["drawn"] == 16
    assert torch.isfinite(torch.tensor(metrics["train_loss"]))


def test_single_task_holdout_keeps_the_plain_path(tiny_llama_dir, tiny_data_dir, tmp_path):
    recipe = recipe_from_dict({
        "model": str(tiny_llama_dir), "task": "dialogsum", "method": "lora", "seed": 3, "output_dir": str(tmp_path / "r"),
        "data": {"data_dir": str(tiny_data_dir), "train_examples": 32, "max_seq_len": 256, "holdout_templates": [4, 5]},
        "train": {"max_steps": 1, "per_device_train_batch_size": 8, "save_steps": 50},
    }, "test")
    metrics, model, loaded = train(recipe)
    per = metrics["data"]["per_template"]
    assert per["4"] == 0 and per["5"] == 0 and sum(per.values()) == 32 and all(per[str(i)] > 0 for i in range(4))
    assert metrics["data"]["holdout_templates"] == [4, 5] and "mixture" not in metrics["data"]
    assert not (tmp_path / "r" / "mixture.json").exists()
    # Scored on a phrasing it never trained on.
    task = load_task("dialogsum")
    results = run_task(model.eval(), loaded.tokenizer, loaded.arch, task, limit=2, template=4,
                       data_dir=str(tiny_data_dir), max_new_tokens=4, max_seq_len=256)
    assert results["prompt"]["template"] == 4 and results["prompt"]["text"] == task.templates.prompts[4]
    assert all("Summarize the following conversation." in e["prompt"] for e in results["examples"])
