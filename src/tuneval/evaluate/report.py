"""Human-readable reports (Markdown) beside every JSON result."""

from __future__ import annotations

from typing import Any

from tuneval.metrics.text import HEADLINE, fmt



def _clip(text: str | None, n: int = 600) -> str:
    text = (text or "").strip()
    return text if len(text) <= n else text[:n] + " …"


def _quote(text: str | None) -> str:
    return "\n".join("> " + line if line else ">" for line in _clip(text).splitlines()) or ">"


def input_heading(results: dict[str, Any]) -> str:
    """What a sample's input is, from the task's input field: dialogue -> Dialogue, premise -> Premise."""
    name = results.get("input_field")
    return name.replace("_", " ").title() if name else "Input"


def _prompt_line(prompt: dict[str, Any]) -> str:
    if "template" in prompt:
        return f"Template {prompt['template']}: `{prompt['text']!r}`"
    if prompt.get("family") == "conversation":
        return f"The data's own conversations (format {prompt.get('format')}), the last assistant turn as reference"
    return f"Prompt `{prompt.get('doc_to_text')!r}`"


def eval_report(results: dict[str, Any], samples: int = 3) -> str:
    m = results["metrics"]
    lines = [
        f"# {results['label']} on {results['task']} ({results['split']}, {results['num_examples']} examples)",
        "",
        f"{_prompt_line(results['prompt'])}; greedy, max {results['generation']['max_new_tokens']} new tokens.",
        "",
        "| metric | precision | recall | F1 |",
        "|---|---|---|---|",
    ]
    for k in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        lines.append(f"| {k} | {m[f'{k}_precision']:.4f} | {m[f'{k}_recall']:.4f} | {m[f'{k}_f1']:.4f} |")
    lines += ["", f"Corpus BLEU: **{m['bleu']:.2f}** (`{results['signatures'].get('bleu', '')}`)", "", "## Samples", ""]
    for ex in results["examples"][:samples]:
        lines += [f"### {ex['id']}", "", f"**{input_heading(results)}**", "", _quote(ex["input"]), "",
                  f"**Human**: {ex['references'][0]}", "", f"**Model**: {ex['prediction']}", ""]
    return "\n".join(lines)


def _pct(new: float, old: float) -> str:
    return f"{100 * (new - old) / old:+.1f}%" if old else "n/a"


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one row per model; first row is the baseline the others are compared to."""
    base = rows[0]["metrics"]
    full = next((r for r in rows if r.get("method") == "full"), None)
    head = "| model | " + " | ".join(HEADLINE) + " |"
    lines = ["### Scores (ROUGE F1 in [0,1], corpus BLEU in [0,100])", "", head,
             "|---" * (len(HEADLINE) + 1) + "|"]
    for r in rows:
        lines.append(f"| {r['label']} | " + " | ".join(fmt(k, r["metrics"][k]) for k in HEADLINE) + " |")
    lines += ["", f"### Improvement over {rows[0]['label']} (absolute / relative)", "", head,
              "|---" * (len(HEADLINE) + 1) + "|"]
    for r in rows[1:]:
        cells = [f"{fmt(k, r['metrics'][k] - base[k], '+')} / {_pct(r['metrics'][k], base[k])}" for k in HEADLINE]
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    if full is not None:
        others = [r for r in rows[1:] if r is not full]
        if others:
            lines += ["", "### Relative to full fine-tuning", "", head, "|---" * (len(HEADLINE) + 1) + "|"]
            for r in others:
                cells = [f"{fmt(k, r['metrics'][k] - full['metrics'][k], '+')} / {_pct(r['metrics'][k], full['metrics'][k])}"
                         for k in HEADLINE]
                lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    trained = [r for r in rows if r.get("train")]
    if trained:
        lines += ["", "### Cost", "",
                  "| model | trainable params | trainable % | checkpoint MB | peak memory MB | train tokens/s | train wall s | examples |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in trained:
            t = r["train"]
            lines.append(
                f"| {r['label']} | {t['trainable_params']:,d} | {t['trainable_percent']:.2f}% | {t['checkpoint_mb']:.1f} | "
                f"{t['peak_memory_mb']:.0f} | {t['train_tokens_per_second']:.1f} | {t['train_seconds']:.0f} | {t['train_examples']} |"
            )
    return "\n".join(lines)


def samples_table(rows: list[dict[str, Any]], n: int = 3) -> str:
    """Side-by-side: the input (a dialogue, say), the human reference, then each model's output."""
    lines = []
    for i in range(min(n, len(rows[0]["examples"]))):
        ex = rows[0]["examples"][i]
        lines += [f"#### Sample {i + 1}: {ex['id']}", "", f"**{input_heading(rows[0])}**", "", _quote(ex["input"]), "",
                  f"- **Human**: {ex['references'][0]}"]
        for r in rows:
            lines.append(f"- **{r['label']}**: {r['examples'][i]['prediction']}")
        lines.append("")
    return "\n".join(lines)
