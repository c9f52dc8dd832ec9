"""The run directory: when `train` may create, continue or replace one, and what a failure leaves.

- `--overwrite` replaces only a tuneval run: a directory holding RUN_MARKER (written with
  config.yaml) or, for runs from before the marker, a config.yaml that is a recipe. Any other
  folder named as output_dir is refused, never deleted.
- Nothing is deleted or created until the recipe, model and data have passed: `check_run_dir`
  runs first and only reads, so a bad output_dir fails in a second instead of after loading a
  model; `prepare_run_dir` runs once the model is loaded and the examples are built, and is the
  one place an old run is removed. An `--overwrite` with a typo in the model path leaves the
  previous run as it was.
- A run that fails before its first complete checkpoint removes what it made
  (`NewRun.discard`), so the same command works again once the input is fixed. With a
  complete checkpoint it stays, for `--resume`.
"""

from __future__ import annotations

import itertools
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tuneval.config import Recipe
from tuneval.errors import TunevalError
from tuneval.runs import CONFIG, RUN_MARKER, RunDir
from tuneval.train.checkpoints import last_complete


def _remove_contents(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def check_run_dir(recipe: Recipe, resume: bool, overwrite: bool) -> None:
    """Raise what `prepare_run_dir` would refuse; leaves nothing behind (the directories it makes to
    test the path go again), so it can run before the slow work."""
    run_dir = recipe.run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise TunevalError(f"{run_dir}: output_dir is a file, not a directory")
    existing = next((p for p in (run_dir, *run_dir.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise TunevalError(f"{run_dir}: cannot create output_dir, {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise TunevalError(f"{run_dir}: cannot write output_dir ({existing}: permission denied)")
    _check_creatable(run_dir)
    run = RunDir(run_dir)
    config_file = run.config_file
    if resume:
        if not config_file.is_file():
            raise TunevalError(f"{run_dir}: nothing to resume (no {CONFIG} there)")
        saved = run.config()
        if saved is None:
            raise TunevalError(f"{config_file}: cannot read it as a recipe, so there is nothing to compare or resume")
        now = recipe.to_dict()
        diffs = [k for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
        if diffs:
            raise TunevalError(f"{config_file}: the recipe differs from the run being resumed in {diffs}")
        return
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not overwrite:
            raise TunevalError(f"{run_dir}: run directory is not empty; pass --resume to continue it or --overwrite")
        if not run.is_run():
            raise TunevalError(f"{run_dir}: not a tuneval run (no {CONFIG} or {RUN_MARKER} there), so --overwrite "
                               f"will not delete it; move it away or choose another output_dir")


def _missing(run_dir: Path) -> list[Path]:
    """`run_dir` and those of its parents that do not exist yet, deepest first."""
    return list(itertools.takewhile(lambda p: not p.exists(), (run_dir, *run_dir.parents)))


def _make(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TunevalError(f"{run_dir}: cannot create output_dir ({e.strerror or type(e).__name__})") from None


def _check_creatable(run_dir: Path) -> None:
    """Create the missing directories of `run_dir` and remove them again: a path whose parent cannot be
    made (/proc/x, a read-only mount where access() says yes) fails here, in a second, as one line."""
    missing = _missing(run_dir)
    if not missing:
        return
    _make(run_dir)
    for made in missing:  # deepest first
        made.rmdir()


@dataclass
class NewRun:
    """The run directory this invocation writes, and what it created (to undo on failure)."""

    path: Path
    owned: bool = False  # False when resuming: the directory and its checkpoints came before us
    created: list[Path] = field(default_factory=list)  # directories that did not exist, deepest first

    def discard(self) -> None:
        """Remove what this invocation made, unless a complete checkpoint makes the run resumable.

        Called while another exception propagates: it must not replace that error with its own.
        """
        try:
            if not self.owned or last_complete(RunDir(self.path).checkpoints_dir) is not None:
                return
            if not self.created:  # it was there, empty or an old run that prepare_run_dir cleared
                _remove_contents(self.path)
                return
            shutil.rmtree(self.path)
            for parent in self.created[1:]:
                parent.rmdir()  # only while empty: something else put there stays
        except OSError:
            pass


def prepare_run_dir(recipe: Recipe, resume: bool, overwrite: bool) -> NewRun:
    """Create the run directory (clearing an old run under --overwrite), or return it for --resume."""
    check_run_dir(recipe, resume, overwrite)  # again: loading the model took minutes, things change
    run_dir = recipe.run_dir
    if resume:
        return NewRun(run_dir)
    created = _missing(run_dir)
    if run_dir.is_dir():
        _remove_contents(run_dir)  # empty, or a tuneval run that --overwrite replaces (checked above)
    _make(run_dir)  # fails as one line too if the path changed since check_run_dir
    RunDir(run_dir).begin(recipe.to_dict())
    return NewRun(run_dir, owned=True, created=created)
