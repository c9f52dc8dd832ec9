"""The report in a real browser: headless Chromium loads it from disk with no console error and no
request, every section draws, and the table sorting and the sample viewer work as a person uses them.

Skipped, with the reason, where no Chromium is installed (Debian: `apt-get install chromium`;
.ci/run installs it when it can).
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.report.browser import Chromium, find_chromium

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="no Chromium installed (apt-get install chromium): report not checked in a browser")

SECTIONS = ["comparison", "scores", "benchmarks", "curves", "cost", "samples", "forgetting", "sweep", "provenance"]
CHARTS = ["scores", "benchmarks", "curves", "cost", "forgetting", "sweep"]

LAYOUT = """(() => {
  const out = {};
  for (const s of document.querySelectorAll("main > section")) {
    const box = s.getBoundingClientRect();
    out[s.id] = {height: box.height, width: box.width,
      charts: Array.from(s.querySelectorAll("svg.chart")).map(svg => {
        const b = svg.getBoundingClientRect();
        return {width: b.width, height: b.height, shapes: svg.querySelectorAll("path, use, rect").length};
      }),
      rows: Array.from(s.querySelectorAll("tbody tr")).filter(r => !r.hidden).length};
  }
  return out;
})()"""


def _status(b):
    return b.evaluate("document.querySelector('[data-role=status]').textContent")


def test_the_report_in_chromium(full_report, tmp_path):
    with Chromium(width=1280, height=900) as b:
        b.open(full_report)
        assert b.evaluate("document.documentElement.dataset.ready") == "1"  # the script ran to its end
        layout = b.evaluate(LAYOUT)
        problems = b.problems()
        assert problems == {k: [] for k in problems}, problems  # no console error, exception or request
        assert list(layout) == SECTIONS
        for name in SECTIONS:
            assert layout[name]["height"] > 60 and layout[name]["width"] > 600, name
        for name in CHARTS:
            assert layout[name]["charts"], name
            for chart in layout[name]["charts"]:
                assert chart["width"] > 300 and chart["height"] > 150 and chart["shapes"] > 20, (name, chart)
        assert layout["comparison"]["rows"] == 3 + 2 and layout["cost"]["rows"] == 2
        assert layout["forgetting"]["rows"] == 6 and layout["sweep"]["rows"] == 4 and layout["benchmarks"]["rows"] == 6

        # samples: ten per page, the shared words marked, paging and filtering
        assert b.evaluate("document.querySelectorAll('#samples article.sample').length") == 10
        assert b.evaluate("document.querySelectorAll('#samples article.sample mark').length") > 20
        assert _status(b).startswith("1\u201310 of 25 matching")
        b.evaluate("document.querySelector('[data-role=next]').click()")
        assert _status(b).startswith("11\u201320 of 25")
        b.evaluate("(() => { const i = document.querySelector('[data-role=min]'); i.value = '0.7';"
                   " i.dispatchEvent(new Event('input')); })()")
        shown = b.evaluate("Array.from(document.querySelectorAll('#samples article.sample')).map(a => a.dataset.id)")
        items = json.loads(b.evaluate("document.getElementById('samples-data').textContent"))[0]["items"]
        expected = [it[0] for it in items if it[3][2][1] >= 0.7 - 1e-9]  # lora's ROUGE-1 (the default filter model)
        assert shown == [str(i) for i in expected[:10]] and 0 < len(expected) < 25
        b.evaluate("(() => { const i = document.querySelector('[data-role=min]'); i.value = '0';"
                   " i.dispatchEvent(new Event('input'));"
                   " const s = document.querySelector('[data-role=search]'); s.value = 'pwned';"
                   " s.dispatchEvent(new Event('input')); })()")
        assert b.evaluate("Array.from(document.querySelectorAll('#samples article.sample')).map(a => a.dataset.id)") \
            == ["hostile"]
        assert "</script><script>window.pwned=1</script>" in b.evaluate(
            "document.querySelector('article[data-id=hostile] .input').textContent")
        assert b.evaluate("window.pwned === undefined")  # shown as text, never run

        # sorting the comparison table by a column, both ways
        order = ("Array.from(document.querySelectorAll('#comparison table')[0].tBodies[0].rows)"
                 ".map(r => r.cells[0].textContent)")
        assert b.evaluate(order) == ["original", "full", "lora"]
        b.evaluate("document.querySelectorAll('#comparison table')[0].tHead.rows[0].cells[2].click()")
        assert b.evaluate(order) == ["original", "lora", "full"]
        b.evaluate("document.querySelectorAll('#comparison table')[0].tHead.rows[0].cells[2].click()")
        assert b.evaluate(order) == ["full", "lora", "original"]
        assert b.problems() == problems  # nothing new after all that clicking

        shot = b.screenshot(tmp_path / "report.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
        keep = os.environ.get("TUNEVAL_REPORT_SCREENSHOT")
        if keep:
            shutil.copy(shot, keep)
        print(f"screenshot: {shot}")


def test_a_failing_script_would_be_caught(tmp_path):
    """The check is not blind: an error, a failed request and a request off the machine all show."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><img src='missing.png'><script>console.error('boom'); undefinedCall();</script>"
                    "<script>fetch('http://192.0.2.1/x').catch(() => {})</script></body></html>")
    with Chromium() as b:
        b.open(page)
        problems = b.problems()
    assert problems["console"] == ["boom"] and "undefinedCall" in problems["exceptions"][0]
    assert any("ERR_FILE_NOT_FOUND" in f for f in problems["failed"])
    assert problems["requests"] == ["http://192.0.2.1/x"]


def test_chromium_starts_after_matplotlib_has_drawn(tmp_path):
    """A fresh process that has drawn charts (matplotlib holds font files open on low descriptors)
    still hands Chromium its pipe on fds 3 and 4; `bench/report_*.py` run exactly so."""
    import subprocess
    import sys

    script = ("import sys; from pathlib import Path; from tuneval.report import write_report;"
              "from tests.report import synthetic; from tests.report.browser import Chromium;"
              f"root = Path({str(tmp_path)!r}); synthetic.write_sweep(root / 'sweep');"
              "page = write_report([root / 'sweep'], root / 'r.html');"
              "b = Chromium(); b.open(page); print(sum(map(len, b.problems().values())), "
              "b.evaluate('document.querySelectorAll(\"svg.chart\").length')); b.close()")
    repo = Path(__file__).resolve().parents[2]  # `python -c` imports from its working directory: `tests` is here
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=repo)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0", "1"]
