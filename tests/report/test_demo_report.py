"""`tuneval demo` writes its report beside comparison.md, over what the real training and evaluation saved."""

import re

import pytest

from tuneval.cli import main


def test_the_demo_writes_a_report_over_its_runs(tiny_llama_dir, tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as e:
        main(["demo", "--model", str(tiny_llama_dir), "--data-dir", str(tiny_data_dir), "--out", str(out),
              "--train-examples", "8", "--eval-examples", "4", "--precision", "fp32"])
    assert e.value.code == 0
    page = out / "report.html"
    assert f"report: {page}" in capsys.readouterr().out.replace("\n", "")
    html = page.read_text(encoding="utf-8")
    logged = any('"loss"' in (out / m / "train_log.jsonl").read_text() for m in ("full", "lora"))
    curves = ["curves"] if logged else []  # one step of 8 examples logs no training loss to draw
    assert re.findall(r'<section id="([^"]+)"', html) == ["comparison", "scores", *curves, "cost", "samples",
                                                          "provenance"]
    samples = html.split('id="samples-data">')[1]
    assert '"models":["original","full","lora"]' in samples  # every model's outputs, from what each run saved
    assert html.count('<span class="ci">[') == 3 * 5 + 2 * 5
