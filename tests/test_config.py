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


@pytest.mark.parametrize("overrides,message", [
    # the defects a user met: each trained (or crashed) instead of failing at load
    (["train.max_steps=-5", "train.num_train_epochs=-1"], r"'train.max_steps' must be -1 \(train num_train_epochs\) or at least 1, got -5"),
    (["train.num_train_epochs=-1"], r"'train.num_train_epochs' must be > 0 when train.max_steps is -1, got -1.0"),
    (["train.num_train_epochs=0"], r"'train.num_train_epochs' must be > 0 when train.max_steps is -1, got 0.0"),
    (["data.train_examples=-5"], r"'data.train_examples' must be at least 1 \(or null: all\), got -5"),
    (["data.train_examples=0"], r"'data.train_examples' must be at least 1 \(or null: all\), got 0"),
    (["data.max_seq_len=-1"], r"'data.max_seq_len' must be at least 8, got -1"),
    (["data.max_seq_len=100", "data.max_target_tokens=100"], r"'data.max_seq_len' must be greater than data.max_target_tokens \(100\), got 100"),
    (["data.max_target_tokens=0"], r"'data.max_target_tokens' must be at least 1, got 0"),
    (["data.template=-1"], r"'data.template' must be at least 0 \(or null: drawn per example\), got -1"),
    (["data.holdout_templates=[1,-2]"], r"'data.holdout_templates\[1\]' must be at least 0, got -2"),
    (["data.replay.max_examples=0"], r"'data.replay.max_examples' must be at least 1"),
    (["train.per_device_train_batch_size=-8"], r"'train.per_device_train_batch_size' must be at least 1, got -8"),
    (["train.gradient_accumulation_steps=0"], r"'train.gradient_accumulation_steps' must be at least 1, got 0"),
    (["train.learning_rate=-1"], r"'train.learning_rate' must be > 0, got -1.0"),
    (["train.learning_rate=0"], r"'train.learning_rate' must be > 0, got 0.0"),
    (["train.learning_rate=.nan"], r"'train.learning_rate': expected a finite number, got nan"),
    (["train.warmup_steps=-1"], r"'train.warmup_steps' must be at least 0, got -1.0"),
    (["train.weight_decay=-0.1"], r"'train.weight_decay' must be at least 0, got -0.1"),
    (["train.logging_steps=0"], r"'train.logging_steps' must be at least 1, got 0"),
    (["train.save_steps=0"], r"'train.save_steps' must be at least 1, got 0"),
    (["train.save_total_limit=0"], r"'train.save_total_limit' must be at least 1 \(or null: keep all\), got 0"),
    (["train.pad_to_multiple_of=0"], r"'train.pad_to_multiple_of' must be at least 1 \(or null: off\), got 0"),
    (["train.lr_scheduler_type=cosinus"], r"'train.lr_scheduler_type' must be one of linear, cosine, .*, got 'cosinus'"),
    (["eval.limit=0"], r"'eval.limit' must be at least 1 \(or null: all\), got 0"),
    (["eval.batch_size=0"], r"'eval.batch_size' must be at least 1, got 0"),
    (["eval.max_new_tokens=0"], r"'eval.max_new_tokens' must be at least 1, got 0"),
    (["eval.template=-1"], r"'eval.template' must be at least 0"),
    (["seed=-1"], r"'seed' must be in \[0, 4294967295\], got -1"),
    # each method's own settings, checked by the method's settings class
    (["lora.r=0"], r"'lora.r' must be at least 1, got 0"),
    (["lora.lora_alpha=0"], r"'lora.lora_alpha' must be > 0, got 0"),
    (["lora.lora_dropout=1.0"], r"'lora.lora_dropout' must be in \[0, 1\), got 1.0"),
    (["lora.bias=some"], r"'lora.bias' must be one of none, all, lora_only, got 'some'"),
    (["lora.target_modules=[]"], r"'lora.target_modules' must name at least one module \(or be null"),
    (["method=qlora", "qlora.r=-4"], r"'qlora.r' must be at least 1, got -4"),
    (["method=qlora", "qlora.bnb_4bit_quant_type=int8"], r"'qlora.bnb_4bit_quant_type' must be one of nf4, fp4, got 'int8'"),
    (["method=qlora", "qlora.bnb_4bit_compute_dtype=fp8"], r"'qlora.bnb_4bit_compute_dtype' must be one of float32, "),
    (["method=prompt_tuning", "prompt_tuning.num_virtual_tokens=0"], r"'prompt_tuning.num_virtual_tokens' must be at least 1, got 0"),
    (["method=prompt_tuning", "prompt_tuning.prompt_tuning_init=words"], r"'prompt_tuning.prompt_tuning_init' must be one of RANDOM, TEXT, SAMPLE_VOCAB"),
    (["method=prompt_tuning", "prompt_tuning.prompt_tuning_init=TEXT"], r"'prompt_tuning.prompt_tuning_init_text' is needed"),
    (["method=prefix_tuning", "prefix_tuning.num_virtual_tokens=-1"], r"'prefix_tuning.num_virtual_tokens' must be at least 1"),
    (["method=prefix_tuning", "prefix_tuning.encoder_hidden_size=0"], r"'prefix_tuning.encoder_hidden_size' must be at least 1"),
    (["method=adapters", "adapters.reduction_factor=0"], r"'adapters.reduction_factor' must be at least 1, got 0"),
    (["method=adapters", "adapters.non_linearity=softmax"], r"'adapters.non_linearity' must be one of relu, swish"),
    (["method=adapters", "adapters.mh_adapter=false", "adapters.output_adapter=false"], r"'adapters.output_adapter' .*both false"),
    (["method=freeze", "freeze.patterns=['(']"], r"'freeze.patterns\[0\]' '\(' is not a valid regular expression"),
    (["method=freeze", "freeze.trainable_modules=[]"], r"'freeze.trainable_modules' must name at least one"),
    (["method=ia3", "ia3.feedforward_modules=[down_proj]"], r"'ia3.feedforward_modules' needs ia3.target_modules"),
])
def test_values_are_range_checked_at_load(tmp_path, overrides, message):
    with pytest.raises(TunevalError, match=message) as e:
        load_recipe(write(tmp_path, ""), overrides)
    assert str(e.value).startswith(f"{tmp_path / 'r.yaml'} (with --set): ")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("overrides", [
    ["train.max_steps=3", "train.num_train_epochs=0"],  # max_steps decides; epochs unused
    ["train.save_total_limit=null", "data.train_examples=null", "eval.limit=null", "data.template=0", "seed=0"],
    ["lora.lora_dropout=0", "train.warmup_steps=0.1", "train.weight_decay=0"],
    ["method=prompt_tuning", "prompt_tuning.prompt_tuning_init=text", "prompt_tuning.prompt_tuning_init_text=Summarize"],
])
def test_edge_values_that_mean_something_are_accepted(tmp_path, overrides):
    load_recipe(write(tmp_path, ""), overrides)


def test_method_settings_are_checked_from_the_settings_class():
    """`tuneval params/memory --set` and adapter markers build settings without a recipe: same checks."""
    from tuneval.methods import get_method
    from tuneval.typed import build_dataclass

    with pytest.raises(TunevalError, match=r"^--set: 'lora.r' must be at least 1, got 0$"):
        build_dataclass(get_method("lora").settings, {"r": 0}, "--set", "lora.")
