"""Users' dataset formats: the shipped examples normalise to chat/text records, bad rows are named
file:line:field, parquet/json/directories read, the validation split is seeded, and conversations
are labelled on exactly their assistant turns."""

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tuneval.data.collate import IGNORE_INDEX, PromptFormatter
from tuneval.data.formats import FORMATS, detect_format, generation_pair, split_validation, to_records
from tuneval.data.sources import read_path
from tuneval.errors import TunevalError

EXAMPLES = Path(__file__).parent / "examples"


def records(name, format=None, **kw):
    return [{k: v for k, v in r.items() if k != "_where"} for r in to_records(read_path(EXAMPLES / name), format, **kw)]


def chat(*turns):
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


def test_alpaca():
    got = to_records(read_path(EXAMPLES / "alpaca.jsonl"), "alpaca")
    assert [r["_where"] for r in got] == [f"{EXAMPLES / 'alpaca.jsonl'}:{i}" for i in (1, 2, 3)]
    assert records("alpaca.jsonl", "alpaca") == [
        chat(("user", "Give three tips for staying healthy."),
             ("assistant", "Eat vegetables, sleep eight hours and walk every day.")),
        chat(("user", "Translate the sentence to French.\n\nThe meeting is at noon."),
             ("assistant", "La réunion est à midi.")),
        chat(("system", "You are a concise assistant."),
             ("user", "Summarize the dialogue in one sentence.\n\n#Person1#: Can we move it to Monday?\n#Person2#: Sure."),
             ("assistant", "They move the meeting to Monday.")),
    ]


def test_messages_are_kept_as_they_are():
    rows = read_path(EXAMPLES / "messages.jsonl")
    assert records("messages.jsonl", "messages") == [{"messages": r["messages"]} for r in rows]
    assert [m["role"] for m in rows[1]["messages"]] == ["system", "user", "assistant", "user", "assistant"]


def test_sharegpt_json_array_keeps_line_numbers():
    path = EXAMPLES / "sharegpt.json"
    assert [r["_where"] for r in to_records(read_path(path), "sharegpt")] == [f"{path}:{n}" for n in (2, 8, 13)]
    assert records("sharegpt.json", "sharegpt") == [
        chat(("user", "Hello, how are you?"), ("assistant", "Fine, thanks. How can I help?"),
             ("user", "Please call Tom later."), ("assistant", "I will call Tom this afternoon.")),
        chat(("system", "You are a travel agent."), ("user", "Where should I go in May?"),
             ("assistant", "Lisbon: warm, sunny and not yet crowded.")),
        chat(("user", "Name a prime number."), ("assistant", "7")),
    ]


def test_prompt_completion_plain_and_conversational():
    assert records("prompt_completion.jsonl", "prompt_completion") == [
        {**chat(("user", "The sky is"), ("assistant", " blue.")), "prompt_turns": 1},
        {**chat(("user", "What color is the sky?"), ("assistant", "It is blue.")), "prompt_turns": 1},
        {**chat(("system", "Answer with one word."), ("user", "What color is grass?"), ("assistant", "Green.")),
         "prompt_turns": 2},
    ]


def test_text_and_column_mapping():
    assert records("text.jsonl", "text")[1] == {"text": "It is cold outside, so Tom will call later instead of walking over."}
    assert records("columns.csv", columns={"prompt": "question", "response": "answer"}) == [
        chat(("user", "What is 2 + 2?"), ("assistant", "4")),
        chat(("user", "Which city is the capital of Italy?"), ("assistant", "Rome")),
        chat(("user", "Name a color of the sky, please."), ("assistant", "Blue, on a clear day.")),
    ]
    # columns rename any format's fields too
    renamed = [{"q": "Hi", "a": 1, "_where": "x:1"}]
    assert to_records(renamed, "alpaca", columns={"instruction": "q", "output": "a"})[0]["messages"][1] == {
        "role": "assistant", "content": "1"}


@pytest.mark.parametrize("name,format", [("alpaca.jsonl", "alpaca"), ("messages.jsonl", "messages"),
                                         ("sharegpt.json", "sharegpt"), ("prompt_completion.jsonl", "prompt_completion"),
                                         ("text.jsonl", "text")])
def test_format_is_detected_when_not_named(name, format):
    assert all(detect_format(r) == format for r in read_path(EXAMPLES / name))
    assert records(name) == records(name, format)


BAD = [
    ("alpaca", {"instruction": "x"}, "field 'output' is missing; the row's fields are instruction (map them with columns: {...})"),
    ("alpaca", {"instruction": "x", "output": "  "}, "field 'output' is empty"),
    ("alpaca", {"instruction": ["x"], "output": "y"}, "field 'instruction' must be a string, got a list"),
    ("alpaca", {"instruction": "x", "input": 3.5, "output": None}, "field 'output' is empty"),
    ("alpaca", {"messages": [{"role": "user", "content": "x"}]}, "field 'instruction' is missing; the row looks like format 'messages'"),
    ("messages", {"messages": "hi"}, "field 'messages' must be a list of turns, got a string"),
    ("messages", {"messages": []}, "field 'messages' is empty"),
    ("messages", {"messages": ["hi"]}, "field 'messages[0]' must be an object with 'role' and 'content', got a string"),
    ("messages", {"messages": [{"role": "bot", "content": "x"}]}, "field 'messages[0].role' is 'bot', not one of system, user, assistant, tool"),
    ("messages", {"messages": [{"content": "x"}]}, "field 'messages[0].role' is missing"),
    ("messages", {"messages": [{"role": "user"}]}, "field 'messages[0].content' is missing"),
    ("messages", {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}]},
     "field 'messages[1].content' is empty"),
    ("messages", {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": [{"type": "text"}]}]},
     "field 'messages[1].content[0].text' is missing"),
    ("messages", {"messages": [{"role": "user", "content": "x"}]}, "field 'messages' has no assistant turn"),
    ("messages", {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"},
                               {"role": "user", "content": "z"}]}, "field 'messages' ends with a user turn, not an assistant turn"),
    ("messages", {"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "s"},
                               {"role": "assistant", "content": "y"}]}, "field 'messages[1].role' is 'system', which may only be the first turn"),
    ("sharegpt", {"conversations": [{"from": "human", "value": "x"}, {"from": "bing", "value": "y"}]},
     "field 'conversations[1].from' is 'bing', not one of human, user, gpt, assistant, system, function_call, "
     "observation"),
    ("sharegpt", {"conversations": [{"from": "human", "value": "x"}, {"from": "gpt"}]}, "field 'conversations[1].value' is missing"),
    ("prompt_completion", {"prompt": "x", "completion": [{"role": "assistant", "content": "y"}]},
     "field 'prompt' must be a list of turns like 'completion' (both plain strings or both conversational), got a string"),
    ("prompt_completion", {"prompt": [{"role": "user", "content": "x"}], "completion": [{"role": "user", "content": "y"}]},
     "field 'completion[0].role' is 'user', not one of assistant, tool"),
    ("text", {"text": ""}, "field 'text' is empty"),
    ("text", {"body": "x"}, "field 'text' is missing; the row's fields are body (map them with columns: {...})"),
]


@pytest.mark.parametrize("format,row,message", BAD)
def test_bad_row_is_one_line_with_file_line_and_field(tmp_path, format, row, message):
    good = {"alpaca": {"instruction": "a", "output": "b"}, "text": {"text": "t"},
            "prompt_completion": {"prompt": "p", "completion": "c"}}.get(format, {
                "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
    if format == "sharegpt":
        good = {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(TunevalError) as e:
        to_records(read_path(path), format)
    assert str(e.value) == f"{path}:2: {message}"


def test_recipe_level_errors():
    rows = [{"question": "q", "answer": "a", "_where": "d.csv:2"}]
    with pytest.raises(TunevalError, match=r"^data: unknown data format 'chatml' \(known: alpaca, messages, sharegpt, "):
        to_records(rows, "chatml")
    with pytest.raises(TunevalError, match=r"^data: format 'columns' needs columns: \{prompt: <column>"):
        to_records(rows, "columns")
    with pytest.raises(TunevalError, match=r"^data: cannot tell the data format from the first row's fields \(question, answer\)"):
        to_records(rows)
    with pytest.raises(TunevalError, match=r"^my.csv: columns.question: 'question' is not a field of format 'columns' "
                                           r"\(fields: prompt, response, system\)"):
        to_records(rows, columns={"question": "prompt"}, where_hint="my.csv")
    with pytest.raises(TunevalError, match=r"^d.csv:2: field 'answer' is missing"):
        to_records([{"question": "q", "_where": "d.csv:2"}], columns={"prompt": "question", "response": "answer"})
    with pytest.raises(TunevalError, match=r"^hub:x row 0: field 'text' is empty"):
        to_records([{"text": None}], "text", where_hint="hub:x")
    with pytest.raises(TunevalError, match=r"^data: no rows"):
        to_records([], "text")
    assert set(FORMATS) == {"alpaca", "messages", "sharegpt", "prompt_completion", "text", "columns"}


def test_generation_pair():
    record = to_records(read_path(EXAMPLES / "messages.jsonl"), "messages")[1]
    prompt, reference = generation_pair(record)
    assert reference == "Sure, it is now Monday at 8 pm." and prompt == record["messages"][:-1]
    with pytest.raises(TunevalError, match="a text record has no reference"):
        generation_pair({"text": "x", "_where": "t.jsonl:1"})


def test_parquet_file_and_directory(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{k: v for k, v in r.items() if k != "_where"} for r in read_path(EXAMPLES / "alpaca.jsonl")]
    for r in rows:
        r.setdefault("system", None)
    (tmp_path / "shards").mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:2]), tmp_path / "shards" / "train-00000.parquet")
    pq.write_table(pa.Table.from_pylist(rows[2:]), tmp_path / "shards" / "train-00001.parquet")
    (tmp_path / "shards" / "README.md").write_text("not data")
    (tmp_path / "shards" / ".partial.parquet").write_bytes(b"junk")
    got = read_path(tmp_path / "shards")
    assert [r["_where"] for r in got] == [f"{tmp_path / 'shards' / 'train-00000.parquet'} row 0",
                                          f"{tmp_path / 'shards' / 'train-00000.parquet'} row 1",
                                          f"{tmp_path / 'shards' / 'train-00001.parquet'} row 0"]
    assert records("alpaca.jsonl", "alpaca") == [{"messages": r["messages"]} for r in to_records(got, "alpaca")]
    # nested columns: a messages list of role/content structs
    msgs = [{"messages": r["messages"]} for r in read_path(EXAMPLES / "messages.jsonl")]
    pq.write_table(pa.Table.from_pylist(msgs), tmp_path / "chat.parquet")
    assert [r["messages"] for r in to_records(read_path(tmp_path / "chat.parquet"), "messages")] == [
        m["messages"] for m in msgs]
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(TunevalError, match=r"bad.parquet: not a readable parquet file \("):
        read_path(tmp_path / "bad.parquet")


def test_directory_errors(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "a"}\n')
    (tmp_path / "b.jsonl").write_text('{"text": "b"}\n{"text": "c"}\n')
    assert [(r["text"], r["_where"]) for r in read_path(tmp_path)] == [
        ("a", f"{tmp_path / 'a.jsonl'}:1"), ("b", f"{tmp_path / 'b.jsonl'}:1"), ("c", f"{tmp_path / 'b.jsonl'}:2")]
    (tmp_path / "c.csv").write_text("text\nd\n")
    with pytest.raises(TunevalError, match=rf"^{tmp_path}: the directory mixes file types \(.csv, .jsonl\)"):
        read_path(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TunevalError, match=r"empty: no data files in this directory \(looked for .jsonl, .json, .csv"):
        read_path(tmp_path / "empty")
    with pytest.raises(TunevalError, match=r"missing.jsonl: data file not found"):
        read_path(tmp_path / "missing.jsonl")


@pytest.mark.parametrize("text,expected", [
    ('[\n  {"a": 1},\n\n  {"a": 2}\n]\n', [(1, ":2"), (2, ":4")]),           # an array: the line each object starts on
    ('{"a": 1}\n{"a": 2}\n', [(1, ":1"), (2, ":2")]),                         # JSON lines under .json
    ('{"a": [1, 2], "b": ["x", "y"]}', [(1, " row 0"), (2, " row 1")]),       # an object of columns
])
def test_json_shapes(tmp_path, text, expected):
    path = tmp_path / "d.json"
    path.write_text(text)
    assert [(r["a"], r["_where"]) for r in read_path(path)] == [(a, f"{path}{w}") for a, w in expected]


@pytest.mark.parametrize("text,message", [
    ('[\n {"a": 1},\n {"a": 2,}\n]', r"d.json:3: not valid JSON \(Expecting property name enclosed in double quotes"),
    ('[\n {"a": 1},\n 7\n]', r"d.json:3: expected a JSON object, got int"),
    ('[{"a": 1}] extra', r"d.json:1: not valid JSON \(Extra data at column 12\)"),
    ('{\n "a": 1,\n "b": [1]\n}', r"d.json: expected a JSON array of objects, an object of equal-length column lists"),
])
def test_bad_json_names_file_and_line(tmp_path, text, message):
    path = tmp_path / "d.json"
    path.write_text(text)
    with pytest.raises(TunevalError, match=message):
        read_path(path)


def test_split_validation_is_seeded_and_disjoint():
    rows = [{"text": str(i), "_where": f"t:{i}"} for i in range(50)]
    train, validation, info = split_validation(rows, 0.1, seed=3)
    assert len(validation) == 5 and len(train) == 45
    assert sorted(r["text"] for r in train + validation) == sorted(r["text"] for r in rows)
    assert not {r["_where"] for r in train} & {r["_where"] for r in validation}
    assert split_validation(rows, 0.1, seed=3) == (train, validation, info)
    assert split_validation(rows, 0.1, seed=4)[1] != validation
    assert train == [r for r in rows if r not in validation]  # file order kept
    assert info == {"validation_from": "train", "validation_share": 0.1, "seed": 3, "rows": 50,
                    "train_rows": 45, "validation_rows": 5}
    assert [len(p) for p in split_validation(rows[:3], 0.01, 0)[:2]] == [2, 1]  # at least one row held out
    assert [len(p) for p in split_validation(rows[:2], 0.99, 0)[:2]] == [1, 1]  # and one left to train on
    with pytest.raises(TunevalError, match=r"data.validation_share must be a number between 0 and 1 \(exclusive\), got 1"):
        split_validation(rows, 1, 0)
    with pytest.raises(TunevalError, match=r"x.jsonl: data.validation_share needs at least 2 rows to split, got 1"):
        split_validation(rows[:1], 0.5, 0, where_hint="x.jsonl")


CONVERSATION = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "hello how are you"},
    {"role": "assistant", "content": "fine thanks"},
    {"role": "user", "content": "can we move it to monday"},
    {"role": "assistant", "content": "sure, please bring the report"},
]


def labelled_runs(tok, example):
    """The decoded runs of consecutive labelled tokens, checking labels equal the input where set."""
    runs, current = [], []
    for token, label in zip(example["input_ids"], example["labels"]):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            runs.append(tok.decode(current))
            current = []
    return runs + ([tok.decode(current)] if current else [])


def test_chat_template_labels_exactly_the_assistant_turns(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    assert tok.chat_template  # the tiny Llama ships a ChatML template (tests/conftest.py)
    fmt = PromptFormatter(tok, "causal")
    ex = fmt.conversation_example(CONVERSATION)
    assert ex["input_ids"] == tok(tok.apply_chat_template(CONVERSATION, tokenize=False), add_special_tokens=False)["input_ids"]
    assert labelled_runs(tok, ex) == ["fine thanks<|im_end|>", "sure, please bring the report<|im_end|>"]
    # the prompt for generating the last turn is exactly the training sequence up to that turn
    prompt = fmt.conversation_prompt(CONVERSATION[:-1])
    assert ex["input_ids"][: len(prompt)] == prompt and tok.decode(prompt).endswith("<|im_start|>assistant\n")
    assert ex["labels"][len(prompt) - 1] == IGNORE_INDEX and ex["labels"][len(prompt)] != IGNORE_INDEX
    # prompt/completion records train on the completion only
    assert labelled_runs(tok, fmt.conversation_example(CONVERSATION, prompt_turns=3)) == [
        "sure, please bring the report<|im_end|>"]


def test_truncation_keeps_the_start(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    full = PromptFormatter(tok, "causal").conversation_example(CONVERSATION)
    cut = PromptFormatter(tok, "causal", max_seq_len=len(full["input_ids"]) - 5).conversation_example(CONVERSATION)
    assert cut["input_ids"] == full["input_ids"][:-5] and cut["labels"] == full["labels"][:-5]
    prompt = PromptFormatter(tok, "causal", max_seq_len=30).conversation_prompt(CONVERSATION[:-1], max_new_tokens=10)
    assert len(prompt) == 20 and tok.decode(prompt).endswith("<|im_start|>assistant\n")


def test_a_template_that_rewrites_history_is_an_error(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    # like templates that drop earlier turns' reasoning: an assistant turn renders differently once it is history
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['role'] == 'assistant' and not loop.last %}"
                         "(earlier answer){% else %}{{ m['content'] }}{% endif %}<|im_end|>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    with pytest.raises(TunevalError, match=rf"^d.jsonl:2: the chat template of {tiny_llama_dir} does not render the "
                                           r"conversation up to turn 2 as a prefix of the whole.*chat_template: false"):
        PromptFormatter(tok, "causal").conversation_example(CONVERSATION, where="d.jsonl:2")
    tok.chat_template = "{{ raise_exception('Conversation roles must alternate user/assistant') }}"
    with pytest.raises(TunevalError, match=r"refused it \(Conversation roles must alternate user/assistant\)"):
        PromptFormatter(tok, "causal").conversation_example(CONVERSATION)


@pytest.mark.parametrize("how", ["chat_template=False", "no template"])
def test_plain_rendering_without_a_chat_template(tiny_llama_dir, how):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    if how == "no template":
        tok.chat_template = None
    fmt = PromptFormatter(tok, "causal", chat_template=how == "no template")
    ex = fmt.conversation_example(CONVERSATION)
    assert tok.decode(ex["input_ids"]) == (
        "System: You answer briefly.\nUser: hello how are you\nAssistant: fine thanks<|im_end|>\n"
        "User: can we move it to monday\nAssistant: sure, please bring the report<|im_end|>")
    assert labelled_runs(tok, ex) == [" fine thanks<|im_end|>", " sure, please bring the report<|im_end|>"]
    prompt = fmt.conversation_prompt(CONVERSATION[:-1])
    assert ex["input_ids"][: len(prompt)] == prompt and tok.decode(prompt).endswith("monday\nAssistant:")


def test_seq2seq_conversation(tiny_t5_dir):
    tok = AutoTokenizer.from_pretrained(tiny_t5_dir)
    fmt = PromptFormatter(tok, "seq2seq")
    ex = fmt.conversation_example(CONVERSATION)
    assert tok.decode(ex["input_ids"]) == ("System: You answer briefly.\nUser: hello how are you\n"
                                           "Assistant: fine thanks\nUser: can we move it to monday")  # T5's own adds </s>
    assert ex["labels"][-1] == tok.eos_token_id and tok.decode(ex["labels"][:-1]) == "sure, please bring the report"
    assert fmt.conversation_prompt(CONVERSATION[:-1]) == ex["input_ids"]
    single = fmt.conversation_example(CONVERSATION[1:3])  # a lone user turn is the input as it is
    assert tok.decode(single["input_ids"]) == "hello how are you"
    with pytest.raises(TunevalError, match="format 'text' \\(continued pre-training\\) needs a causal language model"):
        fmt.text_examples(["x"])


def test_text_examples_pack_into_blocks(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    texts = [r["text"] for r in to_records(read_path(EXAMPLES / "text.jsonl"), "text")]
    blocks = PromptFormatter(tok, "causal").text_examples(texts, block_size=16)
    stream = [t for text in texts for t in tok(text)["input_ids"] + [tok.eos_token_id]]
    assert [t for b in blocks for t in b["input_ids"]] == stream
    assert all(len(b["input_ids"]) == 16 for b in blocks[:-1]) and 0 < len(blocks[-1]["input_ids"]) <= 16
    assert all(b["labels"] == b["input_ids"] for b in blocks)
    assert len(blocks) == -(-len(stream) // 16)


def test_binary_json_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_bytes(b'[{"a": 1},\n{"a": "caf\xe9"}]\n')
    with pytest.raises(TunevalError, match=r"d.json:2: not UTF-8 text \(byte 0xe9\)"):
        read_path(path)
