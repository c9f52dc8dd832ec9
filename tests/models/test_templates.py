"""Chat templates by name or .jinja file (models/templates.py): rendered as their models render them,
refused in one line when unknown or broken, set before training, saved with the run, and used by
everything that reads the run afterwards (eval, chat, serve, export)."""

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tests.evaluate.test_bench_cli import run
from tuneval.errors import TunevalError
from tuneval.models.templates import CHAT_TEMPLATES, resolve

EXAMPLES = Path(__file__).parents[1] / "data" / "examples"
TRAIN = ["--set", "train.max_steps=2", "--set", "train.per_device_train_batch_size=2", "--set", "eval.max_new_tokens=3",
         "--set", "data.max_seq_len=256", "--set", "method=lora", "--validation-share", "0.34"]

# The conversation llama.cpp's tests/test-chat-template.cpp and mistral.rs's template tests render, and what
# transformers renders for each model's own template (bos <s>, eos </s>; gemma's <bos> written as <s> here).
CONVERSATION = [("system", "You are a helpful assistant"), ("user", "Hello"), ("assistant", "Hi there"),
                ("user", "Who are you"), ("assistant", "   I am an assistant   "), ("user", "Another question")]
EXPECTED = {
    "chatml": (True, "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                     "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
                     "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question"
                     "<|im_end|>\n<|im_start|>assistant\n"),
    "mistral": (False, "<s>[INST] Hello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an assistant   </s>"
                       "[INST] Another question [/INST]"),
    "llama2": (True, "<s>[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s><s>[INST] "
                     "Who are you [/INST] I am an assistant </s><s>[INST] Another question [/INST]"),
    "gemma": (False, "<s><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n"
                     "<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an assistant<end_of_turn>\n"
                     "<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n"),
    "llama3": (True, "<s><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
                     "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant"
                     "<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you"
                     "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
                     "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|><|start_header_id|>"
                     "assistant<|end_header_id|>\n\n"),
    "zephyr": (True, "<|system|>\nYou are a helpful assistant</s>\n<|user|>\nHello</s>\n<|assistant|>\nHi there</s>\n"
                     "<|user|>\nWho are you</s>\n<|assistant|>\n   I am an assistant   </s>\n<|user|>\nAnother question</s>\n"
                     "<|assistant|>\n"),
}
EXPECTED["qwen2.5"] = EXPECTED["chatml"]  # without tools Qwen2.5 writes ChatML (its default system prompt aside)


def test_every_named_template_has_its_expected_rendering():
    assert set(EXPECTED) == set(CHAT_TEMPLATES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_named_templates_render_as_their_models_do(tiny_t5_dir, name):
    tok = AutoTokenizer.from_pretrained(tiny_t5_dir)  # bos <s>, eos </s>, no template of its own
    assert (tok.bos_token, tok.eos_token) == ("<s>", "</s>")
    with_system, expected = EXPECTED[name]
    messages = [{"role": r, "content": c} for r, c in CONVERSATION[0 if with_system else 1:]]
    text = tok.apply_chat_template(messages, chat_template=resolve(name), tokenize=False, add_generation_prompt=True)
    assert text == expected


def test_unknown_names_and_broken_files_are_one_line(tmp_path):
    with pytest.raises(TunevalError, match=r"^data.chat_template: unknown chat template 'vicuna' \(known: chatml, llama3, "
                                           r"llama2, mistral, zephyr, gemma, qwen2\.5; or a path to a .jinja file; or true/false\)$"):
        resolve("vicuna")
    with pytest.raises(TunevalError, match=r"unknown chat template 'recipe.yaml'"):  # never compiled as a template
        resolve("recipe.yaml")
    missing = tmp_path / "nope.jinja"
    with pytest.raises(TunevalError, match=rf"^{missing}: cannot read the chat template \(No such file or directory\)$"):
        resolve(str(missing))
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for m in messages %}\n{{ m['content'] }\n{% endfor %}")
    with pytest.raises(TunevalError, match=rf"^{broken}:2: not a valid Jinja chat template \(.+\)$"):
        resolve(str(broken))
    from tuneval.config import recipe_from_dict

    with pytest.raises(TunevalError, match=r"^recipe: 'data.chat_template' unknown chat template 'vicuna'"):
        recipe_from_dict({"data": {"chat_template": "vicuna"}})
    assert recipe_from_dict({"data": {"chat_template": "false"}}).data.chat_template is False
    assert recipe_from_dict({"data": {"chat_template": "llama3"}}).data.chat_template == "llama3"


def test_a_template_file_is_rendered_only_in_the_sandbox(tiny_llama_dir, tmp_path):
    """A stranger's .jinja reaching for Python internals fails when rendered, in transformers' sandbox."""
    evil = tmp_path / "evil.jinja"
    evil.write_text("{{ messages.__class__.__mro__[1].__subclasses__() }}")
    text = resolve(str(evil))  # compiles: nothing runs at compile time
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError):
        tok.apply_chat_template([{"role": "user", "content": "hi"}], chat_template=text, tokenize=False)


OWN = ("{% for m in messages %}[{{ m['role'] | upper }}]\n{{ m['content'] }}{% if m['role'] == 'assistant' %}"
       "{{ eos_token }}{% endif %}\n{% endfor %}{% if add_generation_prompt %}[ASSISTANT]\n{% endif %}")


@pytest.mark.parametrize("given", ["llama3", "file"])
def test_a_named_template_trains_is_saved_with_the_run_and_used_after(tiny_llama_dir, tmp_path, capsys, given):
    """`--chat-template NAME|FILE` on a base that has a (ChatML) template of its own: training renders with it,
    the run saves it beside the adapter (chat_template.jinja), and eval, chat, serve and export all use it;
    `tuneval eval --chat-template NAME` still picks another one."""
    if given == "file":
        (tmp_path / "own.jinja").write_text(OWN)
    template = OWN if given == "file" else CHAT_TEMPLATES["llama3"].text
    marker = "[USER]\n" if given == "file" else "<|start_header_id|>user<|end_header_id|>"
    out = tmp_path / "run"
    code, _, err = run(["train", "--data", str(EXAMPLES / "messages.jsonl"), "--set", f"model={tiny_llama_dir}",
                        "--set", f"output_dir={out}", "--chat-template",
                        str(tmp_path / "own.jinja") if given == "file" else given, *TRAIN], capsys)
    assert code == 0, err
    assert (out / "chat_template.jinja").read_text() == template and (out / "tokenizer_config.json").is_file()
    trained = json.loads((out / "eval" / "results.json").read_text())["examples"][0]["prompt"]
    assert marker in trained and "<|im_start|>" not in trained  # evaluated after training with the run's template

    from tuneval.methods.loading import load_result

    loaded, _ = load_result(str(tiny_llama_dir), out)  # what `tuneval chat --adapter RUN` and eval load
    assert loaded.tokenizer.chat_template == template
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--adapter", str(out), "--data",
                        str(EXAMPLES / "messages.jsonl"), "--max-new-tokens", "2", "--out", str(tmp_path / "ev"),
                        "--bootstrap-iters", "10"], capsys)
    assert code == 0, err
    assert marker in json.loads((tmp_path / "ev" / "results.json").read_text())["examples"][0]["prompt"]
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--adapter", str(out), "--data",
                        str(EXAMPLES / "messages.jsonl"), "--max-new-tokens", "2", "--out", str(tmp_path / "ev2"),
                        "--bootstrap-iters", "10", "--chat-template", "zephyr"], capsys)
    assert code == 0, err
    assert "<|user|>\n" in json.loads((tmp_path / "ev2" / "results.json").read_text())["examples"][0]["prompt"]

    from tuneval.models import load_model
    from tuneval.serve.api import render_chat
    from tuneval.serve.bank import AdapterBank
    from tuneval.serve.schemas import ChatRequest

    bank = AdapterBank(load_model(str(tiny_llama_dir)), base_name="tiny")
    assert bank.load("mine", out).chat_template == template
    ask = {"messages": [{"role": "user", "content": "hello"}]}
    assert marker in bank.tokenizer.decode(render_chat(bank, ChatRequest(model="mine", **ask)))
    assert "<|im_start|>user" in bank.tokenizer.decode(render_chat(bank, ChatRequest(model="tiny", **ask)))

    from tuneval.serve.export import export_run

    export_run(out, tmp_path / "export")  # merged weights + tokenizer: what llama.cpp's GGUF converter reads
    assert (tmp_path / "export" / "chat_template.jinja").read_text() == template
    assert AutoTokenizer.from_pretrained(tmp_path / "export").chat_template == template


def test_bad_template_flags_fail_before_anything_loads(tiny_llama_dir, tmp_path, capsys):
    base = ["train", "--data", str(EXAMPLES / "messages.jsonl"), "--set", f"model={tiny_llama_dir}",
            "--set", f"output_dir={tmp_path / 'run'}", *TRAIN]
    code, _, err = run(base + ["--chat-template", "vicuna"], capsys)
    assert code == 2 and "unknown chat template 'vicuna' (known: chatml, llama3" in err and not (tmp_path / "run").exists()
    code, _, err = run(base + ["--chat-template", "llama3", "--no-chat-template"], capsys)
    assert code == 2 and "not both" in err
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--data", str(EXAMPLES / "messages.jsonl"),
                        "--chat-template", str(tmp_path / "missing.jinja"), "--out", str(tmp_path / "ev")], capsys)
    assert code == 2 and f"{tmp_path / 'missing.jinja'}: cannot read the chat template" in err


def test_the_old_bare_chat_template_flag_still_parses():
    """`--chat-template` alone was the boolean's on-form (the default); it is dropped before parsing, a value kept."""
    from tuneval.cli_options import bare_flags, chat_template_from

    assert bare_flags(["eval", "--chat-template", "--model", "m"]) == ["eval", "--model", "m"]
    assert bare_flags(["eval", "--model", "m", "--chat-template"]) == ["eval", "--model", "m"]
    assert bare_flags(["eval", "--chat-template", "llama3"]) == ["eval", "--chat-template", "llama3"]
    assert [chat_template_from(None, False), chat_template_from(None, True), chat_template_from("false", False),
            chat_template_from("chatml", False), chat_template_from(None, False, default=None)] == [True, False, False,
                                                                                                  "chatml", None]


def test_qwen25_writes_tools_calls_and_results(tiny_t5_dir):
    """The named template for tool-calling data: the tools in the system turn, the call as <tool_call> JSON."""
    tok = AutoTokenizer.from_pretrained(tiny_t5_dir)
    tool = {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    messages = [{"role": "user", "content": "Weather in Oslo?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
                {"role": "tool", "content": "{\"temp\": -3}"}, {"role": "assistant", "content": "It is -3 C."}]
    text = tok.apply_chat_template(messages, tools=[tool], chat_template=resolve("qwen2.5"), tokenize=False)
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in text
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>' in text
    assert "<tool_response>\n{\"temp\": -3}\n</tool_response>" in text and text.endswith("It is -3 C.<|im_end|>\n")
