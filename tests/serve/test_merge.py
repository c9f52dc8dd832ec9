"""`tuneval merge`: a plain transformers model whose logits equal base+adapter's."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

from tests.serve.conftest import PROMPTS, make_run
from tuneval.cli import main
from tuneval.errors import TunevalError
from tuneval.models import load_model
from tuneval.serve.merge import merge_run


def _logits(model, arch):
    ids = torch.tensor([PROMPTS[0]])
    with torch.inference_mode():
        if arch == "seq2seq":
            return model(input_ids=ids, decoder_input_ids=ids[:, :4]).logits
        return model(input_ids=ids).logits


@pytest.mark.parametrize("kind", ["lora_b", "ia3", "dora"])
def test_merged_model_matches_adapter_model(lively, kind, tmp_path):
    from peft import PeftModel

    base, adapters = lively
    if kind not in adapters:
        pytest.skip(f"no {kind} fixture for this architecture")
    run = make_run(base, adapters[kind], tmp_path / "run")
    info = merge_run(run, tmp_path / "merged")
    assert info["peft_type"] == ("LORA" if kind != "ia3" else "IA3") and info["base"] == str(base)

    loaded = load_model(str(base))
    base_logits = _logits(loaded.model.eval(), loaded.arch)
    want = _logits(PeftModel.from_pretrained(loaded.model, str(adapters[kind])).eval(), loaded.arch)
    auto = AutoModelForSeq2SeqLM if loaded.arch == "seq2seq" else AutoModelForCausalLM
    merged = auto.from_pretrained(tmp_path / "merged").eval()  # plain transformers, no PEFT
    got = _logits(merged, loaded.arch)
    assert not torch.allclose(want, base_logits, atol=1e-3)  # the adapter matters
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert not any("lora" in k or "ia3" in k for k in merged.state_dict())
    files = sorted(p.name for p in (tmp_path / "merged").iterdir())
    assert any(f.endswith(".safetensors") for f in files) and "tokenizer_config.json" in files
    assert not any(f.endswith((".bin", ".pt", ".pth", ".pkl")) for f in files)


def test_prompt_tuning_cannot_merge(lively_llama, llama_adapters, tmp_path, capsys):
    run = make_run(lively_llama, llama_adapters["prompt"], tmp_path / "run")
    with pytest.raises(TunevalError, match="PROMPT_TUNING adapters cannot be merged: .*virtual tokens"):
        merge_run(run, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
    with pytest.raises(SystemExit) as e:
        main(["merge", str(run), "--out", str(tmp_path / "merged")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "cannot be merged" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_merge_cli(lively_llama, llama_adapters, tmp_path, capsys):
    run = make_run(lively_llama, llama_adapters["lora_a"], tmp_path / "run", old=True)
    out = tmp_path / "merged"
    with pytest.raises(SystemExit) as e:
        main(["merge", str(run / "adapter"), "--out", str(out)])  # an old run's adapter/ finds the run's recipe too
    assert e.value.code == 0 and (out / "config.json").is_file()
    assert "merged LORA adapter" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["merge", str(run), "--out", str(out)])
    assert e.value.code == 2 and "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["merge", str(run), "--out", str(out), "--overwrite"])
    assert e.value.code == 0
    with pytest.raises(SystemExit) as e:
        main(["merge", str(tmp_path / "nope"), "--out", str(tmp_path / "m2")])
    assert e.value.code == 2 and "no such directory" in capsys.readouterr().err


def test_merge_saves_in_the_policy_dtype(lively_llama, llama_adapters, tmp_path):
    """Merged in fp32, saved in bf16: the weights equal the fp32 merge rounded once."""
    run = make_run(lively_llama, llama_adapters["lora_b"], tmp_path / "run")
    fp32 = merge_run(run, tmp_path / "m32", precision="fp32")
    bf16 = merge_run(run, tmp_path / "m16", precision="bf16")
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16")
    w32 = AutoModelForCausalLM.from_pretrained(tmp_path / "m32", dtype="auto").state_dict()
    w16 = AutoModelForCausalLM.from_pretrained(tmp_path / "m16", dtype="auto").state_dict()
    assert {v.dtype for v in w16.values()} == {torch.bfloat16} and {v.dtype for v in w32.values()} == {torch.float32}
    assert all(torch.equal(w16[k], w32[k].to(torch.bfloat16)) for k in w32)


def test_merge_dtype_flag_wins_over_the_policy(lively_llama, llama_adapters, tmp_path):
    """`--dtype float16` (inference only, so allowed here) saves fp16 whatever the precision policy says."""
    import json

    run = make_run(lively_llama, llama_adapters["lora_b"], tmp_path / "run")
    with pytest.raises(SystemExit) as e:
        main(["merge", str(run), "--out", str(tmp_path / "m"), "--precision", "fp32", "--dtype", "float16"])
    assert e.value.code == 0
    assert json.loads((tmp_path / "m" / "merge.json").read_text())["dtype"] == "float16"
    w = AutoModelForCausalLM.from_pretrained(tmp_path / "m", dtype="auto").state_dict()
    assert {v.dtype for v in w.values()} == {torch.float16}
