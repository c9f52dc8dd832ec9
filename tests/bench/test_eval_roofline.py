"""bench/eval_roofline.py's accounting: the work it sets against the roofline is the work the model does.
Counted by hand on the tiny Llama, and its matmuls against torch's own FLOP counter on a real decoding step."""

from __future__ import annotations

import pytest
import torch

from tests.bench.test_peaks import _load
from tuneval.models import load_model

LAYER_PARAMS = 2 * 32 * 32 + 2 * 32 * 16 + 3 * 32 * 64  # q, o: 32x32; k, v: 32x16 (2 of 4 heads); gate, up, down: 32x64


@pytest.fixture(scope="module")
def shaped(tiny_llama_dir):
    loaded = load_model(str(tiny_llama_dir), precision="fp32")
    return loaded.model.eval(), _load("eval_roofline").Shape(loaded.model)


def test_shape_counts_the_linear_layers_apart_from_the_lm_head(shaped):
    model, shape = shaped
    assert LAYER_PARAMS == 9216
    assert shape.linear == 2 * LAYER_PARAMS
    assert shape.head == model.config.vocab_size * 32
    assert (shape.layers, shape.heads, shape.kv_heads, shape.head_dim, shape.bytes) == (2, 4, 2, 8, 4)


def test_prefill_and_decode_work_written_out(shaped):
    _, shape = shaped
    attention = 2 * 2 * 2 * 4 * 8  # QK^T and AV, 2 FLOPs a multiply-add, 2 layers, 4 heads of 8
    assert shape.prefill_flops(3) == 2 * shape.linear * 3 + attention * 6 + 2 * shape.head  # 6 = 3*4/2 causal pairs
    flops, nbytes = shape.decode_step(rows=2, context=5)
    assert flops == 2 * (2 * (shape.linear + shape.head) + attention * 5)
    assert nbytes == (shape.linear + shape.head) * 4 + 2 * 5 * 2 * 2 * 2 * 8 * 4  # weights + each row's keys and values


def test_decode_step_matmul_flops_match_torchs_counter(shaped):
    """torch counts the matmuls (it has no formula for the CPU flash-attention kernel): every linear and the
    LM head, once per row."""
    from torch.utils.flop_counter import FlopCounterMode

    model, shape = shaped
    with torch.inference_mode():
        past = model(input_ids=torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]]), use_cache=True).past_key_values
        with FlopCounterMode(display=False) as counter:
            model(input_ids=torch.tensor([[13], [14]]), past_key_values=past, use_cache=True)
    attention = 2 * (2 * 2 * 2 * 4 * 8 * 5)
    assert counter.get_total_flops() == shape.decode_step(rows=2, context=5)[0] - attention == 2 * 2 * (
        shape.linear + shape.head)


def test_a_row_is_bound_by_the_slower_of_compute_and_memory():
    row = _load("eval_roofline")._row
    compute = row("p", "w", seconds=4.0, flops=200e9, nbytes=1e9, peak=100e9, bw=10e9)
    assert (compute["bound_seconds"], compute["share_of_bound"], compute["limited_by"]) == (2.0, 0.5, "compute")
    memory = row("d", "w", seconds=1.0, flops=1e9, nbytes=5e9, peak=100e9, bw=10e9)
    assert (memory["bound_seconds"], memory["limited_by"]) == (0.5, "memory")


def test_scoring_forwards_are_counted_by_their_real_rows():
    real_rows = _load("eval_roofline")._real_rows
    padded = {"attention_mask": torch.tensor([[0, 1, 1], [1, 1, 1]]), "logits_to_keep": 2}
    assert real_rows(padded) == [(2, 2), (3, 2)]  # each padded row runs the LM head at the last 2 positions
    packed = {"position_ids": torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]]), "logits_to_keep": torch.tensor([2, 4, 8])}
    assert real_rows(packed) == [(3, 3), (2, 0), (4, 0)]  # three rows end to end; 3 kept positions in all
