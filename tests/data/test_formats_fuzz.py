"""Fuzzed data (issue 35; tool calls, parts and weights: issue 36): rows of the five formats (alpaca, messages, sharegpt, prompt_completion, text,
plus columns) with any shape of value, and any bytes in a .jsonl/.json/.csv/.tsv/.txt file, either become
records or one TunevalError line; never another exception. Inputs that found bugs are kept below."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuneval.data.formats import FIELDS, FORMATS, split_validation, to_records
from tuneval.data.sources import read_file, read_lines, slice_rows
from tuneval.errors import TunevalError

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
NAMES = sorted({f for req, opt in FIELDS.values() for f in (*req, *opt)} | {"role", "content", "from", "value", "x"}
               | {"tool_calls", "function", "name", "arguments", "type", "text", "loss_weight", "weight"})
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=10),
                    st.sampled_from(["user", "assistant", "system", "human", "gpt", "bot", "", "tool", "function_call",
                                     "observation", "text", "image_url", '{"name": "f", "arguments": {}}']))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(NAMES), inner, max_size=3)), max_leaves=12)
turn = st.fixed_dictionaries({}, optional={"role": scalars, "content": values, "from": scalars, "value": values,
                                           "tool_calls": values, "loss_weight": scalars, "weight": scalars})
rows = st.lists(st.dictionaries(st.sampled_from(NAMES), st.one_of(values, st.lists(turn, max_size=4)), max_size=5),
                min_size=0, max_size=4)


def one_line(e: TunevalError) -> None:
    assert str(e) and "\n" not in str(e), str(e)


@FUZZ
@given(data=rows, format=st.sampled_from([None, *FORMATS]),
       columns=st.one_of(st.none(), st.dictionaries(st.sampled_from(NAMES), st.one_of(st.sampled_from(NAMES), scalars),
                                                    max_size=3)))
def test_any_rows_in_any_format(data, format, columns):
    try:
        records = to_records([{**r, "_where": f"d.jsonl:{i + 1}"} for i, r in enumerate(data)], format, columns=columns)
    except TunevalError as e:
        one_line(e)
        return
    for r in records:
        assert ("messages" in r) != ("text" in r)
        if "messages" in r:
            assert r["messages"][-1]["role"] == "assistant"
            assert all(isinstance(m["content"], str) for m in r["messages"])
            assert all(isinstance(c["function"]["name"], str) and isinstance(c["function"]["arguments"], dict)
                       for m in r["messages"] for c in m.get("tool_calls", []))
            assert len(r.get("loss_weights", r["messages"])) == len(r["messages"])
        else:
            assert isinstance(r["text"], str)


@FUZZ
@given(share=st.one_of(st.floats(allow_nan=True), st.integers(-2, 2)), n=st.integers(0, 5), seed=st.integers())
def test_any_validation_share(share, n, seed):
    try:
        split_validation([{"text": str(i)} for i in range(n)], share, seed)
    except TunevalError as e:
        one_line(e)


@FUZZ
@given(content=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                         st.lists(st.dictionaries(st.sampled_from(NAMES), values, max_size=3), max_size=3).map(
                             lambda rs: "".join(json.dumps(r) + "\n" for r in rs).encode())),
       suffix=st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".txt", ".parquet", ".exe"]),
       pattern=st.sampled_from([r"^(?P<text>.*)$", r"(?P<a>\S+)\t(?P<b>.*)", "(", r"(?P<x>a)|(?P<x>b)", "plain"]))
def test_any_bytes_in_a_data_file(content, suffix, pattern):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"d{suffix}"
        path.write_bytes(content)
        try:
            read_lines(path, pattern) if suffix == ".txt" else read_file(path)
        except TunevalError as e:
            one_line(e)


@FUZZ
@given(spec=st.one_of(st.text(max_size=8), st.sampled_from(["1600:", ":2", "a:b", "1:2:3", "-1:", "::", "", ":"])))
def test_any_rows_slice(spec):
    try:
        slice_rows([{"x": i} for i in range(5)], spec, "t.yaml")
    except TunevalError as e:
        one_line(e)


# ---- the inputs that found bugs, kept as plain tests ------------------------------------------------

@pytest.mark.parametrize("pattern", ["(", "(?P<x>a)|(?P<x>b)", "[z-a]"])
def test_a_line_pattern_that_is_no_regex_is_one_line(pattern, tmp_path):
    (tmp_path / "d.txt").write_text("a line\n")
    with pytest.raises(TunevalError, match=r"d.txt: line_pattern .* is not a valid regular expression"):
        read_lines(tmp_path / "d.txt", pattern)
