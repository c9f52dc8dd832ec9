"""filter_list and process_docs: lm-eval's filters on fixed generations (expected answers written by hand),
the built-in row hooks, and every refusal in one line naming the file and the key."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tuneval.errors import TunevalError
from tuneval.tasks.filters import (MAX_PATTERN, apply_filters, parse_filter_list, parse_process_docs, process_docs)
from tuneval.tasks.registry import load_registry, tasks_in_file
from tuneval.tasks.rows import read_cot_prompt

F = Path("t.yaml")


def run(steps: list[dict], text: str, doc: dict | None = None) -> str:
    (pipeline,) = parse_filter_list([{"name": "x", "filter": steps}], F)
    return pipeline.apply(text, doc or {})


GSM_STRICT = [{"function": "regex", "regex_pattern": r"#### (\-?[0-9\.\,]+)"}, {"function": "take_first"}]
GSM_FLEX = [{"function": "regex", "group_select": -1, "regex_pattern": r"(-?[$0-9.,]{2,})|(-?[0-9]+)"},
            {"function": "take_first"}]


@pytest.mark.parametrize("steps, text, expected", [
    (GSM_STRICT, " She has 3 + 4 = 7 apples.\n#### 7", "7"),
    (GSM_STRICT, " 3 + 4 = 7, so seven.", "[invalid]"),
    (GSM_FLEX, " 3 + 4 = 7, so 12 in all", "12"),  # the last match; group 2 of the tuple is the non-empty one
    (GSM_FLEX, " costs $1,200.", "$1,200."),
    ([{"function": "regex", "regex_pattern": "(?<=the answer is )(.*)(?=.)"}], "So the answer is (B).", "(B)"),
    ([{"function": "regex", "regex_pattern": "(?<=the answer is )(.*)(?=.)"}], "I do not know.", "[invalid]"),
    ([{"function": "regex", "regex_pattern": "x(y)?(z)?", "fallback": "none"}], "x", "none"),  # both groups empty
    ([{"function": "regex", "regex_pattern": r"\b(True|False)\b"}], " It is False, not True", "False"),
    ([{"function": "lowercase"}, {"function": "remove_whitespace"}], "  Yes \n", "yes"),
    ([{"function": "uppercase"}], "no", "NO"),
    ([{"function": "take_first"}], " False\n\n", " False\n\n"),  # nothing stripped: lm-eval hands it over as is
    ([{"function": "map", "mapping_dict": {"yes": 1}, "default_value": 0}], "maybe", 0),
])
def test_filters_on_fixed_generations(steps, text, expected):
    assert run(steps, text) == expected


OPTIONS_DOC = {"input": "Which is sarcastic?\nOptions:\n(A) Great, a flat tyre\n(B) Great, a new bike"}
MC = [{"function": "multi_choice_regex", "ignore_case": True, "ignore_punctuation": True,
       "regex_pattern": r"(\([A-Z]\))", "choices_field": "input"}]


@pytest.mark.parametrize("text, expected", [
    (" The answer is (B).", "(B)"),  # the regex itself
    (" great a new bike, clearly", "(B)"),  # a choice's text, case and punctuation ignored
    (" answer: A", "(A)"),  # ": X"
    (" no idea", "[invalid]"),
])
def test_multi_choice_regex_reads_the_options_from_the_question(text, expected):
    assert run(MC, text, OPTIONS_DOC) == expected


def test_multi_choice_regex_with_a_choices_list():
    steps = [{"function": "multi_choice_regex", "regex_pattern": r"(\([A-Z]\))"}]
    assert run(steps, "I pick Paris", {"choices": ["London", "Paris"]}) == "(B)"


def test_bbh_extractors():
    sports = [{"function": "map_regex", "ignore_case": True,
               "regex_pattern_to_value": {r"\b(no|not plausible)\b": "no", r"\b(yes|plausible)\b": "yes"}}]
    assert run(sports, " That is Not plausible.") == "no"
    assert run(sports, " Plausible.") == "yes"
    assert run(sports, " hmm") == "[invalid]"
    numbers = [{"function": "number_regex", "regex_pattern": "([-0-9]+)"}]
    assert run(numbers, " -12 or 3") == "-12" and run(numbers, " twelve") == "[invalid]"
    words = {"input": "Sort the following words alphabetically: List: pear apple fig"}
    assert run([{"function": "word_sort"}], " apple, fig, pear? no: apple fig pear", words) == "apple fig pear"
    assert run([{"function": "word_sort"}], " pear then apple", words) == "pear apple"


def test_every_pipeline_is_applied():
    pipelines = parse_filter_list([{"name": "strict-match", "filter": GSM_STRICT},
                                   {"name": "flexible-extract", "filter": GSM_FLEX}], F)
    assert apply_filters(pipelines, " 2 + 2 = 4\n#### 4", {}) == {"strict-match": "4", "flexible-extract": "4"}


def test_a_catastrophic_regex_gives_the_fallback_in_bounded_time():
    steps = [{"function": "regex", "regex_pattern": r"^(a+)+$"}]
    start = time.perf_counter()
    assert run(steps, "a" * 40 + "!") == "[invalid]"
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("entry, words", [
    ({"name": "x", "filter": [{"function": "majority_vote"}]}, ["filter_list[0].filter[0].function", "unknown filter"]),
    ({"name": "x", "filter": [{"function": "regex", "pattern": "a"}]}, ["filter[0].pattern", "no option"]),
    ({"name": "x", "filter": [{"function": "regex", "regex_pattern": "(a"}]}, ["regex_pattern", "not a valid"]),
    ({"name": "x", "filter": [{"function": "regex", "regex_pattern": "a" * (MAX_PATTERN + 1)}]}, ["over the limit"]),
    ({"name": "x", "filter": [{"function": "regex", "group_select": "0"}]}, ["group_select", "expected int"]),
    ({"name": "a,b", "filter": []}, ["filter_list[0].name"]),
    ({"filter": "take_first"}, ["filter_list[0]"]),
])
def test_bad_filters_are_one_line_naming_file_and_key(entry, words):
    with pytest.raises(TunevalError) as e:
        parse_filter_list([entry], F)
    message = str(e.value)
    assert "\n" not in message and message.startswith("t.yaml: ") and all(w in message for w in words)


def test_process_docs_hooks_make_a_gsm8k_row():
    hooks = parse_process_docs({"strip": ["question"], "split_answer": {"field": "answer", "sep": "####",
                                                                        "rationale": "steps"},
                                "rename": {"question": "q"}}, F)
    rows = process_docs(hooks, [{"question": " How many? ", "answer": "2 + 2 = 4\n#### 4", "_where": "f:1"}])
    assert rows == [{"q": "How many?", "answer": "4", "steps": "2 + 2 = 4", "_where": "f:1"}]


def test_process_docs_letter_choices_and_regex_replace():
    hooks = parse_process_docs({"letter_choices": {"field": "input"},
                                "regex_replace": {"field": "input", "pattern": r"\s*\(\w\).*", "repl": ""}}, F)
    (row,) = process_docs(hooks, [dict(OPTIONS_DOC)])
    assert row["choices"] == ["Great, a flat tyre", "Great, a new bike"] and row["input"] == "Which is sarcastic?\nOptions:"


@pytest.mark.parametrize("raw, words", [
    ({"normalize": ["x"]}, ["process_docs.normalize", "unknown hook"]),
    ({"split_answer": {"field": "answer"}}, ["process_docs.split_answer", "missing ['sep']"]),
    ({"strip": 3}, ["process_docs.strip"]),
    ("utils.process", ["process_docs is a mapping"]),
])
def test_bad_process_docs_are_one_line(raw, words):
    with pytest.raises(TunevalError) as e:
        parse_process_docs(raw, F)
    assert "\n" not in str(e.value) and all(w in str(e.value) for w in words)


def test_a_missing_field_names_the_row():
    (hook,) = parse_process_docs({"strip": "question"}, F)
    with pytest.raises(TunevalError, match="f:3: process_docs"):
        hook({"_where": "f:3"})


@pytest.mark.parametrize("snippet, key", [
    ("process_docs: !function utils.process_docs\n", "process_docs"),
    ("filter_list:\n  - name: x\n    filter:\n      - function: !function utils.MultiChoiceRegexFilter\n",
     "filter_list[0].filter[0].function"),
    ("doc_to_text: !function utils.doc_to_text\n", "doc_to_text"),
])
def test_function_tags_are_refused_naming_file_and_key(tmp_path, snippet, key):
    marker = tmp_path / "ran"
    (tmp_path / "utils.py").write_text(f"open({str(marker)!r}, 'w').write('x')\ndef process_docs(d): return d\n")
    path = tmp_path / "mine.yaml"
    path.write_text("task: mine\ndoc_to_text: 'Q: {{q}}'\ndoc_to_target: a\n" + snippet)
    with pytest.raises(TunevalError) as e:
        load_registry(tmp_path)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{path}: {key}: '!function utils.")
    assert "runs no code" in message and not marker.exists()


def test_a_gsm8k_style_task_is_yaml_alone(tmp_path):
    path = tmp_path / "gsm.yaml"
    path.write_text(GSM_YAML)
    (task,) = tasks_in_file(path)
    assert [p.name for p in task.filters] == ["strict-match", "flexible-extract"] and len(task.hooks) == 2


GSM_YAML = r"""
task: gsm_mini
data_files: {test: gsm/test.jsonl}
test_split: test
process_docs:
  strip: [question]
  split_answer: {field: answer, sep: "####", into: final, rationale: rationale}
doc_to_text: "Question: {{question}}\nAnswer:"
doc_to_target: "{{final}}"
chat_template: false
generation_kwargs: {until: ["Question:", "\n\n"], max_gen_toks: 8}
metric_list:
  - {metric: exact_match, ignore_case: true, ignore_punctuation: false, regexes_to_ignore: [",", "\\$", "(?s).*#### ", "\\.$"]}
filter_list:
  - name: strict-match
    filter: [{function: regex, regex_pattern: "#### (\\-?[0-9\\.\\,]+)"}, {function: take_first}]
  - name: flexible-extract
    filter: [{function: regex, group_select: -1, regex_pattern: "(-?[$0-9.,]{2,})|(-?[0-9]+)"}, {function: take_first}]
"""


def test_cot_prompt_files_are_cut_as_lm_eval_cuts_them(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("CANARY\n-----\nDo sums.\n\nMore words.\n\nQ: 1+1?\nA: Let's think step by step.\n1+1 is 2. "
                    "So the answer is 2.\n\nQ: 2+2?\nA: Let's think step by step. Four. So the answer is 4.")
    rows = read_cot_prompt(path)
    assert [(r["input"], r["target"], r["answer"]) for r in rows] == [
        ("1+1?", "1+1 is 2. So the answer is 2.", "2"), ("2+2?", "Four. So the answer is 4.", "4")]
    assert rows[0]["description"] == "Do sums.\n\nMore words."
    path.write_text("CANARY\n-----\nDo sums.\n\nQ: 1+1?\nA: 2")
    with pytest.raises(TunevalError, match="shot 1 is not"):
        read_cot_prompt(path)
