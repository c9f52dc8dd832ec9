"""A task's two prompt families: FLAN template sets and lm-eval's Jinja2 scoring prompts.

FLAN template sets (`templates`, `target`, `eval_template`): several phrasings of one
instruction with `{field}` placeholders (str.format). Training draws a phrasing per example
(seeded; tasks/mixtures.draw_templates) so the model learns the task, not one wording;
evaluation uses one fixed phrasing, recorded with the results.

Scoring prompts (`doc_to_text`, `doc_to_choice`, `doc_to_target`): Jinja2 with lm-eval's
semantics. Same settings as lm-eval (StrictUndefined, trailing newlines kept, a `regex_replace`
filter) plus `detokenize` (lm-eval's `general_detokenize`, used by its WSC prompt), so a
template string means the same thing in both tools. A missing field is a TunevalError
naming the task file and the row (file:line) that lacks it.

Task files are shared like lm-eval task folders, so a template is a stranger's code: unlike
lm-eval, every template renders in Jinja's ImmutableSandboxedEnvironment (as transformers renders
chat templates), with no globals but `range` and `dict` (no `cycler`, `joiner`, `lipsum`,
`namespace`), and sizes bounded (`*`, `**`, widths and filter arguments), so a template can
neither reach Python (`__globals__`, `__subclasses__`, format-string attribute tricks) nor ask for
gigabytes. FLAN templates (str.format) take plain field names only: `{premise}`, never
`{premise.__class__}` or `{premise[0]}`, and no width over MAX_WIDTH. docs/security.md lists
what was tried.
"""

from __future__ import annotations

import ast
import functools
import operator
import re
import string
from dataclasses import dataclass
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from tuneval.errors import TunevalError, first_line


def regex_replace(string: str, pattern: str, repl: str, count: int = 0) -> str:
    return re.sub(pattern, repl, string, count=count)


def general_detokenize(string: str) -> str:
    """lm-eval's detokenizer for whitespace-tokenized text ("do n't" -> "don't", "( a )" -> "(a)")."""
    string = string.replace(" n't", "n't").replace(" )", ")").replace("( ", "(")
    string = string.replace('" ', '"').replace(' "', '"')
    return re.sub(r" (['.,])", r"\1", string)


MAX_WIDTH = 10_000  # the largest number a template may pass to a filter or method, or use as a width
MAX_SIZE = 1_000_000  # the longest string or list `*` may build; `**` exponents stop at MAX_EXPONENT
MAX_EXPONENT = 4096
_WIDE = re.compile(r"\d{%d,}" % len(str(MAX_WIDTH)))  # a number of more digits than MAX_WIDTH in a format spec


def _check_numbers(args, kwargs) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WIDTH:
            raise SecurityError(f"the number {value} is over the template limit of {MAX_WIDTH}")


def _bounded(f):
    """A filter whose arguments (past the filtered value) are checked by _check_numbers."""
    skip = 2 if getattr(f, "jinja_pass_arg", None) else 1

    @functools.wraps(f)  # keeps jinja_pass_arg (pass_context, pass_environment)
    def checked(*args, **kwargs):
        _check_numbers(args[skip:], kwargs)
        return f(*args, **kwargs)

    return checked


class TemplateSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with sizes bounded: what every task template renders in."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context, op: str, left: Any, right: Any) -> Any:
        if op == "*" and isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > 8 * MAX_SIZE:
                raise SecurityError("a product over the template limit")
        elif op == "*":
            count, seq = (left, right) if isinstance(left, int) else (right, left)
            if isinstance(count, int) and hasattr(seq, "__len__") and len(seq) * count > MAX_SIZE:
                raise SecurityError(f"a repetition over the template limit of {MAX_SIZE} items")
        elif op == "**" and isinstance(right, (int, float)) and right > MAX_EXPONENT:
            raise SecurityError(f"an exponent over the template limit of {MAX_EXPONENT}")
        elif op == "%" and isinstance(left, str) and _WIDE.search(left):
            raise SecurityError(f"a %-format width over the template limit of {MAX_WIDTH}")
        return {"*": operator.mul, "**": operator.pow, "%": operator.mod}[op](left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (the sandbox's own signature)
        _check_numbers(args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any):
        wrapped = super().wrap_str_format(value)
        if wrapped is not None and _WIDE.search(value.__self__):
            raise SecurityError(f"a format width over the template limit of {MAX_WIDTH}")
        return wrapped


def _sandbox() -> TemplateSandbox:
    env = TemplateSandbox(loader=BaseLoader(), undefined=StrictUndefined, keep_trailing_newline=True)
    env.globals = {"range": env.globals["range"], "dict": dict}  # no cycler, joiner, lipsum, namespace
    env.filters["regex_replace"] = regex_replace
    env.filters["detokenize"] = general_detokenize
    env.filters = {name: _bounded(f) for name, f in env.filters.items()}
    return env


_ENV = _sandbox()
_CACHE: dict[str, Any] = {}


def render_string(template: str, context: dict[str, Any], where: str) -> str:
    """`template` rendered in the sandbox; anything it does wrong is one TunevalError naming `where`."""
    compiled = _CACHE.get(template)
    try:
        if compiled is None:
            compiled = _CACHE[template] = _ENV.from_string(template)
        return compiled.render(**context)
    except SecurityError as e:
        raise TunevalError(f"{where}: template {_short(template)} refused: {first_line(e)} "
                           "(task templates render in a sandbox)") from None
    except TemplateError as e:
        raise TunevalError(f"{where}: template {_short(template)} failed: {first_line(e)}") from None
    except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError, RecursionError, MemoryError) as e:
        raise TunevalError(f"{where}: template {_short(template)} failed on this row: "
                           f"{type(e).__name__}: {first_line(e)}") from None


def _short(template: str, limit: int = 200) -> str:
    text = repr(template)
    return text if len(text) <= limit else text[:limit] + "...'"


def _context(task, doc: dict[str, Any]) -> dict[str, Any]:
    return {**task.metadata, **{k: v for k, v in doc.items() if not k.startswith("_")}, "doc": doc}


def _where(task, doc: dict[str, Any], key: str | None = None) -> str:
    return f"{task.source}{f' ({key})' if key else ''} on {doc.get('_where', 'a row')}"


def render(task, template: str, doc: dict[str, Any], key: str = "doc_to_text") -> str:
    """lm-eval: a bare field name returns the field, anything else is a Jinja template."""
    if template in doc and not template.startswith("_"):
        return str(doc[template])
    return render_string(template, _context(task, doc), _where(task, doc, key))


def doc_to_text(task, doc: dict[str, Any]) -> str:
    return render(task, task.doc_to_text, doc)


def description(task, doc: dict[str, Any]) -> str:
    if not task.description:
        return ""
    return render_string(task.description, _context(task, doc), _where(task, doc, "description"))


def doc_to_choice(task, doc: dict[str, Any]) -> list[str]:
    """A list in the YAML (each item may be a template), a field holding a list, or a template rendering one."""
    spec = task.doc_to_choice
    if isinstance(spec, list):
        return [render(task, str(c), doc, "doc_to_choice") if "{" in str(c) else str(c) for c in spec]
    if isinstance(spec, dict):
        return [str(v) for v in spec.values()]
    if isinstance(spec, str) and spec in doc:
        value = doc[spec]
    else:
        text = render_string(str(spec), _context(task, doc), _where(task, doc, "doc_to_choice"))
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise TunevalError(f"{_where(task, doc)}: doc_to_choice rendered {text!r}, not a list") from None
    if not isinstance(value, (list, tuple)) or not value:
        raise TunevalError(f"{_where(task, doc)}: doc_to_choice gave {value!r}, not a non-empty list")
    return [str(v) for v in value]


def doc_to_target(task, doc: dict[str, Any]) -> int | str | list[str]:
    """For multiple choice an index (an int, a digit string, or a choice's text); for generation the reference(s)."""
    spec = task.doc_to_target
    if isinstance(spec, int) and not isinstance(spec, bool):
        return spec
    if isinstance(spec, str) and spec in doc:
        value = doc[spec]
    else:
        value = render_string(str(spec), _context(task, doc), _where(task, doc, "doc_to_target"))
        if task.output_type == "multiple_choice" and value.strip().lstrip("-").isdigit():
            return int(value.strip())
        if len(value) >= 2 and value[0] == "[" and value[-1] == "]":
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                pass
    if isinstance(value, bool) and task.output_type == "multiple_choice":
        return int(value)
    return value


def gold_index(task, doc: dict[str, Any], choices: list[str]) -> int:
    target = doc_to_target(task, doc)
    if isinstance(target, str):
        if target.strip().isdigit():
            target = int(target)
        elif target in choices:
            return choices.index(target)
        else:
            raise TunevalError(f"{_where(task, doc)}: target {target!r} is not one of the choices {choices}")
    if not isinstance(target, int) or not 0 <= target < len(choices):
        raise TunevalError(f"{_where(task, doc)}: target {target!r} is not an index into the {len(choices)} choices")
    return target


def references(task, doc: dict[str, Any]) -> list[str]:
    target = doc_to_target(task, doc)
    refs = [str(t) for t in target] if isinstance(target, (list, tuple)) else [str(target)]
    if not refs or not all(r.strip() for r in refs):
        raise TunevalError(f"{_where(task, doc)}: empty reference")
    return refs


# ---- FLAN template sets ------------------------------------------------------------------

def _parse(text: str, where: str) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(string.Formatter().parse(text))
    except ValueError as e:  # "Single '}' encountered", an unclosed '{'
        raise TunevalError(f"{where}: {text!r} is not a template with {{field}} placeholders ({e}; "
                           "write a literal brace as {{{{ or }}}})") from None


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in _parse(text, "template") if name}


def check_format(text: str, where: str) -> None:
    """A FLAN template names plain fields only: `{premise}` or `{premise!r:>20}`, never an attribute or an
    index (`{premise.__class__}` would reach into Python), a nested field or a width over MAX_WIDTH."""
    for _, name, spec, _ in _parse(text, where):
        if name is None:
            continue
        if not name.isidentifier():
            raise TunevalError(f"{where}: placeholder {{{name}}} is not a plain field name "
                               "(no attributes, indexes or positions)")
        if spec and ("{" in spec or _WIDE.search(spec)):
            raise TunevalError(f"{where}: placeholder {{{name}:{spec}}} has a nested field or a width over {MAX_WIDTH}")


@dataclass(frozen=True)
class TemplateSet:
    task: str
    prompts: tuple[str, ...]  # each with {field} placeholders
    target: str  # e.g. "{summary}"
    eval_index: int = 0

    def validate(self, fields: set[str], source: str) -> None:
        if not self.prompts:
            raise TunevalError(f"{source}: 'templates' is empty")
        for i, text in enumerate((*self.prompts, self.target)):
            what = "target" if i == len(self.prompts) else f"templates[{i}]"
            check_format(text, f"{source}: {what}")
            missing = placeholders(text) - fields
            if missing:
                raise TunevalError(f"{source}: {what} uses unknown field(s) {sorted(missing)} (fields: {sorted(fields)})")
        if not 0 <= self.eval_index < len(self.prompts):
            raise TunevalError(f"{source}: eval_template {self.eval_index} is out of range 0..{len(self.prompts) - 1}")

    def render(self, row: dict, index: int) -> tuple[str, str]:
        """(prompt, target) for one row with template `index`."""
        return self.prompts[index].format_map(row), self.target.format_map(row)
