"""The adapter bank: mixed-adapter batches answer as each row would alone; load/switch/unload."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from tests.serve.conftest import PROMPTS, alone
from tuneval.errors import TunevalError
from tuneval.models import load_model
from tuneval.serve.bank import AdapterBank, Row, UnknownAdapter

N = 6  # new tokens per row


def make_bank(base, adapters, kinds) -> AdapterBank:
    bank = AdapterBank(load_model(str(base)))
    for k in kinds:
        bank.load(k, adapters[k])
    return bank


def test_mixed_batch_matches_each_row_alone(lively):
    base, adapters = lively
    kinds = [k for k in ("lora_a", "lora_b", "ia3", "prompt", "dora") if k in adapters]
    # Load order matters to PEFT (IA3 wrapping LoRA layers, or LoRA wrapping IA3 ones): try both.
    bank = make_bank(base, adapters, kinds if "dora" in adapters else kinds[::-1])
    names = [None, *kinds]
    # Interleave adapters and prompt lengths so every sub-batch is scattered through the call.
    rows = [Row(PROMPTS[(i + j) % len(PROMPTS)], name, max_new_tokens=N)
            for i in range(len(PROMPTS)) for j, name in enumerate(names)]
    outs = bank.generate(rows)

    expected = {name: alone(base, adapters[name] if name else None, PROMPTS, N) for name in names}
    # Each adapter must change the answers, or a mix-up could not show.
    for a in names:
        for b in names:
            if a != b:
                assert expected[a] != expected[b], f"{a} and {b} answer alike; the test would prove nothing"
    for row, out in zip(rows, outs):
        assert out.tokens == expected[row.adapter][PROMPTS.index(row.prompt)], row.adapter
        assert out.text == bank.tokenizer.decode([t for t in out.tokens if t not in bank.eos_ids], skip_special_tokens=True)

    # LoRA and base rows shared one PEFT mixed-batch call; the others ran one sub-batch per adapter.
    mixable = sum(1 for r in rows if r.adapter in (None, "lora_a", "lora_b"))
    assert [n for label, n in bank.last_plan if label.startswith("mixed:")] == [mixable]
    alone_groups = {label for label, _ in bank.last_plan if label.startswith("adapter:")}
    assert alone_groups == {f"adapter:{k}" for k in kinds if k not in ("lora_a", "lora_b")}


def _logits(model, arch, ids):
    with torch.inference_mode():
        if arch == "seq2seq":
            return model(input_ids=ids, decoder_input_ids=ids[:, :3]).logits
        return model(input_ids=ids).logits


@pytest.mark.parametrize("kind", ["lora_b", "ia3", "prompt"])
def test_switch_active_adapter_matches_plain_peft(lively_llama, llama_adapters, kind):
    from peft import PeftModel

    bank = make_bank(lively_llama, llama_adapters, ["lora_a", "lora_b", "ia3", "prompt"])
    ids = torch.tensor([PROMPTS[0]])
    fresh = load_model(str(lively_llama))
    base_logits = _logits(fresh.model.eval(), "causal", ids)
    want = _logits(PeftModel.from_pretrained(fresh.model, str(llama_adapters[kind])).eval(), "causal", ids)

    bank.set_active(kind)
    assert bank.active == kind
    got = _logits(bank.model, "causal", ids)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got[:, -ids.shape[1]:], base_logits, atol=1e-3)
    bank.generate([Row(PROMPTS[1], "lora_a", 3), Row(PROMPTS[2], None, 3)])  # a batch in between
    torch.testing.assert_close(_logits(bank.model, "causal", ids), want)  # still the active one
    bank.set_active(None)
    torch.testing.assert_close(_logits(bank.model, "causal", ids), base_logits)
    with pytest.raises(UnknownAdapter):
        bank.set_active("nope")


def test_unload_and_reload(lively_llama, llama_adapters):
    bank = make_bank(lively_llama, llama_adapters, ["lora_a", "lora_b", "prompt"])
    rows = lambda: [Row(PROMPTS[0], "lora_b", N), Row(PROMPTS[0], "prompt", N), Row(PROMPTS[0], None, N)]  # noqa: E731
    before = [o.tokens for o in bank.generate(rows())]
    bank.unload("lora_a")
    assert bank.names() == ["lora_b", "prompt"]
    with pytest.raises(UnknownAdapter, match="lora_a"):
        bank.generate([Row(PROMPTS[0], "lora_a", N)])
    assert [o.tokens for o in bank.generate(rows())] == before  # the others are untouched

    # Emptying a slot leaves no trace on the base; loading into the emptied slot works again.
    bank.unload("lora_b")
    bank.unload("prompt")
    assert bank.names() == []
    base_only = alone(lively_llama, None, [PROMPTS[0]], N)[0]
    assert bank.generate([Row(PROMPTS[0], None, N)])[0].tokens == base_only
    bank.load("again", llama_adapters["lora_b"])
    bank.load("prompt2", llama_adapters["prompt"])
    again = bank.generate([Row(PROMPTS[0], "again", N), Row(PROMPTS[0], "prompt2", N), Row(PROMPTS[0], None, N)])
    assert [o.tokens for o in again] == before


def test_per_row_limits_stop_strings_and_streaming(lively_llama, llama_adapters):
    bank = make_bank(lively_llama, llama_adapters, ["lora_a"])
    full = bank.generate([Row(PROMPTS[0], "lora_a", 8)])[0]
    assert len(full.tokens) == 8 and full.finish_reason == "length"
    pieces: list[str] = []
    short, longer = bank.generate([Row(PROMPTS[0], "lora_a", 3), Row(PROMPTS[0], "lora_a", 8, on_text=pieces.append)])
    assert short.tokens == full.tokens[:3] and short.finish_reason == "length"
    assert longer.tokens == full.tokens and "".join(pieces) == full.text
    assert len(pieces) > 1  # streamed step by step, not at the end
    stop = full.text[len(full.text) // 2:][:2]
    cut = bank.generate([Row(PROMPTS[0], "lora_a", 8, stop=[stop])])[0]
    assert cut.finish_reason == "stop" and cut.text == full.text[:full.text.index(stop)]


def test_refusals(lively_llama, llama_adapters, t5_adapters, tmp_path):
    bank = make_bank(lively_llama, llama_adapters, ["lora_a"])
    want = bank.generate([Row(PROMPTS[0], "lora_a", N)])[0].tokens

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(llama_adapters["lora_a"] / "adapter_config.json", pickled)
    (pickled / "adapter_model.bin").write_bytes(b"\x80\x04 not loaded")
    with pytest.raises(TunevalError, match="pickled weights"):
        bank.load("p", pickled)

    pissa = tmp_path / "pissa"
    shutil.copytree(llama_adapters["lora_a"], pissa)
    cfg = (pissa / "adapter_config.json").read_text().replace('"init_lora_weights": false', '"init_lora_weights": "pissa"')
    (pissa / "adapter_config.json").write_text(cfg)
    with pytest.raises(TunevalError, match="rewrites the base"):
        bank.load("p", pissa)

    bitfit = tmp_path / "run" / "adapter"  # tuneval's trained-tensor results replace base weights
    bitfit.mkdir(parents=True)
    (bitfit / "tuneval_method.json").write_text('{"method": "bitfit"}')
    shutil.copy(llama_adapters["lora_a"] / "adapter_model.safetensors", bitfit)
    with pytest.raises(TunevalError, match="'bitfit' result .* cannot share a base"):
        bank.load("b", tmp_path / "run")

    with pytest.raises(TunevalError, match="does not fit"):
        bank.load("t5", t5_adapters["lora_a"])  # a T5 adapter on a Llama base
    with pytest.raises(TunevalError, match="already loaded"):
        bank.load("lora_a", llama_adapters["lora_b"])
    for bad in ("has space", "../x", "", "-dash"):
        with pytest.raises(TunevalError, match="adapter name"):
            bank.load(bad, llama_adapters["lora_b"])
    assert bank.names() == ["lora_a"]
    assert bank.generate([Row(PROMPTS[0], "lora_a", N)])[0].tokens == want  # failed loads left no trace


def test_paths_must_stay_under_the_root(lively_llama, llama_adapters, tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    shutil.copytree(llama_adapters["lora_a"], root / "ok")
    shutil.copytree(llama_adapters["lora_b"], outside)
    os.symlink(outside, root / "link_out")
    (root / "file_link").mkdir()
    shutil.copy(llama_adapters["lora_b"] / "adapter_config.json", root / "file_link")
    os.symlink(outside / "adapter_model.safetensors", root / "file_link" / "adapter_model.safetensors")
    bank = AdapterBank(load_model(str(lively_llama)))
    refusals = {
        "../outside": "'..'",
        "ok/../../outside": "'..'",
        str(outside): "absolute",
        "link_out": "outside the adapters root",
        "file_link": "outside the adapters root",
        "missing": "no such directory",
    }
    for path, reason in refusals.items():
        with pytest.raises(TunevalError, match=reason):
            bank.load("x", path, root=root)
    assert bank.names() == []
    bank.load("x", "ok", root=root)
    assert bank.names() == ["x"]
