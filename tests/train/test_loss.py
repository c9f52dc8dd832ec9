"""The cheap causal-LM loss equals the standard one (value and gradients), for every method."""

from __future__ import annotations

import pytest
import torch
from transformers import Trainer, TrainingArguments

from tuneval.data.collate import IGNORE_INDEX, DataCollator
from tuneval.methods import get_method
from tuneval.models import load_model
from tuneval.train.loss import FastCausalTrainer, causal_lm_loss, labelled_positions, virtual_tokens

METHODS = ["lora", "full", "prompt_tuning", "prefix_tuning", "ia3", "ln_tuning", "freeze", "adapters", "qlora"]
LEVERS = [("labels", True), ("labels", False), ("all", True)]


def examples(n=5, seed=0, vocab=300):
    """Rows of different lengths, prompt labelled -100, a response of 3-9 tokens."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        prompt = torch.randint(10, vocab, (int(torch.randint(4, 20, (1,), generator=g)),), generator=g).tolist()
        response = torch.randint(10, vocab, (int(torch.randint(3, 10, (1,), generator=g)),), generator=g).tolist()
        rows.append({"input_ids": prompt + response, "labels": [IGNORE_INDEX] * len(prompt) + response})
    return rows


def trained_model(model_dir, method):
    loaded = load_model(str(model_dir))
    spec = get_method(method)
    torch.manual_seed(3)
    model = spec.apply(loaded.model, spec.settings(), loaded.arch)
    with torch.no_grad():  # LoRA B (and IA3 scales) start at identity: move them so their gradients matter
        for name, p in model.named_parameters():
            if p.requires_grad and ("lora_B" in name or "ia3_" in name):
                p.add_(torch.randn_like(p) * 0.05)
    model.train()
    return model, loaded


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


@pytest.mark.parametrize("method", METHODS)
def test_same_loss_and_gradients_as_standard_path(tiny_llama_dir, method):
    model, loaded = trained_model(tiny_llama_dir, method)
    for module in model.modules():  # dropout off, so two forwards see the same network
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    batch = DataCollator(loaded.tokenizer.pad_token_id)(examples())
    assert (batch["attention_mask"] == 0).any()  # real padding in the batch
    n_items = (batch["labels"][:, 1:] != IGNORE_INDEX).sum()
    for num_items in (None, n_items):
        kwargs = {} if num_items is None else {"num_items_in_batch": num_items}
        model.zero_grad()
        reference = model(**batch, **kwargs).loss
        reference.backward()
        expected = grads(model)
        assert expected
        for keep, drop in LEVERS:
            model.zero_grad()
            loss, out = causal_lm_loss(model, batch, num_items, shift=virtual_tokens(model),
                                       logits_to_keep=keep, drop_padding_mask=drop)
            loss.backward()
            torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-5)
            got = grads(model)
            assert got.keys() == expected.keys()
            for name in expected:
                torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-5, msg=name)
            if keep == "labels":  # logits only where a next-token label is
                assert out.logits.shape == (int(n_items), model.config.vocab_size)


def test_labelled_positions_with_prepended_tokens():
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, 7, 8, 9, 10]])
    keep, targets = labelled_positions(labels)
    assert keep.tolist() == [[False, True, True, False, False], [True, True, True, True, False]]
    assert targets.tolist() == [5, 6, 7, 8, 9, 10]
    keep, _ = labelled_positions(labels, shift=2)
    assert keep.shape == (2, 7) and not keep[:, :2].any() and keep[:, 2:].tolist() == labelled_positions(labels)[0].tolist()


def test_left_padding_keeps_the_mask(tiny_llama_dir):
    """Left pads come before real tokens, so the mask matters there: it must not be dropped."""
    model, loaded = trained_model(tiny_llama_dir, "lora")
    model.eval()
    rows = examples(3, seed=4)
    longest = max(len(r["input_ids"]) for r in rows)
    pad = loaded.tokenizer.pad_token_id
    batch = {
        "input_ids": torch.tensor([[pad] * (longest - len(r["input_ids"])) + r["input_ids"] for r in rows]),
        "attention_mask": torch.tensor([[0] * (longest - len(r["input_ids"])) + [1] * len(r["input_ids"]) for r in rows]),
        "labels": torch.tensor([[IGNORE_INDEX] * (longest - len(r["labels"])) + r["labels"] for r in rows]),
    }
    with torch.no_grad():
        reference = model(**batch).loss
        loss, _ = causal_lm_loss(model, batch, drop_padding_mask=True)
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-5)


def _train(trainer_cls, model_dir, tmp_path, **extra):
    loaded = load_model(str(model_dir))
    spec = get_method("lora")
    torch.manual_seed(0)
    model = spec.apply(loaded.model, spec.settings(), loaded.arch)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=3, gradient_accumulation_steps=2,
                             max_steps=3, learning_rate=5e-2, logging_steps=1, save_strategy="no", report_to="none",
                             use_cpu=True, disable_tqdm=True, seed=0, remove_unused_columns=False)
    data = examples(18, seed=1) if loaded.arch == "causal" else [
        {"input_ids": r["input_ids"], "labels": [t for t in r["labels"] if t != IGNORE_INDEX]} for r in examples(18, seed=1)]
    trainer = trainer_cls(model=model, args=args, train_dataset=data,
                          data_collator=DataCollator(loaded.tokenizer.pad_token_id), **extra)
    trainer.train()
    return [r["loss"] for r in trainer.state.log_history if "loss" in r]


def test_trainer_loss_trajectory_matches_standard_trainer(tiny_model_dir, tmp_path):
    """Three optimizer steps with gradient accumulation: same logged losses (seq2seq takes the standard path)."""
    standard = _train(Trainer, tiny_model_dir, tmp_path / "a")
    fast = _train(FastCausalTrainer, tiny_model_dir, tmp_path / "b")
    assert len(standard) == 3
    assert fast == pytest.approx(standard, rel=1e-4)


def _recipe(model_dir, data_dir, out, **train_opts):
    from tuneval.config import recipe_from_dict

    return recipe_from_dict({
        "model": str(model_dir), "task": "dialogsum", "method": "lora", "seed": 7, "output_dir": str(out),
        "data": {"data_dir": str(data_dir), "train_examples": 12, "max_seq_len": 256},
        "lora": {"lora_dropout": 0.0},
        "train": {"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1e-2, "logging_steps": 1,
                  "save_steps": 50, **train_opts},
        "eval": {"after_training": False},  # only the training batches' widths are recorded
    }, "test")


def test_each_lever_switch_gives_the_same_training(tiny_llama_dir, tiny_data_dir, tmp_path, monkeypatch):
    """tuneval's default path vs each lever turned off (and pad_to_multiple_of on): same losses, right shapes."""
    from tuneval.train.trainer import train

    from tuneval.data.packing import PackedCollator

    widths = []

    def recording(original):
        def call(self, features):
            batch = original(self, features)
            widths.append(batch["input_ids"].shape[1])
            return batch
        return call

    for collator in (DataCollator, PackedCollator):  # packed rows (data.packing, the default) or padded examples
        monkeypatch.setattr(collator, "__call__", recording(collator.__call__))
    default, *_ = train(_recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "default"))
    assert widths and any(w % 64 for w in widths)
    for name, opts in {"all_logits": {"logits_to_keep": "all"}, "mask": {"drop_padding_mask": False},
                       "standard": {"logits_to_keep": "all", "drop_padding_mask": False},
                       "pad64": {"pad_to_multiple_of": 64}}.items():
        widths.clear()
        other, *_ = train(_recipe(tiny_llama_dir, tiny_data_dir, tmp_path / name, **opts))
        assert other["train_loss"] == pytest.approx(default["train_loss"], rel=1e-5), name
        assert other["train_tokens"] == default["train_tokens"]  # real tokens counted, never pads
        if name == "pad64":
            assert widths and all(w % 64 == 0 for w in widths)


def test_bad_lever_values_are_named(tiny_llama_dir, tiny_data_dir, tmp_path):
    from tuneval.errors import TunevalError
    from tuneval.train.trainer import train

    with pytest.raises(TunevalError, match="train.logits_to_keep"):
        train(_recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "a", logits_to_keep="response"))
    with pytest.raises(TunevalError, match="train.pad_to_multiple_of"):
        train(_recipe(tiny_llama_dir, tiny_data_dir, tmp_path / "b", pad_to_multiple_of=0))


def test_evaluation_keeps_full_logits(tiny_llama_dir, tmp_path):
    """Trainer.evaluate / predict see the standard (batch, seq, vocab) logits and the same loss."""
    loaded = load_model(str(tiny_llama_dir))
    model = get_method("lora").apply(loaded.model, get_method("lora").settings(), loaded.arch)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=4, report_to="none", use_cpu=True,
                             remove_unused_columns=False)
    data = examples(6, seed=2)
    results = {}
    for cls in (Trainer, FastCausalTrainer):
        trainer = cls(model=model, args=args, eval_dataset=data, data_collator=DataCollator(loaded.tokenizer.pad_token_id))
        prediction = trainer.predict(data)
        assert prediction.predictions.shape[0] == 6 and prediction.predictions.shape[-1] == model.config.vocab_size
        results[cls.__name__] = prediction.metrics["test_loss"]
    assert results["FastCausalTrainer"] == pytest.approx(results["Trainer"], rel=1e-6)


class LmHeadRows:
    """Counts the positions the lm_head projects, to tell the cheap loss from the standard one."""

    def __init__(self, model):
        head = model.get_output_embeddings()
        self.rows = 0
        self.handle = head.register_forward_hook(lambda m, args, out: self._add(out))

    def _add(self, out):
        self.rows += out.shape[:-1].numel()


@pytest.mark.parametrize("method, bf16", [("lora", False), ("prompt_tuning", False), ("prefix_tuning", False),
                                         ("lora", True)])
def test_loss_only_evaluation_takes_the_cheap_loss(tiny_llama_dir, tmp_path, method, bf16):
    """Trainer.evaluate without compute_metrics (how tuneval evaluates while training): the same
    eval_loss as the standard Trainer, with logits only at labelled positions; under bf16 autocast
    too (the path a native-bf16 host takes), where the lm_head's bf16 rounding may differ slightly."""
    model, loaded = trained_model(tiny_llama_dir, method)
    model.eval()
    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=4, report_to="none", use_cpu=True,
                             remove_unused_columns=False, bf16=bf16)
    data = examples(7, seed=4)
    labelled = sum(sum(1 for x in r["labels"][1:] if x != IGNORE_INDEX) for r in data)
    losses, rows = {}, {}
    for cls in (Trainer, FastCausalTrainer):
        counter = LmHeadRows(model)
        trainer = cls(model=model, args=args, eval_dataset=data, data_collator=DataCollator(loaded.tokenizer.pad_token_id))
        losses[cls.__name__] = trainer.evaluate()["eval_loss"]
        counter.handle.remove()
        rows[cls.__name__] = counter.rows
    assert losses["FastCausalTrainer"] == pytest.approx(losses["Trainer"], rel=1e-3 if bf16 else 1e-5)
    assert rows["FastCausalTrainer"] == labelled < rows["Trainer"]


def test_task_evaluation_loss_projects_labelled_positions_only(tiny_llama_dir, tiny_data_dir):
    """The validation loss of a saved result (eval.loss) equals the model's own loss, token-weighted
    over its batches, without full-vocabulary logits at every position."""
    from tuneval.config import recipe_from_dict
    from tuneval.train.evaluation import TaskEvaluation

    recipe = recipe_from_dict({"model": str(tiny_llama_dir), "task": "dialogsum", "method": "lora",
                               "data": {"data_dir": str(tiny_data_dir), "max_seq_len": 256},
                               "eval": {"limit": 6, "batch_size": 4}}, "test")
    model, loaded = trained_model(tiny_llama_dir, "lora")
    model.eval()
    evaluation = TaskEvaluation(recipe, loaded.tokenizer, loaded.arch)
    collate = DataCollator(loaded.tokenizer.pad_token_id)
    total = count = 0
    with torch.no_grad():
        for start in (0, 4):
            batch = collate(evaluation.loss_examples[start:start + 4])
            n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            total, count = total + float(model(**batch).loss) * n, count + n
    counter = LmHeadRows(model)
    assert evaluation.loss(model) == pytest.approx(total / count, rel=1e-5)
    assert counter.rows == count
