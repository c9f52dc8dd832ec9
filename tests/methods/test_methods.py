"""Every method: a few real training steps on tiny Llama and T5, only the right parameters move,
the result saves, reloads over a fresh base to identical outputs, and counts what it should."""

from __future__ import annotations

import json

import pytest
import torch

from tuneval.config import recipe_from_dict
from tuneval.errors import TunevalError
from tuneval.methods import METHODS, count_parameters, get_method
from tuneval.methods.loading import load_adapter
from tuneval.models import load_model
from tuneval.runs import MARKER
from tuneval.train.trainer import train
from tuneval.typed import build_dataclass

PEFT_METHODS = ["lora", "qlora", "ln_tuning", "ia3", "prompt_tuning", "prefix_tuning"]
OWN_METHODS = ["freeze", "adapters"]  # saved as trained tensors only; bitfit has its own test (needs biases)
ADAPTER_KEYS = ("lora_", "ia3_", "ln_tuning_layers", "prompt_encoder", "bottleneck_adapter")


def recipe(model_dir, data_dir, method, out, options=None, **train_opts):
    raw = {
        "model": str(model_dir), "task": "dialogsum", "method": method, "seed": 7, "output_dir": str(out),
        "data": {"data_dir": str(data_dir), "train_examples": 8, "max_seq_len": 192},
        "train": {"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 5e-2, "logging_steps": 1,
                  "save_steps": 50, **train_opts},
    }
    if options:
        raw[method] = options
    return recipe_from_dict(raw, "test")


def probe(model, arch):
    ids = torch.tensor([[5, 9, 12, 30, 7, 8], [11, 3, 40, 41, 42, 6]])
    with torch.no_grad():
        if arch == "seq2seq":
            return model(input_ids=ids, decoder_input_ids=ids[:, :3]).logits
        return model(input_ids=ids).logits


def base_state(model_dir):
    return {k: v.clone() for k, v in load_model(str(model_dir)).model.state_dict().items()}


def check_trained_and_reload(model_dir, run_dir, metrics, model, loaded):
    assert metrics["global_step"] == 2 and torch.isfinite(torch.tensor(metrics["train_loss"]))
    for key in ("checkpoint_mb", "peak_memory_mb", "train_tokens_per_second", "train_seconds"):
        assert metrics[key] > 0, key
    assert 0 < metrics["trainable_params"] < metrics["all_params"]
    assert (run_dir / MARKER).is_file()
    model.eval()
    expected = probe(model, loaded.arch)
    reloaded = load_adapter(load_model(str(model_dir)), run_dir).eval()
    torch.testing.assert_close(probe(reloaded, loaded.arch), expected, rtol=0, atol=0)
    assert count_parameters(reloaded)[0] in (0, metrics["trainable_params"])  # PEFT reloads frozen
    base = probe(load_model(str(model_dir)).model.eval(), loaded.arch)
    assert base.shape != expected.shape or not torch.allclose(base, expected)


@pytest.mark.parametrize("method", PEFT_METHODS)
def test_peft_method_trains_only_its_adapter_and_reloads(tiny_model_dir, tiny_data_dir, tmp_path, method, request):
    if method == "qlora":  # the same architecture, wide enough for bitsandbytes' 4-bit CPU kernels (conftest.py)
        wide = "tiny_wide_t5_dir" if tiny_model_dir == request.getfixturevalue("tiny_t5_dir") else "tiny_wide_llama_dir"
        tiny_model_dir = request.getfixturevalue(wide)
    before = base_state(tiny_model_dir)
    run_dir = tmp_path / "run"
    options = {"use_gradient_checkpointing": False} if method == "qlora" else None
    metrics, model, loaded = train(recipe(tiny_model_dir, tiny_data_dir, method, run_dir, options))
    check_trained_and_reload(tiny_model_dir, run_dir, metrics, model, loaded)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(any(k in n for k in ADAPTER_KEYS) for n in trainable)
    assert sum(p.numel() for p in trainable.values()) == metrics["trainable_params"]
    base_now = model.get_base_model().state_dict()
    if method != "qlora":  # qlora's base is quantized, so not comparable tensor by tensor
        frozen = [k for k in before if k in base_now]
        assert len(frozen) > len(before) / 2 and all(torch.equal(before[k], base_now[k]) for k in frozen)
    assert len(list(run_dir.glob("adapter_model.safetensors"))) == 1


@pytest.mark.parametrize("method", OWN_METHODS)
def test_own_method_changes_exactly_what_trains_and_reloads(tiny_model_dir, tiny_data_dir, tmp_path, method):
    before = base_state(tiny_model_dir)
    run_dir = tmp_path / "run"
    options = {"trainable_layers": 1} if method == "freeze" else None
    metrics, model, loaded = train(recipe(tiny_model_dir, tiny_data_dir, method, run_dir, options))
    check_trained_and_reload(tiny_model_dir, run_dir, metrics, model, loaded)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    now = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], now[k])}
    from safetensors.torch import load_file

    saved = load_file(str(run_dir / "adapter_model.safetensors"))
    assert set(saved) == trainable
    if method == "adapters":
        assert not changed  # the base model untouched
        assert trainable and all("bottleneck_adapter" in n for n in trainable)
        ups = [p for n, p in model.named_parameters() if n.endswith("bottleneck_adapter.up.weight")]
        assert ups and all(p.abs().sum() > 0 for p in ups)  # zero at the start, trained now
    else:  # parameters changed where expected and only there: the top block of each stack
        assert changed and changed <= trainable
        assert all((".1." in n) for n in trainable)


def test_bitfit_trains_only_biases_and_reloads(tiny_biased_llama_dir, tiny_data_dir, tmp_path):
    before = base_state(tiny_biased_llama_dir)
    run_dir = tmp_path / "run"
    metrics, model, loaded = train(recipe(tiny_biased_llama_dir, tiny_data_dir, "bitfit", run_dir))
    check_trained_and_reload(tiny_biased_llama_dir, run_dir, metrics, model, loaded)
    now = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], now[k])}
    assert changed and all(k.endswith(".bias") for k in changed)
    # 2 layers x (q 32 + k 16 + v 16 + o 32 + gate 64 + up 64 + down 32)
    assert metrics["trainable_params"] == 2 * (32 + 16 + 16 + 32 + 64 + 64 + 32) == 512


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_t5_dir"])
def test_bitfit_refuses_models_without_biases(fixture, request):
    loaded = load_model(str(request.getfixturevalue(fixture)))
    spec = get_method("bitfit")
    with pytest.raises(TunevalError, match="has no bias terms, so BitFit would train nothing"):
        spec.apply(loaded.model, spec.settings(), loaded.arch)


def counts(model_dir, method, **options):
    loaded = load_model(str(model_dir))
    spec = get_method(method)
    settings = build_dataclass(spec.settings, options, "test", f"{method}.")
    return count_parameters(spec.apply(loaded.model, settings, loaded.arch))


def test_counts_equal_hand_computation_on_tiny_llama(tiny_llama_dir, tiny_biased_llama_dir):
    # tiny Llama: vocab V, hidden 32, MLP 64, 2 layers, 4 heads of 8, 2 KV heads (k/v width 16), tied embeddings
    total = counts(tiny_llama_dir, "full")[1]
    v = load_model(str(tiny_llama_dir)).model.config.vocab_size
    layer = 32 * 32 + 32 * 16 + 32 * 16 + 32 * 32 + 3 * 32 * 64 + 2 * 32
    assert total == v * 32 + 2 * layer + 32
    hand = [
        ("prompt_tuning", {"num_virtual_tokens": 7}, 7 * 32),
        ("prefix_tuning", {"num_virtual_tokens": 5}, 5 * 2 * 2 * 16),  # tokens x layers x (k, v) x kv width
        ("lora", {"r": 4}, 2 * 4 * ((32 + 32) + (32 + 16))),  # q_proj, v_proj: r x (in + out)
        ("lora", {"r": 2, "target_modules": ["all-linear"]},
         2 * 2 * ((32 + 32) + 2 * (32 + 16) + (32 + 32) + 2 * (32 + 64) + (64 + 32))),
        ("ia3", {}, 2 * (16 + 16 + 64)),  # k_proj, v_proj outputs; down_proj input
        ("ln_tuning", {}, 2 * 2 * 32 + 32),
        ("freeze", {"trainable_layers": 1}, layer),
        ("freeze", {"trainable_layers": None, "trainable_modules": ["mlp"]}, 2 * 3 * 32 * 64),
        ("freeze", {"trainable_layers": 0, "patterns": ["embed_tokens"]}, v * 32),
        ("adapters", {}, 2 * 2 * (32 * 2 + 2 + 2 * 32 + 32)),  # 2 per layer, bottleneck 32/16 = 2
        ("adapters", {"output_adapter": False, "reduction_factor": 4}, 2 * (32 * 8 + 8 + 8 * 32 + 32)),
    ]
    for method, options, expected in hand:
        trainable, all_params = counts(tiny_llama_dir, method, **options)
        assert trainable == expected, (method, options)
        added = 0 if method == "freeze" else expected
        assert all_params == total + added, (method, options)
    # QLoRA counts like LoRA (PEFT counts a packed 4-bit weight as its unpacked values)
    assert counts(tiny_llama_dir, "qlora", r=4) == counts(tiny_llama_dir, "lora", r=4)


def test_seq2seq_prompts_cover_encoder_and_decoder(tiny_t5_dir):
    assert counts(tiny_t5_dir, "prompt_tuning", num_virtual_tokens=6)[0] == 2 * 6 * 32


def test_qlora_quantizes_linear_layers_to_4bit(tiny_llama_dir):
    import bitsandbytes as bnb

    loaded = load_model(str(tiny_llama_dir))
    spec = get_method("qlora")
    net = spec.apply(loaded.model, spec.settings(), loaded.arch)
    base = net.get_base_model()
    layer = base.model.layers[0]
    assert isinstance(layer.mlp.down_proj, bnb.nn.Linear4bit) and layer.mlp.down_proj.weight.quant_type == "nf4"
    assert isinstance(layer.self_attn.q_proj.base_layer, bnb.nn.Linear4bit)
    assert type(base.lm_head) is torch.nn.Linear  # the (tied) output head stays full precision
    assert layer.mlp.down_proj.weight.numel() == 32 * 64 // 2  # two 4-bit values a byte


def test_params_command(tiny_llama_dir, capsys):
    from tuneval.cli import main

    with pytest.raises(SystemExit) as e:
        main(["params", str(tiny_llama_dir), "--method", "prompt_tuning", "--set", "num_virtual_tokens=7"])
    assert e.value.code == 0
    assert "trainable params: 224 ||" in capsys.readouterr().out


@pytest.mark.parametrize("method,options,needle", [
    ("freeze", {"trainable_layers": 0}, "matches no parameter"),
    ("freeze", {"trainable_modules": ["nonexistent_thing"]}, "'nonexistent_thing' is neither a type"),
    ("freeze", {"layers": [5]}, "out of range"),
    ("adapters", {"attention_modules": ["nope"]}, "no module of this model"),
    ("prompt_tuning", {"prompt_tuning_init": "TEXT"}, "'prompt_tuning_init_text' is needed when prompt_tuning_init is TEXT"),
    ("lora", {"target_modules": ["nope"]}, "lora: cannot apply"),
])
def test_clear_errors(tiny_llama_dir, method, options, needle):
    loaded = load_model(str(tiny_llama_dir))
    spec = get_method(method)
    with pytest.raises(TunevalError, match=needle):
        spec.apply(loaded.model, build_dataclass(spec.settings, options, "test"), loaded.arch)


def test_every_method_is_registered_with_its_family():
    assert set(PEFT_METHODS + OWN_METHODS + ["bitfit", "full"]) <= set(METHODS)
    assert {m.family for m in METHODS.values()} >= {"selective", "reparameterisation", "additive"}


def test_text_initialised_prompt_reloads_without_its_tokenizer(tiny_llama_dir, tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    options = {"num_virtual_tokens": 4, "prompt_tuning_init": "TEXT", "prompt_tuning_init_text": "hello how are you"}
    metrics, model, loaded = train(recipe(tiny_llama_dir, tiny_data_dir, "prompt_tuning", run_dir, options))
    marker = json.loads((run_dir / MARKER).read_text())
    assert marker["method"] == "prompt_tuning" and marker["settings"]["prompt_tuning_init"] == "TEXT"
    check_trained_and_reload(tiny_llama_dir, run_dir, metrics, model, loaded)


@pytest.mark.parametrize("method", ["adapters", "qlora"])
def test_eval_command_reloads_any_method(tiny_llama_dir, tiny_wide_llama_dir, tiny_data_dir, tmp_path, capsys, method):
    from tuneval.cli import main

    if method == "qlora":
        tiny_llama_dir = tiny_wide_llama_dir  # 4-bit CPU kernels need layers >= 64 wide (conftest.py)
    run_dir = tmp_path / "run"
    options = {"use_gradient_checkpointing": False} if method == "qlora" else None
    train(recipe(tiny_llama_dir, tiny_data_dir, method, run_dir, options))
    out = tmp_path / "ev"
    with pytest.raises(SystemExit) as e:
        main(["eval", "--task", "dialogsum", "--model", str(tiny_llama_dir), "--adapter", str(run_dir), "--data-dir", str(tiny_data_dir),
              "--limit", "2", "--max-new-tokens", "4", "--out", str(out)])
    assert e.value.code == 0
    assert json.loads((out / "results.json").read_text())["num_examples"] == 2


def test_qlora_quantized_at_load_trains_and_reloads_the_same(tiny_wide_llama_dir, tiny_data_dir, tmp_path):
    """`qlora.quantize_at_load: true`: from_pretrained quantizes the base through BitsAndBytesConfig
    (packed weights bit-identical to the in-place path); apply() leaves it quantized, and the saved
    adapter reloads over a base loaded the same way, giving the trained model's outputs."""
    from tuneval.config import recipe_from_dict
    from tuneval.methods.loading import load_result
    from tuneval.models import load_model
    from tuneval.models.quantize import quantize_4bit
    from tuneval.train.trainer import train

    spec = get_method("qlora")
    settings = spec.settings(quantize_at_load=True)
    at_load = load_model(str(tiny_wide_llama_dir), precision="fp32", device="cpu",
                         quantization=spec.load_quantization(settings))
    in_place = quantize_4bit(load_model(str(tiny_wide_llama_dir), precision="fp32", device="cpu").model)
    a, b = at_load.model.model.layers[0].self_attn.q_proj, in_place.model.layers[0].self_attn.q_proj
    assert type(a).__name__ == "Linear4bit" and torch.equal(a.weight.data, b.weight.data)
    assert spec.load_quantization(spec.settings(quantize_at_load=False)) is None
    recipe = recipe_from_dict({
        "model": str(tiny_wide_llama_dir), "task": "dialogsum", "method": "qlora", "seed": 3,
        "output_dir": str(tmp_path / "run"), "precision": "fp32",
        "qlora": {"r": 4, "quantize_at_load": True, "use_gradient_checkpointing": False},
        "data": {"data_dir": str(tiny_data_dir), "train_examples": 4, "max_seq_len": 256},
        "train": {"max_steps": 2, "per_device_train_batch_size": 2, "learning_rate": 1e-2},
        "eval": {"after_training": False}})
    _, model, _ = train(recipe)
    _, again = load_result(str(tiny_wide_llama_dir), tmp_path / "run", precision="fp32")
    x = torch.tensor([[5, 9, 12, 30, 7, 8]])
    with torch.no_grad():  # bitsandbytes' CPU inference kernel for from_pretrained-quantized weights is not exact
        # (methods/qlora.py: why at-load is not the CPU default), so close, not equal, here
        diff = (model.eval()(input_ids=x).logits - again.eval()(input_ids=x).logits).abs().max().item()
    assert diff < 5e-3, diff
