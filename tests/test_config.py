import pytest

from tuneval.config import load_recipe
from tuneval.errors import TunevalError


def write(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_recipe_types_and_overrides(tmp_path):
    p = write(tmp_path, "method: lora\ntrain:\n  learning_rate: 1e-3\nlora:\n  r: 8\n  target_modules: [q_proj]\n")
    r = load_recipe(p, ["lora.lora_alpha=16", "data.train_examples=10", "train.group_by_length=false"])
    assert r.train.learning_rate == 1e-3 and isinstance(r.train.learning_rate, float)
    assert (r.method_args.r, r.method_args.lora_alpha, r.method_args.target_modules) == (8, 16, ["q_proj"])
    assert r.data.train_examples == 10 and r.train.group_by_length is False
    assert r.to_dict()["lora"]["r"] == 8


def test_defaults_are_the_course_lora_settings():
    r = load_recipe(None)
    assert (r.method, r.method_args.r, r.method_args.lora_alpha, r.method_args.lora_dropout) == ("lora", 32, 32, 0.05)
    assert r.method_args.target_modules is None  # PEFT's per-architecture q/v default


@pytest.mark.parametrize("text,overrides,message", [
    ("lora:\n  rank: 4\n", [], r"r.yaml: unknown key 'lora.rank' \(known: bias, lora_alpha"),
    ("trian:\n  max_steps: 3\n", [], r"r.yaml: unknown key 'trian'"),
    ("method: full\nlora:\n  r: 4\n", [], r"unknown key 'lora' \(options of method 'lora' need method: lora\)"),
    ("train:\n  max_steps: many\n", [], r"r.yaml: 'train.max_steps': expected an integer, got 'many'"),
    ("method: nope\n", [], r"unknown method 'nope' \(known: .*full.*lora"),
    ("", ["data.nope=1"], r"unknown key 'data.nope'"),
    ("train: [1\n", [], r"r.yaml:\d+: not valid YAML"),
])
def test_bad_recipes_name_file_and_key(tmp_path, text, overrides, message):
    with pytest.raises(TunevalError, match=message):
        load_recipe(write(tmp_path, text), overrides)
