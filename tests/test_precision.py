"""One precision policy: what `auto` picks, that every command records it, and that a score
taken right after training is the score `tuneval eval` gives on the saved run at the same precision."""

import json

import pytest
import torch
from rich.console import Console

import tuneval.precision
from tuneval.cli import main
from tuneval.config import recipe_from_dict
from tuneval.errors import TunevalError
from tuneval.precision import check_precision, resolve_precision


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_follows_the_hardware(monkeypatch, native, expected):
    monkeypatch.setattr(tuneval.precision, "native_bf16", lambda: native)
    assert resolve_precision("auto") == expected
    assert resolve_precision("bf16") == "bf16" and resolve_precision("fp32") == "fp32"  # forced either way


def test_spellings_and_bad_values():
    assert check_precision("bfloat16") == "bf16" and check_precision(True) == "bf16"
    assert check_precision("float32") == "fp32" and check_precision(False) == "fp32"
    with pytest.raises(TunevalError, match="precision: expected one of auto, bf16, fp32, got 'fp8'"):
        check_precision("fp8")


def test_recipe_precision_and_its_old_name():
    assert recipe_from_dict({}).precision == "auto"
    assert recipe_from_dict({"precision": "bfloat16"}).precision == "bf16"
    assert recipe_from_dict({"train": {"bf16": False}}, "old.yaml").precision == "fp32"  # runs saved before
    with pytest.raises(TunevalError, match="old.yaml: 'precision': expected one of"):
        recipe_from_dict({"precision": "half"}, "old.yaml")
    with pytest.raises(TunevalError, match="give 'precision' alone"):
        recipe_from_dict({"precision": "bf16", "train": {"bf16": True}}, "old.yaml")
    assert "bf16" not in recipe_from_dict({}).to_dict()["train"]


def test_bad_precision_flag_is_one_line_before_loading(capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", "/no/such/model", "--precision", "half"])
    assert e.value.code == 2
    assert "precision: expected one of auto, bf16, fp32, got 'half'" in capsys.readouterr().err


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_inference_loads_in_the_policy_dtype(tiny_llama_dir, precision, dtype):
    from tuneval.models import load_model

    loaded = load_model(str(tiny_llama_dir), precision=precision)
    assert loaded.precision == precision and loaded.model.dtype == dtype


def _eval(model, adapter, data_dir, out, precision):
    argv = ["eval", "--model", str(model), "--data-dir", str(data_dir), "--limit", "4", "--max-new-tokens", "8",
            "--out", str(out), "--precision", precision]
    with pytest.raises(SystemExit) as e:
        main(argv + (["--adapter", str(adapter)] if adapter else []))
    assert e.value.code == 0
    return json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_demo_scores_equal_eval_on_the_saved_runs(tiny_llama_dir, tiny_data_dir, tmp_path, precision):
    """Every row of the demo's table is reproduced by `tuneval eval` on what the demo saved."""
    from tuneval.demo import run_demo

    out = tmp_path / "demo"
    result = run_demo(model=str(tiny_llama_dir), data_dir=str(tiny_data_dir), out=out, train_examples=8,
                      eval_examples=4, console=Console(quiet=True), precision=precision)
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["precision"] == precision
    for row in result["rows"]:
        adapter = None if row["label"] == "original" else out / row["label"]
        again = _eval(tiny_llama_dir, adapter, tiny_data_dir, tmp_path / f"again-{row['label']}", precision)
        assert again["precision"] == row["precision"] == precision
        assert [x["prediction"] for x in again["examples"]] == [x["prediction"] for x in row["examples"]]
        assert again["metrics"] == row["metrics"]
        if row["label"] != "original":
            assert json.loads((out / row["label"] / "metrics.json").read_text())["precision"] == precision


def test_sweep_score_equals_eval_on_the_saved_run(tiny_llama_dir, tiny_data_dir, tmp_path):
    from tuneval.evaluate.sweep import train_and_score

    recipe = recipe_from_dict({
        "model": str(tiny_llama_dir), "method": "lora", "precision": "bf16", "output_dir": str(tmp_path / "run"),
        "data": {"data_dir": str(tiny_data_dir), "train_examples": 8},
        "train": {"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 1e-2},
        "eval": {"limit": 4, "max_new_tokens": 8},
    }, "test")
    row = train_and_score(recipe)
    assert row["precision"] == "bf16"
    again = _eval(tiny_llama_dir, tmp_path / "run", tiny_data_dir, tmp_path / "again", "bf16")
    assert again["metrics"]["rouge1"] == row["rouge1"] and again["metrics"]["bleu"] == row["bleu"]
    kept = json.loads((tmp_path / "run" / "eval" / "results.json").read_text())
    assert [x["prediction"] for x in again["examples"]] == [x["prediction"] for x in kept["examples"]]

