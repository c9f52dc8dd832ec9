"""The report's charts: matplotlib figures inlined as SVG.

Why matplotlib rather than a JavaScript plotting library: it is already a dependency, the
report stays far under its 10 MB budget (plotly.js alone is ~4.6 MB, once per file), the
page has no chart code to parse before it is usable, and the charts are the same vector
drawings in a browser, a print-out or a screenshot. Hover values are the tables' job.
Each SVG gets its ids prefixed, since matplotlib reuses glyph and clip-path ids across figures
and one HTML document holds many.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from tuneval.evaluate.forgetting import COLORS as VERDICT_COLORS
from tuneval.metrics.text import SCALE_100

GENERATION_CURVES = ("rougeL", "rouge1", "rougeLsum", "rouge2", "bleu")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def palette(labels: Iterable[str]) -> dict[str, str]:
    """One colour per model, the same in every chart."""
    from matplotlib import colormaps

    labels = list(dict.fromkeys(labels))
    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {lab: _hex(cmap(i % cmap.N)) for i, lab in enumerate(labels)}


def _hex(rgba) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgba[:3])


def svg_text(fig, prefix: str, title: str) -> str:
    """The figure as an inline <svg> (see inline_svg)."""
    import matplotlib

    plt = _plt()
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "tuneval", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    plt.close(fig)
    return inline_svg(buf.getvalue(), prefix, title)


def inline_svg(text: str, prefix: str, title: str) -> str:
    """An SVG file made fit for an HTML page: ids made unique, scaled to its container, titled for screen readers."""
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = re.sub(r'(xlink:href|href)="#([^"]+)"', lambda m: f'{m.group(1)}="#{prefix}-{m.group(2)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", text)
    head_end = text.index(">")
    head = text[:head_end]
    width = re.search(r'width="([\d.]+)pt"', head)
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    max_w = f' style="max-width:{float(width.group(1)) * 4 / 3:.0f}px"' if width else ""
    return (f'{head} class="chart" role="img" aria-label="{escape(title)}"{max_w}>'
            f"<title>{escape(title)}</title>" + text[head_end + 1:])


def _ci_err(values, lows, highs) -> np.ndarray:
    v, lo, hi = (np.array([np.nan if x is None else x for x in a], float) for a in (values, lows, highs))
    return np.nan_to_num(np.vstack([v - lo, hi - v]).clip(min=0))


def metric_bars(rows: list[dict[str, Any]], metrics: tuple[str, ...], colors: dict[str, str], prefix: str) -> str:
    """One panel per metric, one bar per model, whiskers at the 95% interval where there is one."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.3 * len(metrics) + 0.6, 3.4), squeeze=False)
    labels = [r["label"] for r in rows]
    x = np.arange(len(rows))
    for ax, m in zip(axes[0], metrics):
        vals = [r["metrics"].get(m, np.nan) for r in rows]
        ci = [r["ci"].get(m, {}) for r in rows]
        err = _ci_err(vals, [c.get("ci_low", v) for c, v in zip(ci, vals)], [c.get("ci_high", v) for c, v in zip(ci, vals)])
        ax.bar(x, vals, yerr=err, color=[colors[lab] for lab in labels], capsize=3, error_kw={"linewidth": 1})
        ax.set_title(m + (" (0-100)" if m in SCALE_100 else ""), fontsize=10)
        ax.set_xticks(x, labels, rotation=35 if len(rows) > 3 else 0, ha="right" if len(rows) > 3 else "center",
                      fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    fig.suptitle("scores per model (whiskers: 95% bootstrap interval)", fontsize=10)
    fig.tight_layout()
    return svg_text(fig, prefix, "bar chart of " + ", ".join(metrics) + " per model with 95% intervals")


def _steps(log: list[dict], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["step"], r[key]) for r in log if key in r and "step" in r and r[key] is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def generation_curve_key(runs) -> str | None:
    """The task metric to draw per step: the one a run kept its best checkpoint by, else ROUGE-L, else the first."""
    from tuneval.train.curves import eval_metric_names

    names = list(dict.fromkeys(n for run in runs for n in eval_metric_names(run.log)))
    for run in runs:
        best = "eval_" + str(run.metrics.get("metric_for_best_model") or "").removeprefix("eval_")
        if best in names:
            return best
    return next((f"eval_{k}" for k in GENERATION_CURVES if f"eval_{k}" in names), names[0] if names else None)


def curves(runs, colors: dict[str, str], prefix: str) -> str | None:
    """Training loss, validation loss and a generation metric against step, runs overlaid; a star
    and a dotted line at each run's best step (when it kept a best checkpoint)."""
    gen = generation_curve_key(runs)
    panels = [(k, t) for k, t in (("loss", "training loss"), ("eval_loss", "validation loss"),
                                  (gen, (gen or "").removeprefix("eval_") + " (validation, per step)"))
              if k and any(_steps(r.log, k)[0] for r in runs)]
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        for run in runs:
            xs, ys = _steps(run.log, key)
            if not xs:
                continue
            ax.plot(xs, ys, "-" if len(xs) > 30 else "-o", markersize=3, linewidth=1.3, color=colors[run.label],
                    label=run.label)
            best = run.metrics.get("best_step")
            if best is not None:
                ax.axvline(best, color=colors[run.label], linestyle=":", linewidth=1)
                at = int(np.argmin([abs(s - best) for s in xs]))
                ax.plot([xs[at]], [ys[at]], "*", markersize=12, color=colors[run.label], markeredgecolor="black",
                        markeredgewidth=0.6)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if any(r.metrics.get("best_step") is not None for r in runs):
        handles.append(plt.Line2D([], [], marker="*", linestyle=":", color="gray", markeredgecolor="black",
                                  markersize=10))
        labels.append("best step")
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    fig.set_layout_engine("constrained")
    return svg_text(fig, prefix, "training curves: " + ", ".join(t for _, t in panels) + " per step")


COST = (("trainable_params", "trainable parameters", True), ("checkpoint_mb", "size on disk (MB)", True),
        ("peak_memory_mb", "peak memory (MB)", False), ("train_tokens_per_second", "training tokens/s", False),
        ("train_seconds", "wall time (s)", False))


def cost_bars(rows: list[tuple[str, dict]], colors: dict[str, str], prefix: str) -> str | None:
    panels = [c for c in COST if any(m.get(c[0]) is not None for _, m in rows)]
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(2.5 * len(panels) + 1, 0.35 * len(rows) + 1.6), squeeze=False,
                             sharey=True)
    y = np.arange(len(rows))[::-1]
    for ax, (key, title, log) in zip(axes[0], panels):
        vals = [m.get(key) or 0 for _, m in rows]
        ax.barh(y, vals, color=[colors[lab] for lab, _ in rows])
        if log and min(vals) > 0:
            from matplotlib.ticker import NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
        ax.tick_params(axis="x", labelsize=7)
    axes[0][0].set_yticks(y, [lab for lab, _ in rows], fontsize=8)
    fig.tight_layout()
    return svg_text(fig, prefix, "cost per run: " + ", ".join(t for _, t, _ in panels))


def _points(metric: str) -> float:
    return 1.0 if metric in SCALE_100 else 100.0


def forgetting_rows(result: dict[str, Any]) -> list[tuple[str, dict]]:
    """Groups, then tasks; MMLU subjects folded into their categories, as forgetting.md shows them."""
    fold = "mmlu" in result.get("groups", {})
    return list(result.get("groups", {}).items()) + [(n, r) for n, r in result["tasks"].items()
                                                      if not (fold and n.startswith("mmlu_"))]


def forgetting_chart(rows: list[tuple[str, dict]], sides: dict[str, dict | None], prefix: str, title: str) -> str:
    """Left: each task before and after (95% interval of each side where saved); right: the paired
    change and its interval, coloured by verdict. In points: [0,1] metrics x100."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 0.32 * len(rows) + 1.8), sharey=True,
                                   gridspec_kw={"width_ratios": [1.2, 1]})
    y = np.arange(len(rows))[::-1]
    for side, offset, color in (("before", 0.15, "#5c6bc0"), ("after", -0.15, "#ef6c00")):
        vals, lo, hi = [], [], []
        for name, r in rows:
            s = _points(r["metric"])
            saved = (sides.get(side) or {})
            ci = saved.get("groups", {}).get(name) or saved.get("tasks", {}).get(name) or {}
            vals.append(r[side] * s)
            lo.append(ci.get("ci_low", r[side]) * s)
            hi.append(ci.get("ci_high", r[side]) * s)
        ax1.errorbar(vals, y + offset, xerr=_ci_err(vals, lo, hi), fmt="o", color=color, markersize=4, capsize=2,
                     linewidth=1, label=side)
    ax1.set_yticks(y, [f"{n} ({r['metric']})" for n, r in rows], fontsize=8)
    ax1.set_xlabel("score (points)")
    ax1.set_title("before and after", fontsize=10)
    ax1.legend(fontsize=8, loc="best")
    ax1.grid(axis="x", alpha=0.3)
    scale = [_points(r["metric"]) for _, r in rows]
    deltas = [r["delta"] * s for (_, r), s in zip(rows, scale)]
    err = _ci_err(deltas, [r["ci_low"] * s for (_, r), s in zip(rows, scale)],
                  [r["ci_high"] * s for (_, r), s in zip(rows, scale)])
    ax2.barh(y, deltas, xerr=err, color=[VERDICT_COLORS.get(r["verdict"], "#9e9e9e") for _, r in rows], capsize=3)
    ax2.axvline(0, color="black", linewidth=0.8)
    ax2.set_xlabel("after - before (points; 95% paired interval)")
    ax2.set_title("change and verdict", fontsize=10)
    ax2.legend([plt.Rectangle((0, 0), 1, 1, color=c) for c in VERDICT_COLORS.values()], list(VERDICT_COLORS),
               fontsize=8, loc="best")
    ax2.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return svg_text(fig, prefix, f"forgetting: {title}; per-task before/after and change with verdicts")


def sweep_chart(data: dict[str, Any], prefix: str, title: str) -> str:
    """sweep.py's own plot, written as SVG instead of PNG."""
    import matplotlib


    with tempfile.TemporaryDirectory() as tmp, matplotlib.rc_context({"svg.hashsalt": "tuneval"}):
        path = plot_sweep(data["rows"], list(data["grid"]), Path(tmp) / "sweep.svg")
        fig_svg = path.read_text(encoding="utf-8")
    return inline_svg(fig_svg, prefix, f"sweep: {title}")


def suite_bars(rows: list[tuple[str, str, list[dict | None]]], labels: list[str], colors: dict[str, str],
               prefix: str) -> str:
    """Benchmark tasks (rows: name, metric, one summary row per model), grouped bars with intervals."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(min(0.5 * len(rows) * max(len(labels), 1) + 2, 14), 3.6))
    x = np.arange(len(rows))
    width = 0.8 / max(len(labels), 1)
    for i, lab in enumerate(labels):
        cells = [r[2][i] or {} for r in rows]
        vals = [c.get("value", np.nan) for c in cells]
        err = _ci_err(vals, [c.get("ci_low", v) for c, v in zip(cells, vals)],
                      [c.get("ci_high", v) for c, v in zip(cells, vals)])
        ax.bar(x + (i - (len(labels) - 1) / 2) * width, vals, width, yerr=err, capsize=2, color=colors[lab], label=lab)
    ax.set_xticks(x, [f"{n}\n({m})" for n, m, _ in rows], fontsize=8, rotation=30 if len(rows) > 8 else 0)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title("benchmark scores (whiskers: 95% bootstrap interval)", fontsize=10)
    fig.tight_layout()
    return svg_text(fig, prefix, "benchmark scores per task and model with 95% intervals")


def plot_sweep(rows: list[dict[str, Any]], keys: list[str], path: Path, title: str = "") -> Path:
    """Scores (left) and validation loss (right) against the first grid key; one line set per other-key combination."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_key, others = keys[0], keys[1:]
    xs_all = [r["point"][x_key] for r in rows]
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs_all)
    categories = list(dict.fromkeys(map(str, xs_all)))
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r["point"][k] for k in others), []).append(r)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for group, rs in groups.items():
        rs = sorted(rs, key=lambda r: r["point"][x_key] if numeric else categories.index(str(r["point"][x_key])))
        xs = [r["point"][x_key] if numeric else categories.index(str(r["point"][x_key])) for r in rs]
        suffix = (" (" + ", ".join(f"{k}={v}" for k, v in zip(others, group)) + ")") if others else ""
        for metric, style in (("rouge1", "-o"), ("rouge2", "-s"), ("rougeL", "-^")):
            ax1.plot(xs, [r[metric] for r in rs], style, label=f"{metric.replace('rouge', 'ROUGE-')}{suffix}")
        ax1.plot(xs, [r["bleu"] / 100 for r in rs], "--d", label=f"BLEU/100{suffix}")
        ax2.plot(xs, [r["val_loss"] for r in rs], "-o", label=f"validation loss{suffix}")
    for ax in (ax1, ax2):
        if numeric and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 8:
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(set(xs_all)), [str(x) for x in sorted(set(xs_all))])
        elif not numeric:
            ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
        ax.set_xlabel(x_key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax1.set_ylabel("score (F1 / BLEU/100)")
    ax1.set_title("validation scores")
    ax2.set_ylabel("mean token loss")
    ax2.set_title("validation loss")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
