"""generate_ids: token ids in input order, cut after the first EOS, and what generate() decodes."""

from __future__ import annotations

import torch

from tuneval.evaluate.generation import _until_eos, generate, generate_ids
from tuneval.models import load_model


def test_until_eos_cuts_after_the_first_eos_and_drops_the_decoder_start():
    assert _until_eos([7, 8, 2, 0, 0], 2, 0, "causal") == [7, 8, 2]
    assert _until_eos([7, 8, 9], [2, 3], 0, "causal") == [7, 8, 9]  # no EOS: the whole row
    assert _until_eos([7, 3, 2], [2, 3], 0, "causal") == [7, 3]  # any of several EOS ids
    assert _until_eos([0, 7, 2, 0], 2, 0, "seq2seq") == [7, 2]  # the decoder start (pad) is not generated
    assert _until_eos([0, 7, 2, 0], 2, 0, "causal") == [0, 7, 2]


def test_ids_in_input_order_match_one_at_a_time_and_generate(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    tok, arch = loaded.tokenizer, loaded.arch
    torch.manual_seed(0)
    prompts = [torch.randint(10, 300, (n,)).tolist() for n in (5, 12, 8, 3)]
    ids = generate_ids(loaded.model, tok, prompts, arch, batch_size=3, max_new_tokens=6)
    assert len(ids) == len(prompts) and all(1 <= len(r) <= 6 for r in ids)
    alone = [generate_ids(loaded.model, tok, [p], arch, batch_size=1, max_new_tokens=6)[0] for p in prompts]
    assert alone == ids  # sorted, padded batches come back in input order with the same tokens
    texts, n = generate(loaded.model, tok, prompts, arch, batch_size=3, max_new_tokens=6)
    assert n == sum(map(len, ids))
    assert texts == [tok.decode(r, skip_special_tokens=True).strip() for r in ids]
