"""Evaluation: metrics (per item, then corpus), generation, reports, comparisons."""
