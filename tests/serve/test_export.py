"""`tuneval export`: what transformers and PEFT load as they are, equal to the run, with a model card."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

from tests.conftest import _build_tokenizer, _dialogue, tiny_llama_config
from tests.serve.conftest import PROMPTS, make_run
from tuneval.cli import main
from tuneval.errors import TunevalError
from tuneval.models import load_model
from tuneval.serve.export import export_run, hub_id


def logits(model, arch):
    ids = torch.tensor([PROMPTS[0]])
    with torch.inference_mode():
        if arch == "seq2seq":
            return model(input_ids=ids, decoder_input_ids=ids[:, :4]).logits
        return model(input_ids=ids).logits


def adapter_on_base(base, adapter):
    from peft import PeftModel

    loaded = load_model(str(base))
    return PeftModel.from_pretrained(loaded.model, str(adapter)).eval(), loaded.arch


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def safetensors_dtypes(directory) -> set:
    found = set()
    for f in directory.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            found |= {st.get_tensor(k).dtype for k in st.keys()}
    return found


# ---- trained tiny runs (real `train`: metrics.json with versions, eval/results.json with examples) ----

@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    rng = random.Random(1)
    root = tmp_path_factory.mktemp("export-data")
    (root / "dialogsum").mkdir()
    for split, n in (("train", 16), ("validation", 6)):
        with open(root / "dialogsum" / f"{split}.jsonl", "w") as f:
            for i in range(n):
                dialogue, summary = _dialogue(rng)
                f.write(json.dumps({"fname": f"{split}_{i}", "dialogue": dialogue, "summary": summary, "topic": "t"}) + "\n")
    return root


def _train(base, data_dir, method, out):
    from tuneval.config import recipe_from_dict
    from tuneval.train.trainer import train

    raw = {"model": str(base), "task": "dialogsum", "method": method, "seed": 7, "output_dir": str(out),
           "precision": "fp32",  # module fixtures run outside the autouse fixture that pins `auto` to fp32
           "data": {"data_dir": str(data_dir), "train_examples": 8, "max_seq_len": 192},
           "train": {"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 5e-2, "logging_steps": 1,
                     "save_steps": 50},
           "eval": {"limit": 6, "max_new_tokens": 8, "batch_size": 6}}
    train(recipe_from_dict(raw, "test"))
    return out


@pytest.fixture(scope="module")
def lora_run(tiny_llama_dir, data_dir, tmp_path_factory):
    return _train(tiny_llama_dir, data_dir, "lora", tmp_path_factory.mktemp("runs") / "lora")


@pytest.fixture(scope="module")
def full_run(tiny_llama_dir, data_dir, tmp_path_factory):
    return _train(tiny_llama_dir, data_dir, "full", tmp_path_factory.mktemp("runs") / "full")


# ---- merged ---------------------------------------------------------------------------------------

def test_export_prints_progress_lines_when_stdout_is_not_a_terminal(lively_llama, llama_adapters, tmp_path, capsys,
                                                                    monkeypatch):
    """Issue 35: a long command speaks when nobody watches (stdout captured here, so not a terminal)."""
    monkeypatch.setenv("TUNEVAL_PROGRESS_SECONDS", "0")  # a line per step: the tiny export is over in a second
    run = make_run(lively_llama, llama_adapters["lora_b"], tmp_path / "run")
    export_run(run, tmp_path / "out")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("exporting ")]
    assert [line.split(": ")[1].split(" ")[0] for line in lines] == ["1/3", "2/3", "3/3"], lines


@pytest.mark.parametrize("kind", ["lora_b", "ia3"])
def test_merged_export_loads_in_transformers_and_matches_adapter_on_base(lively, kind, tmp_path):
    base, adapters = lively
    run = make_run(base, adapters[kind], tmp_path / "run")
    info = export_run(run, tmp_path / "out")
    out = tmp_path / "out"
    want, arch = adapter_on_base(base, adapters[kind])
    auto = AutoModelForSeq2SeqLM if arch == "seq2seq" else AutoModelForCausalLM
    exported = auto.from_pretrained(out).eval()  # plain transformers, no PEFT, no tuneval
    assert not torch.allclose(logits(want, arch), logits(load_model(str(base)).model.eval(), arch), atol=1e-3)
    torch.testing.assert_close(logits(exported, arch), logits(want, arch), atol=1e-4, rtol=1e-4)
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "README.md"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pth", ".pkl")) for f in files) and not any(f.startswith(".") for f in files)
    assert (info["kind"], info["arch"], info["dtype"]) == ("merged", arch, "float32")
    meta = front_matter((out / "README.md").read_text())
    assert meta["library_name"] == "transformers" and meta["tags"] == ["tuneval", "lora"]
    assert meta["pipeline_tag"] == ("text2text-generation" if arch == "seq2seq" else "text-generation")
    assert "base_model" not in meta  # a local directory is no Hub id; the Hub would refuse it


def test_dtype_bfloat16_writes_bf16_tensors(lively_llama, llama_adapters, tmp_path):
    run = make_run(lively_llama, llama_adapters["lora_b"], tmp_path / "run")
    export_run(run, tmp_path / "f32", precision="fp32")
    info = export_run(run, tmp_path / "bf16", dtype="bfloat16", precision="fp32")
    assert info["dtype"] == "bfloat16" and safetensors_dtypes(tmp_path / "bf16") == {torch.bfloat16}
    assert safetensors_dtypes(tmp_path / "f32") == {torch.float32}
    w32 = AutoModelForCausalLM.from_pretrained(tmp_path / "f32").state_dict()
    w16 = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16", dtype="auto").state_dict()
    assert all(torch.equal(w16[k], w32[k].to(torch.bfloat16)) for k in w32)  # merged in fp32, rounded once
    assert "--outtype bf16" in (tmp_path / "bf16" / "README.md").read_text()
    with pytest.raises(TunevalError, match="--dtype: expected one of"):
        export_run(run, tmp_path / "bad", dtype="int8")


def test_small_max_shard_size_writes_an_index_and_shards_that_load(lively_llama, llama_adapters, tmp_path):
    run = make_run(lively_llama, llama_adapters["lora_b"], tmp_path / "run")
    export_run(run, tmp_path / "one")
    export_run(run, tmp_path / "sharded", max_shard_size="20KB")
    shards = sorted((tmp_path / "sharded").glob("model-*.safetensors"))
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    assert len(shards) > 1 and set(index["weight_map"].values()) == {p.name for p in shards}
    one = AutoModelForCausalLM.from_pretrained(tmp_path / "one").eval()
    sharded = AutoModelForCausalLM.from_pretrained(tmp_path / "sharded").eval()
    torch.testing.assert_close(logits(sharded, "causal"), logits(one, "causal"), atol=0, rtol=0)
    with pytest.raises(TunevalError, match="--max-shard-size: .*got '2 gigs'"):
        export_run(run, tmp_path / "bad", max_shard_size="2 gigs")
    assert not (tmp_path / "bad").exists()


# ---- adapter only ---------------------------------------------------------------------------------

def test_adapter_only_loads_with_peft_and_matches(lively, tmp_path):
    from peft import AutoPeftModelForCausalLM, AutoPeftModelForSeq2SeqLM, PeftModel

    base, adapters = lively
    run = make_run(base, adapters["lora_a"], tmp_path / "run")
    info = export_run(run, tmp_path / "out", adapter_only=True)
    out = tmp_path / "out"
    files = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "generation_config.json", "tokenizer.json",
            "README.md"} <= files and "model.safetensors" not in files
    want, arch = adapter_on_base(base, adapters["lora_a"])
    auto = AutoPeftModelForSeq2SeqLM if arch == "seq2seq" else AutoPeftModelForCausalLM
    torch.testing.assert_close(logits(auto.from_pretrained(out, dtype=torch.float32).eval(), arch), logits(want, arch))
    plain = PeftModel.from_pretrained(load_model(str(base)).model, str(out)).eval()
    torch.testing.assert_close(logits(plain, arch), logits(want, arch))
    assert safetensors_dtypes(out) == {torch.float32} and info["kind"] == "adapter"
    meta = front_matter((out / "README.md").read_text())
    assert meta["library_name"] == "peft"
    card = (out / "README.md").read_text()
    assert f"tuneval export {run} --out out-gguf --adapter-only --format gguf --outtype f32" in card
    export_run(run, tmp_path / "bf16", adapter_only=True, dtype="bfloat16")
    assert safetensors_dtypes(tmp_path / "bf16") == {torch.bfloat16}


def test_prompt_tuning_exports_adapter_only(lively_llama, llama_adapters, tmp_path):
    run = make_run(lively_llama, llama_adapters["prompt"], tmp_path / "run")
    with pytest.raises(TunevalError, match="cannot be merged.*--adapter-only"):
        export_run(run, tmp_path / "merged")
    export_run(run, tmp_path / "out", adapter_only=True)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "llama.cpp loads LoRA adapters only: for this PROMPT_TUNING adapter" in card and "--format gguf" in card


def _bitfit_run(tmp_path):
    """A BitFit result (trained biases, no PEFT config) over a tiny Llama with biases."""
    from transformers import LlamaForCausalLM

    from tuneval.methods import get_method
    from tuneval.methods.common import save_trained

    torch.manual_seed(0)
    tok = _build_tokenizer(chat=True)
    base = tmp_path / "biased"
    LlamaForCausalLM(tiny_llama_config(tok, attention_bias=True, mlp_bias=True)).save_pretrained(base)
    tok.save_pretrained(base)
    spec = get_method("bitfit")
    settings = spec.settings()
    model = spec.apply(load_model(str(base)).model, settings, "causal")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0, 1.0)
    run = tmp_path / "run"
    run.mkdir(parents=True)
    save_trained(spec, settings, "causal", model, run)
    (run / "config.yaml").write_text(f"model: {base}\nmethod: bitfit\n")
    return base, run


def test_bitfit_merges_but_cannot_be_adapter_only(tmp_path, capsys):
    from tuneval.methods.loading import load_result

    base, run = _bitfit_run(tmp_path)
    with pytest.raises(TunevalError, match=r"'bitfit' result holds trained tensors of the base, not a PEFT adapter"):
        export_run(run, tmp_path / "out", adapter_only=True)
    assert not (tmp_path / "out").exists()
    capsys.readouterr()  # the fixture's own saving above wrote progress bars
    with pytest.raises(SystemExit) as e:
        main(["export", str(run), "--out", str(tmp_path / "out"), "--adapter-only"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "not a PEFT adapter" in err and len(err.strip().splitlines()) == 1

    export_run(run, tmp_path / "merged")  # the base with its biases replaced: a plain checkpoint
    _, want = load_result(str(base), run)
    got = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    torch.testing.assert_close(logits(got, "causal"), logits(want.eval(), "causal"))
    assert front_matter((tmp_path / "merged" / "README.md").read_text())["tags"] == ["tuneval", "bitfit"]


# ---- full fine-tuning and the model card ----------------------------------------------------------

def test_full_run_exports_as_it_is(full_run, tmp_path):
    info = export_run(full_run, tmp_path / "out", dtype="bfloat16")
    assert (info["kind"], info["method"], info["dtype"]) == ("full", "full", "bfloat16")
    got = AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype="auto")
    want = AutoModelForCausalLM.from_pretrained(full_run)
    assert got.dtype == torch.bfloat16
    w, g = want.state_dict(), got.state_dict()
    assert all(torch.equal(g[k], w[k].to(torch.bfloat16)) for k in w)
    assert (tmp_path / "out" / "generation_config.json").is_file()
    with pytest.raises(TunevalError, match="full fine-tuning run .* without --adapter-only"):
        export_run(full_run, tmp_path / "adapter", adapter_only=True)


def test_model_card_says_what_was_trained_how_and_how_well(lora_run, tmp_path):
    from importlib import metadata

    info = export_run(lora_run, tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    meta = front_matter(card)
    assert meta == {"library_name": "transformers", "tags": ["tuneval", "lora"], "pipeline_tag": "text-generation"}
    for heading in ("## Base model", "## Method", "## Data", "## Recipe", "## Metrics", "## Machine and library versions",
                    "## How to load", "## GGUF"):
        assert heading in card
    recipe = (lora_run / "config.yaml").read_text()
    assert recipe.strip() in card  # the recipe, whole
    method = yaml.safe_dump(yaml.safe_load(recipe)["lora"], sort_keys=False).strip()
    assert f"## Method\n\n`lora`\n\n```yaml\n{method}\n```" in card  # LoRA's own settings
    assert "task: `dialogsum`" in card and "training examples: 8 of split `train`" in card
    assert "evaluation: split `validation`, first 6 examples" in card
    results = json.loads((lora_run / "eval" / "results.json").read_text())
    r1, bleu = results["metrics"]["rouge1"], results["metrics"]["bleu"]
    assert f"| rouge1 | {r1:.4f} | [" in card and f"| bleu | {bleu:.2f} |" in card
    assert "rouge1_precision" not in card  # the task's metrics, not their parts
    metrics = json.loads((lora_run / "metrics.json").read_text())
    assert f"| transformers | {metrics['versions']['transformers']} |" in card
    assert f"| training loss | {metrics['train_loss']:.4g} |" in card
    assert info["tuneval"] == metadata.version("tuneval") and f"tuneval {info['tuneval']}" in card
    assert f"tuneval export {lora_run} --out out-gguf --format gguf --outtype f32" in card
    assert 'AutoModelForCausalLM.from_pretrained("out"' in card


def test_card_intervals_are_the_reports_when_results_carry_none(lively_llama, llama_adapters, tmp_path):
    """A results.json with examples but no interval: ROUGE is bootstrapped here exactly as `tuneval report` does."""
    from tuneval.io import atomic_write_json
    from tuneval.report import stats
    from tests.report.synthetic import eval_results, make_examples

    run = make_run(lively_llama, llama_adapters["lora_a"], tmp_path / "run")
    results = eval_results("lora", make_examples(40), 0.5, seed=3)
    assert "bootstrap" not in results
    atomic_write_json(run / "eval" / "results.json", results)
    export_run(run, tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    ci = stats.intervals(results)
    for m in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert ci[m]["ci_low"] < results["metrics"][m] < ci[m]["ci_high"]
        assert f"| {m} | {results['metrics'][m]:.4f} | [{ci[m]['ci_low']:.4f}, {ci[m]['ci_high']:.4f}] |" in card
    assert f"| bleu | {results['metrics']['bleu']:.2f} | - (corpus statistic: see `tuneval report`) |" in card
    assert "(1000 resamples, seed 1234)" in card


def test_hub_id_of_a_base():
    assert hub_id("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"  # the embedded model's origin
    assert hub_id("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    assert hub_id("/no/such/dir") is None and hub_id(None) is None


# ---- out directory, push to hub, CLI --------------------------------------------------------------

def test_existing_out_is_kept_without_overwrite(lively_llama, llama_adapters, tmp_path):
    run = make_run(lively_llama, llama_adapters["lora_a"], tmp_path / "run")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(TunevalError, match="already exists and is not empty; pass --overwrite"):
        export_run(run, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    export_run(run, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    with pytest.raises(TunevalError, match="would overwrite"):
        export_run(run, run, overwrite=True)
    assert (run / "adapter_config.json").is_file()


class FakeHfApi:
    calls: list = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw, sorted(p.name for p in Path(kw["folder_path"]).iterdir())))


def test_push_to_hub_creates_the_repo_and_uploads_the_export(lively_llama, llama_adapters, tmp_path, monkeypatch):
    import huggingface_hub

    FakeHfApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    run = make_run(lively_llama, llama_adapters["lora_a"], tmp_path / "run")
    info = export_run(run, tmp_path / "out", push_to_hub="me/tiny-lora", private=True)
    (c_name, c_repo, c_kw), (u_name, u_kw, u_files) = FakeHfApi.calls
    assert (c_name, c_repo) == ("create_repo", "me/tiny-lora") and c_kw["exist_ok"] and c_kw["private"]
    assert u_name == "upload_folder" and u_kw["repo_id"] == "me/tiny-lora"
    assert u_kw["folder_path"] == str(tmp_path / "out") and {"README.md", "model.safetensors"} <= set(u_files)
    assert info["url"] == "https://huggingface.co/me/tiny-lora"


def test_push_to_hub_failure_is_one_line_and_keeps_the_export(lively_llama, llama_adapters, tmp_path, monkeypatch):
    import huggingface_hub

    class Offline(FakeHfApi):
        def create_repo(self, repo_id, **kw):
            raise ConnectionError("Failed to resolve 'huggingface.co'\nmore detail")

    monkeypatch.setattr(huggingface_hub, "HfApi", Offline)
    run = make_run(lively_llama, llama_adapters["lora_a"], tmp_path / "run")
    with pytest.raises(TunevalError, match=r"--push-to-hub me/x: upload failed \(Failed to resolve") as e:
        export_run(run, tmp_path / "out", push_to_hub="me/x")
    assert "\n" not in str(e.value) and (tmp_path / "out" / "model.safetensors").is_file()
    with pytest.raises(TunevalError, match="not a Hub repo id"):  # before anything loads or is written
        export_run(run, tmp_path / "out2", push_to_hub="not a/repo/id")
    assert not (tmp_path / "out2").exists()


def test_export_cli(lively_llama, llama_adapters, tmp_path, capsys):
    run = make_run(lively_llama, llama_adapters["lora_a"], tmp_path / "run", old=True)  # its adapter/ given
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["export", str(run / "adapter"), "--out", str(out), "--dtype", "bfloat16", "--max-shard-size", "1GB"])
    assert e.value.code == 0 and safetensors_dtypes(out) == {torch.bfloat16}
    printed = capsys.readouterr().out
    assert printed.startswith("exported merged lora model (") and "bfloat16" in printed and str(out) in printed
    with pytest.raises(SystemExit) as e:
        main(["export", str(run), "--out", str(out)])
    assert e.value.code == 2 and "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["export", str(run), "--out", str(out), "--overwrite", "--adapter-only"])
    assert e.value.code == 0 and (out / "adapter_config.json").is_file()
    assert "exported adapter lora model" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["export", str(run), "--out", str(tmp_path / "o2"), "--dtype", "int4"])
    assert e.value.code == 2 and "--dtype" in capsys.readouterr().err
