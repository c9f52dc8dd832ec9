"""`tuneval report`: one self-contained HTML page over runs, evaluations, demos, sweeps and forgetting checks."""

from tuneval.report.html import build_html, write_report

__all__ = ["build_html", "write_report"]
