"""Evaluation: the harness that scores a task (harness.py), generation and log-likelihood scoring,
suites and their summaries, forgetting comparisons, reports, and scoring over several processes.
The public entry is `tuneval.simple_evaluate` (api.py)."""
