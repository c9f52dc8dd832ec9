"""model_args (model_args.py): dtype, revision, trust_remote_code and attn_implementation, in recipes and flags."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tuneval.cli import main
from tuneval.config import recipe_from_dict
from tuneval.errors import TunevalError
from tuneval.model_args import ModelArgs
from tuneval.models import load_model


@pytest.fixture(scope="module")
def bf16_llama_dir(tiny_llama_dir, tmp_path_factory):
    """The tiny Llama saved in bf16, as a user's own bf16 checkpoint would be."""
    from transformers import LlamaForCausalLM

    path = tmp_path_factory.mktemp("bf16-llama")
    shutil.copytree(tiny_llama_dir, path, dirs_exist_ok=True)
    LlamaForCausalLM.from_pretrained(tiny_llama_dir).to(torch.bfloat16).save_pretrained(path)
    assert json.loads((path / "config.json").read_text())["dtype"] == "bfloat16"
    return path


def _dtypes(model) -> set[torch.dtype]:
    return {p.dtype for p in model.parameters()}


def test_a_bf16_checkpoint_loads_bf16(bf16_llama_dir):
    """dtype auto follows the precision policy; an explicit dtype wins over it."""
    auto = load_model(str(bf16_llama_dir), precision="bf16", device="cpu")
    assert _dtypes(auto.model) == {torch.bfloat16} and auto.meta["dtype"] == "bfloat16"
    named = load_model(str(bf16_llama_dir), precision="fp32", device="cpu", args=ModelArgs(dtype="bfloat16"))
    assert _dtypes(named.model) == {torch.bfloat16}
    assert named.meta == {"precision": "fp32", "dtype": "bfloat16", "revision": None, "attn_implementation": None,
                          "merged": False}
    assert _dtypes(load_model(str(bf16_llama_dir), precision="fp32", device="cpu").model) == {torch.float32}


def test_attn_implementation_reaches_the_model(tiny_llama_dir):
    loaded = load_model(str(tiny_llama_dir), device="cpu", args=ModelArgs(attn_implementation="eager"))
    assert loaded.model.config._attn_implementation == "eager"
    assert loaded.meta["attn_implementation"] == "eager"


def test_a_model_with_custom_code_needs_trust_remote_code(tmp_path):
    """Built offline: a config whose auto_map points at code the directory does not have."""
    model = tmp_path / "custom"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "tuneval-custom", "auto_map": {
        "AutoConfig": "configuration_custom.CustomConfig", "AutoModelForCausalLM": "modeling_custom.CustomModel"}}))
    with pytest.raises(TunevalError) as e:
        load_model(str(model), device="cpu")
    assert str(e.value) == (f"model '{model}' needs custom code: pass --trust-remote-code "
                            "(or model_args.trust_remote_code: true) if you trust it")


def test_recipe_model_args_are_checked_and_round_trip():
    r = recipe_from_dict({"model_args": {"dtype": "bfloat16", "revision": "v1", "attn_implementation": "sdpa"}}, "r.yaml")
    assert r.model_args == ModelArgs(dtype="bfloat16", revision="v1", attn_implementation="sdpa")
    assert recipe_from_dict(r.to_dict(), "again").model_args == r.model_args
    assert "model_args" not in recipe_from_dict({}).to_dict()  # a plain run's config.yaml reads as before
    for bad, needle in (({"dtype": "half"}, "'model_args.dtype' must be one of auto, bfloat16, float16, float32"),
                        ({"dtype": "float16"}, "'model_args.dtype': float16 is for inference only"),
                        ({"attn_implementation": "fast"}, "'model_args.attn_implementation' must be one of eager"),
                        ({"trust": True}, "unknown key 'model_args.trust'")):
        with pytest.raises(TunevalError, match=needle):
            recipe_from_dict({"model_args": bad}, "r.yaml")


def test_model_flags_are_checked_in_their_own_words(capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", "/no/such/model", "--dtype", "half"])
    assert e.value.code == 2
    assert "--dtype must be one of auto, bfloat16, float16, float32, got 'half'" in capsys.readouterr().err


def test_train_flags_override_model_args(tmp_path, capsys):
    """`train --dtype float16` is the recipe's model_args.dtype, refused for training before anything loads;
    the flags travel as one ModelArgs and override only what they set (the recipe's revision stays)."""
    (tmp_path / "r.yaml").write_text("model: /no/such/model\nmodel_args: {revision: v1, attn_implementation: sdpa}\n")
    with pytest.raises(SystemExit):
        main(["train", str(tmp_path / "r.yaml"), "--dtype", "float16", "--revision", "0123"])
    assert "'model_args.dtype': float16 is for inference only" in capsys.readouterr().err
    from tuneval.config import build_recipe

    r = build_recipe(tmp_path / "r.yaml", model_args=ModelArgs("bfloat16", "0123", True, "eager"))
    assert r.model_args == ModelArgs("bfloat16", "0123", True, "eager")
    r = build_recipe(tmp_path / "r.yaml", precision="bf16", model_args=ModelArgs(dtype="bfloat16"))
    assert r.model_args == ModelArgs("bfloat16", "v1", False, "sdpa") and r.precision == "bf16"
    with pytest.raises(TunevalError, match="'model_args.attn_implementation' must be one of eager"):
        build_recipe(tmp_path / "r.yaml", model_args=ModelArgs(attn_implementation="fast"))


def test_eval_dtype_flag_is_recorded(bf16_llama_dir, tiny_data_dir, tmp_path):
    out = tmp_path / "eval"
    with pytest.raises(SystemExit) as e:
        main(["eval", "--task", "dialogsum", "--model", str(bf16_llama_dir), "--data-dir", str(tiny_data_dir), "--limit", "2",
              "--max-new-tokens", "4", "--out", str(out), "--precision", "fp32", "--dtype", "bfloat16"])
    assert e.value.code == 0
    results = json.loads((out / "results.json").read_text())
    assert (results["precision"], results["dtype"], results["revision"]) == ("fp32", "bfloat16", None)


def test_lora_over_a_bf16_base_keeps_it_bf16(bf16_llama_dir, tiny_data_dir, tmp_path):
    """model_args.dtype: bfloat16 trains LoRA over a bf16 base (PEFT keeps the adapter in fp32); on a CPU
    without native bf16 the policy is fp32, so no autocast: bf16 base, fp32 adapter, and it still trains."""
    from tuneval.train.trainer import train

    recipe = recipe_from_dict({
        "model": str(bf16_llama_dir), "method": "lora", "output_dir": str(tmp_path / "run"),
        "model_args": {"dtype": "bfloat16"},
        "data": {"data_dir": str(tiny_data_dir), "train_examples": 8},
        "train": {"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 1e-2},
        "eval": {"after_training": False},
    }, "test")
    metrics, trained, loaded = train(recipe)
    base = {p.dtype for n, p in trained.named_parameters() if "lora_" not in n}
    assert base == {torch.bfloat16} and metrics["dtype"] == "bfloat16"
    assert {p.dtype for n, p in trained.named_parameters() if "lora_" in n} == {torch.float32}
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["dtype"] == "bfloat16"
    assert metrics["train_loss"] == metrics["train_loss"]  # not nan


def test_serve_loads_with_model_args(bf16_llama_dir):
    """The served base loads as model_args say, and /health says so (forgetting: tests/evaluate/test_bench_cli.py)."""
    from fastapi.testclient import TestClient

    from tuneval.serve.api import ServeSettings
    from tuneval.serve.server import build_app

    app = build_app(str(bf16_llama_dir), settings=ServeSettings(precision="fp32", model_args=ModelArgs(dtype="bfloat16")))
    with TestClient(app) as client:
        assert client.get("/health").json()["dtype"] == "bfloat16"
    assert _dtypes(app.state.bank.loaded.model) == {torch.bfloat16}
