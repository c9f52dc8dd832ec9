"""One task: where its rows live, its splits, and up to two prompt families.

A task YAML (lm-evaluation-harness key names wherever lm-eval has one) says:
- where the rows live: `data_files` (split -> file(s) under the data directory, with per-file
  options) or a hub dataset (`dataset_path`, `dataset_name`);
- its splits: `training_split`, `validation_split`, `test_split`, `fewshot_split`;
- `id_field` and `input_field` (what a side-by-side sample shows), `label_field` and
  `label_names` (label value -> verbaliser; rows then also carry `{answer}` and `{options}`);
- the FLAN template set (`templates`, `target`, `eval_template`): training, and generative
  evaluation of any phrasing;
- the scoring prompt (`output_type`, `doc_to_text`, `doc_to_choice`, `doc_to_target`,
  `metric_list`, `generation_kwargs`, few-shot keys): benchmark evaluation as lm-eval runs it.
A generation task without `doc_to_text` is evaluated with its FLAN `eval_template`, so
`eval --task X` and `eval --tasks X` are then the same computation.

A third kind of task brings its own prompts: `format` (alpaca, messages, sharegpt,
prompt_completion, text, columns; data/formats.py) turns each row into a conversation, trained
on every assistant turn and evaluated by generating the last one (tasks/user_data.py makes one
from `--data PATH`). `columns` is then a mapping (format field -> the file's column) and
`validation_share` holds out a seeded share of `train` as `validation` when there is none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneval.errors import TunevalError
from tuneval.metrics.registry import GEN_METRICS, MC_METRICS, primary_metric
from tuneval.tasks.filters import FunctionRef, compile_regex, parse_filter_list, parse_process_docs
from tuneval.tasks.prompts import TemplateSet, check_format, placeholders, render_string

OUTPUT_TYPES = {"multiple_choice": "multiple_choice", "generate": "generate_until", "generate_until": "generate_until"}
TASK_KEYS = {
    "task", "group", "tag", "description", "dataset_path", "dataset_name", "data_files", "columns", "line_pattern",
    "training_split", "validation_split", "test_split", "fewshot_split", "fewshot_config", "num_fewshot",
    "output_type", "doc_to_text", "doc_to_target", "doc_to_choice", "target_delimiter", "fewshot_delimiter",
    "metric_list", "generation_kwargs", "metadata", "chat_template",
    "id_field", "input_field", "label_field", "label_names", "templates", "target", "eval_template",
    "format", "validation_share", "filter_list", "process_docs", "evaluation_only",
}
RENAMED = {"name": "task", "files": "data_files", "hub_id": "dataset_path"}  # the old training-task keys
FILE_OPTIONS = {"path", "format", "columns", "rename", "rows", "explode", "line_pattern", "field"}
GENERATION_KEYS = {"until", "max_gen_toks"}
FEWSHOT_KEYS = {"sampler"}
SAMPLERS = ("default", "first_n")
AUTO = "auto"  # format: recognise it from the first row (data/formats.to_records), or `columns` if given
DERIVED_FIELDS = ("answer", "options")  # filled from label_names, never read from the data


@dataclass
class Task:
    """One task, fully resolved (includes merged, task_list metadata filled in)."""

    name: str
    source: str  # the YAML file that defines it
    output_type: str  # "multiple_choice" | "generate_until"
    doc_to_text: str | None = None
    doc_to_target: Any = None
    doc_to_choice: Any = None
    templates: TemplateSet | None = None
    description: str = ""
    group: str | None = None
    dataset_path: str | None = None
    dataset_name: str | None = None
    data_files: dict[str, Any] = field(default_factory=dict)  # split -> path | [paths] | {path, options} | {field: path}
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
    id_field: str | None = None
    input_field: str | None = None
    label_field: str | None = None
    label_names: dict[str, str] = field(default_factory=dict)  # label value (as text) -> verbaliser, in option order
    format: str | None = None  # a data format (data/formats.py): rows are conversations, not template fields
    column_map: dict[str, str] | None = None  # with `format`: format field -> the file's column
    validation_share: float | None = None  # with `format`: hold out this share of train as validation
    split_seed: int = 0  # ... seeded by this (the recipe's seed for --data)
    data_root: str | None = None  # data_files relative to this instead of the data directory (--data PATH)
    split_info: dict[str, Any] | None = None  # what the held-out split took, once rows were read (recorded)
    sample_by: str = "paragraph"  # with format text: how a .txt file splits into documents (data/sources.py)
    turn_tags: dict[str, Any] | None = None  # with format sharegpt: the file's turn keys and roles (data/dataset_info.py)
    read_info: dict[str, Any] | None = None  # with `format`: what reading found (format, columns, rows), recorded
    tags: list[str] = field(default_factory=list)  # lm-eval's `tag`: more groups the task belongs to
    filters: list[Any] = field(default_factory=list)  # filter_list: tasks/filters.Pipeline per name
    hooks: list[Any] = field(default_factory=list)  # process_docs: built-in row transforms (tasks/filters.py)
    evaluation_only: str | None = None  # why the task never goes into a training mix (a benchmark's canary)

    @property
    def eval_split(self) -> str:
        """The split evaluation scores: the test split where the task has one, else validation."""
        return self.test_split or self.validation_split or "validation"

    @property
    def primary_metric(self) -> str:
        """The headline number of the task's default family (rouge -> rouge1)."""
        return primary_metric(self.output_type, self.metrics)

    @property
    def category(self) -> str | None:
        return self.metadata.get("category")

    @property
    def fields(self) -> list[str]:
        """The fields the FLAN templates use (every row must have them)."""
        if self.templates is None:
            return []
        names: set[str] = set()
        for text in (*self.templates.prompts, self.templates.target):
            names |= placeholders(text)
        return sorted(names)

    @property
    def input_fields(self) -> list[str]:
        """Fields the prompt shows from the data (what fit_prompt may cut), not the answer or the options."""
        target = placeholders(self.templates.target) if self.templates else set()
        return [f for f in self.fields if f not in target and f not in DERIVED_FIELDS]

    @property
    def options_text(self) -> str:
        return "OPTIONS:\n" + "\n".join(f"- {name}" for name in self.label_names.values())

    @property
    def conversational(self) -> bool:
        """Rows are conversations in a data format: no templates, the data holds prompt and response."""
        return self.format is not None

    def template_index(self, template: int | None, where: str = "template") -> int:
        """The phrasing to use: `template`, else the task's own evaluation template."""
        if self.templates is None:
            raise TunevalError(f"{where}: task '{self.name}' ({self.source}) has no FLAN 'templates'")
        index = self.templates.eval_index if template is None else template
        if not 0 <= index < len(self.templates.prompts):
            raise TunevalError(f"{where} {index} is out of range for task '{self.name}' (0..{len(self.templates.prompts) - 1})")
        return index

    def generation_metrics(self) -> list[dict[str, Any]]:
        """What generation with a FLAN template is scored with: ROUGE and corpus BLEU always (the
        headline of every generation table), then the task's other generation metrics; a
        classification task answered in words also gets exact match of the answer word."""
        specs = [{"metric": "rouge"}, {"metric": "bleu"}]
        extra = self.metrics if self.output_type == "generate_until" else [{"metric": "exact_match"}]
        return specs + [m for m in extra if m["metric"] not in ("rouge", "bleu")]


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
        ignore = spec.get("regexes_to_ignore")
        if ignore is not None and not isinstance(ignore, list):
            raise TunevalError(f"{path}: metric_list.{spec['metric']}.regexes_to_ignore is a list of regexes, got {ignore!r}")
        for pattern in ignore or []:
            compile_regex(pattern, f"{path}: metric_list.{spec['metric']}.regexes_to_ignore")
        out.append(spec)
    return out


def _fill(value: Any, variables: dict[str, Any], path: Path) -> Any:
    """Render `{{ var }}` in task names and data paths from a task_list entry's metadata."""
    if isinstance(value, str):
        return render_string(value, variables, f"{path}") if "{{" in value else value
    if isinstance(value, list):
        return [_fill(v, variables, path) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, variables, path) for k, v in value.items()}
    return value


def _data_files(raw: Any, path: Path) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise TunevalError(f"{path}: data_files maps split names to paths under the data directory")
    for split, spec in raw.items():
        if isinstance(spec, dict) and "path" in spec:
            unknown = set(spec) - FILE_OPTIONS
            if unknown:
                raise TunevalError(f"{path}: data_files.{split}: unknown key(s) {sorted(unknown)} "
                                   f"(known: {', '.join(sorted(FILE_OPTIONS))})")
        elif not isinstance(spec, (str, list, dict)):
            raise TunevalError(f"{path}: data_files.{split} must be a path, a list of paths or a mapping")
    return dict(raw)


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def _hub_id(value: Any, path: Path) -> str | None:
    """A task file's `dataset_path` is a hub id (`glue`, `knkarthick/dialogsum`), never a local path:
    `datasets` would read any directory it names, outside the data directory."""
    if value is None:
        return None
    text = str(value)
    if not HUB_ID.fullmatch(text) or ".." in text or Path(text).exists():
        raise TunevalError(f"{path}: dataset_path '{text}' is not a hub dataset id (owner/name); local data goes "
                           "in data_files, under the data directory")
    return text


def _label_names(raw: dict[str, Any], path: Path) -> tuple[str | None, dict[str, str]]:
    field_name, names = raw.get("label_field"), raw.get("label_names")
    if (field_name is None) != (names is None):
        raise TunevalError(f"{path}: 'label_field' and 'label_names' go together")
    if names is None:
        return None, {}
    if not isinstance(names, dict) or not names:
        raise TunevalError(f"{path}: 'label_names' must map each label value to its word, e.g. {{0: negative, 1: positive}}")
    for value, word in names.items():
        if not isinstance(word, str) or not word.strip():
            raise TunevalError(f"{path}: label_names.{value} must be a non-empty word, got {word!r}")
    return str(field_name), {str(k): v for k, v in names.items()}


def _templates(raw: dict[str, Any], name: str, path: Path) -> TemplateSet | None:
    if "templates" not in raw:
        if "target" in raw or "eval_template" in raw:
            raise TunevalError(f"{path}: 'target'/'eval_template' need 'templates'")
        return None
    if "target" not in raw:
        raise TunevalError(f"{path}: missing key 'target' (the response each template is answered with)")
    prompts = raw["templates"]
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise TunevalError(f"{path}: 'templates' is a list of prompt strings with {{field}} placeholders")
    try:
        index = int(raw.get("eval_template", 0))
    except (TypeError, ValueError):
        raise TunevalError(f"{path}: eval_template must be an integer") from None
    for i, text in enumerate((*prompts, str(raw["target"]))):
        check_format(text, f"{path}: {'target' if i == len(prompts) else f'templates[{i}]'}")
    return TemplateSet(task=name, prompts=tuple(prompts), target=str(raw["target"]), eval_index=index)


def _check_prompts(raw: dict[str, Any], templates: TemplateSet | None, output_type: str, path: Path) -> None:
    if raw.get("format") is not None:
        from tuneval.data.formats import FORMATS

        if raw["format"] not in (*FORMATS, AUTO):
            raise TunevalError(f"{path}: format must be one of {', '.join(FORMATS)} or {AUTO}, got {raw['format']!r}")
        if templates is not None or output_type == "multiple_choice":
            raise TunevalError(f"{path}: a task in a data format ({raw['format']}) carries its own prompts; "
                               "it takes no 'templates' and is scored by generation")
        return
    if output_type == "multiple_choice":
        missing = [k for k in ("doc_to_text", "doc_to_choice", "doc_to_target") if k not in raw]
        if missing:
            raise TunevalError(f"{path}: a multiple_choice task needs {', '.join(repr(k) for k in missing)}")
    if templates is None and "doc_to_text" not in raw:
        raise TunevalError(f"{path}: a task needs FLAN 'templates' (with 'target') or a scoring prompt 'doc_to_text'")
    if "doc_to_text" in raw and "doc_to_target" not in raw:
        raise TunevalError(f"{path}: missing key 'doc_to_target'")


def _check_templates(task: Task, path: Path) -> None:
    if task.templates is None:
        return
    task.templates.validate(set(task.fields), str(path))  # which fields rows must have is checked row by row
    derived = sorted(set(task.fields) & set(DERIVED_FIELDS))
    if derived and not task.label_names:
        raise TunevalError(f"{path}: the templates use {derived}, which need 'label_field' and 'label_names'")


def _share(value: Any, path: Path) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise TunevalError(f"{path}: validation_share must be a number between 0 and 1 (exclusive), got {value!r}")
    return float(value)


TEXT_KEYS = ("description", "doc_to_text", "target_delimiter", "fewshot_delimiter", "group", "dataset_name",
             "line_pattern", "training_split", "validation_split", "test_split", "fewshot_split", "id_field",
             "input_field", "label_field")


def _check_types(raw: dict[str, Any], path: Path) -> None:
    """The keys that hold text hold text (a list where a template belongs is named, not a TypeError later);
    doc_to_target is a template, a field or an index; doc_to_choice a list, a mapping, a template or a field."""
    for key in TEXT_KEYS:
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise TunevalError(f"{path}: {key} must be text, got {type(raw[key]).__name__} {raw[key]!r}")
    target, choice = raw.get("doc_to_target"), raw.get("doc_to_choice")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (str, int))):
        raise TunevalError(f"{path}: doc_to_target must be a template, a field name or an index, got {target!r}")
    if choice is not None and not isinstance(choice, (str, list, dict)):
        raise TunevalError(f"{path}: doc_to_choice must be a list, a mapping, a template or a field, got {choice!r}")
    for key in ("metadata", "generation_kwargs", "fewshot_config"):
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            raise TunevalError(f"{path}: {key} must be a mapping, got {raw[key]!r}")
    if raw.get("metric_list") is not None and not isinstance(raw["metric_list"], list):
        raise TunevalError(f"{path}: metric_list must be a list of metric names or mappings, got {raw['metric_list']!r}")


def check_keys(raw: dict[str, Any], known: set[str], path: Path, what: str = "") -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        hints = [f"'{k}' is now '{RENAMED[k]}'" for k in unknown if k in RENAMED]
        raise TunevalError(f"{path}: unknown key(s) {unknown}{what}" + (f" ({'; '.join(hints)})" if hints else
                                                                          f" (known: {', '.join(sorted(known))})"))


def refuse_code(value: Any, path: Path, key: str = "") -> None:
    """lm-eval's `!function module.name` (anywhere in a task file) runs Python from the task folder; tuneval never does."""
    if isinstance(value, FunctionRef):
        raise TunevalError(f"{path}: {key}: '!function {value}' would run Python from the task folder; tuneval runs no "
                           "code from a task file (use a built-in filter or process_docs hook, docs/guides/tasks.md)")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        refuse_code(v, path, f"{key}[{k}]" if isinstance(k, int) else f"{key}.{k}" if key else str(k))


def _extras(raw: dict[str, Any], output_type: str, path: Path) -> dict[str, Any]:
    """The keys past lm-eval's prompt: filter_list, process_docs, tag, evaluation_only."""
    if raw.get("filter_list") is not None and output_type != "generate_until":
        raise TunevalError(f"{path}: filter_list: only generate_until tasks have generations to filter")
    tags = raw.get("tag") or []
    tags = [tags] if isinstance(tags, str) else tags
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise TunevalError(f"{path}: tag: expected a name or a list of names, got {raw.get('tag')!r}")
    reason = raw.get("evaluation_only")
    if reason is not None and (not isinstance(reason, str) or not reason.strip()):
        raise TunevalError(f"{path}: evaluation_only: expected the reason as text, got {reason!r}")
    return {"filters": parse_filter_list(raw.get("filter_list"), path), "hooks": parse_process_docs(raw.get("process_docs"), path),
            "tags": tags, "evaluation_only": reason}


def build_task(raw: dict[str, Any], path: Path) -> Task:
    """A Task from one merged mapping; every missing or ill-typed key is named with its file."""
    raw = dict(raw)
    check_keys(raw, TASK_KEYS, path)
    refuse_code(raw, path)
    _check_types(raw, path)
    metadata = dict(raw.get("metadata") or {})
    for key in ("task", "data_files", "group", "dataset_name"):
        if key in raw:
            raw[key] = _fill(raw[key], metadata, path)
    if "task" not in raw:
        raise TunevalError(f"{path}: missing key 'task' (the task's name)")
    name = str(raw["task"])
    default_type = "multiple_choice" if "doc_to_choice" in raw else "generate_until"
    output_type = OUTPUT_TYPES.get(str(raw.get("output_type", default_type)))
    if output_type is None:
        raise TunevalError(f"{path}: output_type must be one of {', '.join(OUTPUT_TYPES)}, got {raw.get('output_type')!r}")
    templates = _templates(raw, name, path)
    _check_prompts(raw, templates, output_type, path)
    gen = dict(raw.get("generation_kwargs") or {})
    check_keys(gen, GENERATION_KEYS, path, " in generation_kwargs")
    fewshot = dict(raw.get("fewshot_config") or {})
    check_keys(fewshot, FEWSHOT_KEYS, path, " in fewshot_config")
    if fewshot.get("sampler", "default") not in SAMPLERS:
        raise TunevalError(f"{path}: fewshot_config.sampler must be one of {', '.join(SAMPLERS)}")
    until = gen.get("until", [])
    try:
        num_fewshot, max_gen_toks = int(raw.get("num_fewshot", 0)), int(gen.get("max_gen_toks", 64))
    except (TypeError, ValueError):
        raise TunevalError(f"{path}: num_fewshot and generation_kwargs.max_gen_toks must be integers") from None
    label_field, label_names = _label_names(raw, path)
    task = Task(
        name=name, source=str(path), output_type=output_type, templates=templates,
        doc_to_text=raw.get("doc_to_text"), doc_to_target=raw.get("doc_to_target"), doc_to_choice=raw.get("doc_to_choice"),
        description=raw.get("description", "") or "", group=raw.get("group"),
        dataset_path=_hub_id(raw.get("dataset_path"), path), dataset_name=raw.get("dataset_name"),
        data_files=_data_files(raw.get("data_files") or {}, path),
        columns=None if isinstance(raw.get("columns"), dict) else raw.get("columns"), line_pattern=raw.get("line_pattern"),
        training_split=raw.get("training_split"), validation_split=raw.get("validation_split"),
        test_split=raw.get("test_split"), fewshot_split=raw.get("fewshot_split"),
        sampler=fewshot.get("sampler", "default"), num_fewshot=num_fewshot,
        target_delimiter=str(raw.get("target_delimiter", " ")), fewshot_delimiter=str(raw.get("fewshot_delimiter", "\n\n")),
        metrics=_metric_list(raw.get("metric_list"), output_type, path),
        until=[until] if isinstance(until, str) else list(until), max_gen_toks=max_gen_toks,
        chat_template=bool(raw.get("chat_template", True)), metadata=metadata,
        id_field=raw.get("id_field"), input_field=raw.get("input_field"),
        label_field=label_field, label_names=label_names, format=raw.get("format"),
        column_map=raw["columns"] if isinstance(raw.get("columns"), dict) else None,
        validation_share=_share(raw.get("validation_share"), path), **_extras(raw, output_type, path),
    )
    _check_templates(task, path)
    return task
