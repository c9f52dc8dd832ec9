"""Answer extraction and row preparation as data: lm-eval's `filter_list` and a fixed set of `process_docs` hooks.

`filter_list` (lm-evaluation-harness's key): named pipelines, each a list of steps applied in order to a
generation (already cut at the task's `until` strings, not stripped, as lm-eval hands it over):

    filter_list:
      - name: strict-match
        filter: [{function: regex, regex_pattern: "#### (\\-?[0-9\\.\\,]+)"}, {function: take_first}]

Every pipeline is scored with every metric of the task and reported as lm-eval reports it,
`<metric>,<filter name>` (`exact_match,strict-match`); the first pipeline is the task's headline.
The functions are lm-eval's, reimplemented here (FILTERS below): `regex` (regex_pattern,
group_select, fallback), `take_first`, `lowercase`, `uppercase`, `remove_whitespace`, `map`
(mapping_dict, default_value), `multi_choice_regex` (lm-eval's, plus `choices_field`), and the three
BBH extractors lm-eval keeps in tasks/bbh/zeroshot/utils.py: `map_regex` (MapRegexFilter),
`number_regex` (NumberParseRegexFilter without the English number-word fallback) and `word_sort`
(WordSortFilter).

`process_docs` (lm-eval points it at a Python function, `!function utils.x`; tuneval runs no code
from a task file) is a mapping of named built-in transforms, applied to every row of every split in
the order written (HOOKS below): `strip`, `split_answer`, `rename`, `regex_replace`, `letter_choices`.

A task file is a stranger's: a regex is compiled with the `regex` module (the `re` syntax lm-eval
uses), its pattern at most MAX_PATTERN characters, matched on at most MAX_INPUT characters of text
and stopped after REGEX_TIMEOUT seconds (a catastrophic-backtracking pattern becomes the fallback,
not a hung evaluation).
"""

from __future__ import annotations

import sys
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import regex

from tuneval.errors import TunevalError

MAX_PATTERN = 2000  # characters of one regex in a task file
MAX_INPUT = 20_000  # characters of text a regex sees (a generation is max_gen_toks tokens; a row field, one example)
REGEX_TIMEOUT = 1.0  # seconds one match may take
FALLBACK = "[invalid]"  # lm-eval's fallback for a regex that does not match


class FunctionRef(str):
    """What the task loader makes of lm-eval's `!function module.name` tag: refused where it is used."""


def compile_regex(pattern: Any, where: str) -> regex.Pattern:
    """A task file's regex, bounded; a bad one is one line naming `where` (file: key)."""
    if isinstance(pattern, FunctionRef) or not isinstance(pattern, str):
        raise TunevalError(f"{where}: expected a regular expression, got {pattern!r}")
    if len(pattern) > MAX_PATTERN:
        raise TunevalError(f"{where}: regular expression of {len(pattern)} characters, over the limit of {MAX_PATTERN}")
    return _compile(pattern, where)


@lru_cache(maxsize=512)
def _compile(pattern: str, where: str) -> regex.Pattern:
    try:
        return regex.compile(pattern, regex.VERSION0)
    except (regex.error, OverflowError, RecursionError) as e:
        raise TunevalError(f"{where}: not a valid regular expression {pattern!r} ({e})") from None


def findall(pattern: regex.Pattern, text: str) -> list:
    """`pattern.findall(text)` on at most MAX_INPUT characters, [] after REGEX_TIMEOUT seconds."""
    try:
        return pattern.findall(text[:MAX_INPUT], timeout=REGEX_TIMEOUT)
    except TimeoutError:
        return []


def sub(pattern: regex.Pattern, repl: str, text: str) -> str:
    try:
        return pattern.sub(repl, text[:MAX_INPUT], timeout=REGEX_TIMEOUT)
    except TimeoutError:
        return text


# ---- the filters ---------------------------------------------------------------------------

_PUNCT_TABLE = dict.fromkeys(i for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P"))
_CHOICE = regex.compile(r"\([A-Z]\)([^\n^(]*)")  # BBH's "(A) text" options, as its MultiChoiceRegexFilter reads them


def _pick(matches: list, group_select: int) -> str | None:
    """lm-eval's RegexFilter/find_match: the group_select-th match, the first non-empty group of a tuple, stripped."""
    if not matches:
        return None
    try:
        match = matches[group_select]
    except IndexError:
        return None
    if isinstance(match, tuple):
        match = next((m for m in match if m), None)
        if match is None:  # every group empty: lm-eval's RegexFilter falls back
            return None
    return match.strip()


@dataclass
class Step:
    """One filter step: a built-in function and its checked options."""

    function: str
    options: dict[str, Any] = field(default_factory=dict)
    patterns: dict[str, regex.Pattern] = field(default_factory=dict)

    def ignores(self, text: str) -> str:
        """multi_choice_regex / map_regex's ignore_case, ignore_punctuation, regexes_to_ignore."""
        for pattern in self.patterns.get("regexes_to_ignore", []):
            text = sub(pattern, "", text)
        if self.options.get("ignore_case"):
            text = text.lower()
        if self.options.get("ignore_punctuation"):
            text = text.translate(_PUNCT_TABLE)
        return text

    def apply(self, text: str, doc: dict[str, Any]) -> str:
        return FILTERS[self.function][1](self, text, doc)


def _regex(step: Step, text: str, doc: dict) -> str:
    found = _pick(findall(step.patterns["regex_pattern"], text), step.options.get("group_select", 0))
    return step.options.get("fallback", FALLBACK) if found is None else found


def _number_regex(step: Step, text: str, doc: dict) -> str:
    found = _pick(findall(step.patterns["regex_pattern"], text), step.options.get("group_select", 0))
    return found or step.options.get("fallback", FALLBACK)


def _map(step: Step, text: str, doc: dict) -> str:
    return step.options.get("mapping_dict", {}).get(text, step.options.get("default_value"))


def _choices(step: Step, doc: dict) -> list[str]:
    name = step.options.get("choices_field", "choices")
    value = doc.get(name)
    if isinstance(value, str):  # BBH: the options are written in the question, "(A) ..."
        return _CHOICE.findall(value[:MAX_INPUT])
    if not isinstance(value, (list, tuple)):
        raise TunevalError(f"multi_choice_regex: row {doc.get('_where', '')} has no list or text field '{name}'")
    return [str(c) for c in value]


def _multi_choice(step: Step, text: str, doc: dict) -> str:
    """lm-eval's MultiChoiceRegexFilter: the regex; else a choice's text (longest first) -> its letter;
    else ": X" -> (X)."""
    found = _pick(findall(step.patterns["regex_pattern"], text), step.options.get("group_select", 0))
    if found:
        return found
    to_letter: dict[str, str] = {}
    letters = []
    for i, choice in enumerate(_choices(step, doc)):
        to_letter[step.ignores(choice.strip())] = f"({chr(ord('A') + i)})"
        letters.append(chr(ord("A") + i))
    if to_letter:
        alternatives = "|".join(sorted((regex.escape(c) for c in to_letter), key=len, reverse=True))
        found = _pick(findall(regex.compile(alternatives), step.ignores(text)), step.options.get("group_select", 0))
        if found:
            return to_letter.get(found, found)
        found = _pick(findall(regex.compile(rf":[\s]*({'|'.join(letters)})"), text), step.options.get("group_select", 0))
        if found:
            return f"({found})"
    return step.options.get("fallback", FALLBACK)


def _map_regex(step: Step, text: str, doc: dict) -> str:
    """BBH's MapRegexFilter: the first mapped regex that matches the (ignores-applied) text gives its value."""
    group = step.options.get("group_select", 0)
    whole = _pick(findall(step.patterns["regex_pattern"], step.ignores(text)), group)
    if whole:
        for pattern, value in zip(step.patterns["mapped"], step.options["regex_pattern_to_value"].values()):
            if _pick(findall(pattern, step.ignores(whole)), group):
                return str(value)
    return step.options.get("fallback", FALLBACK)


def _word_sort(step: Step, text: str, doc: dict) -> str:
    """BBH's WordSortFilter: the question's words in the order of their last mention in the generation."""
    source = str(doc.get(step.options.get("field", "input"), ""))
    marker = step.options.get("after", "List:")
    words = source.split(marker, 1)[1].split() if marker in source else source.split()
    if not words:
        return ""
    pattern = regex.compile("|".join(rf"\b{regex.escape(w)}\b" for w in words))
    order = list(dict.fromkeys(reversed(findall(pattern, text))))
    return " ".join(reversed(order))


# name -> (options it takes (option -> type), the function); patterns are the regex-valued options
FILTERS: dict[str, tuple[dict[str, Any], Any]] = {
    "regex": ({"regex_pattern": str, "group_select": int, "fallback": str}, _regex),
    "take_first": ({}, lambda step, text, doc: text),
    "lowercase": ({}, lambda step, text, doc: text.lower()),
    "uppercase": ({}, lambda step, text, doc: text.upper()),
    "remove_whitespace": ({}, lambda step, text, doc: text.strip()),
    "map": ({"mapping_dict": dict, "default_value": object}, _map),
    "multi_choice_regex": ({"regex_pattern": str, "group_select": int, "fallback": str, "ignore_case": bool,
                            "ignore_punctuation": bool, "regexes_to_ignore": list, "choices_field": str}, _multi_choice),
    "map_regex": ({"regex_pattern_to_value": dict, "group_select": int, "fallback": str, "ignore_case": bool,
                   "ignore_punctuation": bool, "regexes_to_ignore": list}, _map_regex),
    "number_regex": ({"regex_pattern": str, "group_select": int, "fallback": str}, _number_regex),
    "word_sort": ({"field": str, "after": str}, _word_sort),
}
DEFAULT_PATTERN = r"#### (\-?[0-9\.\,]+)"  # lm-eval's RegexFilter default


def _step(raw: Any, where: str) -> Step:
    if not isinstance(raw, dict) or "function" not in raw:
        raise TunevalError(f"{where}: a filter step is a mapping with a 'function', got {raw!r}")
    name = raw["function"]
    if isinstance(name, FunctionRef):
        raise TunevalError(f"{where}.function: '!function {name}' would run Python from the task folder; tuneval "
                           f"runs no code from a task file (built-in filters: {', '.join(FILTERS)})")
    if name not in FILTERS:
        raise TunevalError(f"{where}.function: unknown filter {name!r} (built-in filters: {', '.join(FILTERS)})")
    known, _ = FILTERS[name]
    options = {k: v for k, v in raw.items() if k != "function"}
    for key, value in options.items():
        kind = known.get(key)
        if kind is None:
            raise TunevalError(f"{where}.{key}: filter '{name}' has no option '{key}' (options: {', '.join(known) or 'none'})")
        if kind is not object and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise TunevalError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return Step(name, options, _patterns(name, options, where))


def _patterns(name: str, options: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if name in ("regex", "multi_choice_regex", "number_regex"):
        out["regex_pattern"] = compile_regex(options.get("regex_pattern", DEFAULT_PATTERN), f"{where}.regex_pattern")
    if name == "map_regex":
        mapping = options.get("regex_pattern_to_value") or {}
        if not mapping:
            raise TunevalError(f"{where}.regex_pattern_to_value: map_regex needs a mapping regex -> value")
        out["mapped"] = [compile_regex(str(k), f"{where}.regex_pattern_to_value") for k in mapping]
        out["regex_pattern"] = compile_regex("|".join(str(k) for k in mapping), f"{where}.regex_pattern_to_value")
    if options.get("regexes_to_ignore"):
        out["regexes_to_ignore"] = [compile_regex(p, f"{where}.regexes_to_ignore") for p in options["regexes_to_ignore"]]
    return out


@dataclass
class Pipeline:
    name: str
    steps: list[Step]

    def apply(self, text: str, doc: dict[str, Any]) -> Any:
        for step in self.steps:
            text = step.apply(text, doc)
        return text


def parse_filter_list(raw: Any, path: Path | str) -> list[Pipeline]:
    """A task's `filter_list`, every step checked; each error names the file and the key."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not raw:
        raise TunevalError(f"{path}: filter_list is a list of {{name, filter: [steps]}}, got {raw!r}")
    out: list[Pipeline] = []
    for i, entry in enumerate(raw):
        where = f"{path}: filter_list[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"name", "filter"} or not isinstance(entry.get("filter"), list):
            raise TunevalError(f"{where}: expected {{name: ..., filter: [{{function: ...}}, ...]}}, got {entry!r}")
        name = str(entry.get("name", "none"))
        if not name or any(c in name for c in ",\n") or name in {p.name for p in out}:
            raise TunevalError(f"{where}.name: {name!r} is empty, repeated or has a comma")
        out.append(Pipeline(name, [_step(s, f"{where}.filter[{j}]") for j, s in enumerate(entry["filter"])]))
    return out


def apply_filters(pipelines: list[Pipeline], text: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Each pipeline's output for one generation: {filter name: extracted answer}."""
    return {p.name: p.apply(text, doc) for p in pipelines}


# ---- process_docs hooks --------------------------------------------------------------------

def _fields(spec: Any, where: str) -> list[str]:
    fields = [spec] if isinstance(spec, str) else spec
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise TunevalError(f"{where}: expected a field name or a list of field names, got {spec!r}")
    return fields


def _mapping(spec: Any, keys: dict[str, bool], where: str) -> dict[str, Any]:
    """A hook's options: `keys` maps option -> required."""
    if not isinstance(spec, dict):
        raise TunevalError(f"{where}: expected a mapping with {', '.join(keys)}, got {spec!r}")
    unknown = set(spec) - set(keys)
    missing = [k for k, required in keys.items() if required and k not in spec]
    if unknown or missing:
        raise TunevalError(f"{where}: " + (f"unknown option(s) {sorted(unknown)}" if unknown else f"missing {missing}")
                           + f" (options: {', '.join(keys)})")
    for key, value in spec.items():
        if not isinstance(value, str):
            raise TunevalError(f"{where}.{key}: expected text, got {value!r}")
    return spec


def _text(row: dict, name: str, where: str) -> str:
    if name not in row:
        raise TunevalError(f"{row.get('_where', 'a row')}: process_docs ({where}) needs field '{name}'")
    return "" if row[name] is None else str(row[name])


def _hook(name: str, spec: Any, where: str):
    """(row -> None) for one named hook, its options checked now (at load), not on the first row."""
    if name == "strip":  # strip: [question, answer]
        fields = _fields(spec, where)
        return lambda row: row.update({f: _text(row, f, where).strip() for f in fields})
    if name == "split_answer":  # split_answer: {field: answer, sep: "####", into: target, rationale: reasoning}
        o = _mapping(spec, {"field": True, "sep": True, "into": False, "rationale": False}, where)

        def split(row: dict) -> None:
            before, _, after = _text(row, o["field"], where).rpartition(o["sep"])
            row[o.get("into", o["field"])] = after.strip()
            if "rationale" in o:
                row[o["rationale"]] = before.strip()
        return split
    if name == "rename":  # rename: {old: new}
        mapping = _mapping(spec, {k: False for k in (spec if isinstance(spec, dict) else {})}, where)
        return lambda row: row.update({new: row.pop(old) for old, new in mapping.items() if old in row})
    if name == "regex_replace":  # regex_replace: {field: ctx, pattern: "\\[.*?\\]", repl: ""}
        o = _mapping(spec, {"field": True, "pattern": True, "repl": False}, where)
        pattern = compile_regex(o["pattern"], f"{where}.pattern")
        return lambda row: row.update({o["field"]: sub(pattern, o.get("repl", ""), _text(row, o["field"], where))})
    if name == "letter_choices":  # letter_choices: {field: input, into: choices}: "(A) x (B) y" -> ["x", "y"]
        o = _mapping(spec, {"field": True, "into": False}, where)
        return lambda row: row.update({o.get("into", "choices"): [c.strip() for c in findall(_CHOICE, _text(row, o["field"], where))]})
    raise AssertionError(name)


HOOKS = ("strip", "split_answer", "rename", "regex_replace", "letter_choices")


def parse_process_docs(raw: Any, path: Path | str) -> list:
    """A task's `process_docs`: a mapping of built-in hook -> options, applied in order; never `!function`."""
    if raw is None:
        return []
    if isinstance(raw, FunctionRef):
        raise TunevalError(f"{path}: process_docs: '!function {raw}' would run Python from the task folder; tuneval "
                           f"runs no code from a task file (built-in hooks: {', '.join(HOOKS)})")
    if not isinstance(raw, dict):
        raise TunevalError(f"{path}: process_docs is a mapping of built-in hooks ({', '.join(HOOKS)}), got {raw!r}")
    hooks = []
    for name, spec in raw.items():
        if name not in HOOKS:
            raise TunevalError(f"{path}: process_docs.{name}: unknown hook (built-in hooks: {', '.join(HOOKS)})")
        hooks.append(_hook(name, spec, f"{path}: process_docs.{name}"))
    return hooks


def process_docs(hooks: list, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        for hook in hooks:
            hook(row)
    return rows

