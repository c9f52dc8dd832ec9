"""A cheaper causal-LM training step with the same loss: logits only where a label is, no padding mask.

Two levers, each a recipe switch (train section), both exact:

* `logits_to_keep: labels` — the standard path projects every position onto the whole
  vocabulary (SmolLM2: 49,152 columns) and then throws most of it away: with a response-only
  loss (prompt positions are labelled -100) DialogSum keeps ~50 of ~260 positions a row. We
  ask the model for logits only at positions whose *next* token has a label (transformers'
  `logits_to_keep` takes a boolean (batch, seq) mask and returns a flat (kept, vocab) tensor),
  and take the same cross-entropy there. The fp32 logits (and their softmax and gradient)
  shrink ~5x, and so does the lm_head matmul's share of each step.
* `drop_padding_mask: true` — batches are right-padded and attention is causal, so no real
  token ever attends to a pad (pads only come after it). The 2-D attention mask then changes
  nothing for the positions that count, yet it makes SDPA build a (batch, 1, seq, seq) mask
  and leave its fused causal kernel. Without it, SDPA runs `is_causal=True`. The pads' own
  outputs change, but they carry no label and (with the lever above) get no logits.

Seq2seq models, and PEFT prompt-learning methods whose virtual tokens we cannot place, take
the standard path (`Trainer.compute_loss`). Loss normalisation mirrors transformers'
`ForCausalLMLoss` + `Trainer.compute_loss`: a sum over labelled tokens divided by
`num_items_in_batch` (all tokens in the accumulated, all-device batch) when the Trainer
passes it, else a mean; then times the number of processes under
`average_tokens_across_devices`, as the Trainer does for models that take loss kwargs.
"""

from __future__ import annotations

import inspect

import torch
from transformers import Trainer

from tuneval.config import check_logits_to_keep
from tuneval.data.collate import IGNORE_INDEX


def virtual_tokens(model: torch.nn.Module) -> int | None:
    """Positions PEFT prepends to the sequence the lm_head sees (0 for most methods); None if unknown."""
    config = getattr(model, "active_peft_config", None)
    if config is None or not getattr(config, "is_prompt_learning", False):
        return 0
    kind = str(getattr(config, "peft_type", "")).rsplit(".", 1)[-1]
    if kind in ("PROMPT_TUNING", "P_TUNING", "MULTITASK_PROMPT_TUNING"):
        return int(config.num_virtual_tokens)  # prompt embeddings are concatenated before the input
    if kind == "PREFIX_TUNING":
        return 0  # the prefix lives in the key/value cache, not in the sequence
    return None


def accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def cheap_loss_shift(model: torch.nn.Module, logits_to_keep: str = "labels") -> int | None:
    """The `shift` for `causal_lm_loss` on this model, or None where the cheap loss does not apply
    (seq2seq, a model that cannot take `logits_to_keep`, a prompt-learning kind of unknown layout)."""
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return None
    if logits_to_keep == "labels" and not accepts_logits_to_keep(model):
        return None
    return virtual_tokens(model)


def labelled_positions(labels: torch.Tensor, shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep, targets): keep[b, p] is True where labels[b, p + 1] is a real label (p counted after
    `shift` prepended positions); targets are those labels in the same row-major order."""
    nxt = labels[:, 1:] != IGNORE_INDEX
    keep = torch.zeros(labels.shape[0], labels.shape[1] + shift, dtype=torch.bool, device=labels.device)
    keep[:, shift:shift + labels.shape[1] - 1] = nxt
    return keep, labels[:, 1:][nxt]


def causal_lm_loss(model: torch.nn.Module, inputs: dict, num_items_in_batch=None, *, shift: int = 0,
                   logits_to_keep: str = "labels", drop_padding_mask: bool = True):
    """The causal-LM loss of `inputs` (input_ids, attention_mask, labels), computed the cheap way.

    Returns (loss, outputs); outputs.logits is (kept positions, vocab) with `logits_to_keep: labels`.
    """
    inputs = dict(inputs)
    labels = inputs.pop("labels")
    if drop_padding_mask and _right_padded(inputs.get("attention_mask")):
        inputs.pop("attention_mask", None)  # packed rows (data/packing.py) carry none
    keep, targets = labelled_positions(labels, shift)
    if logits_to_keep == "labels":
        outputs = model(**inputs, logits_to_keep=keep)
        logits = outputs.logits
        if logits.dim() == 3:  # a model that slices only by int: cut here
            logits = logits[keep]
    else:
        outputs = model(**inputs)
        logits = outputs.logits[keep]
    reduction = "sum" if num_items_in_batch is not None else "mean"
    loss = torch.nn.functional.cross_entropy(logits.float(), targets.to(logits.device), reduction=reduction)
    if num_items_in_batch is not None:
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(loss.device)
        loss = loss / num_items_in_batch
    return loss, outputs


def _right_padded(mask: torch.Tensor | None) -> bool:
    """True when every row is ones then zeros (or there is no mask): the pads come after the tokens."""
    if mask is None:
        return True
    m = mask.to(torch.int8)
    return bool((m[:, 1:] <= m[:, :-1]).all())


class FastCausalTrainer(Trainer):
    """transformers.Trainer with `causal_lm_loss` for causal LMs; anything else takes Trainer's own path."""

    def __init__(self, *args, logits_to_keep: str = "labels", drop_padding_mask: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.logits_to_keep = check_logits_to_keep(logits_to_keep)
        self.drop_padding_mask = drop_padding_mask

    def _fast_shift(self, model) -> int | None:
        return cheap_loss_shift(self.accelerator.unwrap_model(model), self.logits_to_keep)

    def _fast_path_shift(self, model, inputs) -> int | None:
        fast = self.logits_to_keep == "labels" or self.drop_padding_mask
        if not fast or "labels" not in inputs or self.label_smoother is not None or self.compute_loss_func is not None:
            return None
        return self._fast_shift(model)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # Training steps only: an evaluation that wants logits (prediction_step below when predictions are
        # kept) gets the (batch, seq, vocab) ones callers expect.
        shift = self._fast_path_shift(model, inputs) if model.training else None
        if shift is None:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        return self._fast_loss(model, inputs, num_items_in_batch, shift, return_outputs)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """An evaluation that keeps only the loss (Trainer.evaluate without compute_metrics, as tuneval
        evaluates during training) takes the training step's cheap loss too. The standard step
        computes (batch, seq, vocab) logits it then drops: for an eval batch of 16 DialogSum rows of
        400-520 tokens that is 1.2-1.6 GB of fp32 logits, and as much again for their log-softmax, which made
        evaluation, not training, the peak of a run that evaluates while it trains."""
        shift = self._fast_path_shift(model, inputs) if prediction_loss_only else None
        if shift is None:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        inputs = self._prepare_inputs(inputs)
        num_items_in_batch = self._get_num_items_in_batch([inputs], self.args.device)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self._fast_loss(model, inputs, num_items_in_batch, shift, False)
        return loss.detach().mean(), None, None

    def _fast_loss(self, model, inputs, num_items_in_batch, shift: int, return_outputs: bool):
        if not self.model_accepts_loss_kwargs:
            num_items_in_batch = None  # the standard path would take the model's per-batch mean
        loss, outputs = causal_lm_loss(model, inputs, num_items_in_batch, shift=shift,
                                       logits_to_keep=self.logits_to_keep, drop_padding_mask=self.drop_padding_mask)
        if self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            scale = self.accelerator.num_processes // self.get_tp_size()
            loss = loss * (scale if self.args.n_gpu <= 1 else self.args.n_gpu)
        return (loss, outputs) if return_outputs else loss
