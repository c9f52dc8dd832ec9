"""GGUF export through llama.cpp's own converters: installed from the pinned sdist, read back, refused cleanly.

The round-trip tests need the converter (`python -m tuneval.serve.gguf install`, which `make setup`
runs) and the embedded model's tokenizer: llama.cpp's converter only knows tokenizers whose
pre-tokenizer it has registered, so the tiny model here is a tiny Llama with SmolLM2's real tokenizer.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from tests.serve.conftest import make_adapter, make_run
from tuneval.errors import TunevalError
from tuneval.serve import gguf
from tuneval.serve.export import export_run

EMBEDDED = "smollm2-135m-instruct"
# How far a dtype may move a weight, relative to the tensor's largest |value|: half a unit in the last
# place for f16 (2^-11) and bf16 (2^-8); Q8_0 rounds to 1/127 of each 32-block's max (half a step: 1/254),
# its f16 scale adding a little.
# (F16 takes the converter's BF16 path with another dtype; left out to keep the suite short: each read-back
# parses SmolLM2's 49,152-token vocabulary in Python.)
TOLERANCE = {"F32": 0.0, "BF16": 2 ** -8, "Q8_0": 1 / 200}
STRINGS = ["Hello world!", "  two spaces\nand 123 numbers, émigré ☃", "<|im_start|>user\nhi<|im_end|>\n"]


def _have_converter() -> bool:
    return (gguf.default_dir() / gguf.MODEL_SCRIPT).is_file()


def _have_embedded() -> bool:
    from tuneval.models.catalogue import is_installed

    return is_installed(EMBEDDED)


needs_converter = pytest.mark.skipif(
    not (_have_converter() and _have_embedded()),
    reason=f"llama.cpp's converter ({gguf.INSTALL_HINT}) and the embedded model are needed")


@pytest.fixture(scope="module")
def smol_tiny(tmp_path_factory) -> Path:
    """A 2-layer Llama (hidden 64) with SmolLM2's tokenizer and chat template, weights drawn with std 0.3."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tuneval.models.loading import load_tokenizer

    tok = load_tokenizer(EMBEDDED)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    out = tmp_path_factory.mktemp("smol-tiny")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def lora_run(smol_tiny, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gguf-lora")
    return make_run(smol_tiny, make_adapter(smol_tiny, "lora_a", root / "adapter", seed=3), root / "run")


@pytest.fixture(scope="module")
def merged_export(lora_run, tmp_path_factory) -> tuple[Path, str]:
    """The merged LoRA run at every outtype, through the command line; (directory, what it printed)."""
    from tuneval.cli import main

    out = tmp_path_factory.mktemp("gguf-out") / "merged"
    with pytest.MonkeyPatch.context() as mp:
        printed = io.StringIO()
        mp.setattr("sys.stdout", printed)
        with pytest.raises(SystemExit) as e:
            main(["export", str(lora_run), "--out", str(out), "--format", "gguf", "--outtype", "f32",
                  "--outtype", "bf16", "--outtype", "q8_0"])
    assert e.value.code == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def merged_reference(lora_run, smol_tiny) -> dict[str, torch.Tensor]:
    """What the GGUF should hold: PEFT's own merge of the adapter into the base, in fp32."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smol_tiny), str(lora_run))
    return model.merge_and_unload().state_dict()


def _gguf_fields(path: Path) -> dict:
    from gguf import GGUFReader

    return {k: f.contents() for k, f in GGUFReader(path).fields.items()
            if not k.startswith("tokenizer.ggml.") or k.endswith("_id")}


# ---- read back: tensors, tokenizer, chat template ---------------------------------------------------

@needs_converter
@pytest.mark.parametrize("outtype", list(TOLERANCE))
def test_merged_gguf_reads_back_as_the_merged_model(merged_export, merged_reference, smol_tiny, outtype):
    from transformers import AutoModelForCausalLM

    out, _ = merged_export
    want = merged_reference
    got = AutoModelForCausalLM.from_pretrained(out, gguf_file=f"model-{outtype}.gguf").state_dict()
    assert set(got) == set(want)
    for k, w in want.items():
        error = float((got[k].float() - w).abs().max() / w.abs().max())
        assert error <= TOLERANCE[outtype], (k, error)
    base = AutoModelForCausalLM.from_pretrained(smol_tiny).state_dict()
    moved = "model.layers.0.self_attn.v_proj.weight"
    assert not torch.allclose(want[moved], base[moved], atol=1e-3)  # the adapter is in what was compared


@needs_converter
def test_tokenizer_and_chat_template_are_inside(merged_export, smol_tiny):
    out, printed = merged_export
    assert "(model-F32.gguf, model-BF16.gguf, model-Q8_0.gguf)" in " ".join(printed.split())
    ref = AutoTokenizer.from_pretrained(smol_tiny)
    back = AutoTokenizer.from_pretrained(out, gguf_file="model-Q8_0.gguf")
    for s in STRINGS:
        assert back(s)["input_ids"] == ref(s)["input_ids"], s
    fields = _gguf_fields(out / "model-Q8_0.gguf")
    assert fields["tokenizer.chat_template"] == ref.chat_template
    assert fields["tokenizer.ggml.eos_token_id"] == ref.eos_token_id
    assert fields["general.name"].lower().startswith("run")  # named after the run, not a scratch directory
    from tuneval.models.loading import load_tokenizer

    beside = load_tokenizer(str(out))  # the tokenizer files kept for endpoint clients (tokenizer=OUT)
    assert beside(STRINGS[1])["input_ids"] == ref(STRINGS[1])["input_ids"]


@needs_converter
def test_gguf_directory_has_a_modelfile_a_card_and_no_scratch(merged_export):
    out, _ = merged_export
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".gguf")) == [
        "Modelfile", "README.md", "chat_template.jinja", "tokenizer.json", "tokenizer_config.json"]
    assert "FROM ./model-Q8_0.gguf" in (out / "Modelfile").read_text()
    card = (out / "README.md").read_text()
    assert "llama-server -m model-Q8_0.gguf --alias model-Q8_0" in card and "ollama create" in card
    assert "model=model-Q8_0," in card
    assert f"tokenizer={out}" in card and "library_name" not in card.split("---")[1]


@needs_converter
def test_adapter_only_writes_a_gguf_lora_equal_to_peft_and_its_base(lora_run, tmp_path):
    from gguf import GGUFReader
    from safetensors.torch import load_file

    info = export_run(lora_run, tmp_path / "a", adapter_only=True, format="gguf", outtypes=["f32"])
    assert info["gguf"] == ["adapter-F32.gguf", "base-F32.gguf"]
    reader = GGUFReader(tmp_path / "a" / "adapter-F32.gguf")
    fields = {k: f.contents() for k, f in reader.fields.items()}
    assert (fields["general.type"], fields["adapter.type"], fields["adapter.lora.alpha"]) == ("adapter", "lora", 8.0)
    tensors = {t.name: t.data for t in reader.tensors}
    peft = load_file(str(lora_run / "adapter_model.safetensors"))
    assert len(tensors) == len(peft) == 8  # q and v, A and B, 2 layers
    for layer in (0, 1):
        for part in ("A", "B"):
            want = peft[f"base_model.model.model.layers.{layer}.self_attn.v_proj.lora_{part}.weight"].numpy()
            assert (tensors[f"blk.{layer}.attn_v.weight.lora_{part.lower()}"] == want).all()
    assert "ADAPTER ./adapter-F32.gguf" in (tmp_path / "a" / "Modelfile").read_text()
    assert not list((tmp_path / "a").glob(".*"))  # no scratch left


@needs_converter
def test_adapter_only_base_gguf_carries_the_runs_own_chat_template(smol_tiny, lora_run, tmp_path):
    """llama.cpp takes the chat template from the base GGUF beside a GGUF LoRA: the run's, not the base's."""
    from tuneval.models.templates import CHAT_TEMPLATES

    run = make_run(smol_tiny, lora_run, tmp_path / "run")  # the same adapter, trained under a named template
    zephyr = CHAT_TEMPLATES["zephyr"].text
    (run / "chat_template.jinja").write_text(zephyr)
    export_run(run, tmp_path / "a", adapter_only=True, format="gguf", outtypes=["f32"])
    fields = _gguf_fields(tmp_path / "a" / "base-F32.gguf")
    assert fields["tokenizer.chat_template"] == zephyr != AutoTokenizer.from_pretrained(smol_tiny).chat_template
    assert fields["general.name"].lower().startswith(smol_tiny.name.split("-")[0].lower())  # named as the base
    assert (tmp_path / "a" / "chat_template.jinja").read_text() == zephyr


# ---- refused in one line -------------------------------------------------------------------------

@needs_converter
def test_a_tokenizer_llama_cpp_does_not_know_is_one_line_and_writes_nothing(lively_llama, llama_adapters, tmp_path):
    run = make_run(lively_llama, llama_adapters["lora_a"], tmp_path / "run")
    with pytest.raises(TunevalError) as e:
        export_run(run, tmp_path / "out", format="gguf", outtypes=["f16"])
    assert "\n" not in str(e.value) and "convert_hf_to_gguf.py" in str(e.value)
    assert "pre-tokenizer" in str(e.value)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_missing_converter_is_one_line_before_the_model_loads(lively_llama, llama_adapters, tmp_path, monkeypatch):
    run = make_run(lively_llama, llama_adapters["lora_a"], tmp_path / "run")
    monkeypatch.setattr("tuneval.serve.export._source", lambda *a: pytest.fail("looked at the run"))
    with pytest.raises(TunevalError, match=r"not in .*empty \(convert_hf_to_gguf.py missing\).*"
                                           r"python -m tuneval.serve.gguf install"):
        export_run(run, tmp_path / "out", format="gguf", llama_cpp=tmp_path / "empty")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("outtypes, match", [([], "at least one"), (["q4_k_m"], "'q4_k_m' is not one of"),
                                             (["Q8_0", "q8_0", "F16"], None)])
def test_outtypes_are_llama_cpp_names(outtypes, match):
    if match:
        with pytest.raises(TunevalError, match=match):
            gguf.check_outtypes(outtypes)
    else:
        assert gguf.check_outtypes(outtypes) == ["q8_0", "f16"]


def test_non_lora_adapter_only_is_refused(lively_llama, llama_adapters, tmp_path, monkeypatch):
    monkeypatch.setattr(gguf, "converter_dir", lambda given=None: tmp_path)
    run = make_run(lively_llama, llama_adapters["ia3"], tmp_path / "run")
    with pytest.raises(TunevalError, match="llama.cpp loads LoRA adapters only, not IA3"):
        export_run(run, tmp_path / "out", adapter_only=True, format="gguf")
    with pytest.raises(TunevalError, match="--format: expected one of safetensors, gguf"):
        export_run(run, tmp_path / "out", format="onnx")


# ---- installing the converter from the sdist ------------------------------------------------------

def _sdist(path: Path, extra: dict[str, bytes] | None = None) -> Path:
    files = {"convert_hf_to_gguf.py": b"print('hf')\n", "convert_lora_to_gguf.py": b"print('lora')\n",
             "conversion/__init__.py": b"", "gguf-py/gguf/__init__.py": b"", "gguf-py/tests/t.py": b"",
             "LICENSE": b"MIT", "ggml/src/big.c": b"int x;", **(extra or {})}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(gguf.VENDORED + name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        tar.addfile(tarfile.TarInfo(f"llama_cpp_python-{gguf.LLAMA_CPP_PYTHON}/setup.py"), io.BytesIO(b""))
    return path


def test_install_keeps_only_the_converter_and_checks_the_hash(tmp_path, monkeypatch):
    sdist = _sdist(tmp_path / "s.tar.gz")
    with pytest.raises(TunevalError, match="sha256 .* is not llama-cpp-python"):
        gguf.install_converter(tmp_path / "dest", sdist=sdist)
    assert not (tmp_path / "dest").exists()
    monkeypatch.setattr(gguf, "SDIST_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
    dest = gguf.install_converter(tmp_path / "dest", sdist=sdist)
    kept = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert kept == ["LICENSE", "conversion/__init__.py", "convert_hf_to_gguf.py", "convert_lora_to_gguf.py",
                    "gguf-py/gguf/__init__.py"]
    (dest / "LICENSE").write_text("kept")
    assert gguf.install_converter(dest, sdist=sdist) == dest and (dest / "LICENSE").read_text() == "kept"  # once


def test_install_refuses_a_member_that_escapes(tmp_path, monkeypatch):
    sdist = _sdist(tmp_path / "s.tar.gz", {"conversion/../../../../escaped.py": b"x"})
    monkeypatch.setattr(gguf, "SDIST_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
    with pytest.raises(TunevalError, match="refused a member"):
        gguf.install_converter(tmp_path / "dest", sdist=sdist)
    assert not (tmp_path / "escaped.py").exists() and not (tmp_path / "dest").exists()


def test_install_usage(capsys):
    assert gguf.main(["fetch"]) == 2
    assert "usage: python -m tuneval.serve.gguf install" in capsys.readouterr().err
