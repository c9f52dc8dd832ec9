"""Fuzzed recipes (issue 35): any YAML text, any mapping and any `--set` either gives a Recipe or one
TunevalError line; never another exception, never a file written. Inputs that found bugs are kept
below as plain tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tuneval.config import apply_overrides, load_recipe, recipe_from_dict
from tuneval.errors import TunevalError

FUZZ = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
KEYS = ["model", "task", "method", "seed", "output_dir", "precision", "data", "train", "eval", "lora", "mixture",
        "method_args", "model_args", "train_examples", "max_seq_len", "learning_rate", "max_steps", "r", "tasks",
        "strategy", "weight", "data_dir", "tasks_dir", "format", "columns", "path", "template", "limit"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["lora", "full", "dialogsum", "auto", "bf16", "inf", "-1",
                                                           "1e-3", "all-linear", "/proc/x", "../x"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
                      max_leaves=12)
recipes = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)


def one_line(e: TunevalError) -> None:
    text = str(e)
    assert text and "\n" not in text and "Traceback" not in text, text


def files_under(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}


@FUZZ
@given(raw=recipes)
def test_any_recipe_mapping(raw):
    try:
        recipe_from_dict(raw, "fuzz")
    except TunevalError as e:
        one_line(e)


@FUZZ
@given(text=st.one_of(st.text(max_size=200), recipes.map(lambda r: yaml.safe_dump(r, allow_unicode=True)),
                      st.sampled_from(["!!python/object/apply:os.system ['touch pwned']", "a: &x [*x]", "{", "- 1",
                                       "a: !!binary ZZZ", "\x00", "a: b: c", "\ufeffmodel: x", "? [a]\n: b",
                                       "model: !!python/name:os.system"])))
@example(text="&a [*a, *a]")
def test_any_recipe_file(text, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    before = files_under(Path.cwd()) | files_under(tmp_path)
    try:
        load_recipe(path)
    except TunevalError as e:
        one_line(e)
    assert files_under(Path.cwd()) | files_under(tmp_path) == before
    assert not Path("pwned").exists()


overrides = st.lists(st.one_of(
    st.text(max_size=30),
    st.builds(lambda k, v: f"{k}={v}", st.lists(st.sampled_from(KEYS), min_size=1, max_size=3).map(".".join),
              st.one_of(st.text(max_size=20), st.sampled_from(["[", "{a: 1", "!!python/object:os.system", "*x",
                                                               "&x [*x]", "1e999", "'", "-", "? x", "%TAG"])))),
    max_size=4)


@FUZZ
@given(raw=recipes, sets=overrides)
def test_any_set_overrides(raw, sets):
    try:
        recipe_from_dict(apply_overrides(raw, sets), "fuzz --set")
    except TunevalError as e:
        one_line(e)


# ---- the inputs that found bugs, kept as plain tests -----------------------------------------------

@pytest.mark.parametrize("item", ["x=[", "model={a: 1", "seed='", "a=!!python/object/apply:os.system [ls]", "a=*x",
                                  "a=%TAG"])
def test_set_with_bad_yaml_is_one_line(item):
    with pytest.raises(TunevalError, match=r"^--set .*: the value is not valid YAML"):
        apply_overrides({}, [item])


@pytest.mark.parametrize("item", ["=1", ".=1", "a..b=1", "data.=1"])
def test_set_with_an_empty_key_is_one_line(item):
    with pytest.raises(TunevalError, match=r"^--set .*: empty key"):
        apply_overrides({}, [item])
