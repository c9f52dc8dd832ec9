"""methods/loading.py: a trained result back over its base, loaded the way it was trained."""

import torch


def test_a_runs_model_args_fill_in_what_the_flags_leave_at_default(tmp_path):
    """eval / merge / export of a run load its base as training did (its recipe's model_args);
    a flag given on the command line still wins."""
    from tuneval.methods.loading import run_model_args
    from tuneval.model_args import ModelArgs
    from tuneval.runs import ADAPTER, RunDir

    run = RunDir(tmp_path / "run")
    (run.path / ADAPTER).mkdir(parents=True)
    run.config_file.write_text("model: m\nmodel_args: {dtype: bfloat16, attn_implementation: eager}\n")
    for where in (run.path, run.path / ADAPTER):  # the run, and an old run's adapter/ given directly
        assert run_model_args(where, None) == ModelArgs(dtype="bfloat16", attn_implementation="eager")
        assert run_model_args(where, ModelArgs()) == ModelArgs(dtype="bfloat16", attn_implementation="eager")
        assert run_model_args(where, ModelArgs(dtype="float32")) == ModelArgs(dtype="float32", attn_implementation="eager")
    plain = tmp_path / "peft-adapter"
    plain.mkdir()
    assert run_model_args(plain, ModelArgs(revision="v1")) == ModelArgs(revision="v1")
    assert run_model_args(None, None) is None


def _saved_adapter(base_dir, out, config):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), config).save_pretrained(out)
    return out


def test_merge_folds_a_lora_update_into_the_base_and_says_so(tiny_llama_dir, tmp_path):
    """`tuneval eval --merge`: the same outputs as the unmerged adapter (fp32, to float tolerance) from a
    plain model; cast once to the policy's dtype; an adapter that is not a weight update stays as it is."""
    from peft import LoraConfig, PeftModel, PromptTuningConfig

    from tuneval.methods.loading import load_result

    lora = _saved_adapter(tiny_llama_dir, tmp_path / "lora", LoraConfig(
        r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM"))
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    loaded, plain = load_result(str(tiny_llama_dir), lora, precision="fp32")
    merged_loaded, merged = load_result(str(tiny_llama_dir), lora, precision="fp32", merge=True)
    assert isinstance(plain, PeftModel) and not isinstance(merged, PeftModel)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert (loaded.meta["merged"], merged_loaded.meta["merged"]) == (False, True)
    with torch.no_grad():
        want, got = plain(input_ids=ids).logits, merged(input_ids=ids).logits
        with plain.disable_adapter():
            base = plain(input_ids=ids).logits
    assert (want - base).abs().max() > 1e-3  # the update changes the outputs
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    bf16_loaded, bf16 = load_result(str(tiny_llama_dir), lora, precision="bf16", merge=True)
    assert bf16.dtype == torch.bfloat16 and bf16_loaded.meta["dtype"] == "bfloat16" and bf16_loaded.merged
    direct = load_result(str(tiny_llama_dir), None, precision="bf16")[1]  # as from_pretrained(dtype=bf16) loads
    assert {n: b.dtype for n, b in bf16.named_buffers()} == {n: b.dtype for n, b in direct.named_buffers()}
    assert bf16.config.dtype == direct.config.dtype == torch.bfloat16

    prompt = _saved_adapter(tiny_llama_dir, tmp_path / "prompt", PromptTuningConfig(
        num_virtual_tokens=2, task_type="CAUSAL_LM"))
    kept_loaded, kept = load_result(str(tiny_llama_dir), prompt, precision="fp32", merge=True)
    assert isinstance(kept, PeftModel) and kept_loaded.meta["merged"] is False
