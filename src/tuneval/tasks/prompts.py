"""A task's two prompt families: FLAN template sets and lm-eval's Jinja2 scoring prompts.

FLAN template sets (`templates`, `target`, `eval_template`): several phrasings of one
instruction with `{field}` placeholders (str.format). Training draws a phrasing per example
(seeded; tasks/mixtures.draw_templates) so the model learns the task, not one wording;
evaluation uses one fixed phrasing, recorded with the results.

Scoring prompts (`doc_to_text`, `doc_to_choice`, `doc_to_target`): Jinja2 with lm-eval's
semantics. Same environment as lm-eval (StrictUndefined, trailing newlines kept, a `regex_replace`
filter) plus `detokenize` (lm-eval's `general_detokenize`, used by its WSC prompt), so a
template string means the same thing in both tools. A missing field is a TunevalError
naming the task file and the row (file:line) that lacks it.
"""

from __future__ import annotations

import ast
import re
import string
from dataclasses import dataclass
from typing import Any

from jinja2 import BaseLoader, Environment, StrictUndefined, TemplateError

from tuneval.errors import TunevalError


def regex_replace(string: str, pattern: str, repl: str, count: int = 0) -> str:
    return re.sub(pattern, repl, string, count=count)


def general_detokenize(string: str) -> str:
    """lm-eval's detokenizer for whitespace-tokenized text ("do n't" -> "don't", "( a )" -> "(a)")."""
    string = string.replace(" n't", "n't").replace(" )", ")").replace("( ", "(")
    string = string.replace('" ', '"').replace(' "', '"')
    return re.sub(r" (['.,])", r"\1", string)


_ENV = Environment(loader=BaseLoader(), undefined=StrictUndefined, keep_trailing_newline=True)
_ENV.filters["regex_replace"] = regex_replace
_ENV.filters["detokenize"] = general_detokenize
_CACHE: dict[str, Any] = {}


def render_string(template: str, context: dict[str, Any], where: str) -> str:
    compiled = _CACHE.get(template)
    try:
        if compiled is None:
            compiled = _CACHE[template] = _ENV.from_string(template)
        return compiled.render(**context)
    except TemplateError as e:
        raise TunevalError(f"{where}: template {template!r} failed: {e}") from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        raise TunevalError(f"{where}: template {template!r} failed on this row: {type(e).__name__}: {e}") from None


def _context(task, doc: dict[str, Any]) -> dict[str, Any]:
    return {**task.metadata, **{k: v for k, v in doc.items() if not k.startswith("_")}, "doc": doc}


def _where(task, doc: dict[str, Any]) -> str:
    return f"{task.source} on {doc.get('_where', 'a row')}"


def render(task, template: str, doc: dict[str, Any]) -> str:
    """lm-eval: a bare field name returns the field, anything else is a Jinja template."""
    if template in doc and not template.startswith("_"):
        return str(doc[template])
    return render_string(template, _context(task, doc), _where(task, doc))


def doc_to_text(task, doc: dict[str, Any]) -> str:
    return render(task, task.doc_to_text, doc)


def description(task, doc: dict[str, Any]) -> str:
    return render_string(task.description, _context(task, doc), _where(task, doc)) if task.description else ""


def doc_to_choice(task, doc: dict[str, Any]) -> list[str]:
    """A list in the YAML (each item may be a template), a field holding a list, or a template rendering one."""
    spec = task.doc_to_choice
    if isinstance(spec, list):
        return [render(task, str(c), doc) if "{" in str(c) else str(c) for c in spec]
    if isinstance(spec, dict):
        return [str(v) for v in spec.values()]
    if isinstance(spec, str) and spec in doc:
        value = doc[spec]
    else:
        text = render_string(str(spec), _context(task, doc), _where(task, doc))
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
        value = render_string(str(spec), _context(task, doc), _where(task, doc))
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

def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


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
            missing = placeholders(text) - fields
            what = "target" if i == len(self.prompts) else f"templates[{i}]"
            if missing:
                raise TunevalError(f"{source}: {what} uses unknown field(s) {sorted(missing)} (fields: {sorted(fields)})")
        if not 0 <= self.eval_index < len(self.prompts):
            raise TunevalError(f"{source}: eval_template {self.eval_index} is out of range 0..{len(self.prompts) - 1}")

    def render(self, row: dict, index: int) -> tuple[str, str]:
        """(prompt, target) for one row with template `index`."""
        return self.prompts[index].format_map(row), self.target.format_map(row)
