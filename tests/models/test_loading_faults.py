"""A model directory that is broken says what is wrong with it, not "not a local directory" (issue 35)."""

from __future__ import annotations

import shutil

import pytest

from tests.evaluate.test_bench_cli import run
from tuneval.errors import TunevalError
from tuneval.models import load_model


@pytest.mark.parametrize("config, needle", [
    ("garbage{", "not a valid JSON file"),
    ("[1, 2]", "model_type"),
    ('{"model_type": "no-such-architecture"}', "no-such-architecture"),
    ('{"model_type": "llama", "hidden_size": "wide"}', "hidden_size"),
    ("", "not a valid JSON file"),
])
def test_garbage_config_json_is_named(config, needle, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(config)
    with pytest.raises(TunevalError) as e:
        load_model(str(tmp_path / "m"))
    message = str(e.value)
    assert message.startswith(f"model directory '{tmp_path / 'm'}': {tmp_path / 'm' / 'config.json'} is not a model "
                              "transformers can read")
    assert needle in message and "not a local directory" not in message and "\n" not in message


def test_missing_tokenizer_is_named(tiny_llama_dir, tmp_path):
    copy = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_llama_dir, copy)
    for p in copy.glob("*"):
        if p.name.startswith(("tokenizer", "special_tokens")):
            p.unlink()
    with pytest.raises(TunevalError, match="its tokenizer cannot be loaded from"):
        load_model(str(copy))


def test_garbage_config_through_the_cli_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("garbage{")
    code, _, err = run(["eval", "--model", str(tmp_path / "m"), "--task", "dialogsum", "--limit", "1"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "config.json is not a model" in err, err
