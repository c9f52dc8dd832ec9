"""Small classification and instruction files laid out like ../shared/data, for mixture tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.conftest import WORDS


def _sentence(rng: random.Random, n: int = 6) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_task_data(root: Path, sizes: dict[str, int] | None = None) -> Path:
    """sst2 (train.txt + dev.tsv), trec (train.txt), rte (jsonl) and self_instruct under `root`."""
    sizes = {"sst2": 40, "trec": 24, "rte": 12, "self_instruct": 110, **(sizes or {})}
    rng = random.Random(3)
    (root / "glue" / "sst2").mkdir(parents=True, exist_ok=True)
    with open(root / "glue" / "sst2" / "train.txt", "w") as f:
        for _ in range(sizes["sst2"]):
            f.write(f"{rng.randint(0, 1)} {_sentence(rng)}\n")
    with open(root / "glue" / "sst2" / "dev.tsv", "w") as f:
        f.write("sentence\tlabel\n" + "".join(f"{_sentence(rng)} \t{rng.randint(0, 1)}\n" for _ in range(6)))
    (root / "trec").mkdir(parents=True, exist_ok=True)
    with open(root / "trec" / "train.txt", "w") as f:
        for _ in range(sizes["trec"]):
            coarse = rng.choice(["DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"])
            f.write(f"{coarse}:other {_sentence(rng)} ?\n")
    (root / "superglue" / "rte").mkdir(parents=True, exist_ok=True)
    with open(root / "superglue" / "rte" / "train.jsonl", "w") as f:
        for i in range(sizes["rte"]):
            f.write(json.dumps({"premise": _sentence(rng, 10), "hypothesis": _sentence(rng),
                                "label": rng.choice(["entailment", "not_entailment"]), "idx": i}) + "\n")
    (root / "self_instruct").mkdir(parents=True, exist_ok=True)
    with open(root / "self_instruct" / "user_oriented_instructions.jsonl", "w") as f:
        for i in range(sizes["self_instruct"]):
            f.write(json.dumps({"id": f"task_{i}", "instruction": _sentence(rng),
                                "instances": [{"input": _sentence(rng) if i % 3 else "", "output": _sentence(rng, 4)}]}) + "\n")
    return root


# A Hermes/Qwen2.5-style chat template that writes tools and tool calls, for the tiny Llama (whose
# own ChatML template, tests/conftest.py, ignores both): the tools as JSON in the system turn, each
# call as `<tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>`, a tool's result as a `tool` turn.
TOOL_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}\n\n"
    "{% endif %}# Tools\n<tools>\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}</tools><|im_end|>\n"
    "{% elif messages[0]['role'] == 'system' %}<|im_start|>system\n{{ messages[0]['content'] }}<|im_end|>\n{% endif %}"
    "{%- for m in messages %}{% if m['role'] != 'system' %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "{%- for c in m.get('tool_calls') or [] %}<tool_call>\n"
    "{{ {'name': c['function']['name'], 'arguments': c['function']['arguments']} | tojson }}\n</tool_call>"
    "{%- endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tool_model_dir(model_dir: Path, dest: Path) -> Path:
    """A copy of a tiny model whose tokenizer carries TOOL_TEMPLATE."""
    import shutil

    from transformers import AutoTokenizer

    shutil.copytree(model_dir, dest)
    tok = AutoTokenizer.from_pretrained(dest)
    tok.chat_template = TOOL_TEMPLATE
    tok.save_pretrained(dest)
    return dest
