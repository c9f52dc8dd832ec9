"""`from tuneval import train, evaluate, load`: the commands' arguments, the commands' files."""

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

import tuneval
from tuneval.cli import main


def _recipe(model_dir, data_dir, out):
    return {"model": str(model_dir), "method": "lora", "seed": 3, "output_dir": str(out),
            "data": {"data_dir": str(data_dir), "train_examples": 8},
            "train": {"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 1e-2},
            "eval": {"limit": 3, "max_new_tokens": 6}}


def test_train_and_evaluate_write_what_the_commands_write(tiny_llama_dir, tiny_data_dir, tmp_path):
    metrics = tuneval.train(_recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "api"), set=["lora.r=4"])
    assert metrics["run_dir"] == str(tmp_path / "api") and metrics["global_step"] == 2
    assert metrics["eval"] == json.loads((tmp_path / "api" / "metrics.json").read_text())["eval"]

    (tmp_path / "r.yaml").write_text(yaml.safe_dump(_recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "cli")))
    with pytest.raises(SystemExit) as e:
        main(["train", str(tmp_path / "r.yaml"), "--set", "lora.r=4"])
    assert e.value.code == 0
    a = load_file(str(tmp_path / "api" / "adapter_model.safetensors"))
    c = load_file(str(tmp_path / "cli" / "adapter_model.safetensors"))
    assert a.keys() == c.keys() and all(torch.equal(a[k], c[k]) for k in a)
    cfg = lambda d: {k: v for k, v in yaml.safe_load((d / "config.yaml").read_text()).items() if k != "output_dir"}  # noqa: E731
    assert cfg(tmp_path / "api") == cfg(tmp_path / "cli")

    results = tuneval.evaluate(str(tiny_llama_dir), tmp_path / "api", limit=3, max_new_tokens=6,
                               data_dir=str(tiny_data_dir), out=tmp_path / "ev-api")
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", str(tiny_llama_dir), "--adapter", str(tmp_path / "api"), "--limit", "3",
              "--max-new-tokens", "6", "--data-dir", str(tiny_data_dir), "--out", str(tmp_path / "ev-cli")])
    assert e.value.code == 0
    saved = json.loads((tmp_path / "ev-cli" / "results.json").read_text())
    assert results["metrics"] == saved["metrics"]
    assert [x["prediction"] for x in results["examples"]] == [x["prediction"] for x in saved["examples"]]
    assert (tmp_path / "ev-api" / "results.json").is_file() and (tmp_path / "ev-api" / "report.md").is_file()

    loaded, net = tuneval.load(str(tiny_llama_dir), tmp_path / "api", precision="bf16")
    assert loaded.precision == "bf16" and hasattr(net, "peft_config")


def test_benchmarks_through_the_api(tiny_llama_dir, tmp_path):
    copa = tmp_path / "data" / "superglue" / "copa"
    copa.mkdir(parents=True)
    rows = [{"premise": "It rained.", "choice1": "The street got wet.", "choice2": "The sun rose.",
             "question": "effect", "label": 0, "idx": i} for i in range(4)]
    (copa / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = tuneval.evaluate(str(tiny_llama_dir), tasks=["copa"], data_dir=str(tmp_path / "data"),
                               out=tmp_path / "ev", bootstrap_iters=10)
    assert summary["precision"] == "fp32" and (tmp_path / "ev" / "copa" / "results.json").is_file()


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError):
        tuneval.fit  # noqa: B018
