"""Tool calls read from generated text and scored against the reference's calls (issue 36)."""

import json

import numpy as np
import pytest

from tuneval.metrics.registry import Scorer, bootstrap_ci, higher_is_better
from tuneval.metrics.tool_calls import call_matches, parse_tool_calls

WEATHER = {"name": "get_weather", "arguments": {"city": "Paris", "days": 1}}
BOOK = {"name": "book_table", "arguments": {"people": 2, "time": "tonight"}}


@pytest.mark.parametrize("text,calls", [
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 1}}\n</tool_call>', [WEATHER]),
    ('Let me check.<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\", \\"days\\": 1}"}'
     '</tool_call><tool_call>{"name": "book_table", "arguments": {"time": "tonight", "people": 2}}', [WEATHER, BOOK]),
    ('{"name": "get_weather", "parameters": {"city": "Paris", "days": 1}}', [WEATHER]),           # Llama 3.1
    ('<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris", "days": 1}}', [WEATHER]),
    ('[TOOL_CALLS] [{"name": "book_table", "arguments": {"people": 2, "time": "tonight"}}]', [BOOK]),  # Mistral
    ("It is sunny in Paris.", []),
    ('{"city": "Paris"}', []),                                 # JSON, but no call
    ('The answer: {"name": "x", "arguments": {}}', []),        # a call inside prose is prose
    ("<tool_call>{not json</tool_call>", [{"name": None, "arguments": None}]),
])
def test_parse_tool_calls(text, calls):
    assert parse_tool_calls(text) == calls


def test_matching_is_by_name_then_arguments_as_json():
    assert call_matches([WEATHER], [WEATHER]) == (1.0, 1.0)
    floats = {"name": "get_weather", "arguments": {"days": 1.0, "city": "Paris"}}  # key order, 1 == 1.0
    assert call_matches([floats], [WEATHER]) == (1.0, 1.0)
    assert call_matches([{"name": "get_weather", "arguments": {"city": "Paris", "days": True}}], [WEATHER]) == (1.0, 0.0)
    assert call_matches([{"name": "get_weather", "arguments": {"city": "paris", "days": 1}}], [WEATHER]) == (1.0, 0.0)
    assert call_matches([BOOK, WEATHER], [WEATHER, BOOK]) == (1.0, 1.0)  # parallel calls in any order
    assert call_matches([WEATHER], [WEATHER, BOOK]) == (0.0, 0.0)
    assert call_matches([], []) == (1.0, 1.0)            # a text answer where the reference answers in text
    assert call_matches([WEATHER], []) == (0.0, 0.0)     # a call where none was wanted
    assert call_matches([{"name": None, "arguments": None}], [WEATHER]) == (0.0, 0.0)


def test_scored_with_bootstrap_intervals_like_every_mean_metric():
    hermes = "<tool_call>\n{}\n</tool_call>".format
    records = [
        {"prediction": hermes(json.dumps(WEATHER)), "references": ["r"], "reference_calls": [WEATHER]},
        {"prediction": hermes(json.dumps({**BOOK, "arguments": {"people": 3, "time": "tonight"}})), "references": ["r"],
         "reference_calls": [BOOK]},
        {"prediction": "Fine, thanks.", "references": ["r"], "reference_calls": []},
        {"prediction": "I cannot.", "references": ["r"], "reference_calls": [BOOK]},
    ]
    scorer = Scorer("generate_until", [{"metric": "tool_call"}], records)
    assert scorer.score() == {"tool_call_name_match": 0.75, "tool_call_exact_match": 0.5}
    assert list(scorer.item_values["tool_call_exact_match"]) == [1.0, 0.0, 1.0, 0.0]
    ci = bootstrap_ci(scorer, 200, seed=1)
    assert set(ci) == {"tool_call_name_match", "tool_call_exact_match"}
    assert 0.0 <= ci["tool_call_exact_match"]["ci_low"] < 0.5 < ci["tool_call_exact_match"]["ci_high"] <= 1.0
    assert higher_is_better("generate_until", [{"metric": "tool_call"}]) == {
        "tool_call_name_match": True, "tool_call_exact_match": True}
    assert np.isclose(scorer.score(np.array([0, 0, 1]))["tool_call_exact_match"], 2 / 3)
