"""mkdocs hook: the reference pages, generated from the code at build time (never retyped).

- reference/commands.md  every `tuneval` command, from the typer app (`tuneval.cli.app`) as click sees it
- reference/recipe.md    every recipe key, from config.py's dataclasses and each method's settings:
                         name, type, default, the values it may take (typed.checked) and the comment
                         written beside the field in the source
- reference/api.md       the Python API (`from tuneval import ...`), from tuneval/api.py's signatures
                         and docstrings

mkdocs.yml names this file under `hooks:`; mkdocs calls `on_files` before it builds the nav.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import io
import textwrap
import tokenize

from mkdocs.structure.files import File

# Commands in reading order; any command not listed follows, alphabetically.
COMMAND_ORDER = ("train", "eval", "demo", "forgetting", "report", "params", "memory", "inspect", "sweep",
                 "merge", "export", "serve", "chat")


def on_files(files, config):
    for path, content in (("reference/commands.md", commands_page()), ("reference/recipe.md", recipe_page()),
                          ("reference/api.md", api_page())):
        files.append(File.generated(config, path, content=content))
    return files


# -- markdown helpers ---------------------------------------------------------------------------

def cell(text) -> str:
    """One table cell: no newlines, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def code(text) -> str:
    text = str(text)
    return f"`` {text} ``" if "`" in text else f"`{text}`"


# -- commands -----------------------------------------------------------------------------------

def commands_page() -> str:
    import typer.main

    from tuneval import cli

    root = typer.main.get_command(cli.app)  # click's classes, or typer's own copy of them (typer >= 0.26)
    root_ctx = root.context_class(root, info_name="tuneval")
    names = list(root.list_commands(root_ctx))
    ordered = [n for n in COMMAND_ORDER if n in names] + sorted(n for n in names if n not in COMMAND_ORDER)
    lines = ["# Commands", "", "Generated from the command line itself (`tuneval.cli.app`) when this site is built; "
             "`tuneval COMMAND --help` prints the same.", "",
             "| command | what it does |", "|---|---|"]
    for name in ordered:
        cmd = root.get_command(root_ctx, name)
        lines.append(f"| [`tuneval {name}`](#{name}) | {cell(cmd.get_short_help_str(200))} |")
    lines += ["", "Every command takes the global option before its name:", ""]
    lines += params_table(root, root_ctx)
    for name in ordered:
        lines += command_section(name, root.get_command(root_ctx, name), root_ctx)
    return "\n".join(lines) + "\n"


def command_section(name: str, cmd, root_ctx) -> list[str]:
    ctx = cmd.context_class(cmd, info_name=name, parent=root_ctx)
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    help_text = inspect.cleandoc(cmd.help or "")
    return ["", f"## {name}", "", "```text", f"tuneval {name} {usage}", "```", "", help_text, "",
            *params_table(cmd, ctx)]


def params_table(cmd, ctx) -> list[str]:
    rows = ["| argument / option | type | default | what it is |", "|---|---|---|---|"]
    for p in cmd.get_params(ctx):
        if p.name == "help" or getattr(p, "hidden", False):
            continue
        rows.append(f"| {param_names(p)} | {cell(param_type(p))} | {cell(param_default(p))} | "
                    f"{cell(getattr(p, 'help', None) or '')} |")
    return rows if len(rows) > 2 else ["(no options)"]


def param_names(p) -> str:
    if p.param_type_name == "argument":
        return code(p.name.upper()) + (" (repeatable)" if p.nargs == -1 else "") + ("" if p.required else " (optional)")
    names = [*p.opts, *p.secondary_opts]
    return " / ".join(code(n) for n in names) + (" (required)" if p.required else "")


def param_type(p) -> str:
    if getattr(p, "is_flag", False) and not p.secondary_opts:
        return "flag"
    if getattr(p, "is_flag", False):
        return "on / off"
    if callable(getattr(p, "bare_type", None)):  # typer's parameters name their Python type
        return p.bare_type() + (" (repeatable)" if p.multiple else "")
    return p.type.name.lower()


def param_default(p) -> str:
    envvar = f" (env {code(p.envvar)})" if getattr(p, "envvar", None) else ""
    if p.required:
        return "required" + envvar
    d = p.default
    if callable(d) or d is None or d == () or d == []:
        return "-" + envvar
    if isinstance(d, bool):
        names = p.opts if d else (p.secondary_opts or ["off"])
        return ("on" if d else "off") if not p.secondary_opts else code(names[0]) + envvar
    return code(d) + envvar


# -- recipe keys --------------------------------------------------------------------------------

def recipe_page() -> str:
    from tuneval import config

    lines = ["# Recipe keys", "",
             "Generated from the recipe's dataclasses (`src/tuneval/config.py`, `model_args.py` and each method's "
             "settings) when this site is built: every key, its type, its default, the values it may take "
             "(checked when the recipe loads, before any model does) and the note written beside it in the "
             "source. An unknown key is an error naming the file and the key. `--set section.key=value` "
             "overrides any of them.", ""]
    lines += dataclass_section("Top level", config.Recipe, "", skip={"method_args", *config.SECTIONS})
    for name, cls in config.SECTIONS.items():
        lines += dataclass_section(f"`{name}:`", cls, f"{name}.")
        if name == "train":
            lines += ["", "Besides these, **any `transformers.TrainingArguments` field** is a `train:` key "
                      "(`max_grad_norm`, `optim`, `eval_strategy`, `report_to`, `metric_for_best_model`, ...), "
                      "checked against transformers' own dataclass. These are set elsewhere and refused here:", "",
                      "| `train.` key | set by |", "|---|---|"]
            lines += [f"| `{k}` | {cell(v)} |" for k, v in config.OWNED_TRAINER_ARGS.items()]
    lines += dataclass_section("`data.replay:`", config.ReplayConfig, "data.replay.")
    lines += dataclass_section("`mixture:`", config.MixtureConfig, "mixture.")
    lines += dataclass_section("`mixture.tasks[]:`", config.MixtureTask, "mixture.tasks[].")
    lines += method_sections()
    return "\n".join(lines) + "\n"


def method_registry() -> dict:
    """The registered methods, wherever the registry lives (its own module, or the methods package)."""
    for module in ("tuneval.methods.registry", "tuneval.methods"):
        try:
            found = getattr(importlib.import_module(module), "METHODS", None)
        except ImportError:
            continue
        if found:
            importlib.import_module("tuneval.methods")  # every method registers on import
            return found
    raise RuntimeError("no method registry found (tuneval.methods.registry.METHODS or tuneval.methods.METHODS)")


def method_sections() -> list[str]:
    methods = method_registry()
    lines = ["", "## Method sections", "",
             "`method:` names one of these; its options go in a section of the same name "
             "(e.g. `lora: {r: 16}`), named as PEFT names them.", "",
             "| method | family | saves | what it is |", "|---|---|---|---|"]
    for name in sorted(methods):
        spec = methods[name]
        lines.append(f"| [`{name}`](#{name}) | {cell(spec.family)} | {cell(spec.saves)} | {cell(spec.summary)} |")
    for name in sorted(methods):
        lines += dataclass_section(f"`{name}:`", methods[name].settings, f"{name}.", level="###", anchor=name)
    return lines


def dataclass_section(title: str, cls, prefix: str, skip=(), level: str = "##", anchor: str | None = None) -> list[str]:
    doc = inspect.getdoc(cls) if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "(") else ""
    heading = f"{level} {title}" + (f" {{#{anchor}}}" if anchor else "")
    lines = ["", heading, "", f"*`{cls.__module__}.{cls.__qualname__}`*" + (f": {doc}" if doc else ""), ""]
    fields = [f for f in dataclasses.fields(cls) if f.name not in skip]
    if not fields:
        return lines + ["No options."]
    notes, annotations = field_notes(cls)
    lines += ["| key | type | default | allowed | note |", "|---|---|---|---|---|"]
    for f in fields:
        lines.append(f"| `{prefix}{f.name}` | {cell(code(annotations.get(f.name, f.type)))} | "
                     f"{cell(field_default(f))} | {cell(describe_check(f.metadata.get('check')))} | "
                     f"{cell(notes.get(f.name, ''))} |")
    return lines


def field_default(f) -> str:
    if f.default is not dataclasses.MISSING:
        return code(yaml_value(f.default))
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return "(section)" if dataclasses.is_dataclass(value) else code(yaml_value(value))
    return "required"


def yaml_value(v):
    """A default as a recipe writes it: null, true, [a, b], {k: v}."""
    if isinstance(v, (list, dict)):
        import yaml

        return yaml.safe_dump(v, default_flow_style=True).strip()
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else v


def describe_check(rule: dict | None) -> str:
    if not rule:
        return ""
    parts = []
    if "choices" in rule:
        parts.append("one of " + ", ".join(map(str, rule["choices"])))
    for key, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if key in rule:
            parts.append(f"{word} {rule[key]}")
    if "null" in rule:
        parts.append(f"null: {rule['null']}")
    return "; ".join(parts)


def field_notes(cls) -> tuple[dict[str, str], dict[str, str]]:
    """({field: the comment above it and beside it}, {field: its annotation as written}) from the source."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}, {}
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    lines = source.splitlines()
    notes, annotations = {}, {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above, row = [], node.lineno - 1
            while row >= 1 and row in comments and lines[row - 1].lstrip().startswith("#"):
                above.insert(0, comments[row])
                row -= 1
            beside = [comments[n] for n in range(node.lineno, node.end_lineno + 1)
                      if n in comments and not lines[n - 1].lstrip().startswith("#")]
            notes[node.target.id] = " ".join(above + beside)
            annotations[node.target.id] = ast.unparse(node.annotation)
    return notes, annotations


# -- Python API ---------------------------------------------------------------------------------

def api_page() -> str:
    import tuneval
    from tuneval import api

    names = list(dict.fromkeys([*tuneval.__all__, *getattr(api, "__all__", [])]))
    lines = ["# Python API", "", "Generated from `src/tuneval/api.py` (signatures and docstrings) when this "
             "site is built. Each function is what a command calls, with the same arguments and the same "
             "saved files.", "", "```python", f"from tuneval import {', '.join(tuneval.__all__)}", "```", ""]
    module_doc = inspect.getdoc(api)
    if module_doc:
        lines += ["```text", module_doc, "```", ""]
    for name in names:
        obj = getattr(api, name, None) or getattr(tuneval, name, None)
        if obj is None or not callable(obj):
            continue
        lines += [f"## {name}", "", "```python", signature_text(name, obj), "```", "",
                  inspect.getdoc(obj) or "(no docstring)", ""]
    return "\n".join(lines) + "\n"


def signature_text(name: str, obj) -> str:
    """`name(arg: type = default, ...) -> type`, one parameter a line when long; annotations as written."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(...)"

    def ann(a) -> str:
        return a if isinstance(a, str) else inspect.formatannotation(a)

    params, star_done = [], False
    for p in sig.parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star_done:
            params.append("*")
        star_done = star_done or p.kind in (p.KEYWORD_ONLY, p.VAR_POSITIONAL)
        text = ("*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else "") + p.name
        if p.annotation is not p.empty:
            text += f": {ann(p.annotation)}"
        if p.default is not p.empty:
            text += f" = {p.default!r}" if p.annotation is not p.empty else f"={p.default!r}"
        params.append(text)
    ret = f" -> {ann(sig.return_annotation)}" if sig.return_annotation is not sig.empty else ""
    one_line = f"{name}({', '.join(params)}){ret}"
    if len(one_line) <= 100:
        return one_line
    return f"{name}(\n" + "".join(f"    {t},\n" for t in params) + f"){ret}"
