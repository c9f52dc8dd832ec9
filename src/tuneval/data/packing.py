"""Sample packing for causal LMs: several tokenised examples in one row, none seeing another.

Padding is compute spent on nothing: a batch of DialogSum examples padded to its longest row is a
third padding unless the dataset is large enough for length grouping to work. Packing fills rows
of up to `data.max_seq_len` tokens with whole examples instead (a row never splits an example),
so nearly every slot holds a real token.

Examples must not see each other. Each example's `position_ids` restart at 0 inside the row, and
the batch carries no `attention_mask`: transformers 5 (masking_utils.create_causal_mask) then reads
the example boundaries from the position ids (a position that does not follow the previous one
by 1 starts a new example) and builds a block-diagonal causal mask, for `sdpa` and `eager`
attention, on batches of any number of rows. Two things switch that detection off and must not
happen: a 2-D attention mask, and a KV cache (`use_cache` must be False while training; the
trainer sets it). FlashAttention kernels detect packing only on a single flattened row, so a
batch of several packed rows would leak there; `check_packed_attention` runs the model once on a
small packed batch and refuses any setup where one example's tokens change another's logits.
RoPE makes positions relative, so a restarted example computes exactly what it computes alone.

No token predicts across a boundary either: the first label of every example is -100 (its
label would be the next-token target of the previous example's last token). Unpacked, that
label is never used (the loss shifts labels by one), so the loss and its gradients are the same
packed or not (tests/data/test_packing.py checks both to 1e-5).

Which examples share a row: best-fit decreasing (the longest example first, each into the
fullest row that still has room), the strategy TRL's `packing_strategy="bfd"` uses; it leaves
~2-3% of the slots of 1024-token rows empty on DialogSum where first-fit in the given order
leaves ~4-7%. So a row depends on the multiset of lengths only (ties keep the given order), not
on the seeded shuffle; rows are then listed in the order of their first-drawn example, and the
Trainer's sampler shuffles them as it shuffles examples.

Seq2seq models keep their own path (their inputs and labels are separate sequences; there is
nothing to pack causally), and so do PEFT prompt-learning methods: PEFT drops `position_ids`
for prompt tuning and puts prefix tuning's prefix in a KV cache, and either would let the
examples of a row see each other.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

import torch

from tuneval.data.collate import IGNORE_INDEX, DataCollator
from tuneval.errors import TunevalError, first_line


def _check_example(example: dict[str, Any], index: int, max_seq_len: int) -> int:
    n = len(example["input_ids"])
    if "labels" in example and len(example["labels"]) != n:
        raise TunevalError(f"data.packing: example {index} has {n} input_ids but {len(example['labels'])} labels; "
                           "packing applies to causal LMs (seq2seq examples are padded as they are)")
    if n > max_seq_len:
        raise TunevalError(f"data.packing: example {index} has {n} tokens, more than data.max_seq_len ({max_seq_len})")
    if n < 2:  # a one-token example predicts nothing; it would also end a row ambiguously (see real_token_mask)
        raise TunevalError(f"data.packing: example {index} has {n} token; an example needs at least 2")
    return n


def pack_examples(examples: list[dict[str, Any]], max_seq_len: int) -> list[dict[str, list[int]]]:
    """Whole examples (input_ids, labels) in rows of at most `max_seq_len` tokens, best-fit decreasing.

    Each row has `input_ids`, `labels` (every example's first label -100) and `position_ids`
    (0, 1, ... restarting at each example). Seq2seq examples (labels not aligned with input_ids)
    are refused.
    """
    lengths = [_check_example(e, i, max_seq_len) for i, e in enumerate(examples)]
    free: list[tuple[int, int]] = []  # (room left, row), sorted: the fullest row with room comes first
    rows: list[list[int]] = []
    for i in sorted(range(len(examples)), key=lambda i: (-lengths[i], i)):
        at = bisect.bisect_left(free, (lengths[i], -1))
        if at < len(free):
            room, row = free.pop(at)
        else:
            room, row = max_seq_len, len(rows)
            rows.append([])
        rows[row].append(i)
        bisect.insort(free, (room - lengths[i], row))
    rows.sort(key=lambda members: min(members))
    return [_row([examples[i] for i in sorted(members)]) for members in rows]


def _row(members: list[dict[str, Any]]) -> dict[str, list[int]]:
    row: dict[str, list[int]] = {"input_ids": [], "labels": [], "position_ids": []}
    for e in members:
        ids = list(e["input_ids"])
        labels = list(e.get("labels", ids))
        row["input_ids"] += ids
        row["labels"] += [IGNORE_INDEX] + labels[1:]
        row["position_ids"] += list(range(len(ids)))
    return row


@dataclass
class PackedCollator(DataCollator):
    """Pads packed rows to the batch's longest: input_ids, labels and position_ids, no attention_mask.

    A pad is a one-token example of its own (position 0, label -100): it sees only itself, and
    no real token sees it. Examples without `position_ids` (the validation examples the Trainer
    collates with the same collator) are padded as DataCollator pads them.
    """

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if "position_ids" not in features[0]:
            return super().__call__(features)
        return {
            "input_ids": self._pad([f["input_ids"] for f in features], self.pad_token_id),
            "labels": self._pad([f["labels"] for f in features], IGNORE_INDEX),
            "position_ids": self._pad([f["position_ids"] for f in features], 0),
        }


def real_token_mask(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(rows, length) bool: True at real tokens, False at padding, for padded and packed batches alike.

    A packed batch has no attention_mask; its padding is each row's tail after the last position
    id above 0 (every packed example has at least 2 tokens, so its last token's position is >= 1).
    The Trainer's own fallback, `input_ids != pad_token_id`, would miss every EOS where the
    tokenizer pads with EOS (SmolLM2 does).
    """
    if "attention_mask" in batch:
        return batch["attention_mask"].bool()
    ids = batch["input_ids"]
    if "position_ids" not in batch:
        return torch.ones_like(ids, dtype=torch.bool)
    pos = batch["position_ids"]
    index = torch.arange(pos.shape[1], device=pos.device).expand_as(pos)
    last = torch.where(pos > 0, index, torch.zeros_like(index)).amax(dim=1, keepdim=True)
    return index <= last


def rows_per_step(batch_size: int, examples: int, rows: int) -> int:
    """Packed rows per device batch that hold about `batch_size` examples, as unpacked batches did.

    So `per_device_train_batch_size` keeps meaning examples per step: the number of optimizer
    steps, the learning-rate schedule and the tokens (hence activation memory) per step stay
    about what they were unpacked, instead of growing with `max_seq_len` as TRL's rows do.
    """
    return max(1, round(batch_size * rows / max(examples, 1)))


def _is_prompt_learning(model: torch.nn.Module) -> bool:
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


@torch.no_grad()
def check_packed_attention(model: torch.nn.Module) -> None:
    """Refuse (TunevalError) a model on which packed examples would see each other.

    Runs two packed rows of two 4-token examples, then again with the first example of each row
    changed: the second example's logits must not move. Cheap (16 tokens), and it tests the setup
    as it will train: attention implementation, PEFT wrapper, `config.use_cache`. It runs in
    training mode, each forward from the same forked RNG state (so dropout draws the same masks and
    the run's own RNG stream is untouched): an inference forward would change some modules for good
    (bitsandbytes repacks 4-bit weights for its CPU inference kernel on the first one).
    """
    vocab = model.get_input_embeddings().num_embeddings
    ids = torch.tensor([[3, 4, 5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 7, 8, 9, 10]]) % vocab
    other = ids.clone()
    other[:, :4] = (ids[:, :4] + 5) % vocab
    pos = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3]] * 2)
    device = next(model.parameters()).device

    def second_examples(input_ids: torch.Tensor) -> torch.Tensor:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(0)
            return model(input_ids=input_ids.to(device), position_ids=pos.to(device)).logits[:, 4:].float()

    was_training = model.training
    model.train()
    try:
        a, b = second_examples(ids), second_examples(other)
    except Exception as e:  # e.g. a FlashAttention kernel on a CPU: packing cannot be shown safe, so no packing
        raise TunevalError(f"data.packing: could not check that packed examples stay apart ({first_line(e)}); "
                           "set data.packing: false") from None
    finally:
        model.train(was_training)
    if not torch.allclose(a, b, rtol=1e-3, atol=1e-3 * (1 + float(a.abs().max()))):
        config = getattr(model, "config", None)
        attn = getattr(config, "_attn_implementation", None) or "this"
        cache = " with config.use_cache true" if getattr(config, "use_cache", False) else ""
        raise TunevalError(f"data.packing: packed examples see each other under {attn} attention{cache} (transformers "
                           "separates them by position_ids for sdpa and eager attention); set data.packing: false, "
                           "or model_args.attn_implementation: sdpa")


def packing_applies(wanted: bool, arch: str, model: torch.nn.Module) -> bool:
    """Whether this run trains on packed rows: `data.packing`, for a causal LM whose method keeps
    position_ids (not PEFT prompt learning); refused (TunevalError) where examples would leak."""
    if not wanted or arch != "causal" or _is_prompt_learning(model):
        return False
    check_packed_attention(model)
    return True
