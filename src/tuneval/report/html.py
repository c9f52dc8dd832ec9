"""One self-contained HTML page over any mix of saved results (see inputs.py for what is recognised).

Self-contained means it must open from a USB stick with no network: the stylesheet, the one
script and every chart (SVG) are written into the page, and the samples travel as JSON in a
<script type="application/json"> block that the script pages through. A section is written
only when an input has what it shows.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from tuneval.evaluate.harness import DEFAULT_SEED
from tuneval.metrics.text import fmt
from tuneval.io import atomic_write_text
from tuneval.report import charts, stats
from tuneval.report.inputs import Eval, Inputs, load_inputs
from tuneval.runs import METRICS, environment

SAMPLE_METRICS = ("rouge1", "rouge2", "rougeL")


def _asset(name: str) -> str:
    return files("tuneval.report").joinpath("assets", name).read_text(encoding="utf-8")


def _td(text: str, value: float | None = None, cls: str = "") -> str:
    v = "" if value is None else f' data-v="{value:.6g}"'
    c = f' class="{cls}"' if cls else ""
    return f"<td{c}{v}>{text}</td>"


def table(head: list[str], rows: list[list[str]], table_id: str = "", sortable: bool = True) -> str:
    """Cells arrive as finished <td> strings (see _td); headers are escaped here. Long tables scroll."""
    ident = f' id="{table_id}"' if table_id else ""
    cls = ' class="sortable"' if sortable else ""
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    tall = " tall" if len(rows) > 20 else ""
    return (f'<div class="table-wrap{tall}"><table{ident}{cls}><thead><tr>' + "".join(f"<th>{escape(h)}</th>" for h in head)
            + f"</tr></thead><tbody>{body}</tbody></table></div>")


def _ci(metric: str, ci: dict | None, sign: str = "") -> str:
    if not ci or ci.get("ci_low") is None:
        return ""
    return f'<br><span class="ci">[{fmt(metric, ci["ci_low"], sign)}, {fmt(metric, ci["ci_high"], sign)}]</span>'


def _name(label: str, colors: dict[str, str]) -> str:
    return _td(f'<span class="swatch" style="background:{colors.get(label, "#999")}"></span>{escape(label)}')


def _section(ident: str, title: str, body: str, note: str = "") -> str:
    note = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{ident}"><h2>{escape(title)}</h2>{note}{body}</section>'


class _Ids:
    """Chart id prefixes, unique within the page."""

    def __init__(self):
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"c{self.n}"


# ---- comparisons of generation evaluations ------------------------------------------------------

def comparison_groups(evals: list[Eval]) -> list[list[Eval]]:
    """Evaluations on the same task and split, the untuned model (if any) first: it is the baseline."""
    groups: dict[tuple, list[Eval]] = {}
    for e in evals:
        groups.setdefault((e.results.get("task"), e.results.get("split")), []).append(e)

    def is_base(e: Eval) -> bool:
        r = e.results
        return r.get("method") == "none" or (r.get("adapter") is None and not r.get("run") and not r.get("train"))

    return [sorted(g, key=lambda e: not is_base(e)) for g in groups.values()]


def _comparison(group: list[Eval], colors, ids, iters: int, seed: int) -> tuple[str, str, list[dict]]:
    """(tables, bar chart, per-model rows with intervals)."""
    base = group[0]
    rows = [{"label": e.label, "metrics": e.results["metrics"], "ci": stats.intervals(e.results, iters, seed),
             "n": e.results.get("num_examples")} for e in group]
    metrics = [m for m in stats.METRICS if all(m in r["metrics"] for r in rows)]
    score_rows = [[_name(r["label"], colors), _td(str(r["n"] or "-"), r["n"])]
                  + [_td(fmt(m, r["metrics"][m]) + _ci(m, r["ci"].get(m)), r["metrics"][m]) for m in metrics]
                  for r in rows]
    html = table(["model", "n"] + [m + " [95% CI]" for m in metrics], score_rows)
    if len(group) > 1:
        imp_rows = []
        for e in group[1:]:
            imp = stats.improvements(base.results, e.results, iters, seed)
            cells = [_name(e.label, colors)]
            for m in metrics:
                d = imp.get(m)
                if d is None:
                    cells.append(_td("-"))
                    continue
                rel = "n/a" if d["relative"] is None else f"{100 * d['relative']:+.1f}%"
                cls = "pos" if d.get("ci_low", 0) > 0 else "neg" if d.get("ci_high", 0) < 0 else ""
                cells.append(_td(f"{fmt(m, d['delta'], '+')} / {rel}{_ci(m, d, '+')}", d["delta"], cls))
            imp_rows.append(cells)
        html += (f"<h3>Improvement over {escape(base.label)} (absolute [95% paired interval] / relative)</h3>"
                 + table(["model"] + metrics, imp_rows))
    chart = charts.metric_bars(rows, tuple(metrics), colors, ids())
    return html, chart, rows


def _samples(group: list[Eval], colors) -> dict[str, Any] | None:
    with_ex = [e for e in group if stats.has_examples(e.results)]
    if not with_ex:
        return None
    by_id = [{ex.get("id"): ex for ex in e.results["examples"]} for e in with_ex]
    items = []
    for ex in with_ex[0].results["examples"]:
        ref = ex["references"][0] if ex["references"] else ""
        outs = []
        for lookup in by_id:
            o = lookup.get(ex.get("id"))
            if o is None:
                outs.append(None)
                continue
            pred = o["prediction"]
            spans = _utf16(pred, stats.overlap_spans(pred, ref))
            outs.append([pred] + [round(o["rouge"][m]["fmeasure"], 4) for m in SAMPLE_METRICS] + [spans])
        items.append([ex.get("id"), ex.get("input"), ref, outs])
    return {"task": with_ex[0].results.get("task"), "models": [e.label for e in with_ex],
            "colors": [colors[e.label] for e in with_ex], "metrics": list(SAMPLE_METRICS), "items": items}


def _utf16(text: str, spans: list[int]) -> list[int]:
    """Python counts code points, JavaScript UTF-16 units: they differ after any character beyond U+FFFF."""
    if all(ord(c) <= 0xFFFF for c in text):
        return spans
    return [len(text[:i].encode("utf-16-le")) // 2 for i in spans]


# ---- runs ---------------------------------------------------------------------------------------

def _cost(runs, colors, ids) -> str:
    rows = []
    for r in runs:
        m = r.metrics
        num = lambda k, f: _td("-" if m.get(k) is None else format(m[k], f), m.get(k))  # noqa: E731
        best = m.get("best_step")
        rows.append([_name(r.label, colors), _td(escape(str(m.get("method", "-")))), num("trainable_params", ",d"),
                     num("trainable_percent", ".2f"), num("checkpoint_mb", ".1f"), num("peak_memory_mb", ".0f"),
                     num("train_tokens_per_second", ".1f"), num("train_seconds", ".0f"), num("global_step", "d"),
                     num("train_examples", "d"), _td("-" if best is None else str(best), best)])
    head = ["run", "method", "trainable params", "trainable %", "disk MB", "peak mem MB", "tokens/s", "wall s", "steps",
            "examples", "best step"]
    chart = charts.cost_bars([(r.label, r.metrics) for r in runs], colors, ids())
    return table(head, rows) + (f"<figure>{chart}</figure>" if chart else "")


def _curves(runs, colors, ids) -> str:
    chart = charts.curves(runs, colors, ids())
    if chart is None:
        return ""
    notes = [f"{escape(r.label)}: step {r.metrics['best_step']}"
             + (f" ({escape(str(r.metrics.get('metric_for_best_model')))} {r.metrics['best_metric']:.4g})"
                if isinstance(r.metrics.get("best_metric"), (int, float)) else "")
             for r in runs if r.metrics.get("best_step") is not None]
    note = ("Best checkpoint kept: " + "; ".join(notes) + ".") if notes else ""
    return _section("curves", "Training curves", f"<figure>{chart}</figure>", note)


# ---- forgetting, sweeps, benchmark suites ---------------------------------------------------------

def _side_ci(side: dict | None, name: str) -> dict | None:
    return (side or {}).get("groups", {}).get(name) or (side or {}).get("tasks", {}).get(name)


def _forgetting(f, ids, n: int) -> str:
    res = f.result
    title = f"{res.get('after', 'after')} vs {res.get('before', 'before')}"
    chart = charts.forgetting_chart(charts.forgetting_rows(res), {"before": f.before, "after": f.after}, ids(), title)
    rows = []
    for name, r in list(res.get("groups", {}).items()) + list(res["tasks"].items()):
        m = r["metric"]
        rows.append([_td(escape(name) + (' <span class="ci">(group)</span>' if name in res.get("groups", {}) else "")),
                     _td(str(r["n"]), r["n"]), _td(escape(m)),
                     _td(fmt(m, r["before"]) + _ci(m, _side_ci(f.before, name)), r["before"]),
                     _td(fmt(m, r["after"]) + _ci(m, _side_ci(f.after, name)), r["after"]),
                     _td(fmt(m, r["delta"], "+") + _ci(m, r, "+"), r["delta"]),
                     _td(escape(r["verdict"]), None, f"verdict-{r['verdict']}")])
    c = res.get("counts", {})
    tid = f"forgetting-table-{n}"
    return (f"<h3>{escape(title)}</h3><p class=\"note\">{c.get('improved', 0)} improved, {c.get('unchanged', 0)} "
            f"unchanged, {c.get('forgot', 0)} forgot (paired bootstrap, {res.get('bootstrap_iters', '?')} resamples; "
            f"a verdict needs the 95% interval of the change to exclude zero). From <code>{escape(str(f.path))}</code>.</p>"
            f"<figure>{chart}</figure>"
            f'<input class="table-filter" type="search" data-table="{tid}" placeholder="filter tasks">'
            + table(["task", "n", "metric", "before [95% CI]", "after [95% CI]", "change [95% paired CI]", "verdict"],
                    rows, tid))


def _sweep(s, ids) -> str:
    keys = list(s.data.get("grid", {}))
    title = f"{s.data.get('recipe', s.label)} over {', '.join(keys)}"
    chart = charts.sweep_chart(s.data, ids(), title)
    cols = [(k, k) for k in keys] + [("trainable_params", "trainable params"), ("checkpoint_mb", "size MB"),
                                     ("val_loss", "val loss")] + [(m, m) for m in stats.METRICS]
    rows = [[_td(escape(str(r.get("point", {}).get(k, r.get(k)))), r.get("point", {}).get(k)
                 if isinstance(r.get("point", {}).get(k), (int, float)) else None) if k in keys else
             _td("-" if r.get(k) is None else (f"{r[k]:,d}" if isinstance(r[k], int) else fmt(k, r[k])), r.get(k))
             for k, _ in cols] for r in s.data.get("rows", [])]
    return f"<h3>{escape(title)}</h3><figure>{chart}</figure>" + table([h for _, h in cols], rows)


def _suites(suites, colors, ids) -> str:
    names: list[tuple[str, str]] = []
    for s in suites:
        for name, g in s.summary.get("groups", {}).items():
            names.append((name, g["metric"]))
        for name, t in s.summary["tasks"].items():
            if not t.get("group") or t["group"] not in s.summary.get("groups", {}):
                names.append((name, t["metric"]))
    names = list(dict.fromkeys(names))
    cells = [[(s.summary.get("groups", {}).get(n) or s.summary["tasks"].get(n)) for s in suites] for n, _ in names]
    rows = [[_td(escape(n)), _td(escape(m))] + [_td(fmt(m, c["value"]) + _ci(m, c), c["value"]) if c else _td("-")
                                                for c in cs] for (n, m), cs in zip(names, cells)]
    chart = charts.suite_bars([(n, m, cs) for (n, m), cs in zip(names, cells)], [s.label for s in suites], colors, ids())
    return table(["task", "metric"] + [s.label for s in suites], rows) + f"<figure>{chart}</figure>"


# ---- provenance -----------------------------------------------------------------------------------

def _kv(pairs: dict[str, Any]) -> str:
    items = "".join(f"<dt>{escape(str(k))}</dt><dd>{escape(v if isinstance(v, str) else json.dumps(v, default=str))}</dd>"
                    for k, v in pairs.items() if v is not None)
    return f'<dl class="kv">{items}</dl>'


def _provenance(inputs: Inputs) -> str:
    parts = []
    for d in inputs.demos:
        parts.append(f"<details><summary>demo {escape(d['path'])}</summary>{_kv(d)}</details>")
    for r in inputs.runs:
        m = r.metrics
        keep = {k: m.get(k) for k in ("model", "method", "precision", "device", "torch_threads", "peak_memory_kind",
                                      "resumed_from", "best_step", "metric_for_best_model", "versions", "machine")}
        seed = (r.config or {}).get("seed")
        recipe = yaml.safe_dump(r.config, sort_keys=False, allow_unicode=True) if r.config else "(no config.yaml)"
        parts.append(f"<details><summary>run {escape(r.label)} (seed {escape(str(seed))}): {escape(str(r.path))}"
                     f"</summary>{_kv(keep)}<pre>{escape(recipe)}</pre></details>")
    for e in inputs.evals:
        res = e.results
        keep = {k: res.get(k) for k in ("model", "adapter", "run", "precision", "task", "split", "num_examples",
                                        "chat_template", "prompt", "generation", "created", "versions", "machine")}
        keep["bleu_signature"] = (res.get("signatures") or {}).get("bleu")
        parts.append(f"<details><summary>evaluation {escape(e.label)}: {escape(str(e.path))}</summary>{_kv(keep)}</details>")
    for group in (inputs.suites, inputs.forgettings, inputs.sweeps):
        for x in group:
            parts.append(f"<details><summary>{type(x).__name__.lower()} {escape(x.label)}: {escape(str(x.path))}"
                         "</summary>" + _kv({k: v for k, v in (getattr(x, "summary", None) or getattr(x, "data", None)
                                                                or getattr(x, "result", {})).items()
                                            if not isinstance(v, (dict, list)) or k in ("grid", "counts")})
                         + "</details>")
    parts.append("<details><summary>environment that wrote this report</summary>" + _kv(environment())
                 + '<p class="note">Each run records its own versions (above, under "versions"); runs saved before '
                 "that show none, and these are the versions installed where the report was written.</p></details>")
    return _section("provenance", "Machine, versions, recipes and seeds", "".join(parts))


# ---- the page -----------------------------------------------------------------------------------

def _scorecard(inputs: Inputs) -> list[str]:
    """The scorecard section (report/scorecard.py), when a scorecard or a comparison of two is among the inputs."""
    if not (inputs.scorecards or inputs.scorecard_compares):
        return []
    from tuneval.report.scorecard import card_html, compare_html

    body = "".join(map(card_html, inputs.scorecards)) + "".join(map(compare_html, inputs.scorecard_compares))
    return [_section("scorecard", "Scorecard", body,
                     "HELM's metric families per scenario (see the scorecard guide); each cell coloured red (bad) "
                     "to green (good).")]


def build_html(inputs: Inputs, *, iters: int = 1000, seed: int = DEFAULT_SEED, title: str = "tuneval report") -> str:
    ids = _Ids()
    labels = [e.label for e in inputs.evals] + [r.label for r in inputs.runs] + [s.label for s in inputs.suites]
    colors = charts.palette(labels)
    sections, nav, sample_groups = [], [], []
    groups = comparison_groups(inputs.evals)
    if groups:
        tables, bars = [], []
        for g in groups:
            head = f"<h3>{escape(str(g[0].results.get('task')))} ({escape(str(g[0].results.get('split')))})</h3>"
            html, chart, _ = _comparison(g, colors, ids, iters, seed)
            tables.append(head + html)
            bars.append(head + f"<figure>{chart}</figure>")
            sample = _samples(g, colors)
            if sample:
                sample_groups.append(sample)
        note = ("ROUGE F1 in [0,1], corpus BLEU in [0,100]; 95% percentile-bootstrap intervals over examples "
                f"({iters} resamples, seed {seed}); improvements use a paired bootstrap (the same resample on both "
                "sides). Click a column to sort.")
        sections.append(_section("comparison", "Comparison", "".join(tables), note))
        sections.append(_section("scores", "Scores with intervals", "".join(bars)))
    if inputs.suites:
        sections.append(_section("benchmarks", "Benchmarks", _suites(inputs.suites, colors, ids)))
    if inputs.runs:
        curves = _curves(inputs.runs, colors, ids)
        if curves:
            sections.append(curves)
        sections.append(_section("cost", "Cost", _cost(inputs.runs, colors, ids),
                                 f"Peak memory is what the run measured ({METRICS}'s peak_memory_kind: process RSS "
                                 "on CPU, allocator peak on CUDA); tokens/s counts real, non-padding tokens."))
    if sample_groups:
        body = "".join(f'<h3>{escape(str(g["task"]))}</h3><div class="samples" id="samples-{i}"></div>'
                       for i, g in enumerate(sample_groups))
        sections.append(_section("samples", "Side-by-side samples", body,
                                 "Highlighted: the words of each output that ROUGE-1 counts as shared with the human "
                                 "reference (stemmed, each reference word at most as often as it occurs)."))
    if inputs.forgettings:
        sections.append(_section("forgetting", "Forgetting",
                                 "".join(_forgetting(f, ids, i) for i, f in enumerate(inputs.forgettings))))
    if inputs.sweeps:
        sections.append(_section("sweep", "Sweeps", "".join(_sweep(s, ids) for s in inputs.sweeps)))
    sections += _scorecard(inputs) + [_provenance(inputs)]
    for s in sections:
        ident = s.split('id="', 1)[1].split('"', 1)[0]
        nav.append(f'<a href="#{ident}">{escape(s.split("<h2>", 1)[1].split("</h2>", 1)[0])}</a>')
    data = ""
    if sample_groups:
        blob = json.dumps(sample_groups, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
        data = f'<script type="application/json" id="samples-data">{blob}</script>'
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sources = ", ".join(f"<code>{escape(str(p))}</code>" for p in inputs.paths)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "script-src 'unsafe-inline'; img-src data:\">"
            f"<title>{escape(title)}</title><style>{_asset('report.css')}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><p>From {sources}.</p><p>Written {when} by tuneval "
            f"{escape(environment().get('tuneval', '?'))}. Self-contained: opens without a network.</p></header>"
            f"<nav>{''.join(nav)}</nav><main>{''.join(sections)}</main>{data}"
            f"<script>{_asset('report.js')}</script></body></html>\n")


def write_report(paths: list[str | Path], out: str | Path, *, iters: int = 1000, seed: int = DEFAULT_SEED,
                 title: str = "tuneval report") -> Path:
    inputs = load_inputs(paths)
    return atomic_write_text(out, build_html(inputs, iters=iters, seed=seed, title=title))
