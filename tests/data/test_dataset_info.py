"""LLaMA-Factory's dataset_info.json (data/dataset_info.py): entries mapped onto tuneval's formats,
what is not mapped refused in one line, file names kept inside the json's directory, and
`tuneval train --data NAME --dataset-info FILE` training on it."""

import json
from pathlib import Path

import pytest

from tests.evaluate.test_bench_cli import run
from tuneval.data.dataset_info import read_entry, retag_turns
from tuneval.errors import TunevalError

ALPACA = [{"instruction": "Translate to French.", "input": "The meeting is at noon.", "output": "La réunion est à midi."},
          {"instruction": "Say hello.", "input": "", "output": "Hello."},
          {"instruction": "Name a colour.", "input": "", "output": "Blue."}]
# An OpenAI-style file registered as sharegpt with tags, as LLaMA-Factory's data/README.md shows it.
CHATS = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Question {i}?"},
                       {"role": "assistant", "content": f"Answer {i}."}]} for i in range(3)]


def registry(tmp_path: Path, entries: dict) -> Path:
    (tmp_path / "alpaca_en_demo.json").write_text(json.dumps(ALPACA))
    (tmp_path / "chats.json").write_text(json.dumps(CHATS))
    (tmp_path / "c4_demo.jsonl").write_text("".join(json.dumps({"text": f"document {i}"}) + "\n" for i in range(3)))
    (tmp_path / "wiki_demo.txt").write_text("line one\nline two\n")
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps(entries))
    return info


def test_entries_map_onto_tuneval_formats(tmp_path):
    info = registry(tmp_path, {
        "alpaca_en_demo": {"file_name": "alpaca_en_demo.json"},
        "renamed": {"file_name": "alpaca_en_demo.json", "columns": {"prompt": "instruction", "response": "output"}},
        "c4_demo": {"file_name": "c4_demo.jsonl", "columns": {"prompt": "text"}},
        "wiki_demo": {"file_name": "wiki_demo.txt"},
        "glaive": {"file_name": "chats.json", "formatting": "sharegpt", "columns": {"messages": "conversations",
                                                                                   "system": "system"}},
        "oai": {"file_name": "chats.json", "formatting": "openai", "columns": {"messages": "messages"}},
    })
    mapped = {name: (e.format, e.columns, e.sample_by) for name in
              ("alpaca_en_demo", "renamed", "c4_demo", "wiki_demo", "glaive", "oai") for e in [read_entry(info, name)]}
    assert mapped == {
        "alpaca_en_demo": ("alpaca", {"instruction": "instruction", "input": "input", "output": "output"}, None),
        "renamed": ("alpaca", {"instruction": "instruction", "output": "output"}, None),
        "c4_demo": ("text", {"text": "text"}, None),
        "wiki_demo": ("text", None, "line"),  # LLaMA-Factory reads a .txt with datasets' text builder: a line each
        "glaive": ("sharegpt", {"conversations": "conversations", "system": "system"}, None),
        "oai": ("messages", {"messages": "messages"}, None),
    }
    assert read_entry(info, "glaive").path == tmp_path / "chats.json" and read_entry(info, "glaive").turn_tags is None


def test_sharegpt_tags_rename_turn_keys_and_roles(tmp_path):
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
            "system_tag": "system"}
    info = registry(tmp_path, {"chats": {"file_name": "chats.json", "formatting": "sharegpt",
                                         "columns": {"messages": "messages"}, "tags": tags}})
    entry = read_entry(info, "chats")
    assert entry.format == "sharegpt" and entry.columns == {"conversations": "messages"}
    rows = retag_turns([{"messages": [{"role": "user", "content": "hi", "loss_weight": 0},
                                      {"role": "tool", "content": "42"}, {"role": "assistant", "content": "yo"}]}],
                       "messages", entry.turn_tags)
    assert rows == [{"messages": [{"from": "human", "value": "hi", "loss_weight": 0}, {"from": "tool", "value": "42"},
                                  {"from": "gpt", "value": "yo"}]}]


@pytest.mark.parametrize("entry,message", [
    ({"hf_hub_url": "tatsu-lab/alpaca"}, "'hf_hub_url' is not mapped (tuneval reads local files here; for a hub "
                                         "dataset give its id as data.dataset)"),
    ({"file_name": "x.py", "script_url": "x"}, "'script_url' is not mapped (tuneval runs no dataset loading scripts)"),
    ({"file_name": "alpaca_en_demo.json", "ranking": True}, "'ranking' (preference data for reward modelling"),
    ({"file_name": "alpaca_en_demo.json", "columns": {"prompt": "instruction", "chosen": "c", "rejected": "r"}},
     "columns.chosen: preference data are not mapped"),
    ({"file_name": "chats.json", "formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"}},
     "columns.images: images are not mapped"),
    ({"file_name": "alpaca_en_demo.json", "columns": {"prompt": "instruction", "response": "output", "history": "h"}},
     "columns.history: alpaca's history turns"),
    ({"file_name": "alpaca_en_demo.json", "split": "validation"}, "split 'validation' is not mapped"),
    ({"file_name": "alpaca_en_demo.json", "num_samples": 10}, "'num_samples' is not mapped (use data.train_examples"),
    ({"file_name": "alpaca_en_demo.json", "formatting": "dolly"}, "formatting 'dolly' is not one of alpaca, sharegpt"),
    ({"file_name": "alpaca_en_demo.json", "colums": {}}, "unknown key 'colums'"),
    ({"formatting": "alpaca"}, "file_name is missing"),
    ({"file_name": "missing.json"}, "file_name 'missing.json' not found in"),
])
def test_what_is_not_mapped_is_one_line(tmp_path, entry, message):
    info = registry(tmp_path, {"mine": entry})
    with pytest.raises(TunevalError) as e:
        read_entry(info, "mine")
    assert str(e.value).startswith(f"{info}: dataset 'mine': ") and message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["/etc/passwd", "~/.ssh/id_rsa", "../outside.json", "sub/../../outside.json"])
def test_file_names_stay_inside_the_json_directory(tmp_path, name):
    """A stranger's registry names files beside it only."""
    (tmp_path / "outside.json").write_text(json.dumps(ALPACA))
    folder = tmp_path / "registry"
    folder.mkdir()
    info = registry(folder, {"evil": {"file_name": name}})
    with pytest.raises(TunevalError, match=rf"file_name '{name}' is outside the directory of the dataset_info file"):
        read_entry(info, "evil")


def test_unknown_dataset_names_the_known_ones(tmp_path):
    info = registry(tmp_path, {"alpaca_en_demo": {"file_name": "alpaca_en_demo.json"}})
    with pytest.raises(TunevalError, match=rf"^{info}: no dataset named 'alpaca' \(datasets: alpaca_en_demo\)$"):
        read_entry(info, "alpaca")


TRAIN = ["--set", "train.max_steps=2", "--set", "train.per_device_train_batch_size=2", "--set", "eval.max_new_tokens=3",
         "--set", "data.max_seq_len=256", "--set", "method=lora", "--validation-share", "0.34"]


@pytest.mark.parametrize("name,fmt,columns", [
    ("alpaca_en_demo", "alpaca", {"instruction": "instruction", "output": "output", "input": "input"}),
    ("chats", "sharegpt", {"conversations": "messages"}),
])
def test_train_on_a_registered_dataset(tiny_llama_dir, tmp_path, capsys, name, fmt, columns):
    """`tuneval train --data NAME --dataset-info dataset_info.json`: the entry's file, format, columns and tags."""
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
            "system_tag": "system"}
    (tmp_path / "data").mkdir()
    info = registry(tmp_path / "data", {
        "alpaca_en_demo": {"file_name": "alpaca_en_demo.json"},
        "chats": {"file_name": "chats.json", "formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": tags}})
    out = tmp_path / "run"
    code, _, err = run(["train", "--data", name, "--dataset-info", str(info), "--set", f"model={tiny_llama_dir}",
                        "--set", f"output_dir={out}", *TRAIN], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    data = metrics["data"]["data"]
    assert metrics["data"]["task"] == name and data["dataset_info"] == f"{info.resolve()}: {name}"
    assert data["format"] == fmt and data["format_given"] == fmt and data["columns"] == columns
    assert data["source"] == str(tmp_path / "data" / ("alpaca_en_demo.json" if fmt == "alpaca" else "chats.json"))
    assert data["rows"] == 3 and data["kept"] == 2 and metrics["eval"]["examples"] == 1
    prompt = json.loads((out / "eval" / "results.json").read_text())["examples"][0]["prompt"]
    if fmt == "sharegpt":  # the system turn came through the tags as the system role
        assert prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQuestion")
    code, _, err = run(["train", "--data", name, "--dataset-info", str(info), "--format", "alpaca",
                        "--set", f"model={tiny_llama_dir}", "--set", f"output_dir={tmp_path / 'run2'}", *TRAIN], capsys)
    assert code == 2 and "the dataset_info.json entry says the format and columns" in err
