"""Human-readable reports (Markdown) beside every JSON result."""

from __future__ import annotations

from typing import Any

from tuneval.metrics.compare import SEED, improvements
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


def with_interval(metric: str, value: float, ci: dict[str, float] | None, sign: str = "") -> str:
    """`0.3462 [0.3301, 0.3620]`: a score and its 95% interval, as every comparison table prints it."""
    if not ci or "ci_low" not in ci:
        return fmt(metric, value, sign)
    return f"{fmt(metric, value, sign)} [{fmt(metric, ci['ci_low'], sign)}, {fmt(metric, ci['ci_high'], sign)}]"


def significance(ci: dict[str, float] | None) -> str:
    """Whether a paired difference's 95% interval excludes 0."""
    if not ci or "ci_low" not in ci:
        return "-"
    return "significant" if ci["ci_low"] > 0 or ci["ci_high"] < 0 else "not significant"


def paired_comparisons(rows: list[dict[str, Any]], iters: int = 1000, seed: int = SEED) -> dict[str, dict[str, Any]]:
    """Each later row against the first ("vs_original") and each row other than full against full
    ("vs_full"), per metric: the difference, relative change and paired 95% interval over the same
    examples (metrics/compare.py, the HTML report's numbers). Rows without examples get no interval."""
    base = rows[0]
    full = next((r for r in rows if r.get("method") == "full"), None)
    out: dict[str, dict[str, Any]] = {"vs_original": {r["label"]: improvements(base, r, iters, seed) for r in rows[1:]}}
    if full is not None:
        out["vs_full"] = {r["label"]: improvements(full, r, iters, seed) for r in rows[1:] if r is not full}
    return out


def _differences(title: str, diffs: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["", title, "", "| model | metric | difference | 95% interval (paired) | relative | verdict |",
             "|---|---|---|---|---|---|"]
    for label, per_metric in diffs.items():
        for k, d in per_metric.items():
            rel = "n/a" if d.get("relative") is None else f"{100 * d['relative']:+.1f}%"
            ci = f"[{fmt(k, d['ci_low'], '+')}, {fmt(k, d['ci_high'], '+')}]" if "ci_low" in d else "-"
            lines.append(f"| {label} | {k} | {fmt(k, d['delta'], '+')} | {ci} | {rel} | {significance(d)} |")
    return lines


def comparison_table(rows: list[dict[str, Any]], paired: dict[str, dict[str, Any]] | None = None) -> str:
    """Markdown: one row per model, each score with its 95% bootstrap interval (the row's results.json
    `bootstrap`); then the paired differences (`paired`, from paired_comparisons when not given)."""
    paired = paired if paired is not None else paired_comparisons(rows)
    n = rows[0].get("num_examples")
    head = "| model | " + " | ".join(HEADLINE) + " |"
    lines = ["### Scores (ROUGE F1 in [0,1], corpus BLEU in [0,100]; 95% bootstrap interval in brackets)", "", head,
             "|---" * (len(HEADLINE) + 1) + "|"]
    for r in rows:
        ci = r.get("bootstrap") or {}
        lines.append(f"| {r['label']} | " + " | ".join(with_interval(k, r["metrics"][k], ci.get(k)) for k in HEADLINE)
                     + " |")
    same = f"the same {n} examples, " if n else ""
    note = (f"Paired bootstrap over {same}resampled together; significant: the 95% interval of the difference "
            "excludes 0.")
    lines += _differences(f"### Improvement over {rows[0]['label']}", paired.get("vs_original", {}))
    if paired.get("vs_full"):
        lines += _differences("### Relative to full fine-tuning", paired["vs_full"])
    lines += ["", note]
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
