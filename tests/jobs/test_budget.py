"""`tuneval demo --minutes 0` answers at once: the budget is checked before torch is imported (issue 35)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tuneval.errors import TunevalError
from tuneval.jobs.budget import check_minutes

SCRIPT = textwrap.dedent("""
    import sys
    from tuneval.cli import main
    try:
        main(sys.argv[1:])
    except SystemExit as e:
        heavy = sorted(m for m in ("torch", "tuneval.jobs.demo") if m in sys.modules)
        print("exit", e.code, "imported", ",".join(heavy) or "nothing", flush=True)
""")


@pytest.mark.parametrize("minutes", ["0", "-1", "nan", "inf"])
def test_demo_refuses_a_bad_budget_before_importing_torch(minutes, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    done = subprocess.run([sys.executable, "-c", SCRIPT, "demo", "--minutes", minutes, "--out", str(tmp_path / "d")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip() == "exit 2 imported nothing", (done.stdout, done.stderr)
    assert done.stderr.strip().splitlines() == [f"error: --minutes must be a number of minutes greater than 0, got "
                                                f"{float(minutes):g}"]
    assert not (tmp_path / "d").exists()


def test_check_minutes():
    assert check_minutes(0.5) == 0.5
    with pytest.raises(TunevalError, match="greater than 0"):
        check_minutes(0)
