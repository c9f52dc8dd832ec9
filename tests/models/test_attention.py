import pytest

from tuneval.data import varlen_attention
from tuneval.models import load_model
from tuneval.models.attention import swapped_attention


def test_swapped_for_a_while_and_given_back_even_on_failure(tiny_llama_dir):
    model = load_model(str(tiny_llama_dir), precision="fp32").model
    with swapped_attention(model, varlen_attention.register) as swapped:
        assert swapped and model.config._attn_implementation == varlen_attention.NAME
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(KeyError), swapped_attention(model, varlen_attention.register):
        raise KeyError("scoring failed part way")
    assert model.config._attn_implementation == "sdpa"


def test_only_over_sdpa(tiny_llama_dir):
    model = load_model(str(tiny_llama_dir), precision="fp32").model
    model.set_attn_implementation("eager")
    with swapped_attention(model, varlen_attention.register) as swapped:
        assert not swapped and model.config._attn_implementation == "eager"
    assert model.config._attn_implementation == "eager"
