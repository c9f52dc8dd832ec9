"""The report's scorecard section: scenario x metric as a heat table, and before/after deltas.

Each cell is coloured on one scale, red (bad) to green (good), whatever the metric's direction:
accuracy, robustness, fairness and selective accuracy as they are; ECE, bias and toxicity as
1 - value; the fairness gap (<= 0) as 1 + gap. Intervals are printed under each value. In a
comparison a cell is green or red only where its paired interval excludes 0.
"""

from __future__ import annotations

from html import escape
from typing import Any

from tuneval.evaluate.scorecard import HEADLINE, LOWER_IS_BETTER, _verdict


def goodness(cell: str, value: float) -> float:
    """The cell's value on a 0 (bad) .. 1 (good) scale, for its colour."""
    score = 1 - value if cell in LOWER_IS_BETTER else 1 + value if cell == "fairness_gap" else value
    return min(max(score, 0.0), 1.0)


def _cell(name: str, c: dict | None) -> str:
    if not c:
        return "<td>-</td>"
    if c.get("value") is None:
        return f'<td class="text" title="{escape(c.get("note", ""))}">{escape((c.get("note") or "n/a").split(":")[0])}</td>'
    hue = round(120 * goodness(name, c["value"]))
    ci = (f'<br><span class="ci">[{c["ci_low"]:.3f}, {c["ci_high"]:.3f}]</span>' if c.get("ci_low") is not None else "")
    return f'<td data-v="{c["value"]:.6g}" style="background:hsl({hue},65%,85%)">{c["value"]:.3f}{ci}</td>'


def _table(head: list[str], rows: list[str]) -> str:
    return ('<div class="table-wrap"><table class="sortable"><thead><tr>' + "".join(f"<th>{escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")


def card_html(card: dict[str, Any]) -> str:
    rows = []
    for name, sc in card["scenarios"].items():
        eff = sc["efficiency"]
        rows.append(f"<tr><td>{escape(name)}</td><td>{sc['n']}</td><td>{escape(sc['metric'])}</td>"
                    + "".join(_cell(h, sc["cells"].get(h)) for h in HEADLINE)
                    + f"<td>{eff['seconds_per_example']:.3f}</td></tr>")
    note = (f"<p class=\"note\">{escape(str(card['label']))}: 95% bootstrap intervals over examples "
            f"({card['bootstrap_iters']} resamples, seed {card['seed']}); red is bad, green good, whatever the "
            "metric's direction (ECE, bias and toxicity: lower is better). Robustness and fairness: per example the "
            "worst score over the perturbations.</p>")
    return f"<h3>{escape(str(card['label']))}</h3>" + note + _table(["scenario", "n", "metric", *HEADLINE, "s/example"], rows)


def compare_html(result: dict[str, Any]) -> str:
    rows = []
    for name, cells in result["scenarios"].items():
        for cell, c in cells.items():
            if ":" in cell or c["delta"] is None:
                continue
            verdict = _verdict(c)
            color = {"better": "hsl(120,65%,85%)", "worse": "hsl(0,65%,85%)"}.get(verdict, "transparent")
            ci = f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]" if c["ci_low"] is not None else "-"
            rows.append(f"<tr><td>{escape(name)}</td><td>{escape(cell)}</td><td>{c['before']:.3f}</td>"
                        f"<td>{c['after']:.3f}</td><td style=\"background:{color}\">{c['delta']:+.3f}</td>"
                        f"<td>{ci}</td><td>{escape(verdict)}</td></tr>")
    head = f"<h3>{escape(str(result['after']))} vs {escape(str(result['before']))}</h3>"
    return head + _table(["scenario", "cell", "before", "after", "delta", "paired 95% CI", "verdict"], rows)
