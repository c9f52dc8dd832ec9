import pytest

from tuneval.errors import TunevalError
from tuneval.methods.loading import load_adapter
from tuneval.models import load_model


def test_local_directories_load_with_their_architecture(tiny_llama_dir, tiny_t5_dir):
    llama, t5 = load_model(str(tiny_llama_dir)), load_model(str(tiny_t5_dir))
    assert (llama.arch, t5.arch) == ("causal", "seq2seq")
    assert llama.tokenizer.pad_token_id is not None and t5.model.config.is_encoder_decoder


def test_directory_without_a_model_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TunevalError, match="no config.json or single .gguf"):
        load_model(str(tmp_path / "empty"))


def test_adapter_dir_must_hold_an_adapter(tiny_llama_dir, tmp_path):
    with pytest.raises(TunevalError, match="no adapter_config.json"):
        load_adapter(load_model(str(tiny_llama_dir)), tmp_path)


def test_models_go_to_the_gpu_when_there_is_one(tiny_llama_dir, monkeypatch):
    """Evaluation and serving run where the accelerator is; training asks for the CPU explicitly."""
    import torch

    from tuneval.models import default_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == "cpu"
    assert next(load_model(str(tiny_llama_dir)).model.parameters()).device.type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == "cuda"
    moved = []
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: moved.append(a[0] if a else k.get("device")) or self)
    load_model(str(tiny_llama_dir))
    load_model(str(tiny_llama_dir), device="cpu")
    assert moved == ["cuda", "cpu"]


def test_tokenizer_without_pad_or_eos_is_named(tiny_llama_dir, tmp_path):
    """Batches need a pad id; without pad or eos the collator would fail far from the cause."""
    import json
    import shutil

    copy = tmp_path / "no-eos"
    shutil.copytree(tiny_llama_dir, copy)
    cfg = json.loads((copy / "tokenizer_config.json").read_text())
    for key in ("pad_token", "eos_token"):
        cfg.pop(key, None)
    (copy / "tokenizer_config.json").write_text(json.dumps(cfg))
    for name in ("special_tokens_map.json",):
        (copy / name).unlink(missing_ok=True)
    with pytest.raises(TunevalError, match="neither a pad nor an eos token"):
        load_model(str(copy))


def test_load_tokenizer_takes_a_directory_of_tokenizer_files_alone(tiny_llama_dir, tmp_path):
    """What a GGUF export keeps beside its .gguf files: an endpoint's tokenizer= may name it."""
    from transformers import AutoTokenizer

    from tuneval.models.loading import load_tokenizer

    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(tmp_path / "tok")
    (tmp_path / "tok" / "a.gguf").write_bytes(b"")
    (tmp_path / "tok" / "b.gguf").write_bytes(b"")
    want = AutoTokenizer.from_pretrained(tiny_llama_dir)
    got = load_tokenizer(str(tmp_path / "tok"))
    assert got("a tokenizer alone")["input_ids"] == want("a tokenizer alone")["input_ids"]
    assert got.chat_template == want.chat_template and got.eos_token == want.eos_token
    with pytest.raises(TunevalError, match="no config.json or single .gguf"):
        load_tokenizer(str(tmp_path))  # no tokenizer files either
