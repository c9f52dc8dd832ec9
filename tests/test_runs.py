"""runs.py: the result at the run's root, where the peers' tools look; old runs (adapter/, model/) still read."""

from __future__ import annotations

import shutil

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuneval.methods.loading import load_result
from tuneval.runs import ADAPTER, MODEL, RunDir

IDS = torch.tensor([[1, 5, 9, 13, 17, 21]])


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=IDS).logits


def _lora(base_dir, out):
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), config).save_pretrained(out)
    return out


def _run(path, base_dir, method):
    path.mkdir(parents=True, exist_ok=True)
    RunDir(path).begin({"model": str(base_dir), "method": method})
    return RunDir(path)


@pytest.mark.parametrize("old", [False, True])
def test_a_lora_run_loads_by_its_own_path_and_the_old_layout_still_loads(tiny_llama_dir, tmp_path, old):
    run = _run(tmp_path / "run", tiny_llama_dir, "lora")
    saved = _lora(tiny_llama_dir, tmp_path / "saved")
    shutil.copytree(saved, run.path / ADAPTER if old else run.path, dirs_exist_ok=True)
    assert run.has_adapter and not run.has_model
    assert run.result_dir == (run.path / ADAPTER if old else run.path) == RunDir.adapter_files(run.path)
    want = logits(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), str(saved)))
    ours = logits(load_result(str(tiny_llama_dir), run.path, precision="fp32")[1])
    torch.testing.assert_close(ours, want)
    if old:  # the old run's adapter/ given directly is the same result, and its run is the one above
        assert RunDir.of(run.path / ADAPTER) == run
        torch.testing.assert_close(logits(load_result(str(tiny_llama_dir), run.path / ADAPTER, precision="fp32")[1]), want)
    else:
        peer = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), str(run.path))
        torch.testing.assert_close(logits(peer), want)


@pytest.mark.parametrize("old", [False, True])
def test_a_full_run_stands_for_its_own_weights_in_either_layout(tiny_llama_dir, tmp_path, old):
    run = _run(tmp_path / "run", tiny_llama_dir, "full")
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    with torch.no_grad():
        model.lm_head.weight.mul_(2)  # not the base any more
    model.save_pretrained(run.path / MODEL if old else run.path)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(run.path / MODEL if old else run.path)
    assert run.has_model and not run.has_adapter and run.result_dir == (run.path / MODEL if old else run.path)
    ours = logits(load_result(str(tiny_llama_dir), run.path, precision="fp32")[1])
    torch.testing.assert_close(ours, logits(model))
    assert not torch.allclose(ours, logits(AutoModelForCausalLM.from_pretrained(tiny_llama_dir)))


def test_saving_moves_the_result_to_the_root_and_replaces_an_old_layout(tmp_path):
    run = _run(tmp_path / "run", "base", "lora")
    (run.path / ADAPTER).mkdir()
    (run.path / ADAPTER / "adapter_config.json").write_text("{}")  # resumed from an old run
    run.checkpoints_dir.mkdir()
    (run.checkpoints_dir / "big.bin").write_bytes(b"x" * 5000)
    with run.saving_result() as tmp:
        (tmp / "adapter_model.safetensors").write_bytes(b"w" * 1000)
        (tmp / "adapter_config.json").write_text("{}")
    assert run.result_dir == run.path and run.has_adapter and not (run.path / ADAPTER).exists()
    assert [p.name for p in run.result_files()] == ["adapter_config.json", "adapter_model.safetensors"]
    assert run.result_mb() == pytest.approx(1002 / 1e6)  # the result alone, not checkpoints or config.yaml
    assert sorted(p.name for p in run.path.iterdir() if p.name.startswith(".")) == [".tuneval-run"]


def test_a_failed_save_moves_nothing(tmp_path):
    run = _run(tmp_path / "run", "base", "lora")
    with pytest.raises(RuntimeError):
        with run.saving_result() as tmp:
            (tmp / "adapter_config.json").write_text("{}")
            raise RuntimeError("disk full")
    assert not run.has_adapter and run.result_files() == []
    assert sorted(p.name for p in run.path.iterdir()) == [".tuneval-run", "config.yaml"]


def test_lm_eval_opens_a_lora_run_with_peft_equals_run(tiny_llama_dir, tmp_path):
    """lm-evaluation-harness's `--model_args pretrained=BASE,peft=RUN` (the bench extra installs it)."""
    huggingface = pytest.importorskip("lm_eval.models.huggingface")
    run = _run(tmp_path / "run", tiny_llama_dir, "lora")
    shutil.copytree(_lora(tiny_llama_dir, tmp_path / "saved"), run.path, dirs_exist_ok=True)
    lm = huggingface.HFLM(pretrained=str(tiny_llama_dir), peft=str(run.path), device="cpu", dtype="float32")
    assert isinstance(lm.model, PeftModel)
    torch.testing.assert_close(logits(lm.model), logits(load_result(str(tiny_llama_dir), run.path, precision="fp32")[1]))
