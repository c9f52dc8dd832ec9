"""Benchmark tasks as data: one YAML per task, lm-evaluation-harness style.

Keys are named as lm-eval names them (`task`, `output_type`, `doc_to_text`, `doc_to_choice`,
`doc_to_target`, `target_delimiter`, `fewshot_delimiter`, `metric_list`, `generation_kwargs`,
`num_fewshot`, `*_split`, `include`, `task_list`), so a task reads the same in both tools and
`bench/crosscheck_lm_eval.py` can hold the prompts side by side. Templates are Jinja2, as in
lm-eval. `include:` merges a base file (relative to the including file, else the built-in
directory), local keys win; `task_list:` makes one task per entry from one template (the
entry's keys become the task's `metadata`, usable as `{{ subject }}` in the task name, the
data paths and every prompt). Files starting with `_` are bases only; a file with a `suite:`
key is a suite (a named list of tasks, each with an optional per-task `limit`).
A bad key is an error naming the file that has it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tuneval.errors import TunevalError
from tuneval.evaluate.task_metrics import GEN_METRICS, MC_METRICS
from tuneval.evaluate.templating import render_string
from tuneval.io import read_text

BUILTIN_DIR = Path(__file__).parent / "tasks"

OUTPUT_TYPES = {"multiple_choice": "multiple_choice", "generate": "generate_until", "generate_until": "generate_until"}
TASK_KEYS = {
    "task", "group", "tag", "description", "dataset_path", "dataset_name", "data_files", "columns", "line_pattern",
    "training_split", "validation_split", "test_split", "fewshot_split", "fewshot_config", "num_fewshot",
    "output_type", "doc_to_text", "doc_to_target", "doc_to_choice", "target_delimiter", "fewshot_delimiter",
    "metric_list", "generation_kwargs", "metadata", "chat_template",
}
FILE_KEYS = {"include", "task_list"}
SUITE_KEYS = {"suite", "description", "tasks", "include"}
SUITE_ENTRY_KEYS = {"task", "limit", "num_fewshot"}
GENERATION_KEYS = {"until", "max_gen_toks"}
FEWSHOT_KEYS = {"sampler"}
SAMPLERS = ("default", "first_n")


@dataclass
class BenchTask:
    """One task, fully resolved (includes merged, metadata filled in)."""

    name: str
    source: str  # the YAML file that defines it
    output_type: str  # "multiple_choice" | "generate_until"
    doc_to_text: str
    doc_to_target: Any
    doc_to_choice: Any = None
    description: str = ""
    group: str | None = None
    dataset_path: str | None = None
    dataset_name: str | None = None
    data_files: dict[str, Any] = field(default_factory=dict)
    columns: list[str] | None = None
    line_pattern: str | None = None
    training_split: str | None = None
    validation_split: str | None = None
    test_split: str | None = None
    fewshot_split: str | None = None
    sampler: str = "default"
    num_fewshot: int = 0
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    metrics: list[dict[str, Any]] = field(default_factory=list)  # [{"metric": name, **options}]
    until: list[str] = field(default_factory=list)
    max_gen_toks: int = 64
    chat_template: bool = True  # generate tasks only; multiple-choice is scored on plain text as in lm-eval
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def eval_split(self) -> str:
        return self.test_split or self.validation_split  # type: ignore[return-value]

    @property
    def primary_metric(self) -> str:
        """The headline number: the first output of the first listed metric (rouge -> rouge1)."""
        if not self.metrics:
            return "acc" if self.output_type == "multiple_choice" else "exact_match"
        registry = MC_METRICS if self.output_type == "multiple_choice" else GEN_METRICS
        return registry[self.metrics[0]["metric"]].outputs[0]

    @property
    def category(self) -> str | None:
        return self.metadata.get("category")


@dataclass
class Suite:
    name: str
    source: str
    description: str
    entries: list[dict[str, Any]]  # [{"task": name, "limit": n | None, "num_fewshot": k | None}]


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(read_text(path))
    except yaml.YAMLError as e:
        raise TunevalError(f"{path}: not valid YAML ({e})") from None
    except OSError as e:
        raise TunevalError(f"{path}: cannot read ({e.strerror})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise TunevalError(f"{path}: expected a mapping of keys, got {type(raw).__name__}")
    return raw


def _check_keys(raw: dict[str, Any], known: set[str], path: Path, what: str = "") -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise TunevalError(f"{path}: unknown key(s) {unknown}{what} (known: {', '.join(sorted(known))})")


def _resolve_include(name: str, including: Path) -> Path:
    for candidate in (including.parent / name, BUILTIN_DIR / name):
        if candidate.is_file():
            return candidate
    raise TunevalError(f"{including}: include '{name}' not found next to it or in {BUILTIN_DIR}")


def load_merged(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML file with its includes merged under it (local keys win), each file's keys checked."""
    path = path.resolve()
    if path in _seen:
        raise TunevalError(f"{path}: include cycle ({' -> '.join(str(p) for p in (*_seen, path))})")
    raw = _read_yaml(path)
    known = SUITE_KEYS if "suite" in raw else TASK_KEYS | FILE_KEYS
    _check_keys(raw, known, path)
    includes = raw.pop("include", None) or []
    merged: dict[str, Any] = {}
    for name in includes if isinstance(includes, list) else [includes]:
        base = load_merged(_resolve_include(str(name), path), (*_seen, path))
        base.pop("task_list", None)  # a base's task_list describes the base file only
        merged.update(base)
    merged.update(raw)
    return merged


def _metric_list(raw: Any, output_type: str, path: Path) -> list[dict[str, Any]]:
    known = MC_METRICS if output_type == "multiple_choice" else GEN_METRICS
    out = []
    for entry in raw or []:
        spec = {"metric": entry} if isinstance(entry, str) else dict(entry) if isinstance(entry, dict) else None
        if spec is None or "metric" not in spec:
            raise TunevalError(f"{path}: metric_list entries are names or mappings with a 'metric' key, got {entry!r}")
        if spec["metric"] not in known:
            raise TunevalError(f"{path}: unknown metric '{spec['metric']}' for {output_type} "
                               f"(known: {', '.join(sorted(known))})")
        options = set(spec) - {"metric"} - set(known[spec["metric"]].options)
        if options:
            raise TunevalError(f"{path}: metric '{spec['metric']}' has no option(s) {sorted(options)}")
        out.append(spec)
    return out


def _fill(value: Any, variables: dict[str, Any], path: Path) -> Any:
    """Render `{{ var }}` in task names and data paths from a task_list entry's metadata."""
    if isinstance(value, str):
        return render_string(value, variables, f"{path}") if "{" in value else value
    if isinstance(value, list):
        return [_fill(v, variables, path) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, variables, path) for k, v in value.items()}
    return value


def build_task(raw: dict[str, Any], path: Path) -> BenchTask:
    """A BenchTask from one merged mapping; every missing or ill-typed key is named with its file."""
    raw = dict(raw)
    metadata = dict(raw.get("metadata") or {})
    for key in ("task", "data_files", "group", "dataset_name"):
        if key in raw:
            raw[key] = _fill(raw[key], metadata, path)
    for key in ("task", "doc_to_text", "doc_to_target"):
        if key not in raw:
            raise TunevalError(f"{path}: missing key '{key}'")
    output_type = OUTPUT_TYPES.get(str(raw.get("output_type", "")))
    if output_type is None:
        raise TunevalError(f"{path}: output_type must be one of {', '.join(OUTPUT_TYPES)}, got {raw.get('output_type')!r}")
    if output_type == "multiple_choice" and "doc_to_choice" not in raw:
        raise TunevalError(f"{path}: a multiple_choice task needs 'doc_to_choice'")
    if not (raw.get("test_split") or raw.get("validation_split")):
        raise TunevalError(f"{path}: set 'test_split' or 'validation_split' (the split that is scored)")
    data_files = raw.get("data_files") or {}
    if not isinstance(data_files, dict):
        raise TunevalError(f"{path}: data_files maps split names to paths under the data directory")
    gen = dict(raw.get("generation_kwargs") or {})
    _check_keys(gen, GENERATION_KEYS, path, " in generation_kwargs")
    fewshot = dict(raw.get("fewshot_config") or {})
    _check_keys(fewshot, FEWSHOT_KEYS, path, " in fewshot_config")
    if fewshot.get("sampler", "default") not in SAMPLERS:
        raise TunevalError(f"{path}: fewshot_config.sampler must be one of {', '.join(SAMPLERS)}")
    until = gen.get("until", [])
    try:
        num_fewshot, max_gen_toks = int(raw.get("num_fewshot", 0)), int(gen.get("max_gen_toks", 64))
    except (TypeError, ValueError):
        raise TunevalError(f"{path}: num_fewshot and generation_kwargs.max_gen_toks must be integers") from None
    return BenchTask(
        name=str(raw["task"]), source=str(path), output_type=output_type,
        doc_to_text=raw["doc_to_text"], doc_to_target=raw["doc_to_target"], doc_to_choice=raw.get("doc_to_choice"),
        description=raw.get("description", "") or "", group=raw.get("group"),
        dataset_path=raw.get("dataset_path"), dataset_name=raw.get("dataset_name"), data_files=data_files,
        columns=raw.get("columns"), line_pattern=raw.get("line_pattern"),
        training_split=raw.get("training_split"), validation_split=raw.get("validation_split"),
        test_split=raw.get("test_split"), fewshot_split=raw.get("fewshot_split"),
        sampler=fewshot.get("sampler", "default"), num_fewshot=num_fewshot,
        target_delimiter=str(raw.get("target_delimiter", " ")), fewshot_delimiter=str(raw.get("fewshot_delimiter", "\n\n")),
        metrics=_metric_list(raw.get("metric_list"), output_type, path),
        until=[until] if isinstance(until, str) else list(until), max_gen_toks=max_gen_toks,
        chat_template=bool(raw.get("chat_template", True)), metadata=metadata,
    )


def tasks_in_file(path: Path) -> list[BenchTask]:
    merged = load_merged(path)
    entries = merged.pop("task_list", None)
    if entries is None:
        return [build_task(merged, path)]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise TunevalError(f"{path}: task_list is a list of mappings (each one task's metadata)")
    return [build_task({**merged, "metadata": {**(merged.get("metadata") or {}), **e}}, path) for e in entries]


def suite_in_file(path: Path) -> Suite:
    raw = load_merged(path)
    entries = []
    for entry in raw.get("tasks") or []:
        spec = {"task": entry} if isinstance(entry, str) else dict(entry) if isinstance(entry, dict) else {}
        _check_keys(spec, SUITE_ENTRY_KEYS, path, f" in suite entry {entry!r}")
        if "task" not in spec:
            raise TunevalError(f"{path}: suite entry {entry!r} has no 'task'")
        entries.append({"task": str(spec["task"]), "limit": spec.get("limit"), "num_fewshot": spec.get("num_fewshot")})
    if not entries:
        raise TunevalError(f"{path}: suite '{raw['suite']}' lists no tasks")
    return Suite(name=str(raw["suite"]), source=str(path), description=raw.get("description", ""), entries=entries)


@dataclass
class Registry:
    """Every task, group and suite visible from the built-in directory plus --tasks-dir."""

    tasks: dict[str, BenchTask]
    groups: dict[str, list[str]]
    suites: dict[str, Suite]

    def expand(self, names: list[str]) -> list[str]:
        """Task names for a mix of task and group names, in order, without repeats."""
        out: list[str] = []
        for name in names:
            if name in self.tasks:
                members = [name]
            elif name in self.groups:
                members = self.groups[name]
            else:
                known = sorted(self.tasks) if len(self.tasks) < 40 else sorted(n for n in self.tasks if not n.startswith("mmlu_"))
                raise TunevalError(f"unknown task '{name}' (known: {', '.join(known)}; groups: {', '.join(sorted(self.groups))})")
            out += [m for m in members if m not in out]
        return out

    def suite(self, name: str) -> Suite:
        if name not in self.suites:
            raise TunevalError(f"unknown suite '{name}' (known: {', '.join(sorted(self.suites))})")
        return self.suites[name]


def load_registry(tasks_dir: str | Path | None = None) -> Registry:
    dirs = [BUILTIN_DIR]
    if tasks_dir is not None:
        user = Path(tasks_dir).expanduser()
        if not user.is_dir():
            raise TunevalError(f"tasks directory '{user}' (--tasks-dir) does not exist")
        dirs.append(user)
    tasks: dict[str, BenchTask] = {}
    suites: dict[str, Suite] = {}
    for d in dirs:  # later directories win: a user's task replaces a built-in one of the same name
        for path in sorted(d.rglob("*.yaml")):
            if path.name.startswith("_"):
                continue
            if "suite" in _read_yaml(path):
                suite = suite_in_file(path)
                suites[suite.name] = suite
            else:
                for task in tasks_in_file(path):
                    tasks[task.name] = task
    groups: dict[str, list[str]] = {}
    for task in tasks.values():
        for g in filter(None, (task.group, f"{task.group}_{task.category}" if task.group and task.category else None)):
            groups.setdefault(g, []).append(task.name)
    return Registry(tasks=tasks, groups=groups, suites=suites)


def plan(registry: Registry, *, tasks: list[str] | None = None, suite: str | None = None,
         limit: int | None = None, num_fewshot: int | None = None) -> list[tuple[BenchTask, int | None, int]]:
    """(task, limit, num_fewshot) per task to run; the command line overrides the suite's values."""
    if bool(tasks) == bool(suite):
        raise TunevalError("give either --tasks a,b,... or --suite NAME")
    if limit is not None and limit < 1:
        raise TunevalError(f"--limit must be at least 1, got {limit}")
    if num_fewshot is not None and num_fewshot < 0:
        raise TunevalError(f"--num-fewshot must be at least 0, got {num_fewshot}")
    entries = registry.suite(suite).entries if suite else [{"task": t, "limit": None, "num_fewshot": None} for t in tasks or []]
    out: list[tuple[BenchTask, int | None, int]] = []
    seen: set[str] = set()
    for entry in entries:
        for name in registry.expand([entry["task"]]):
            if name in seen:
                continue
            seen.add(name)
            task = registry.tasks[name]
            k = num_fewshot if num_fewshot is not None else entry["num_fewshot"] if entry["num_fewshot"] is not None else task.num_fewshot
            out.append((task, limit if limit is not None else entry["limit"], int(k)))
    return out
