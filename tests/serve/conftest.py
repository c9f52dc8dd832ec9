"""Serving fixtures: 'lively' copies of the tiny models and non-trivial adapters of several kinds.

At their default init (std 0.02) the tiny models mostly echo the last prompt token whatever
adapter is on, so a row served with the wrong adapter could go unnoticed. The lively
copies redraw every weight matrix with std 0.3: then each adapter visibly changes the
greedy output, and the tests check that it does before trusting an equality.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

LIVELY_STD = 0.3
TARGETS = {
    "causal": {"lora_a": ["q_proj", "v_proj"], "lora_b": ["q_proj", "v_proj", "o_proj", "down_proj"],
               "ia3": (["k_proj", "v_proj", "down_proj"], ["down_proj"])},
    "seq2seq": {"lora_a": ["q", "v"], "lora_b": ["q", "v", "o", "wo"], "ia3": (["k", "v", "wo"], ["wo"])},
}
PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [12, 13], [14, 15, 16, 17]]  # different lengths: padding matters


def _lively(src: Path, dst: Path) -> Path:
    from tuneval.models import load_model

    loaded = load_model(str(src))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in loaded.model.parameters():
            if p.dim() == 2:
                p.normal_(0, LIVELY_STD)
    loaded.model.save_pretrained(dst)
    loaded.tokenizer.save_pretrained(dst)
    return dst


def make_adapter(base_dir: Path, kind: str, out: Path, seed: int) -> Path:
    """Save a PEFT adapter of `kind` with random (non-identity) weights, as safetensors."""
    from peft import IA3Config, LoraConfig, PromptTuningConfig, get_peft_model

    from tuneval.models import load_model

    loaded = load_model(str(base_dir))
    task = "SEQ_2_SEQ_LM" if loaded.arch == "seq2seq" else "CAUSAL_LM"
    t = TARGETS[loaded.arch]
    torch.manual_seed(seed)
    config = {
        "lora_a": lambda: LoraConfig(task_type=task, r=4, lora_alpha=8, target_modules=t["lora_a"], init_lora_weights=False),
        "lora_b": lambda: LoraConfig(task_type=task, r=8, lora_alpha=16, target_modules=t["lora_b"], init_lora_weights=False),
        "dora": lambda: LoraConfig(task_type=task, r=4, lora_alpha=8, target_modules=t["lora_a"], use_dora=True,
                                   init_lora_weights=False),
        "ia3": lambda: IA3Config(task_type=task, target_modules=t["ia3"][0], feedforward_modules=t["ia3"][1]),
        "prompt": lambda: PromptTuningConfig(task_type=task, num_virtual_tokens=4),
    }[kind]()
    net = get_peft_model(loaded.model, config)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # PEFT starts B at zero (a no-op adapter); make it count
            elif "ia3_l" in name:
                p.normal_(1.0, 1.5)
            elif "prompt_encoder" in name:
                p.normal_(0, LIVELY_STD)
    net.save_pretrained(out)
    return out


def make_run(base_dir: Path, adapter_dir: Path, run: Path, old: bool = False) -> Path:
    """A run directory as `tuneval train` writes it: config.yaml naming the base, and the adapter at
    its root (`old`: in adapter/, as runs from before 2026-12 kept it)."""
    shutil.copytree(adapter_dir, run / "adapter" if old else run)
    (run / "config.yaml").write_text(f"model: {base_dir}\nmethod: lora\n")
    return run


@pytest.fixture(scope="session")
def lively_llama(tiny_llama_dir, tmp_path_factory) -> Path:
    return _lively(tiny_llama_dir, tmp_path_factory.mktemp("lively-llama"))


@pytest.fixture(scope="session")
def lively_t5(tiny_t5_dir, tmp_path_factory) -> Path:
    return _lively(tiny_t5_dir, tmp_path_factory.mktemp("lively-t5"))


def _adapters(base: Path, root: Path, kinds: list[str]) -> dict[str, Path]:
    return {k: make_adapter(base, k, root / k, seed=10 + i) for i, k in enumerate(kinds)}


@pytest.fixture(scope="session")
def llama_adapters(lively_llama, tmp_path_factory) -> dict[str, Path]:
    return _adapters(lively_llama, tmp_path_factory.mktemp("llama-adapters"), ["lora_a", "lora_b", "ia3", "prompt", "dora"])


@pytest.fixture(scope="session")
def t5_adapters(lively_t5, tmp_path_factory) -> dict[str, Path]:
    return _adapters(lively_t5, tmp_path_factory.mktemp("t5-adapters"), ["lora_a", "lora_b", "ia3", "prompt"])


@pytest.fixture(params=["llama", "t5"])
def lively(request, lively_llama, lively_t5, llama_adapters, t5_adapters) -> tuple[Path, dict[str, Path]]:
    """(base dir, adapters) for each architecture."""
    return (lively_llama, llama_adapters) if request.param == "llama" else (lively_t5, t5_adapters)


@torch.inference_mode()
def alone(base_dir: Path, adapter_dir: Path | None, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """The reference: a fresh base (+ the adapter through plain PEFT), one prompt at a time, greedy.

    Returns each row's generated ids up to and including EOS, as the bank reports them.
    """
    from peft import PeftModel

    from tuneval.models import load_model

    loaded = load_model(str(base_dir))
    model = PeftModel.from_pretrained(loaded.model, str(adapter_dir)) if adapter_dir else loaded.model
    model.eval()
    eos = loaded.model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    out = []
    for p in prompts:
        ids = torch.tensor([p])
        gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, num_beams=1, eos_token_id=sorted(eos),
                             pad_token_id=loaded.tokenizer.pad_token_id)[0].tolist()
        new = gen[len(p):] if loaded.arch == "causal" else gen[1:]
        cut = next((i + 1 for i, t in enumerate(new) if t in eos), len(new))
        out.append(new[:cut])
    return out


_DIRECT: dict = {}


@torch.inference_mode()
def direct_logprobs(base_dir: Path, adapter_dir: Path | None, ids: list[int]) -> torch.Tensor:
    """The reference for scoring: a fresh base (+ the adapter through plain PEFT), one unpadded forward
    pass over `ids`, log_softmax in fp32; row j is the distribution after ids[:j + 1]."""
    from peft import PeftModel

    from tuneval.models import load_model

    key = (str(base_dir), str(adapter_dir))
    if key not in _DIRECT:
        loaded = load_model(str(base_dir))
        model = PeftModel.from_pretrained(loaded.model, str(adapter_dir)) if adapter_dir else loaded.model
        _DIRECT[key] = model.eval()
    x = torch.tensor([ids])
    logits = _DIRECT[key](input_ids=x, attention_mask=torch.ones_like(x)).logits[0, -len(ids):]  # prompt tuning: + virtual
    return logits.float().log_softmax(-1)
