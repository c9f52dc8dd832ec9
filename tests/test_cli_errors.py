"""Every bad input: one clear line naming what and where, exit 2, no traceback, nothing half-written."""

import json

import pytest

from tuneval.cli import main


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def assert_clean_error(code, err, *needles):
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def bad_data(tiny_data_dir, text):
    (tiny_data_dir / "dialogsum" / "validation.jsonl").write_text(text)
    return str(tiny_data_dir)


def test_unknown_model(capsys, tiny_data_dir):
    code, _, err = run(["eval", "--model", "./no/such/model", "--data-dir", str(tiny_data_dir)], capsys)
    assert_clean_error(code, err, "model './no/such/model'", "no such model directory")


def test_unknown_hub_model_offline(capsys, tiny_data_dir):
    code, _, err = run(["params", "nobody-has-this/model-xyz"], capsys)
    assert_clean_error(code, err, "unknown model 'nobody-has-this/model-xyz'", "smollm2-135m-instruct")


def test_unknown_task(capsys, tiny_llama_dir):
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--task", "dialogsumm"], capsys)
    assert_clean_error(code, err, "unknown task 'dialogsumm'", "dialogsum")


def test_missing_data_dir(capsys, tiny_llama_dir, tmp_path):
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--data-dir", str(tmp_path / "nope")], capsys)
    assert_clean_error(code, err, f"data directory '{tmp_path / 'nope'}'", "does not exist")


def test_malformed_jsonl_line_keeps_earlier_results(capsys, tiny_llama_dir, tiny_data_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text('{"earlier": true}')
    good = json.dumps({"fname": "a", "dialogue": "x", "summary": "y"})
    data = bad_data(tiny_data_dir, good + "\n" + good + "\n{not json\n")
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--data-dir", data, "--out", str(out)], capsys)
    assert_clean_error(code, err, "validation.jsonl:3:", "not valid JSON")
    assert json.loads((out / "results.json").read_text()) == {"earlier": True}
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def test_missing_field(capsys, tiny_llama_dir, tiny_data_dir):
    data = bad_data(tiny_data_dir, json.dumps({"fname": "a", "dialogue": "x", "summary": "y"}) + "\n"
                    + json.dumps({"fname": "b", "dialogue": "x"}) + "\n")
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--data-dir", data], capsys)
    assert_clean_error(code, err, "validation.jsonl:2:", "missing field 'summary'")


def test_empty_split(capsys, tiny_llama_dir, tiny_data_dir):
    data = bad_data(tiny_data_dir, "\n")
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--data-dir", data], capsys)
    assert_clean_error(code, err, "validation.jsonl", "split 'validation'", "has no examples")


def test_unknown_recipe_key_writes_nothing(capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"output_dir: {tmp_path / 'run'}\nlora:\n  rank: 8\n")
    code, _, err = run(["train", str(recipe)], capsys)
    assert_clean_error(code, err, f"{recipe}: unknown key 'lora.rank'")
    assert not (tmp_path / "run").exists()


def test_adapter_given_as_model(capsys, tmp_path):
    (tmp_path / "ad").mkdir()
    (tmp_path / "ad" / "adapter_config.json").write_text("{}")
    code, _, err = run(["params", str(tmp_path / "ad")], capsys)
    assert_clean_error(code, err, "is a PEFT adapter, not a model", "--adapter")


def test_params_prints_peft_format(capsys, tiny_llama_dir):
    code, out, _ = run(["params", str(tiny_llama_dir), "--method", "lora", "--set", "r=4"], capsys)
    assert code == 0
    # tiny llama: 2 layers x (q: 4*32 + 32*4, v: 4*32 + 16*4) = 2 * 448
    assert "trainable params: 896 || all params:" in out and "|| trainable%:" in out
