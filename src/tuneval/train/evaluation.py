"""The recipe's `eval:` section as one object, used during training and on the result.

During training the Trainer computes the validation loss on `loss_examples` (teacher-forced,
formatted exactly as training formats them) and `TaskEvaluation.metrics` adds the task's own
metrics at the same step: ROUGE-1/2/L/Lsum and corpus BLEU from batched greedy generation
for generation tasks, or the benchmark's log-likelihood metrics (acc, balanced_acc, ...) for a
task that is also a multiple-choice benchmark (sst2, rte, cb, trec, agnews). The examples are
the first `eval.limit` of `eval.split`, the same ones every time, so the curve compares like
with like. No evaluation framework of the field does generation metrics during training well
(LLaMA-Factory runs them only in a separate predict pass), and picking the checkpoint by ROUGE
rather than by loss is what a summarisation user wants.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from tuneval.config import Recipe
from tuneval.errors import TunevalError
from tuneval.results import EvalDir
from tuneval.runs import RunDir


class TaskEvaluation:
    """Fixed validation examples of the recipe's task, and how to score a model on them."""

    def __init__(self, recipe: Recipe, tokenizer, arch: str):
        from tuneval.data.collate import PromptFormatter
        from tuneval.tasks import load_rows
        from tuneval.tasks.mixtures import recipe_registry

        self.recipe, self.tokenizer, self.arch = recipe, tokenizer, arch
        e, d = recipe.eval, recipe.data
        self.task = recipe_registry(recipe).task(recipe.task)
        rows = load_rows(self.task, e.split, d.data_dir)[: e.limit]  # fails now, before any training
        if not rows:
            raise TunevalError(f"task '{recipe.task}': split '{e.split}' has no rows to evaluate on")
        fmt = PromptFormatter(tokenizer, arch, d.chat_template, d.max_seq_len, d.max_target_tokens)
        # Plain text (format text): nothing to generate, so the held-out documents are scored by loss and
        # perplexity, in blocks as training packs them.
        self.text = self.task.conversational and all("text" in r for r in rows)
        if self.text:
            self.index, self.loss_examples = None, fmt.text_examples([r["text"] for r in rows])
        elif self.task.conversational:  # your own data: its conversations, labelled as training labels them
            self.index = None
            self.loss_examples = [fmt.record_example(r) for r in rows if "messages" in r]
        else:
            self.index = self.task.template_index(e.template, "eval.template")  # fails now too
            self.loss_examples = [fmt.training_example(self.task.templates, self.index, row, self.task.input_fields)
                                  for row in rows]
        # A multiple-choice task is scored by log-likelihood over its choices; anything else by
        # greedy generation with the evaluation template, as `tuneval eval --task` scores it.
        self.multiple_choice = self.task.output_type == "multiple_choice" and self.task.doc_to_text is not None
        self.primary = self.task.primary_metric if self.multiple_choice else "perplexity" if self.text else "rouge1"

    @property
    def size(self) -> int:
        return len(self.loss_examples)

    def metrics(self, model, *, out_dir: str | Path | None = None, label: str = "model",
                meta: dict[str, Any] | None = None, bootstrap_iters: int = 0) -> dict[str, float]:
        """The task's metrics for `model` on the fixed examples; per-example results go to out_dir
        (with `bootstrap_iters` resamples for their intervals: none during training, where only
        the values are logged)."""
        from tuneval.evaluate.harness import run_task
        from tuneval.metrics.text import HEADLINE
        from tuneval.metrics.tool_calls import TOOL_CALL_METRICS

        if self.text:
            return {"perplexity": math.exp(min(self.loss(model), 700.0))}
        e, d = self.recipe.eval, self.recipe.data
        result = run_task(model, self.tokenizer, self.arch, self.task, split=e.split, limit=e.limit,
                          template=None if self.multiple_choice else self.index, data_dir=d.data_dir,
                          batch_size=e.batch_size, max_new_tokens=e.max_new_tokens, max_seq_len=d.max_seq_len,
                          chat_template=d.chat_template, bootstrap_iters=bootstrap_iters, label=label, meta=meta,
                          out_file=None if out_dir is None else EvalDir(out_dir).results_file, report=True)
        if self.multiple_choice:
            return {k: float(v) for k, v in result["metrics"].items() if isinstance(v, (int, float))}
        tools = [k for k in TOOL_CALL_METRICS if k in result["metrics"]]  # a tool-calling conversation's
        return {k: float(result["metrics"][k]) for k in (*HEADLINE, *tools)}

    @torch.no_grad()
    def loss(self, model) -> float:
        """Mean per-token validation loss, as the Trainer's eval_loss counts it."""
        from tuneval.data.collate import DataCollator
        from tuneval.train.loss import causal_lm_loss, cheap_loss_shift

        collate = DataCollator(self.tokenizer.pad_token_id)
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        # Logits at labelled positions only, as training computes them: the model's own loss would
        # project every position of a 16-row batch onto the whole vocabulary (GBs) to keep ~20% of them.
        shift = cheap_loss_shift(model)
        total, count = 0.0, 0
        step = self.recipe.eval.batch_size
        for start in range(0, self.size, step):
            batch = {k: v.to(device) for k, v in collate(self.loss_examples[start:start + step]).items()}
            n = int((batch["labels"] != -100).sum())
            if shift is None:
                loss = model(**batch).loss
            else:
                loss, _ = causal_lm_loss(model, batch, shift=shift)
            total += float(loss) * n
            count += n
        model.train(was_training)
        return total / count if count else math.nan


def evaluate_result(recipe: Recipe, evaluation: TaskEvaluation, run_dir: Path) -> dict[str, Any]:
    """The recipe's eval section on the saved result, reloaded as `tuneval eval --adapter RUN` loads it."""
    from tuneval.methods.loading import load_result

    loaded, net = load_result(recipe.model, run_dir, precision=recipe.precision, args=recipe.model_args,
                              merge=recipe.eval.merge)
    net.eval()
    scores = evaluation.metrics(net, out_dir=RunDir(run_dir).eval_dir, label=recipe.method,
                                meta={"model": recipe.model, "run": str(run_dir), **loaded.meta}, bootstrap_iters=1000)
    loss = {"loss": evaluation.loss(net)} if recipe.eval.loss else {}
    return {"split": recipe.eval.split, "examples": evaluation.size, "precision": loaded.precision, **loss, **scores}


class TaskMetricsMixin:
    """Puts the task's metrics into the Trainer's own evaluation: the same step, the same log
    record (eval_loss, eval_rouge1, ...), so `metric_for_best_model: rouge1` and
    load_best_model_at_end work as TrainingArguments documents them."""

    task_evaluation: TaskEvaluation | None = None

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        output = super().evaluation_loop(dataloader, description, prediction_loss_only=prediction_loss_only,
                                         ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        if self.task_evaluation is not None:
            model = self.model
            cache = model.config.use_cache
            model.config.use_cache = True  # generation without the KV cache is quadratic
            device = next(model.parameters()).device.type
            try:  # at the training precision: PEFT's generate bypasses the autocast forward accelerate added
                with torch.autocast(device, dtype=torch.bfloat16, enabled=bool(self.args.bf16)):
                    scores = self.task_evaluation.metrics(model, label=f"eval step {self.state.global_step}")
            finally:
                model.config.use_cache = cache
            output.metrics.update({f"{metric_key_prefix}_{k}": v for k, v in scores.items()})
        return output


def with_task_metrics(trainer_cls: type) -> type:
    """`trainer_cls` whose evaluation also reports the task's metrics (see TaskMetricsMixin)."""
    return type(f"{trainer_cls.__name__}WithTaskMetrics", (TaskMetricsMixin, trainer_cls), {})
