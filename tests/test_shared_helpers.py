"""The helpers that used to be repeated (issue 13), each now in one place."""

from pathlib import Path

from rich.console import Console

from tuneval.console import mixture_table
from tuneval.errors import first_line
from tuneval.metrics.text import fmt, reference_streams
from tuneval.evaluate.report import samples_table
from tuneval.methods.loading import run_label


def test_first_line_of_an_exception():
    assert first_line(ValueError("  first line\n  second line")) == "first line"
    assert first_line(KeyError()) == "KeyError" and first_line(OSError("   ")) == "OSError"
    assert first_line(ValueError("x" * 400)) == "x" * 300


def test_run_label():
    assert run_label("smollm2-135m-instruct") == "smollm2-135m-instruct"
    assert run_label("org/model", Path("runs/dialogsum-lora")) == "org/model+dialogsum-lora"
    assert run_label("org/model", "runs/dialogsum-lora/") == "org/model+dialogsum-lora"


def test_score_formatting_and_reference_streams():
    assert (fmt("rouge1", 0.123456), fmt("bleu", 12.3456), fmt("chrf", -1.5, "+"), fmt("acc", None)) == (
        "0.1235", "12.35", "-1.50", "-")
    assert reference_streams([["a", "b"], ["c"]]) == [["a", "c"], ["b", ""]]
    assert reference_streams([]) == [[]]


def test_samples_are_headed_by_the_tasks_input_field():
    ex = {"id": "v0", "input": "It rained.", "references": ["True"], "prediction": "False"}
    assert "**Premise**" in samples_table([{"label": "m", "input_field": "premise", "examples": [ex]}])
    assert "**Input**" in samples_table([{"label": "m", "examples": [ex]}])  # results saved before the field


def test_mixture_table_renders_the_summary():
    summary = {"mixture": {"strategy": "temperature", "cap": 10, "temperature": 2.0, "seed": 1, "examples": 5, "tasks": [
        {"task": "sst2", "replay": False, "pool": 10, "rate": 0.6, "drawn": 3, "unique": 3, "per_template": {"0": 2, "2": 1},
         "holdout_templates": [1], "mean_length": 12.0},
        {"task": "self_instruct", "replay": True, "pool": 4, "rate": 0.4, "drawn": 2, "unique": 2, "per_template": {"0": 2},
         "holdout_templates": [], "mean_length": 30.0}]}}
    console = Console(width=120, record=True)
    console.print(mixture_table(summary))
    text = console.export_text()
    assert "mixture (temperature, cap 10, T=2): 5 examples, seed 1" in text
    assert "2 - 1" in text and "self_instruct (replay)" in text
