"""Turns as practitioners bring them (issue 36): tool calls in LLaMA-Factory's sharegpt and OpenAI's
messages shapes, content as a list of parts, per-turn loss weights; one record shape out, and a bad
turn refused in one line naming file, line and field. Labels: a tool call is trained, a tool's result
never, an assistant turn weighted 0 is context."""

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tests.data.fixtures import TOOL_TEMPLATE
from tests.data.test_formats import labelled_runs
from tuneval.data.collate import PromptFormatter
from tuneval.data.formats import generation_pair, reference_calls, to_records, trained_turns, turn_counts
from tuneval.data.sources import read_path
from tuneval.errors import TunevalError

EXAMPLES = Path(__file__).parent / "examples"
WEATHER = {"name": "get_weather", "arguments": {"city": "Paris"}}
BOOK = {"name": "book_table", "arguments": {"people": 2, "time": "tonight"}}


def records(name, format=None):
    return [{k: v for k, v in r.items() if k != "_where"} for r in to_records(read_path(EXAMPLES / name), format)]


def without_ids(record):
    """A record less OpenAI's call ids, which LLaMA-Factory's sharegpt does not have."""
    messages = []
    for m in record["messages"]:
        m = {k: v for k, v in m.items() if k != "tool_call_id"}
        if "tool_calls" in m:
            m["tool_calls"] = [{k: v for k, v in c.items() if k != "id"} for c in m["tool_calls"]]
        messages.append(m)
    return {**record, "messages": messages}


def test_sharegpt_tools_and_openai_tools_become_the_same_record():
    sharegpt, openai = records("sharegpt_tools.json"), records("messages_tools.jsonl")
    assert [without_ids(r) for r in openai] == sharegpt
    first = sharegpt[0]
    assert first["messages"] == [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": WEATHER}]},
        {"role": "tool", "content": '{"temperature": 21, "sky": "sunny"}'},
        {"role": "assistant", "content": "It is 21 degrees and sunny in Paris."}]
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather", "book_table"]
    assert all(t["type"] == "function" and "parameters" in t["function"] for t in first["tools"])
    raw = read_path(EXAMPLES / "messages_tools.jsonl")[0]
    assert openai[0]["tools"] == raw["tools"]  # OpenAI's tools are kept as they are
    assert openai[0]["messages"][1]["tool_calls"][0]["id"] == "call_1" and openai[0]["messages"][2]["tool_call_id"] == "call_1"
    # the reference of a row that ends in a call is the call
    assert reference_calls(sharegpt[1]) == [BOOK] and reference_calls(sharegpt[2]) == []
    assert generation_pair(sharegpt[1])[1] == json.dumps(BOOK)
    assert turn_counts(sharegpt[0]) == {"assistant": 2, "trained": 2, "weight_0": 0, "tool_calls": 1, "tool_results": 1}


def test_content_parts_are_joined_and_weights_pick_the_trained_turns():
    got = records("messages_parts.jsonl")
    assert got[0] == {"messages": [{"role": "user", "content": "Hello, how are you?"},
                                   {"role": "assistant", "content": "Fine, thanks."}], "loss_weights": [0, 1]}
    assert got[1]["messages"][3] == {"role": "user", "content": "Can we move it to Monday?"}  # joined with ""
    assert got[1]["loss_weights"] == [0, 0, 0, 0, 1] and trained_turns(got[1]) == [4]
    assert got[2] == {"messages": [{"role": "user", "content": "Is it cold outside?"},
                                   {"role": "assistant", "content": "Yes, bring a coat."}]}  # no weights: no key
    assert turn_counts(got[1]) == {"assistant": 2, "trained": 1, "weight_0": 1, "tool_calls": 0, "tool_results": 0}
    # weights on sharegpt turns too (SlimOrca's `weight`, null on a system turn)
    row = {"conversations": [{"from": "system", "value": "s", "weight": None}, {"from": "human", "value": "a", "weight": 0.0},
                             {"from": "gpt", "value": "b", "weight": 0.0}, {"from": "human", "value": "c"},
                             {"from": "gpt", "value": "d", "weight": True}], "_where": "s.json:1"}
    assert to_records([row])[0]["loss_weights"] == [0, 0, 0, 0, 1]


def test_openai_and_llamafactory_v1_call_shapes():
    rows = [{"messages": [{"role": "user", "content": "x"},
                          {"role": "assistant", "content": [{"type": "text", "text": "Let me look. "},
                                                            {"type": "tool_call", "value": json.dumps(WEATHER)}]}],
             "tools": json.dumps({"name": "get_weather"}), "_where": "v1.jsonl:1"},
            {"messages": [{"role": "user", "content": "x"},
                          {"role": "assistant", "content": "", "tool_calls": [
                              {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                              {"name": "book_table", "parameters": {"people": 2, "time": "tonight"}}]}],
             "_where": "v1.jsonl:2"},
            {"conversations": [{"from": "human", "value": "x"},
                               {"from": "function_call", "value": json.dumps([WEATHER, BOOK])}], "_where": "p.json:1"}]
    one, two = to_records(rows[:2], "messages")
    assert one["messages"][1] == {"role": "assistant", "content": "Let me look. ",
                                  "tool_calls": [{"type": "function", "function": WEATHER}]}
    assert one["tools"] == [{"type": "function", "function": {"name": "get_weather"}}]
    assert reference_calls(two) == [WEATHER, BOOK] == reference_calls(to_records(rows[2:])[0])  # parallel calls
    assert generation_pair(one)[1] == "Let me look. \n" + json.dumps(WEATHER)


def good(format):
    return ({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]} if format == "sharegpt"
            else {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})


def user(content, **kw):
    return {"role": "user", "content": content, **kw}


def assistant(content="b", **kw):
    return {"role": "assistant", "content": content, **kw}


def call(arguments='{"city": "Paris"}', name="get_weather"):
    return [{"type": "function", "function": {"name": name, "arguments": arguments}}]


BAD = [
    ("messages", {"messages": [user([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}]),
                               assistant()]},
     "field 'messages[0].content[1]' is an image part: images are not supported for this model"),
    ("messages", {"messages": [user([{"type": "input_audio", "input_audio": {}}]), assistant()]},
     "field 'messages[0].content[0]' is an audio part: audio is not supported for this model"),
    ("messages", {"messages": [user([{"type": "html", "text": "a"}]), assistant()]},
     "field 'messages[0].content[0].type' is 'html', not one of text"),
    ("messages", {"messages": [user(["a"]), assistant()]},
     "field 'messages[0].content[0]' must be an object like {\"type\": \"text\", \"text\": ...}, got a string"),
    ("messages", {"messages": [user([{"text": "a"}]), assistant()]}, "field 'messages[0].content[0].type' is missing"),
    ("messages", {"messages": [user([{"type": "text", "value": 3}]), assistant()]},
     "field 'messages[0].content[0].value' must be a string, got int"),
    ("messages", {"messages": [user("a"), assistant([{"type": "text", "text": " "}])]}, "field 'messages[1].content' is empty"),
    ("messages", {"messages": [user("a"), assistant(loss_weight=0.5)]},
     "field 'messages[1].loss_weight' is 0.5: a turn is trained (1) or context (0); fractional weights are not supported"),
    ("messages", {"messages": [user("a", weight=1), assistant()]},
     "field 'messages[0].weight' is 1 on a user turn: only assistant turns are trained (give 0 or leave it out)"),
    ("messages", {"messages": [user("a"), assistant(loss_weight=1, weight=0)]},
     "field 'messages[1].loss_weight' is 1 and 'messages[1].weight' is 0; give one"),
    ("messages", {"messages": [user("a"), {"role": "tool", "content": "r"}, assistant()]},
     "field 'messages[1].role' is 'tool' (a tool's result), but no assistant tool call comes before it"),
    ("messages", {"messages": [user("a"), assistant(None, tool_calls=call("[1]"))]},
     "field 'messages[1].tool_calls[0].function.arguments' must be a JSON object, got a list"),
    ("messages", {"messages": [user("a"), assistant(None, tool_calls=call("{city"))]},
     "field 'messages[1].tool_calls[0].function.arguments' is not valid JSON (Expecting property name enclosed in "
     "double quotes: line 1 column 2 (char 1))"),
    ("messages", {"messages": [user("a"), assistant(None, tool_calls=call(name=""))]},
     "field 'messages[1].tool_calls[0].function.name' must be a function name, got ''"),
    ("messages", {"messages": [user("a"), assistant(None, tool_calls={"name": "f"})]},
     "field 'messages[1].tool_calls' must be a list of tool calls, got an object"),
    ("messages", {"messages": [user("a"), assistant()], "tools": '[{"description": "x"}]'},
     "field 'tools[0]' has no function name ('name')"),
    ("messages", {"messages": [user("a"), assistant()], "tools": 3}, "field 'tools' must be a list of tools (function schemas), got int"),
    ("sharegpt", {"conversations": [{"from": "human", "value": "a"}, {"from": "function_call", "value": "{not json"}]},
     "field 'conversations[1].value' is not valid JSON (Expecting property name enclosed in double quotes: line 1 "
     "column 2 (char 1))"),
    ("sharegpt", {"conversations": [{"from": "human", "value": "a"}, {"from": "function_call", "value": '{"arguments": {}}'}]},
     "field 'conversations[1].value.name' is missing"),
    ("sharegpt", {"conversations": [{"from": "human", "value": "a"}, {"from": "observation", "value": "r"},
                                    {"from": "gpt", "value": "b"}]},
     "field 'conversations[1].from' is 'observation' (a tool's result), but no assistant tool call comes before it"),
]


@pytest.mark.parametrize("format,row,message", BAD)
def test_bad_turn_is_one_line_with_file_line_and_field(tmp_path, format, row, message):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(good(format)) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(TunevalError) as e:
        to_records(read_path(path), format)
    assert str(e.value) == f"{path}:2: {message}"


@pytest.fixture
def tool_tokenizer(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tok.chat_template = TOOL_TEMPLATE
    return tok


def test_tool_calls_are_trained_tool_results_never(tool_tokenizer):
    tok = tool_tokenizer
    record = to_records(read_path(EXAMPLES / "sharegpt_tools.json"))[0]
    ex = PromptFormatter(tok, "causal").record_example(record)
    text = tok.apply_chat_template(record["messages"], tools=record["tools"], tokenize=False)
    assert ex["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    assert '"name": "get_weather"' in text.split("<|im_start|>user")[0]  # the tools, in the system turn
    assert labelled_runs(tok, ex) == ['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
                                      "<|im_end|>", "It is 21 degrees and sunny in Paris.<|im_end|>"]
    # the tool's result and the user's turn are all -100
    labelled = tok.decode([t for t, label in zip(ex["input_ids"], ex["labels"]) if label != -100])
    assert "temperature" not in labelled and "weather in Paris?" not in labelled and "<tools>" not in labelled
    # the prompt to generate the call from is the training sequence up to it, tools included
    prompt = PromptFormatter(tok, "causal").conversation_prompt(record["messages"][:1], tools=record["tools"])
    assert ex["input_ids"][: len(prompt)] == prompt and ex["labels"][len(prompt)] != -100


def test_a_turn_weighted_0_is_context(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    record = to_records(read_path(EXAMPLES / "messages_parts.jsonl"))[1]
    ex = PromptFormatter(tok, "causal").record_example(record)
    assert labelled_runs(tok, ex) == ["Sure, it is now Monday at 8 pm.<|im_end|>"]
    assert "Sorry, I cannot book tables." in tok.decode(ex["input_ids"])  # still there, as context
    every = PromptFormatter(tok, "causal").conversation_example(record["messages"])  # the weights unread: both
    assert labelled_runs(tok, every) == ["Sorry, I cannot book tables.<|im_end|>", "Sure, it is now Monday at 8 pm.<|im_end|>"]


def test_a_template_that_cannot_write_tools_is_one_line(tiny_llama_dir, tiny_t5_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)  # ChatML that writes content only
    record = to_records(read_path(EXAMPLES / "sharegpt_tools.json"))[0]
    where = record["_where"]
    with pytest.raises(TunevalError, match=rf"^{where}: the chat template of {tiny_llama_dir} cannot express tools: "
                                           r"it ignores the record's 'tools' list"):
        PromptFormatter(tok, "causal").record_example(record)
    no_tools = {k: v for k, v in record.items() if k != "tools"}
    with pytest.raises(TunevalError, match=rf"^{where}: the chat template of {tiny_llama_dir} cannot express tools: it "
                                           r"does not write the assistant's tool calls \('get_weather' is not in"):
        PromptFormatter(tok, "causal").record_example(no_tools)
    with pytest.raises(TunevalError, match=rf"^{where}: tool calls and tools need .* and data.chat_template is false$"):
        PromptFormatter(tok, "causal", chat_template=False).record_example(record)
    with pytest.raises(TunevalError, match=rf"^{where}: tool calls and tools need .* and a seq2seq model$"):
        PromptFormatter(AutoTokenizer.from_pretrained(tiny_t5_dir), "seq2seq").record_example(record)
    # a conversation without tools is not affected
    plain = to_records(read_path(EXAMPLES / "sharegpt_tools.json"))[2]
    assert labelled_runs(tok, PromptFormatter(tok, "causal").record_example({**plain, "tools": None})) == [
        "Fine, thanks. How can I help?<|im_end|>"]
