"""Chat templates by name or file: `data.chat_template: llama3`, `--chat-template path/to/template.jinja`.

A named template is the `chat_template` a model family ships in its tokenizer_config.json, copied
as it is there (the source of each is named below), so a base model with no template of its own,
or one whose template a user wants to change, can be trained and used in a known format. A file
is a Jinja template of the user's (or a stranger's): it is only ever compiled and rendered by
transformers' `apply_chat_template`, which runs it in jinja2's ImmutableSandboxedEnvironment, and
is checked here by compiling it the same way (nothing runs at compile time).

Where it goes: set on the tokenizer before training (`tokenizer.chat_template = text`), it is
saved with the tokenizer in the run (transformers writes chat_template.jinja), and every later
reader of the run (eval, chat, serve, merge, export) takes the run's saved template over the base
model's (`use_saved_template`), so all of them render conversations as training did.

A named template writes its turn markers as text: a marker that is not a token of the model's
vocabulary is tokenized as ordinary text (that trains, but costs a few tokens per turn), and
generation stops at the tokenizer's EOS, so pick a template whose end-of-turn marker is the
tokenizer's EOS (zephyr, llama2 and mistral end turns with `eos_token` itself).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneval.errors import TunevalError, first_line
from tuneval.runs import CHAT_TEMPLATE_FILE, TOKENIZER_CONFIG


@dataclass(frozen=True)
class NamedTemplate:
    text: str
    source: str  # where the text comes from: the model repository whose tokenizer_config.json ships it


# ChatML as OpenHermes 2.5 ships it (Qwen2/2.5 and SmolLM2-Instruct write the same turns, plus a default system prompt).
_CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
           "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
_LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
           "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
           "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
           "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
_LLAMA2 = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
           "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
           "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
           "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
           "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
           "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}"
           "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
           "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
_MISTRAL = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
            "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
            "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
            "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
            "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")
_ZEPHYR = ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
           "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
           "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
           "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")
_GEMMA = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
          "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
          "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
          "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
          "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}")

# Qwen2.5-Instruct's template, byte for byte (as llama.cpp keeps it in models/templates/): ChatML turns that can
# also write tools (`<tools>` in the system turn), the assistant's calls (`<tool_call>{json}</tool_call>`) and
# tool results; so a model with ChatML tokens (SmolLM2, Qwen) can train on tool-calling data.
_QWEN25 = (Path(__file__).parent / "chat_templates" / "qwen2.5.jinja").read_text(encoding="utf-8")

CHAT_TEMPLATES: dict[str, NamedTemplate] = {
    "chatml": NamedTemplate(_CHATML, "teknium/OpenHermes-2.5-Mistral-7B"),
    "llama3": NamedTemplate(_LLAMA3, "meta-llama/Meta-Llama-3-8B-Instruct"),
    "llama2": NamedTemplate(_LLAMA2, "meta-llama/Llama-2-7b-chat-hf"),
    "mistral": NamedTemplate(_MISTRAL, "mistralai/Mistral-7B-Instruct-v0.2 (and Mixtral-8x7B-Instruct-v0.1)"),
    "zephyr": NamedTemplate(_ZEPHYR, "HuggingFaceH4/zephyr-7b-beta"),
    "gemma": NamedTemplate(_GEMMA, "google/gemma-7b-it"),
    "qwen2.5": NamedTemplate(_QWEN25, "Qwen/Qwen2.5-7B-Instruct (tools and tool calls)"),
}


def describe() -> str:
    """The known names, for messages and help: 'chatml, llama3, ...'."""
    return ", ".join(CHAT_TEMPLATES)


def is_path(value: str) -> bool:
    """A value names a file (not a template name) by its .jinja suffix: a recipe or data file given by
    mistake is then an unknown name, never compiled as a template."""
    return value.lower().endswith(".jinja")


def check_template(text: str, where: str) -> str:
    """`text` compiled as transformers compiles a chat template (sandboxed; nothing runs): one line naming
    `where` (and the line) if it is not valid Jinja."""
    import jinja2
    from transformers.utils.chat_template_utils import _compile_jinja_template

    if not text.strip():
        raise TunevalError(f"{where}: the chat template is empty")
    try:
        _compile_jinja_template(text)
    except jinja2.TemplateSyntaxError as e:
        raise TunevalError(f"{where}:{e.lineno}: not a valid Jinja chat template ({e.message})") from None
    except ImportError as e:  # jinja2 too old for transformers' sandbox
        raise TunevalError(f"{where}: cannot compile chat templates here ({first_line(e)})") from None
    return text


def resolve(value: bool | str | None, where: str = "data.chat_template") -> str | None:
    """The template text `value` names (None for true/false/None: the model's own, or none); one line
    listing the known names for an unknown one, or naming the file that cannot be read or compiled."""
    if value is None or isinstance(value, bool):
        return None
    value = str(value).strip()
    if value in CHAT_TEMPLATES:
        return CHAT_TEMPLATES[value].text
    if not is_path(value):
        raise TunevalError(f"{where}: unknown chat template '{value}' (known: {describe()}; or a path to a .jinja "
                           "file; or true/false)")
    path = Path(value).expanduser()
    try:
        from tuneval.io import read_text

        text = read_text(path)
    except OSError as e:
        raise TunevalError(f"{path}: cannot read the chat template ({e.strerror or first_line(e)})") from None
    return check_template(text, str(path))


def apply(tokenizer, value: bool | str | None, where: str = "data.chat_template") -> str | None:
    """Set the template `value` names on `tokenizer` (rendered only by its apply_chat_template); returns
    the text set, or None when `value` keeps the tokenizer's own."""
    text = resolve(value, where)
    if text is not None:
        tokenizer.chat_template = text
    return text


def saved_template(directory: str | Path) -> str | None:
    """The chat template saved with a tokenizer in `directory` (a run, an adapter, an export), or None:
    chat_template.jinja, as transformers 5 writes it, else tokenizer_config.json's `chat_template`."""
    directory = Path(directory)
    jinja = directory / CHAT_TEMPLATE_FILE
    if jinja.is_file():
        from tuneval.io import read_text

        return check_template(read_text(jinja), str(jinja))
    config = directory / TOKENIZER_CONFIG
    if not config.is_file():
        return None
    try:
        saved: Any = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return check_template(saved, str(config)) if isinstance(saved, str) and saved.strip() else None


def use_saved_template(tokenizer, directory: str | Path | None) -> str | None:
    """Put the template saved in `directory` (a trained run) on `tokenizer` (its base's), so the run is
    used with the template it trained with; returns it, or None where the run saved none."""
    if directory is None:
        return None
    text = saved_template(directory)
    if text is not None:
        tokenizer.chat_template = text
    return text
