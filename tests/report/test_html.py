"""The page itself: self-contained, each section only when an input has it, hostile text kept as text."""

import json
import re
from collections import Counter

import pytest

from tuneval.cli import main
from tuneval.report import write_report

SECTIONS = ["comparison", "scores", "benchmarks", "curves", "cost", "samples", "forgetting", "sweep", "provenance"]


def _sections(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', html)


def test_every_section_and_nothing_from_outside(full_report):
    html = full_report.read_text(encoding="utf-8")
    assert _sections(html) == SECTIONS
    assert not re.search(r'\s(src|href)="(?!#)', html)  # no file, URL or CDN: only in-page anchors
    assert not re.search(r"url\((?!#)|@import|<link|<iframe", html)
    assert html.count("<script>") == 1 and html.count("<style>") == 1
    assert "default-src 'none'" in html  # the browser itself refuses any request the page might try
    ids = Counter(re.findall(r'\sid="([^"]+)"', html))
    assert [i for i, n in ids.items() if n > 1] == []  # many SVGs in one document: ids prefixed per chart
    assert html.count('<svg') == 6 and full_report.stat().st_size < 10e6  # scores, benchmarks, curves, cost, ...


def test_samples_travel_as_json_and_hostile_text_stays_text(full_report):
    html = full_report.read_text(encoding="utf-8")
    assert "<script>window.pwned" not in html and "<b>bold</b>" not in html
    blob = re.search(r'<script type="application/json" id="samples-data">(.*?)</script>', html, re.S).group(1)
    groups = json.loads(blob)
    assert len(groups) == 1 and groups[0]["models"] == ["original", "full", "lora"]
    items = groups[0]["items"]
    assert len(items) == 25 and items[-1][0] == "hostile" and "</script><script>" in items[-1][1]
    pred, r1, r2, rl, spans = items[0][3][1]
    assert 0 <= r1 <= 1 and len(spans) % 2 == 0 and all(pred[s:e].isalnum() for s, e in zip(spans[::2], spans[1::2]))


def test_the_comparison_has_intervals_and_paired_improvements(full_report):
    html = full_report.read_text(encoding="utf-8")
    comparison = html.split('<section id="comparison">')[1].split("</section>")[0]
    assert "Improvement over original" in comparison
    assert len(re.findall(r'<span class="ci">\[', comparison)) == 3 * 5 + 2 * 5  # scores and changes, all metrics
    assert re.search(r'class="pos" data-v="[0-9.e-]+">\+', comparison)  # synthetic full clearly beats original


def test_sections_follow_the_inputs(saved, tmp_path):
    only_sweep = write_report([saved["sweep"]], tmp_path / "s.html").read_text()
    assert _sections(only_sweep) == ["sweep", "provenance"] and 'id="samples-data"' not in only_sweep
    runs = write_report([saved["demo"] / "full", saved["demo"] / "lora"], tmp_path / "r.html", iters=20).read_text()
    assert _sections(runs) == ["comparison", "scores", "curves", "cost", "samples", "provenance"]
    forgetting = write_report([saved["forgetting"]], tmp_path / "f.html").read_text()
    assert _sections(forgetting) == ["forgetting", "provenance"] and forgetting.count('class="verdict-') == 6


def test_curves_mark_the_best_step(saved, tmp_path):
    html = write_report([saved["demo"] / "lora"], tmp_path / "r.html", iters=0).read_text()
    best = json.loads((saved["demo"] / "lora" / "metrics.json").read_text())["best_step"]
    curves = html.split('<section id="curves">')[1].split("</section>")[0]
    assert f"lora: step {best} (rougeL" in curves and "rougeL (validation, per step)" in curves


def test_cli_writes_the_page(saved, tmp_path, capsys):
    out = tmp_path / "deep" / "r.html"
    with pytest.raises(SystemExit) as e:
        main(["report", str(saved["demo"]), str(saved["sweep"]), "--out", str(out), "--bootstrap-iters", "20"])
    assert e.value.code == 0
    assert f"report: {out}" in capsys.readouterr().out and out.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("args, message", [
    (["--out", "{tmp}"], "is a directory"),
    (["--bootstrap-iters", "-1"], "--bootstrap-iters must be 0 or more"),
])
def test_cli_refuses_bad_options(saved, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        main(["report", str(saved["sweep"])] + [a.format(tmp=tmp_path) for a in args])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_forgetting_writes_its_report_beside_the_markdown(tmp_path, capsys):
    from tests.evaluate.test_forgetting import save, synthetic

    before, after = synthetic()
    out = tmp_path / "cmp"
    with pytest.raises(SystemExit) as e:
        main(["forgetting", "--before", str(save(tmp_path / "b", before)), "--after", str(save(tmp_path / "a", after)),
              "--out", str(out), "--bootstrap-iters", "100"])
    assert e.value.code == 0
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out.replace("\n", "")
    html = (out / "report.html").read_text()
    assert _sections(html) == ["forgetting", "provenance"] and ">down<" in html and "verdict-forgot" in html
