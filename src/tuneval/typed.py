"""Typed, checked dataclasses from YAML mappings: the engine behind recipes and method settings.

`build_dataclass(cls, mapping, source)` converts each value to its field's annotated type
(YAML gives strings for `1e-3`, `--set` gives strings for everything), refuses unknown keys
naming the file and key, and then applies the value checks. It knows nothing of recipes or
methods: config.py (the recipe) and methods/ (each method's settings) both build on it, so
it sits at the bottom, beside errors.py.

Value checks: a value of the right type can still be nonsense (a negative batch size, a
learning rate of 0), and the trainer would take it and run for minutes, or write an untrained
adapter. So each field says what it may be (`checked`), a dataclass may add what one field
cannot say (`check(self)`, yielding (key, problem)), and build_dataclass applies both when it
builds one: before any model loads.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import field
from typing import Any, Iterator

from tuneval.errors import TunevalError


# -- value checks ---------------------------------------------------------------------------------

def checked(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, ge: Any = None,
            gt: Any = None, le: Any = None, lt: Any = None, choices: tuple | None = None, null: str | None = None) -> Any:
    """A dataclass field with the values it may take; `null` says what None means where None is allowed.

    A list field's bounds apply to each item."""
    rule = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices, null=null).items() if v is not None}
    return field(default=default, default_factory=default_factory, metadata={"check": rule})


def _describe(rule: dict[str, Any], with_null: bool = True) -> str:
    if "choices" in rule:
        text = "one of " + ", ".join(map(str, rule["choices"]))
    else:
        low = ("[", rule["ge"]) if "ge" in rule else ("(", rule["gt"]) if "gt" in rule else None
        high = (rule["le"], "]") if "le" in rule else (rule["lt"], ")") if "lt" in rule else None
        if low and high:
            text = f"in {low[0]}{low[1]}, {high[0]}{high[1]}"
        elif low:
            text = f"at least {low[1]}" if low[0] == "[" else f"> {low[1]}"
        else:
            text = f"at most {high[0]}" if high[1] == "]" else f"< {high[0]}"
    return text + (f" (or null: {rule['null']})" if with_null and "null" in rule else "")


def _violates(rule: dict[str, Any], v: Any) -> bool:
    if "choices" in rule:
        return v not in rule["choices"]
    return (("ge" in rule and v < rule["ge"]) or ("gt" in rule and not v > rule["gt"])
            or ("le" in rule and v > rule["le"]) or ("lt" in rule and not v < rule["lt"]))


def value_problems(obj: Any) -> Iterator[tuple[str, str]]:
    """(key, problem) for each value of a dataclass instance outside what its fields allow, then its own check()."""
    for f in dataclasses.fields(obj):
        rule, value = f.metadata.get("check"), getattr(obj, f.name)
        if rule is None or value is None:
            continue
        for i, v in (enumerate(value) if isinstance(value, list) else [(None, value)]):
            if _violates(rule, v):
                yield (f.name if i is None else f"{f.name}[{i}]"), f"must be {_describe(rule, i is None)}, got {v!r}"
    yield from getattr(obj, "check", lambda: ())()


def check_values(obj: Any, source: str, prefix: str = "") -> None:
    for key, problem in value_problems(obj):
        raise TunevalError(f"{source}: '{prefix}{key}' {problem}")


def check_option(flag: str, value: Any, cls: type, name: str) -> None:
    """A command-line option that stands for a dataclass field gets that field's check, in the option's words."""
    rule = next(f for f in dataclasses.fields(cls) if f.name == name).metadata["check"]
    if value is not None and _violates(rule, value):
        raise TunevalError(f"{flag} must be {_describe(rule, with_null=False)}, got {value!r}")


# -- YAML values to annotated types ---------------------------------------------------------------

def coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type, or raise naming `where`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, where)
            except TunevalError as e:
                errors.append(str(e))
        raise TunevalError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise TunevalError(f"{where}: expected a list, got {value!r}")
        return [coerce(v, item, where) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        raise TunevalError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TunevalError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise TunevalError(f"{where}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise TunevalError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value)  # YAML reads 1e-3 as a string
        except (TypeError, ValueError):
            raise TunevalError(f"{where}: expected a number, got {value!r}") from None
        if not math.isfinite(number):  # no setting means anything at nan or inf, and no range check catches nan
            raise TunevalError(f"{where}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise TunevalError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def typed_value(value: Any, tp: Any, source: str, name: str) -> Any:
    """Like coerce, but nested sections (dataclasses, optional or in lists) get their keys checked too."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        rest = [a for a in args if a is not type(None)]
        tp = rest[0] if len(rest) == 1 else tp
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, source, f"{name}.")
    if typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
        if not isinstance(value, list):
            raise TunevalError(f"{source}: '{name}' must be a list, got {value!r}")
        return [build_dataclass(typing.get_args(tp)[0], v, source, f"{name}[{i}].") for i, v in enumerate(value)]
    return coerce(value, tp, f"{source}: '{name}'")


def build_dataclass(cls: type, values: dict[str, Any], source: str, prefix: str = "") -> Any:
    """Instantiate `cls` from a mapping, refusing unknown keys with the file and key named."""
    if not isinstance(values, dict):
        raise TunevalError(f"{source}: '{prefix.rstrip('.') or 'recipe'}' must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise TunevalError(
                f"{source}: unknown key '{prefix}{key}' (known: {', '.join(sorted(known)) or 'none'})"
            )
        kwargs[key] = typed_value(value, hints[key], source, f"{prefix}{key}")
    obj = cls(**kwargs)
    check_values(obj, source, prefix)
    return obj
