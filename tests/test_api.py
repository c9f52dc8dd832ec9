"""`from tuneval import finetune, simple_evaluate, load, ...`: the commands' arguments, the commands' files."""

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

import tuneval
from tuneval import api
from tuneval.cli import COMMANDS, main


def _recipe(model_dir, data_dir, out):
    return {"model": str(model_dir), "method": "lora", "seed": 3, "output_dir": str(out),
            "data": {"data_dir": str(data_dir), "train_examples": 8},
            "train": {"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 1e-2},
            "eval": {"limit": 3, "max_new_tokens": 6}}


def test_train_and_evaluate_write_what_the_commands_write(tiny_llama_dir, tiny_data_dir, tmp_path):
    metrics = tuneval.finetune(_recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "api"), set=["lora.r=4"])
    assert metrics["run_dir"] == str(tmp_path / "api") and metrics["global_step"] == 2 and metrics["method"] == "lora"
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

    results = tuneval.simple_evaluate(str(tiny_llama_dir), tmp_path / "api", task="dialogsum", limit=3, max_new_tokens=6,
                               data_dir=str(tiny_data_dir), out=tmp_path / "ev-api")
    with pytest.raises(SystemExit) as e:
        main(["eval", "--task", "dialogsum", "--model", str(tiny_llama_dir), "--adapter", str(tmp_path / "api"), "--limit", "3",
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
    summary = tuneval.simple_evaluate(str(tiny_llama_dir), tasks=["copa"], data_dir=str(tmp_path / "data"),
                               out=tmp_path / "ev", bootstrap_iters=10)
    assert summary["precision"] == "fp32" and (tmp_path / "ev" / "copa" / "results.json").is_file()


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError):
        tuneval.fit  # noqa: B018


def test_a_name_means_one_thing():
    """Every exported name is api.py's function, none is also a tuneval module or package (whose
    attribute Python would set over it on import), and none is callable in two ways."""
    import pkgutil

    import tuneval.evaluate
    import tuneval.report
    import tuneval.serve
    import tuneval.train

    modules = {m.name for m in pkgutil.iter_modules(tuneval.__path__)}
    assert set(tuneval.__all__) == set(api.__all__) and not set(tuneval.__all__) & modules
    assert all(getattr(tuneval, name) is getattr(api, name) for name in tuneval.__all__)
    assert not any(callable(tuneval.__dict__[m]) for m in ("train", "evaluate", "report", "serve"))


def test_every_command_has_its_api_function():
    """The commands are registered from one list, and each calls an api.py function of its own."""
    import inspect

    names = [name for _, name in COMMANDS]
    assert names == ["train", "eval", "params", "demo", "memory", "inspect", "sweep", "forgetting", "scorecard", "report",
                     "tasks", "merge", "export", "serve", "chat"]
    for command, name in COMMANDS:
        called = {n for n in api.__all__ if f"api.{n}(" in inspect.getsource(command)}
        assert called, name


def test_finetune_lays_the_given_options_over_the_recipe(tmp_path):
    """Only what is given overrides: data keys as values (not re-parsed text), precision and model_args typed."""
    from tuneval.config import build_recipe

    (tmp_path / "mine.jsonl").write_text("")
    r = build_recipe({"model_args": {"revision": "v2"}, "data": {"train_examples": 4}},
                     ["lora.r=4"], data={"path": str(tmp_path / "mine.jsonl"), "format": None, "data_dir": "0123"},
                     precision="fp32", model_args=tuneval.ModelArgs(attn_implementation="eager"))
    assert (r.task, r.data.path, r.data.data_dir, r.data.format, r.data.train_examples) == (
        "mine", str(tmp_path / "mine.jsonl"), "0123", None, 4)  # a directory named 0123 stays a string
    assert (r.precision, r.method_args.r) == ("fp32", 4)
    assert (r.model_args.revision, r.model_args.attn_implementation, r.model_args.dtype) == ("v2", "eager", "auto")
