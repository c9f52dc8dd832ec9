"""Metrics, registered where they are defined, apart from how a model produced its outputs.

text.py: ROUGE (per item) and corpus BLEU through rouge-score and sacrebleu; registry.py: the
metrics a task YAML may list (lm-eval names), per-item values kept apart from corpus statistics,
and the Scorer that recomputes them on bootstrap resamples; bootstrap.py: the resampling itself.
Nothing here knows about models or tasks, so the task model (tasks/) can check a YAML's
`metric_list` and evaluation, training and the report can all score the same way.
"""
