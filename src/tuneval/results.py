"""Every result directory tuneval writes besides a run: the one place that knows their layouts.

  EvalDir        one task scored (`tuneval eval --task`, a run's eval/, the demo's eval-original/)
    results.json   config, metrics with bootstrap intervals, every example's record
    report.md      side-by-side samples (generation tasks)
  SuiteDir       `tuneval eval --tasks/--suite`
    summary.json   one row per task (and per group), with intervals; summary.md the same as a table
    <task>/        an EvalDir per task
  (EvalDir, SuiteDir)  endpoint_requests.jsonl   an endpoint model's answered requests (resume)
  ForgettingDir  `tuneval forgetting`
    forgetting.json / .md / .png   per-task deltas, paired intervals, verdicts
    before/ after/                 a SuiteDir per side
  DemoDir        `tuneval demo`
    comparison.json / .md          every row's scores, the paired differences, the plan
    eval-original/                 the base model's EvalDir (eval-<label>/ for any other unrun row)
    <method>/                      each method's run directory (runs.py), scored into its eval/
  ScorecardDir   `tuneval scorecard`
    scorecard.json / .md           scenario x metric family, every mean with its 95% interval
    <scenario>/<variant>/          an EvalDir per scenario and input variant (clean, typos, gender, ...)
  ScorecardCompareDir  `tuneval scorecard --before A --after B`
    scorecard_compare.json / .md   after - before per cell, paired 95% intervals
  SweepDir       `tuneval sweep`
    sweep.json / .csv / .md / .png  one row per grid point
    <point>/                        each point's run directory (runs.py), with score.json

Each is one small type: the paths, and reading and writing its files (atomically, io.py).
Every type names its SIGNATURE, the file that says what a directory is (the report recognises
its inputs by it: report/inputs.py), and KINDS lists them. A new kind of result (a scorecard)
is one more subclass of ResultDir with its file names as class attributes, added to KINDS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

from tuneval.errors import TunevalError
from tuneval.io import atomic_write_json, atomic_write_text
from tuneval.runs import RunDir


def read_json(path: Path) -> Any:
    """A saved JSON file; one line naming it when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TunevalError(f"{path}: cannot read as JSON ({e})") from None


class ResultDir:
    """A result directory: its path, and the file that says what it is (SIGNATURE)."""

    SIGNATURE: ClassVar[str]
    KIND: ClassVar[str]  # what `tuneval report` and its errors call it

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.path == self.path  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.path))

    @property
    def signature_file(self) -> Path:
        return self.path / self.SIGNATURE

    @property
    def requests_file(self) -> Path:
        """An endpoint model's answered requests (models/http.RequestCache): a rerun with the same
        --out sends only the unanswered ones."""
        return self.path / "endpoint_requests.jsonl"

    def exists(self) -> bool:
        """The directory holds this kind of result (its signature file is there)."""
        return self.signature_file.is_file()

    def read(self) -> Any:
        """The signature file's JSON."""
        return read_json(self.signature_file)


class TableDir(ResultDir):
    """A result summed up in NAME.json (its signature), NAME.md and, where it draws one, NAME.png:
    forgetting, demo, sweep, scorecard."""

    JSON: ClassVar[str]
    MD: ClassVar[str]
    PNG: ClassVar[str | None] = None

    @property
    def json_file(self) -> Path:
        return self.path / self.JSON

    @property
    def md_file(self) -> Path:
        return self.path / self.MD

    @property
    def png_file(self) -> Path:
        if self.PNG is None:
            raise AttributeError(f"{type(self).__name__} draws no plot")
        return self.path / self.PNG

    def write(self, data: dict[str, Any], markdown: str) -> dict[str, Path]:
        """NAME.json and NAME.md (a plot, where there is one, is drawn to png_file by its maker)."""
        return {"json": atomic_write_json(self.json_file, data), "markdown": atomic_write_text(self.md_file, markdown)}


class EvalDir(ResultDir):
    """One task scored: results.json (every example's record) and, for generation tasks, report.md."""

    RESULTS = "results.json"
    REPORT = "report.md"
    SIGNATURE = RESULTS
    KIND = "evaluation"

    @property
    def results_file(self) -> Path:
        return self.path / self.RESULTS

    @property
    def report_file(self) -> Path:
        return self.path / self.REPORT

    def write(self, results: dict[str, Any], report: str | None = None) -> Path:
        if report is not None:
            atomic_write_text(self.report_file, report)
        return atomic_write_json(self.results_file, results)


class SuiteDir(ResultDir):
    """A plan of tasks scored: summary.json + summary.md, and an EvalDir per task."""

    SUMMARY = "summary.json"
    SUMMARY_MD = "summary.md"
    SIGNATURE = SUMMARY
    KIND = "benchmark evaluation"

    @property
    def summary_file(self) -> Path:
        return self.path / self.SUMMARY

    @property
    def summary_md_file(self) -> Path:
        return self.path / self.SUMMARY_MD

    def task(self, name: str) -> EvalDir:
        return EvalDir(self.path / name)

    def write(self, summary: dict[str, Any], markdown: str) -> Path:
        atomic_write_text(self.summary_md_file, markdown)
        return atomic_write_json(self.summary_file, summary)

    def read(self) -> dict[str, Any]:
        """summary.json, checked to be a tuneval summary (it has 'tasks')."""
        summary = read_json(self.summary_file)
        if not isinstance(summary, dict) or not isinstance(summary.get("tasks"), dict):
            raise TunevalError(f"{self.summary_file}: not a tuneval eval summary (no 'tasks')")
        return summary

    def task_results(self) -> dict[str, dict[str, Any]]:
        """{task: results} of every task summary.json lists."""
        if not self.exists():
            raise TunevalError(f"{self.path}: no {self.SUMMARY} here (expected the --out directory of "
                               "`tuneval eval --tasks/--suite`)")
        out = {}
        for name in self.read()["tasks"]:
            file = self.task(name).results_file
            if not file.is_file():
                raise TunevalError(f"{file}: missing (listed in {self.summary_file})")
            out[name] = read_json(file)
        return out


class ForgettingDir(TableDir):
    """`tuneval forgetting`: forgetting.{json,md,png} and the two sides' suites, before/ and after/."""

    JSON = "forgetting.json"
    MD = "forgetting.md"
    PNG = "forgetting.png"
    SIGNATURE = JSON
    KIND = "forgetting check"

    @property
    def before(self) -> SuiteDir:
        return SuiteDir(self.path / "before")

    @property
    def after(self) -> SuiteDir:
        return SuiteDir(self.path / "after")



class DemoDir(TableDir):
    """`tuneval demo`: comparison.{json,md}, the base model's eval-original/, a run per method."""

    JSON = "comparison.json"
    MD = "comparison.md"
    SIGNATURE = JSON
    KIND = "demo"

    def eval_of(self, label: str) -> EvalDir:
        """Where a row that is not a run is scored: eval-original/ for the base model."""
        return EvalDir(self.path / f"eval-{label}")

    @property
    def original(self) -> EvalDir:
        return self.eval_of("original")

    def run(self, method: str) -> RunDir:
        return RunDir(self.path / method)



class SweepDir(TableDir):
    """`tuneval sweep`: sweep.{json,csv,md,png} and a run directory per grid point."""

    JSON = "sweep.json"
    CSV = "sweep.csv"
    MD = "sweep.md"
    PNG = "sweep.png"
    SIGNATURE = JSON
    KIND = "sweep"

    @property
    def csv_file(self) -> Path:
        return self.path / self.CSV

    def point(self, name: str) -> RunDir:
        return RunDir(self.path / name)

    def write(self, data: dict[str, Any], markdown: str, csv: str) -> dict[str, Path]:
        """sweep.json, .md and .csv (the plot is drawn to png_file by report/charts.plot_sweep)."""
        return {"markdown": atomic_write_text(self.md_file, markdown), "csv": atomic_write_text(self.csv_file, csv),
                "json": atomic_write_json(self.json_file, data)}


class ScorecardDir(TableDir):
    """`tuneval scorecard`: scorecard.{json,md}; each scenario's variants (clean, then one per
    perturbation) scored into <scenario>/<variant>/, an EvalDir whose records keep the perturbed input."""

    JSON = "scorecard.json"
    MD = "scorecard.md"
    SIGNATURE = JSON
    KIND = "scorecard"

    def variant(self, scenario: str, variant: str) -> EvalDir:
        return EvalDir(self.path / scenario / variant)



class ScorecardCompareDir(TableDir):
    """Two scorecards compared (before/after fine-tuning): scorecard_compare.{json,md}."""

    JSON = "scorecard_compare.json"
    MD = "scorecard_compare.md"
    SIGNATURE = JSON
    KIND = "scorecard comparison"


# The order a directory is recognised in: a demo or a sweep holds runs, a forgetting check or a scorecard
# suites and evaluations, a suite evaluations, so the enclosing kind is asked first.
KINDS: tuple[type[ResultDir], ...] = (DemoDir, SweepDir, ForgettingDir, ScorecardCompareDir, ScorecardDir, SuiteDir,
                                      EvalDir)


class LmEvalDir(ResultDir):
    """lm-evaluation-harness 0.4's `--output_path DIR --log_samples` layout, written by lm-eval or by
    `tuneval eval` (evaluate/lm_eval_format.py), read by `tuneval forgetting` and `tuneval report`:

      DIR/<model_name_sanitized>/results_<timestamp>.json         results, configs, versions, n-shot, ...
      DIR/<model_name_sanitized>/samples_<task>_<timestamp>.jsonl  one record per example (--log_samples)

    `path` may be DIR, its model subdirectory, or one results file (lm-eval also names it
    `<stem>_<timestamp>.json` when --output_path is a .json file); a directory means its newest
    results file, in it or in its model subdirectories. Not one of KINDS: it is lm-eval's layout,
    told by its file names' pattern rather than one fixed signature file.
    """

    RESULTS_PREFIX = "results_"
    SAMPLES_PREFIX = "samples_"
    KIND = "lm-evaluation-harness output"

    @staticmethod
    def timestamp() -> str:
        """lm-eval's file-name timestamp: local time, ISO format, ':' as '-'."""
        from datetime import datetime

        return datetime.now().isoformat().replace(":", "-")

    @staticmethod
    def _stamp(file: Path) -> str:
        """The timestamp a results or samples file name ends with (lm-eval's get_file_datetime)."""
        return file.name[file.name.rfind("_") + 1:].removesuffix(".jsonl").removesuffix(".json")

    def results_files(self) -> list[Path]:
        """Every results file here or one directory down, oldest first."""
        if self.path.is_file():
            return [self.path]
        if not self.path.is_dir():
            return []
        found = [f for d in (self.path, *sorted(p for p in self.path.iterdir() if p.is_dir()))
                 for f in d.glob(f"{self.RESULTS_PREFIX}*.json") if f.is_file()]
        return sorted(found, key=self._stamp)

    @property
    def signature_file(self) -> Path:
        """The newest results file (lm-eval's get_latest_filename); a name that is not there when there is none."""
        files = self.results_files()
        return files[-1] if files else self.path / f"{self.RESULTS_PREFIX}*.json"

    def samples_file(self, task: str, results_file: Path | None = None) -> Path:
        """The samples file written with `results_file` (the same timestamp, the same directory)."""
        results_file = results_file or self.signature_file
        return results_file.parent / f"{self.SAMPLES_PREFIX}{task}_{self._stamp(results_file)}.jsonl"

    def read_samples(self, task: str, results_file: Path | None = None) -> list[dict[str, Any]] | None:
        """A task's per-example records, or None where lm-eval ran without --log_samples."""
        file = self.samples_file(task, results_file)
        if not file.is_file():
            return None
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
            return [json.loads(line) for line in lines if line.strip()]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise TunevalError(f"{file}: cannot read as JSON lines ({e})") from None

    def write(self, model_dir: str, results: dict[str, Any], samples: dict[str, list[dict[str, Any]]],
              stamp: str | None = None) -> dict[str, Path]:
        """A samples_<task>_<stamp>.jsonl per task, then results_<stamp>.json, under DIR/<model_dir>/
        (samples first: a results file that is there has its samples beside it)."""
        stamp = stamp or self.timestamp()
        where = self.path / model_dir
        paths = {}
        for task, records in samples.items():
            lines = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
            paths[task] = atomic_write_text(where / f"{self.SAMPLES_PREFIX}{task}_{stamp}.jsonl", lines)
        text = json.dumps(results, indent=2, ensure_ascii=False, default=str)
        paths["results"] = atomic_write_text(where / f"{self.RESULTS_PREFIX}{stamp}.json", text)
        return paths
