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
        main(["eval", "--task", "dialogsum", "--model", "/no/such/model", "--precision", "half"])
    assert e.value.code == 2
    assert "precision: expected one of auto, bf16, fp32, got 'half'" in capsys.readouterr().err


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_inference_loads_in_the_policy_dtype(tiny_llama_dir, precision, dtype):
    from tuneval.models import load_model

    loaded = load_model(str(tiny_llama_dir), precision=precision)
    assert loaded.precision == precision and loaded.model.dtype == dtype


def _eval(model, adapter, data_dir, out, precision, limit=4, max_new_tokens=8, extra=()):
    argv = ["eval", "--task", "dialogsum", "--model", str(model), "--data-dir", str(data_dir), "--limit", str(limit), "--max-new-tokens",
            str(max_new_tokens), "--out", str(out), "--precision", precision, *extra]
    with pytest.raises(SystemExit) as e:
        main(argv + (["--adapter", str(adapter)] if adapter else []))
    assert e.value.code == 0
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def lively_llama_dir(tiny_llama_dir, tmp_path_factory):
    """The tiny Llama with weights wide enough to say words (at its own init it emits only special
    tokens, so every prediction would be empty and every score 0: an equality that proves nothing)."""
    from tests.serve.conftest import _lively

    return _lively(tiny_llama_dir, tmp_path_factory.mktemp("lively-demo-llama"))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_demo_scores_equal_eval_on_the_saved_runs(lively_llama_dir, tiny_data_dir, tmp_path, precision):
    """Every row of the demo's table, score and interval, is reproduced by `tuneval eval` with the demo's
    flags (task dialogsum, its template, limit, 64 new tokens, precision, --merge) on what the demo saved."""
    from tuneval.jobs.demo import run_demo
    from tuneval.evaluate.report import paired_comparisons, with_interval
    from tuneval.metrics.text import HEADLINE

    out = tmp_path / "demo"
    result = run_demo(model=str(lively_llama_dir), data_dir=str(tiny_data_dir), out=out, train_examples=8,
                      eval_examples=4, console=Console(quiet=True), precision=precision)
    saved = json.loads((out / "comparison.json").read_text())
    table = (out / "comparison.md").read_text()
    assert saved["precision"] == precision and saved["plan"]["planned"] == []  # counts given: nothing planned
    assert any(x["prediction"] for row in result["rows"] for x in row["examples"])  # words to compare, not blanks
    agains = []
    for row, kept in zip(result["rows"], saved["rows"], strict=True):
        adapter = None if row["label"] == "original" else out / row["label"]
        again = _eval(lively_llama_dir, adapter, tiny_data_dir, tmp_path / f"again-{row['label']}", precision,
                      limit=4, max_new_tokens=64, extra=["--merge"])
        assert again["precision"] == row["precision"] == precision
        assert again.get("merged", False) == row.get("merged", False) == (row["label"] == "lora")
        assert again["prompt"]["template"] == row["prompt"]["template"]
        assert [x["prediction"] for x in again["examples"]] == [x["prediction"] for x in row["examples"]]
        assert again["metrics"] == row["metrics"] == kept["metrics"]
        assert again["bootstrap"] == row["bootstrap"] == kept["bootstrap"]
        cells = " | ".join(with_interval(k, again["metrics"][k], again["bootstrap"][k]) for k in HEADLINE)
        assert f"| {row['label']} | {cells} |" in table  # the table prints exactly what eval gives
        if row["label"] != "original":
            assert json.loads((out / row["label"] / "metrics.json").read_text())["precision"] == precision
        agains.append({**again, "label": row["label"], "method": row["method"]})
    assert paired_comparisons(agains) == saved["paired"]  # the paired differences too, from eval's records


def test_sweep_score_equals_eval_on_the_saved_run(tiny_llama_dir, tiny_data_dir, tmp_path):
    from tuneval.jobs.sweep import train_and_score

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

