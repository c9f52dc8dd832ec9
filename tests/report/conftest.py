"""Saved results in every format `tuneval report` reads, written without a model (tests/report/synthetic.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.report import synthetic

# Texts that must survive HTML and JSON embedding and JavaScript string offsets.
HOSTILE = [{"id": "hostile", "input": "#Person1#: </script><script>window.pwned=1</script> <b>bold</b> & co.",
            "reference": "#Person2# says </script> and 😀 emoji rain umbrella."}]


@pytest.fixture(scope="session")
def saved(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("saved")
    return {"demo": synthetic.write_demo(root / "demo", examples=24, extra_examples=HOSTILE),
            "forgetting": synthetic.write_forgetting(root / "forgetting"),
            "sweep": synthetic.write_sweep(root / "sweep")}


@pytest.fixture(scope="session")
def full_report(saved, tmp_path_factory) -> Path:
    """A report with every section."""
    from tuneval.report import write_report

    out = tmp_path_factory.mktemp("report") / "report.html"
    return write_report([saved["demo"], saved["forgetting"], saved["sweep"], saved["forgetting"] / "before",
                         saved["forgetting"] / "after"], out, iters=200)
