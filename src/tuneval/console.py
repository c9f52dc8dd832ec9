"""Rich tables for the terminal, built from the summaries the library returns.

The library's layers (data/, methods/, ...) return data; whoever runs them decides what to
print. This module only formats: it imports nothing from tuneval.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table


def mixture_table(summary: dict[str, Any]) -> Table:
    """The resolved mixture of a run, as tasks/mixtures.build_examples summarises it
    (its `mixture`, also saved as RUN/mixture.json): rates, rows drawn per task and per template."""
    mixture = summary["mixture"]
    how = mixture["strategy"] + (f", cap {mixture['cap']}" if mixture["cap"] else "") + (
        f", T={mixture['temperature']:g}" if mixture["strategy"] == "temperature" else "")
    table = Table(title=f"mixture ({how}): {mixture['examples']} examples, seed {mixture['seed']}", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("task", "pool", "rate", "drawn", "unique", "per template", "tok/ex"):
        text = col in ("task", "per template")
        table.add_column(col, justify="left" if text else "right", no_wrap=not text, min_width=9 if col == "task" else None)
    for t in mixture["tasks"]:
        # Counts by template index, in order; '-' marks a phrasing this task does not train on.
        n = max(int(k) for k in (*t["per_template"], *map(str, t["holdout_templates"]))) + 1
        per = " ".join(str(t["per_template"].get(str(i), "-")) for i in range(n))
        name = t["task"] + (" (replay)" if t["replay"] else "")
        table.add_row(name, f"{t['pool']:,}", f"{t['rate']:.3f}", f"{t['drawn']:,}", f"{t['unique']:,}",
                      per, f"{t['mean_length']:.0f}")
    return table
