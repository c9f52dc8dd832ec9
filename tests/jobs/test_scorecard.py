"""`tuneval scorecard` end to end on the tiny Llama: a multiple-choice task written here and DialogSum."""

from __future__ import annotations

import json

import pytest

from tuneval import api
from tuneval.cli import main
from tuneval.errors import TunevalError
from tuneval.results import ScorecardCompareDir, ScorecardDir

MC_TASK = """task: tinymc
output_type: multiple_choice
data_files: {validation: tinymc/val.jsonl}
validation_split: validation
input_field: sentence
doc_to_text: "{{sentence}}\\nQuestion: is it good?\\nAnswer:"
doc_to_choice: ["no", "yes"]
doc_to_target: label
"""
SENTENCES = ["He said his brother Adam is with me.", "it is good", "She is fine.", "the father of Emily came with us",
             "I am not sure about the meeting", "they are here", "Probably a cold day", "you are late"]


@pytest.fixture
def scenario_dirs(tiny_data_dir, tmp_path):
    (tiny_data_dir / "tinymc").mkdir()
    (tiny_data_dir / "tinymc" / "val.jsonl").write_text(
        "".join(json.dumps({"idx": i, "sentence": s, "label": i % 2}) + "\n" for i, s in enumerate(SENTENCES)))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tinymc.yaml").write_text(MC_TASK)
    return tiny_data_dir, tasks


def test_scorecard_end_to_end_and_before_after(tiny_llama_dir, scenario_dirs, tmp_path):
    data_dir, tasks = scenario_dirs
    common = dict(scenarios="tinymc,dialogsum", limit=6, tasks_dir=tasks, data_dir=str(data_dir), bootstrap_iters=50,
                  perturbations="typos,lowercase,gender,person_name,dialect", batch_size=4)
    card = api.scorecard(str(tiny_llama_dir), out=tmp_path / "a", **common)
    mc, gen = card["scenarios"]["tinymc"], card["scenarios"]["dialogsum"]
    assert set(mc["cells"]) >= {"accuracy", "robustness", "fairness", "fairness_gap", "ece", "ece_10_bin",
                                "selective_acc@10", "robustness:typos", "fairness:gender"}
    for c in ("accuracy", "robustness", "fairness", "ece_10_bin"):
        cell = mc["cells"][c]
        assert cell["ci_low"] <= cell["value"] <= cell["ci_high"]
    # worst case over perturbations can only be lower than the clean score
    assert mc["cells"]["robustness"]["value"] <= mc["cells"]["accuracy"]["value"]
    assert mc["cells"]["fairness_gap"]["value"] <= 0
    # the gender swap changed the examples with he/his/father, and their perturbed input is saved
    gender = ScorecardDir(tmp_path / "a").variant("tinymc", "gender").read()
    assert mc["data"]["variants"]["gender"]["changed"] == 2
    assert [ex["perturbed_input"]["sentence"] for ex in gender["examples"]] == [
        "She said her sister Adam is with me.", "the mother of Emily came with us"]
    assert [ex["example"] for ex in gender["examples"]] == [0, 3]
    assert gen["cells"]["toxicity"]["value"] is None and gen["cells"]["toxicity"]["note"].startswith("not measured")
    assert "representation_gender" in gen["cells"] and gen["efficiency"]["parameters"] > 0
    assert (tmp_path / "a" / "report.html").read_text().count('id="scorecard"') == 1
    md = ScorecardDir(tmp_path / "a").md_file.read_text()
    assert "| tinymc | 6 | acc |" in md and "not measured" in md

    # same seed, same perturbations, same model: an identical card, so every paired delta is 0
    api.scorecard(str(tiny_llama_dir), out=tmp_path / "b", **common)
    result = api.scorecard(before=tmp_path / "a", after=tmp_path / "b", out=tmp_path / "cmp", bootstrap_iters=50)
    assert ScorecardCompareDir(tmp_path / "cmp").exists()
    cells = result["scenarios"]["tinymc"]
    assert cells["accuracy"]["delta"] == 0 and cells["fairness"]["ci_low"] == 0 == cells["fairness"]["ci_high"]


def test_scorecard_refuses_half_a_comparison_and_unknown_perturbations(tmp_path):
    with pytest.raises(TunevalError, match="both --before and --after"):
        api.scorecard(before=tmp_path)
    with pytest.raises(TunevalError, match="unknown perturbation"):
        api.scorecard("x", scenarios="boolq", perturbations="typos,nope", out=tmp_path / "o")


def test_cli_compare(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["scorecard", "--before", str(tmp_path / "missing"), "--after", str(tmp_path / "also")])
    assert "no scorecard.json" in capsys.readouterr().err
