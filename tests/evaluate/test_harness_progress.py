"""`tuneval eval` with stdout in a file or a pipe prints plain progress lines (issue 35): a scheduled
evaluation of 200 examples no longer looks hung for minutes."""

from __future__ import annotations

import re

from tests.evaluate.test_bench_cli import bench_data_dir, run  # noqa: F401 (a fixture)

LINE = re.compile(r"^(?P<what>.+): (?P<done>\d+)/(?P<total>\d+) \(\d+%\) \d+\.\d\d/s elapsed \d+m\d\ds( ETA \d+m\d\ds)?$")


def test_eval_prints_progress_lines_when_stdout_is_not_a_terminal(tiny_llama_dir, bench_data_dir, tmp_path,  # noqa: F811
                                                                  capsys, monkeypatch):
    monkeypatch.setenv("TUNEVAL_PROGRESS_SECONDS", "0")  # a line per batch: the tiny run is over in a second
    code, out, err = run(["eval", "--model", str(tiny_llama_dir), "--tasks", "dialogsum,copa", "--limit", "4",
                          "--batch-size", "2", "--data-dir", str(bench_data_dir), "--out", str(tmp_path / "ev"),
                          "--bootstrap-iters", "0"], capsys)
    assert code == 0, err
    lines = [m.groupdict() for m in map(LINE.match, out.splitlines()) if m]
    generated = [d for d in lines if "dialogsum" in d["what"]]
    scored = [d for d in lines if "copa" in d["what"]]
    assert [d["done"] for d in generated] == ["2", "4"] and generated[-1]["total"] == "4", out
    assert scored and scored[-1]["done"] == scored[-1]["total"] == "8", out  # 4 questions x 2 choices
