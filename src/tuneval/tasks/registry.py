"""Every task, group and suite: the built-in YAML files plus a user's `--tasks-dir`.

`include:` merges a base file (relative to the including file, else the built-in directory),
local keys win; `task_list:` makes one task per entry from one template (an entry's task keys,
`description` or `filter_list` say, override the file's, as in lm-eval; its other keys become the
task's `metadata`, usable as `{{ subject }}` in the task name, the data paths and every prompt).
A task's `group` and each of its `tag`s are groups `--tasks` expands. Files starting with `_` are bases only; a file with a `suite:` key is a suite
(a named list of tasks, each with an optional per-task `limit`). A user's task of the same name
replaces the built-in one. A bad key is an error naming the file that has it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tuneval.errors import TunevalError
from tuneval.io import read_text
from tuneval.tasks.filters import FunctionRef
from tuneval.tasks.task import TASK_KEYS, Task, check_keys, build_task

BUILTIN_DIR = Path(__file__).parent
FILE_KEYS = {"include", "task_list"}
SUITE_KEYS = {"suite", "description", "tasks", "include"}
SUITE_ENTRY_KEYS = {"task", "limit", "num_fewshot"}


@dataclass
class Suite:
    name: str
    source: str
    description: str
    entries: list[dict[str, Any]]  # [{"task": name, "limit": n | None, "num_fewshot": k | None}]


class _Loader(yaml.SafeLoader):
    """yaml's safe loader, plus lm-eval's `!function x` read as a FunctionRef (refused by name where it is used)."""


_Loader.add_constructor("!function", lambda loader, node: FunctionRef(loader.construct_scalar(node)))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.load(read_text(path), Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        raise TunevalError(f"{path}: not valid YAML ({' '.join(str(getattr(e, 'problem', None) or e).split())})") from None
    except OSError as e:
        raise TunevalError(f"{path}: cannot read ({e.strerror})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise TunevalError(f"{path}: expected a mapping of keys, got {type(raw).__name__}")
    return raw


def _resolve_include(name: str, including: Path) -> Path:
    if not name.endswith((".yaml", ".yml")):
        raise TunevalError(f"{including}: include '{name}' is not a task YAML file (.yaml)")
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
    check_keys(raw, known, path)
    includes = raw.pop("include", None) or []
    merged: dict[str, Any] = {}
    for name in includes if isinstance(includes, list) else [includes]:
        base = load_merged(_resolve_include(str(name), path), (*_seen, path))
        base.pop("task_list", None)  # a base's task_list describes the base file only
        merged.update(base)
    merged.update(raw)
    return merged


def tasks_in_file(path: Path) -> list[Task]:
    merged = load_merged(path)
    entries = merged.pop("task_list", None)
    if entries is None:
        return [build_task(merged, path)]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise TunevalError(f"{path}: task_list is a list of mappings (each one task's metadata)")
    if not isinstance(merged.get("metadata") or {}, dict):
        raise TunevalError(f"{path}: metadata must be a mapping, got {merged['metadata']!r}")
    tasks = []
    for entry in entries:  # an entry's task keys override the file's (lm-eval); the others are metadata
        keys = {k: v for k, v in entry.items() if k in TASK_KEYS and k != "metadata"}
        meta = {k: v for k, v in entry.items() if k not in keys}
        tasks.append(build_task({**merged, **keys, "metadata": {**(merged.get("metadata") or {}), **meta}}, path))
    return tasks


def suite_in_file(path: Path) -> Suite:
    raw = load_merged(path)
    entries = []
    for entry in raw.get("tasks") or []:
        spec = {"task": entry} if isinstance(entry, str) else dict(entry) if isinstance(entry, dict) else {}
        check_keys(spec, SUITE_ENTRY_KEYS, path, f" in suite entry {entry!r}")
        if "task" not in spec:
            raise TunevalError(f"{path}: suite entry {entry!r} has no 'task'")
        entries.append({"task": str(spec["task"]), "limit": spec.get("limit"), "num_fewshot": spec.get("num_fewshot")})
    if not entries:
        raise TunevalError(f"{path}: suite '{raw['suite']}' lists no tasks")
    return Suite(name=str(raw["suite"]), source=str(path), description=raw.get("description", ""), entries=entries)


@dataclass
class Registry:
    """Every task, group and suite visible from the built-in directory plus --tasks-dir."""

    tasks: dict[str, Task]
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

    def task(self, name: str) -> Task:
        """One task by name; an unknown name lists the known ones."""
        if name not in self.tasks:
            self.expand([name])  # raises with the known names (a group is not one task)
            raise TunevalError(f"'{name}' is a group of {len(self.groups[name])} tasks, not one task")
        return self.tasks[name]

    def suite(self, name: str) -> Suite:
        if name not in self.suites:
            raise TunevalError(f"unknown suite '{name}' (known: {', '.join(sorted(self.suites))})")
        return self.suites[name]


def _yaml_files(tasks_dir: str | Path | None) -> list[Path]:
    """The built-in files, then the user's (a directory searched recursively, or one YAML file)."""
    files = sorted(BUILTIN_DIR.rglob("*.yaml"))
    if tasks_dir is not None:
        user = Path(tasks_dir).expanduser()
        if user.is_file():
            files.append(user)
        elif user.is_dir():
            files += sorted(user.rglob("*.yaml"))
        else:
            raise TunevalError(f"tasks directory '{user}' (--tasks-dir) does not exist")
    return files


def load_registry(tasks_dir: str | Path | None = None) -> Registry:
    tasks: dict[str, Task] = {}
    suites: dict[str, Suite] = {}
    for path in _yaml_files(tasks_dir):  # later files win: a user's task replaces a built-in one of the same name
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
        category = f"{task.group}_{task.category}" if task.group and task.category else None
        for g in filter(None, (task.group, category, *task.tags)):
            groups.setdefault(g, []).append(task.name)
    return Registry(tasks=tasks, groups=groups, suites=suites)


def get_task(name: str, tasks_dir: str | Path | None = None) -> Task:
    """The task `name`, from the built-in tasks or the user's `tasks_dir`."""
    return load_registry(tasks_dir).task(name)


def available_tasks(tasks_dir: str | Path | None = None) -> list[str]:
    return sorted(load_registry(tasks_dir).tasks)


def plan(registry: Registry, *, tasks: list[str] | None = None, suite: str | None = None,
         limit: int | None = None, num_fewshot: int | None = None) -> list[tuple[Task, int | None, int]]:
    """(task, limit, num_fewshot) per task to run; the command line overrides the suite's values."""
    if bool(tasks) == bool(suite):
        raise TunevalError("give either --tasks a,b,... or --suite NAME")
    if limit is not None and limit < 1:
        raise TunevalError(f"--limit must be at least 1, got {limit}")
    if num_fewshot is not None and num_fewshot < 0:
        raise TunevalError(f"--num-fewshot must be at least 0, got {num_fewshot}")
    entries = registry.suite(suite).entries if suite else [{"task": t, "limit": None, "num_fewshot": None} for t in tasks or []]
    out: list[tuple[Task, int | None, int]] = []
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


def _families(task: Task) -> list[str]:
    """The prompt families a task can be scored through (evaluate/harness.family)."""
    out = ["scoring"] if task.doc_to_text is not None else []
    if task.templates is not None:
        out.append(f"template x{len(task.templates.prompts)}")
    if task.conversational:
        out.append("conversation")
    return out


def _metric_names(task: Task) -> list[str]:
    """What the default family reports: `metric,filter` per filter_list pipeline, as lm-eval names them."""
    from tuneval.metrics.registry import metric_specs

    specs = metric_specs(task.output_type, task.metrics) if task.doc_to_text is not None else task.generation_metrics()
    names = [s["metric"] for s in specs]
    return [f"{n},{p.name}" for p in task.filters for n in names] if task.filters else names


def catalogue(registry: Registry, pattern: str | None = None) -> list[dict[str, Any]]:
    """Every task, group and suite (`lm_eval --tasks list`), those whose name matches `pattern` (a glob or a part)."""
    from fnmatch import fnmatchcase

    def wanted(name: str) -> bool:
        return pattern is None or pattern in name or fnmatchcase(name, pattern)

    rows: list[dict[str, Any]] = []
    for name, members in sorted(registry.groups.items()):
        if wanted(name):
            types = sorted({registry.tasks[m].output_type for m in members})
            rows.append({"name": name, "kind": "group", "output_type": "/".join(types), "tasks": len(members),
                         "metrics": _metric_names(registry.tasks[members[0]]), "source": registry.tasks[members[0]].source})
    for name, suite in sorted(registry.suites.items()):
        if wanted(name):
            try:
                count = len(registry.expand([e["task"] for e in suite.entries]))
            except TunevalError:  # a suite naming a task not here still lists
                count = len(suite.entries)
            rows.append({"name": name, "kind": "suite", "tasks": count, "description": suite.description,
                         "source": suite.source})
    for name, task in sorted(registry.tasks.items()):
        if wanted(name):
            rows.append({"name": name, "kind": "task", "output_type": task.output_type, "families": _families(task),
                         "metrics": _metric_names(task), "num_fewshot": task.num_fewshot,
                         "groups": [g for g in (task.group, *task.tags) if g], "source": task.source,
                         **({"evaluation_only": True} if task.evaluation_only else {})})
    return rows
