"""Shared fixtures: tiny randomly initialised Llama and T5 models and a tiny DialogSum.

Everything is built here from configs, so the suite needs no hub and runs in seconds.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

# Unit tests are exact CPU tests (CI has no GPU; they build CPU tensors beside the models).
# Hide any GPU unless TUNEVAL_TEST_GPU=1 asks to run them on it; bench/gpu_check.sh covers
# tuneval on CUDA end to end. Set before torch first touches CUDA.
if os.environ.get("TUNEVAL_TEST_GPU") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

import pytest  # noqa: E402
import torch  # noqa: E402

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WORDS = ("hello how are you fine thanks the meeting is at noon can we move it to monday sure "
         "please bring report I will call Tom later book a table for two tonight it is cold outside").split()
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _corpus(n: int = 400) -> list[str]:
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(n)]
    return lines + ["#Person1#: #Person2#: Summarize the following conversation. Summary: Dialogue: {}"]


def _build_tokenizer(chat: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "</s>", "<s>", "<unk>"] + (["<|im_start|>", "<|im_end|>"] if chat else [])
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<|im_end|>" if chat else "</s>",
                                   bos_token="<s>", unk_token="<unk>")
    if chat:
        fast.chat_template = CHATML
    return fast


def tiny_llama_config(tok, **extra):
    """The tiny Llama's shape; `extra` adds options (e.g. biases) for variants."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                       tie_word_embeddings=True, **extra)


def _save_llama(factory, name: str, **shape) -> Path:
    """A 2-layer Llama with a ChatML chat template (like SmolLM2-Instruct); `shape` overrides widths."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    tok = _build_tokenizer(chat=True)
    config = tiny_llama_config(tok)
    config.update(shape)
    path = factory.mktemp(name)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _save_t5(factory, name: str, d_model: int = 32) -> Path:
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    tok = _build_tokenizer(chat=False)
    config = T5Config(vocab_size=len(tok), d_model=d_model, d_ff=2 * d_model, d_kv=d_model // 4, num_layers=2,
                      num_decoder_layers=2, num_heads=4, decoder_start_token_id=tok.pad_token_id,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    path = factory.mktemp(name)
    T5ForConditionalGeneration(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return _save_llama(tmp_path_factory, "tiny-llama")


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory) -> Path:
    return _save_t5(tmp_path_factory, "tiny-t5")


@pytest.fixture(params=["llama", "t5"])
def tiny_model_dir(request, tiny_llama_dir, tiny_t5_dir) -> Path:
    return tiny_llama_dir if request.param == "llama" else tiny_t5_dir


# bitsandbytes' 4-bit CPU kernels work on 64-value blocks; where the CPU has native bf16
# (AVX512-BF16/AMX) it repacks weights for its bf16 kernel and fails on layers narrower than
# a block. QLoRA tests use these variants, every linear layer at least 64 wide in and out.
@pytest.fixture(scope="session")
def tiny_wide_llama_dir(tmp_path_factory) -> Path:
    return _save_llama(tmp_path_factory, "tiny-wide-llama", hidden_size=64, intermediate_size=128,
                       num_key_value_heads=4, head_dim=16)


@pytest.fixture(scope="session")
def tiny_wide_t5_dir(tmp_path_factory) -> Path:
    return _save_t5(tmp_path_factory, "tiny-wide-t5", d_model=64)


def _dialogue(rng: random.Random) -> tuple[str, str]:
    turns = [f"#Person{1 + i % 2}#: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9))) for i in range(rng.randint(2, 5))]
    summary = "#Person1# and #Person2# talk about " + " ".join(rng.choice(WORDS) for _ in range(4)) + "."
    return "\n".join(turns), summary


@pytest.fixture
def tiny_data_dir(tmp_path) -> Path:
    """A data directory laid out like ../shared/data with a small DialogSum."""
    rng = random.Random(1)
    root = tmp_path / "data"
    (root / "dialogsum").mkdir(parents=True)
    for split, n in (("train", 32), ("validation", 6)):
        with open(root / "dialogsum" / f"{split}.jsonl", "w") as f:
            for i in range(n):
                dialogue, summary = _dialogue(rng)
                f.write(json.dumps({"fname": f"{split}_{i}", "dialogue": dialogue, "summary": summary, "topic": "t"}) + "\n")
    return root


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test reads the user's cache or data dir by accident, nor writes into the repo.

    `precision: auto` means fp32 here on every host (as on a CPU without native bf16), so a
    test that compares exactly gets the same numbers on an AVX2 EPYC and an AMX Xeon; tests
    of the bf16 path ask for `bf16` by name, and it runs (emulated where not native) on both.
    """
    import tuneval.evaluate.score_cache
    import tuneval.precision

    monkeypatch.setattr(tuneval.precision, "native_bf16", lambda: False)
    # Scores cached by a test (the demo's original row) stay in the test's own directory, not $TUNEVAL_HOME.
    monkeypatch.setattr(tuneval.evaluate.score_cache, "cache_dir", lambda: tmp_path / "score-cache")
    monkeypatch.delenv("TUNEVAL_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
