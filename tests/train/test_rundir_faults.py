"""Faults a scheduler or a typo brings (issue 35): SIGTERM takes Ctrl-C's path, an output_dir whose
parent cannot be made is one line, both leave nothing half-made."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.train.test_rundir import cli, one_line_error, raw_recipe, write_recipe
from tuneval.config import load_recipe
from tuneval.runs import RunDir
from tuneval.train.checkpoints import last_complete
from tuneval.train.rundir import check_run_dir

# `tuneval train RECIPE` as the installed command runs it (main() with no argv: SIGTERM handled), each
# training step a little slower so that a signal lands mid-run.
SCRIPT = textwrap.dedent("""
    import sys, time
    import tuneval.train.trainer as trainer
    from transformers import TrainerCallback

    class Slow(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            time.sleep(0.2)

    make = trainer._make_trainer
    trainer._make_trainer = lambda *a, **k: make(*a[:-2], [Slow()], *a[-1:], **k)
    from tuneval.cli import main
    sys.argv = ["tuneval", *sys.argv[1:]]
    main()
""")


def _train_then_sigterm(recipe: str, step: int) -> tuple[int, str]:
    """Start `tuneval train RECIPE`, SIGTERM it once its plain progress shows `step` done; (exit code, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src"),
           "TUNEVAL_ALLOCATOR_PRELOADED": "glibc"}  # no allocator re-exec: it would import torch twice
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, "train", recipe], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:  # stdout is a pipe: training prints one plain line per logged step
            if line.startswith(f"train lora step {step}/"):
                proc.send_signal(signal.SIGTERM)
                break
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return proc.returncode, err


@pytest.mark.parametrize("signal_at", [1, 3])
def test_sigterm_is_handled_like_ctrl_c(tiny_llama_dir, tiny_data_dir, tmp_path, signal_at):
    """Before the first checkpoint nothing stays; after it (save_steps 2) the run stays, resumable."""
    out = tmp_path / "parent" / "run"
    recipe = write_recipe(tmp_path / "r.yaml", raw_recipe(tiny_llama_dir, tiny_data_dir, out, max_steps=40,
                                                          logging_steps=1, save_steps=2))
    code, err = _train_then_sigterm(recipe, signal_at)
    assert code == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "terminated (SIGTERM)", err
    if signal_at == 1:
        assert not (tmp_path / "parent").exists()  # the parents it made go too
        return
    run = RunDir(out)
    assert last_complete(run.checkpoints_dir) is not None and not (out / "metrics.json").exists()
    torn = [p for p in out.rglob("*.tmp*")]
    assert not torn, torn
    check_run_dir(load_recipe(recipe), resume=True, overwrite=False)  # `train --resume` would take it


def test_output_dir_whose_parent_cannot_be_made_is_one_line(tiny_data_dir, tmp_path, capsys):
    """/proc/x: access() says /proc is writable (as root), mkdir says no. Checked before the model loads."""
    out = "/proc/tuneval-x/run" if Path("/proc").is_dir() else str(tmp_path / "f" / "x")
    if not Path("/proc").is_dir():
        (tmp_path / "f").write_text("a file")
    recipe = write_recipe(tmp_path / "r.yaml", raw_recipe(tmp_path / "no-such-model", tiny_data_dir, tmp_path))
    code, err = cli(["train", recipe, "--set", f"output_dir={out}"], capsys)
    one_line_error(code, err, out, "cannot create output_dir")
    assert not Path(out).exists()
