"""A few real training steps of each method on each architecture, then save/reload."""

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

from tuneval.config import recipe_from_dict
from tuneval.methods.loading import load_result
from tuneval.models import load_model
from tuneval.runs import RunDir
from tuneval.train.trainer import train


def recipe(model_dir, data_dir, method, out, precision="auto", **train):
    return recipe_from_dict({
        "model": str(model_dir), "task": "dialogsum", "method": method, "seed": 7, "output_dir": str(out),
        "precision": precision,
        "data": {"data_dir": str(data_dir), "train_examples": 16, "max_seq_len": 256},
        "train": {"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1e-2, "logging_steps": 1,
                  "save_steps": 2, **train},
    }, "test")


def probe(model, arch):
    ids = torch.tensor([[5, 9, 12, 30, 7, 8]])
    with torch.no_grad():
        if arch == "seq2seq":
            return model(input_ids=ids, decoder_input_ids=ids[:, :3]).logits
        return model(input_ids=ids).logits


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("method", ["full", "lora"])
def test_method_trains_saves_and_reloads(tiny_model_dir, tiny_data_dir, tmp_path, method, precision):
    """bf16 trains under autocast (emulated where not native); the returned model is plain fp32 either way."""
    before = {k: v.clone() for k, v in load_model(str(tiny_model_dir)).model.state_dict().items()}
    metrics, model, loaded = train(recipe(tiny_model_dir, tiny_data_dir, method, tmp_path / "run", precision))
    run_file = "model.safetensors" if method == "full" else "adapter_model.safetensors"
    assert metrics["precision"] == precision
    import transformers  # the stack the numbers came from is saved with them

    assert metrics["versions"]["transformers"] == transformers.__version__ and "torch" in metrics["versions"]
    assert "_original_forward" not in model.__dict__ and "forward" not in model.__dict__  # no autocast wrapper left
    assert metrics["global_step"] == 3 and torch.isfinite(torch.tensor(metrics["train_loss"]))
    assert metrics["train_tokens"] > 0 and metrics["peak_memory_mb"] > 0 and metrics["checkpoint_mb"] > 0
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3]
    model.eval()
    expected = probe(model, loaded.arch)
    base_now = (model.get_base_model() if method == "lora" else model).state_dict()
    if method == "lora":
        assert 0 < metrics["trainable_params"] < metrics["all_params"] / 2
        frozen = [k for k in before if k in base_now and "lora_" not in k]
        assert frozen and all(torch.equal(before[k], base_now[k]) for k in frozen)  # base untouched
        fresh = load_model(str(tiny_model_dir))
        reloaded = PeftModel.from_pretrained(fresh.model, str(tmp_path / "run"))  # the run opens by its own path
    else:
        assert metrics["trainable_params"] == metrics["all_params"]
        assert any(not torch.equal(before[k], base_now[k]) for k in before)
        auto = AutoModelForSeq2SeqLM if loaded.arch == "seq2seq" else AutoModelForCausalLM
        reloaded = auto.from_pretrained(tmp_path / "run")
        assert (tmp_path / "run" / "tokenizer_config.json").is_file()
    reloaded.eval()
    torch.testing.assert_close(probe(reloaded, loaded.arch), expected)
    ours = load_result(str(tiny_model_dir), tmp_path / "run", precision="fp32")[1].eval()  # tuneval's own load
    torch.testing.assert_close(probe(ours, loaded.arch), expected)
    assert not torch.allclose(probe(load_model(str(tiny_model_dir)).model.eval(), loaded.arch), expected)
    run = RunDir(tmp_path / "run")  # metrics.json's size is the result's files, not checkpoints or logs
    assert metrics["checkpoint_dir"] == str(run.path) and {p.name for p in run.result_files()} >= {run_file}
    size = sum(p.stat().st_size for p in run.result_files()) / 1e6
    assert metrics["checkpoint_mb"] == pytest.approx(size) and run.checkpoints_dir.is_dir()
    assert not (run.path / "adapter").exists() and not (run.path / "model").exists()


def test_same_seed_same_run(tiny_llama_dir, tiny_data_dir, tmp_path):
    a, *_ = train(recipe(tiny_llama_dir, tiny_data_dir, "lora", tmp_path / "a"))
    b, *_ = train(recipe(tiny_llama_dir, tiny_data_dir, "lora", tmp_path / "b"))
    assert a["train_loss"] == b["train_loss"]
    assert a["data"] == b["data"]
