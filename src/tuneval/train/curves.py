"""curves.png: what a run did, step by step, from its log alone.

Left: training loss and validation loss against step. Right: the task's metric at each
evaluation (ROUGE-1, or a benchmark's accuracy). The kept (best) step is marked on both.
Drawn from train_log.jsonl records (the Trainer's log_history), so any run directory,
including one killed half-way, can be drawn again later (`plot_curves`).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from tuneval.io import atomic_write_bytes

SKIP = ("eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "eval_examples")


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Records of a train_log.jsonl; a line cut off by a kill is skipped."""
    out = []
    p = Path(path)
    if not p.is_file():
        return out
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def eval_metric_names(log: list[dict[str, Any]]) -> list[str]:
    """eval_* metrics other than the loss, in first-seen order."""
    names: list[str] = []
    for r in log:
        names += [k for k, v in r.items() if k.startswith("eval_") and k not in SKIP and k not in names
                  and isinstance(v, (int, float))]
    return names


def plot_curves(log: list[dict[str, Any]], path: str | Path, *, metric: str | None = None,
                best_step: int | None = None, title: str = "") -> Path | None:
    """Write the figure (atomically); None when the log has no loss to draw yet."""
    train = [(r["step"], r["loss"]) for r in log if "loss" in r and "step" in r]
    val = [(r["step"], r["eval_loss"]) for r in log if "eval_loss" in r and "step" in r]
    if not train and not val:
        return None
    names = eval_metric_names(log)
    key = f"eval_{metric}" if metric and f"eval_{metric}" in names else (names[0] if names else None)
    scores = [(r["step"], r[key]) for r in log if key and key in r and "step" in r]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if scores else 1, figsize=(11 if scores else 6, 4), squeeze=False)
    ax = axes[0][0]
    if train:
        ax.plot(*zip(*train), label="training loss", color="tab:blue")
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss", color="tab:orange")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if scores:
        ax2 = axes[0][1]
        ax2.plot(*zip(*scores), "o-", color="tab:green", label=key.removeprefix("eval_"))
        ax2.set_xlabel("step")
        ax2.set_ylabel(key.removeprefix("eval_"))
        ax2.grid(alpha=0.3)
    if best_step is not None:
        for a in axes[0]:
            a.axvline(best_step, color="tab:red", linestyle="--", alpha=0.7, label=f"kept: step {best_step}")
    for a in axes[0]:
        a.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=110)
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())

