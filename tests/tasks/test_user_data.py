"""Your own data and your own task YAMLs, through training and evaluation alike."""

import json
import math
from pathlib import Path

import pytest

from tests.data.fixtures import write_task_data
from tests.evaluate.test_bench_cli import run
from tuneval.errors import TunevalError
from tuneval.tasks import load_rows
from tuneval.tasks.user_data import data_task

EXAMPLES = Path(__file__).parents[1] / "data" / "examples"
TRAIN = ["--set", "train.max_steps=2", "--set", "train.per_device_train_batch_size=2", "--set", "train.logging_steps=1",
         "--set", "eval.max_new_tokens=4", "--set", "data.max_seq_len=256", "--set", "seed=3"]


def test_validation_share_is_seeded_disjoint_and_recorded():
    task = data_task(path=str(EXAMPLES / "alpaca.jsonl"), format="alpaca", validation_share=0.34, seed=5)
    train, val = load_rows(task, "train", None), load_rows(task, "validation", None)
    again = data_task(path=str(EXAMPLES / "alpaca.jsonl"), format="alpaca", validation_share=0.34, seed=5)
    assert [r["_where"] for r in load_rows(again, "validation", None)] == [r["_where"] for r in val]
    assert not {r["_where"] for r in train} & {r["_where"] for r in val} and len(train) + len(val) == 3
    assert task.split_info["validation_rows"] == len(val) and task.split_info["seed"] == 5


def test_bad_format_and_missing_file_are_one_line(tmp_path):
    with pytest.raises(TunevalError, match="format must be one of alpaca"):
        data_task(path=str(EXAMPLES / "alpaca.jsonl"), format="dolly")
    with pytest.raises(TunevalError, match="does not exist"):
        data_task(path=str(tmp_path / "nope.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c"}\n')
    with pytest.raises(TunevalError, match=rf"{bad}:2: field 'output'"):
        load_rows(data_task(path=str(bad), format="alpaca", scored_whole=True), "test", None)


@pytest.mark.parametrize("name,fmt", [("messages.jsonl", "messages"), ("alpaca.jsonl", None)])
def test_train_on_your_data_then_eval_it(tiny_llama_dir, tmp_path, capsys, name, fmt):
    """`tuneval train --data F --format X` needs no recipe: the file is the run's task, its held-out
    share the validation split the result is scored on; `tuneval eval --data` scores every row."""
    out = tmp_path / "run"
    argv = ["train", "--data", str(EXAMPLES / name), "--set", f"model={tiny_llama_dir}", "--set", "method=lora",
            "--set", f"output_dir={out}", "--validation-share", "0.34", *TRAIN]
    code, _, err = run(argv + (["--format", fmt] if fmt else []), capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    data = metrics["data"]["data"]
    assert data["source"] == str((EXAMPLES / name).resolve()) and data["validation"]["validation_rows"] == 1
    assert metrics["data"]["examples"] == 2 and metrics["eval"]["examples"] == 1
    result = json.loads((out / "eval" / "results.json").read_text())
    assert result["prompt"]["family"] == "conversation" and result["split"] == "validation"
    reference = result["examples"][0]["references"][0]
    rows = [json.loads(line) for line in (EXAMPLES / name).read_text().splitlines()]
    answers = [r["output"] if "output" in r else r["messages"][-1]["content"] for r in rows]
    assert reference in answers and "<|im_start|>assistant" in result["examples"][0]["prompt"]
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--adapter", str(out), "--data", str(EXAMPLES / name),
                        "--max-new-tokens", "4", "--out", str(tmp_path / "ev"), "--bootstrap-iters", "10"], capsys)
    assert code == 0, err
    scored = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert [e["references"][0] for e in scored["examples"]] == answers and {"rouge1", "bleu"} <= set(scored["metrics"])


def test_prompt_completion_trains_on_the_completion_only(tiny_llama_dir):
    from tuneval.config import recipe_from_dict
    from tuneval.models import load_model
    from tuneval.tasks.mixtures import build_examples

    recipe = recipe_from_dict({"model": str(tiny_llama_dir), "seed": 1,
                               "data": {"path": str(EXAMPLES / "prompt_completion.jsonl"), "validation_share": 0.34}})
    loaded = load_model(str(tiny_llama_dir))
    examples, summary = build_examples(recipe, loaded)
    assert summary["data"]["format"] == "prompt_completion" and summary["data"]["format_given"] == "auto"
    assert len(examples) == 2
    rows = load_rows(data_task(path=str(EXAMPLES / "prompt_completion.jsonl"), validation_share=0.34, seed=1),
                     "train", None)
    completions = {"".join(m["content"] for m in r["messages"][r.get("prompt_turns", 0):]) + "<|im_end|>" for r in rows}
    labelled = {loaded.tokenizer.decode([t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != -100])
                for ex in examples}  # drawn in a seeded order, not the file's
    assert labelled == completions


USER_TASK = """
task: headline
data_files: {train: news/train.jsonl, validation: news/val.jsonl}
input_field: body
templates: ["{body}\\n\\nWrite a headline.", "Headline for: {body}"]
target: "{title}"
eval_template: 1
metric_list: [rouge, bleu]
"""


def test_your_task_yaml_trains_and_evaluates(tiny_llama_dir, tiny_data_dir, tmp_path, capsys):
    """A FLAN-style task of your own (data.tasks_dir / --tasks-dir), mixed with a built-in one."""
    root = write_task_data(tiny_data_dir)
    (root / "news").mkdir(exist_ok=True)
    rows = [{"body": f"story number {i} about cats", "title": f"cats {i}"} for i in range(8)]
    for name, part in (("train.jsonl", rows[:6]), ("val.jsonl", rows[6:])):
        (root / "news" / name).write_text("".join(json.dumps(r) + "\n" for r in part))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "headline.yaml").write_text(USER_TASK)
    out = tmp_path / "run"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {tiny_llama_dir}\nmethod: lora\noutput_dir: {out}\ntask: headline\n"
                      f"data: {{data_dir: {root}, tasks_dir: {tasks}}}\n"
                      "mixture: {strategy: rates, tasks: [{task: headline}, {task: sst2, weight: 0.5}]}\n")
    code, _, err = run(["train", str(recipe), *TRAIN], capsys)
    assert code == 0, err
    mixture = json.loads((out / "mixture.json").read_text())
    assert {t["task"] for t in mixture["tasks"]} == {"headline", "sst2"}
    result = json.loads((out / "eval" / "results.json").read_text())
    assert result["task"] == "headline" and result["prompt"]["template"] == 1
    assert result["examples"][0]["prompt"].count("Headline for: story number 6") == 1
    code, _, err = run(["eval", "--model", str(tiny_llama_dir), "--adapter", str(out), "--tasks", "headline",
                        "--tasks-dir", str(tasks), "--data-dir", str(root), "--out", str(tmp_path / "ev"),
                        "--bootstrap-iters", "10"], capsys)
    assert code == 0, err
    again = json.loads((tmp_path / "ev" / "headline" / "results.json").read_text())
    assert [e["prompt"] for e in again["examples"]] == [e["prompt"] for e in result["examples"]]


def test_datasets_in_a_format_mix_like_tasks(tiny_llama_dir, tiny_data_dir, tmp_path):
    """Two of your own datasets (task YAMLs with `format:`) and a built-in task in one mixture, at the
    mixture's rates; each dataset keeps its own held-out validation rows out of training."""
    from tuneval.config import recipe_from_dict
    from tuneval.models import load_model
    from tuneval.tasks.mixtures import build_examples

    root = write_task_data(tiny_data_dir)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name, fmt in (("alpaca", "alpaca"), ("messages", "messages")):
        (root / f"{name}.jsonl").write_text((EXAMPLES / f"{name}.jsonl").read_text())
        (tasks / f"my_{name}.yaml").write_text(f"task: my_{name}\nformat: {fmt}\ndata_files: {{train: {name}.jsonl}}\n"
                                              "validation_share: 0.34\n")
    recipe = recipe_from_dict({"model": str(tiny_llama_dir), "seed": 2, "task": "my_alpaca",
                               "data": {"data_dir": str(root), "tasks_dir": str(tasks), "train_examples": 12},
                               "mixture": {"strategy": "rates", "tasks": [{"task": "my_alpaca", "weight": 1.0},
                                                                           {"task": "my_messages", "weight": 1.0},
                                                                           {"task": "sst2", "weight": 2.0}]}})
    examples, summary = build_examples(recipe, load_model(str(tiny_llama_dir)))
    drawn = {t["task"]: t for t in summary["mixture"]["tasks"]}
    assert set(drawn) == {"my_alpaca", "my_messages", "sst2"} and len(examples) == 12
    assert drawn["my_alpaca"]["pool"] == 2 and drawn["my_messages"]["pool"] == 2  # 1 of 3 rows held out each
    assert drawn["sst2"]["drawn"] > drawn["my_alpaca"]["drawn"] - 4


def test_a_hub_dataset_is_read_from_the_hub_even_with_a_data_directory(tmp_path, monkeypatch):
    """`data: {dataset: org/name}` has no local files: a data directory ($TUNEVAL_DATA_DIR, set by the
    Makefile) must not turn it into a 'no local file' error. The hub call is faked (no network)."""
    import tuneval.tasks.rows as rows_module

    calls = []

    def fake_hub(hub_id, split, name=None):
        calls.append((hub_id, split))
        return [{"instruction": f"q{i}", "output": f"a{i}", "_where": f"hub:{hub_id}[{split}] row {i}"} for i in range(5)]

    monkeypatch.setattr(rows_module, "read_hub", fake_hub)
    monkeypatch.setenv("TUNEVAL_DATA_DIR", str(tmp_path))
    task = data_task(dataset="org/my-data", format="alpaca", validation_share=0.2, seed=1)
    assert task.name == "my-data"
    train, val = load_rows(task, "train", None), load_rows(task, "validation", None)
    assert len(train) == 4 and len(val) == 1 and calls == [("org/my-data", "train")] * 2


def test_a_directory_of_files_is_one_dataset(tmp_path):
    d = tmp_path / "mydata"
    d.mkdir()
    lines = (EXAMPLES / "alpaca.jsonl").read_text().splitlines()
    (d / "part-0.jsonl").write_text(lines[0] + "\n")
    (d / "part-1.jsonl").write_text("\n".join(lines[1:]) + "\n")
    rows = load_rows(data_task(path=str(d), format="alpaca", scored_whole=True), "test", None)
    assert len(rows) == len(lines) and rows[0]["_where"].endswith("part-0.jsonl:1")


# ---- issue 36: tool calls, content parts and loss weights, each shape trained two steps ----------------

WEATHER_TOOL = {"name": "get_weather", "description": "The weather in a city now",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def _sharegpt_tool_rows():
    """LLaMA-Factory's sharegpt with tools: calls, results, answers, and a row that needs no call."""
    rows = []
    for city in ("Paris", "Rome", "Oslo", "Lima", "Bern"):
        rows.append({"conversations": [
            {"from": "human", "value": f"What is the weather in {city}?"},
            {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": city}})},
            {"from": "observation", "value": json.dumps({"temperature": 20, "city": city})},
            {"from": "gpt", "value": f"It is 20 degrees in {city}."}], "tools": json.dumps([WEATHER_TOOL])})
    rows.append({"conversations": [{"from": "human", "value": "Hello, how are you?"},
                                   {"from": "gpt", "value": "Fine, thanks."}], "tools": json.dumps([WEATHER_TOOL])})
    # rows that end in the call: what evaluation scores a call on
    rows += [{"conversations": r["conversations"][:2], "tools": r["tools"]} for r in rows[:2]]
    return rows


def _train_rows(path, share):
    """The rows `tuneval train --data path --validation-share share` (seed 3, TRAIN) trains on."""
    return load_rows(data_task(path=str(path), validation_share=share, seed=3), "train", None)


def test_sharegpt_tool_calls_train_and_are_scored_on_the_call(tiny_llama_dir, tmp_path, capsys, monkeypatch):
    """`--data` a sharegpt file with function_call/observation turns and tools: trained through a
    chat template that writes tools (two steps), then `tuneval eval --data` reads each generated
    call and scores its name and JSON arguments against the row's call, with bootstrap intervals."""
    from transformers import AutoTokenizer

    import tuneval.evaluate.harness as harness
    from tests.data.fixtures import tool_model_dir

    model = tool_model_dir(tiny_llama_dir, tmp_path / "tool-model")
    data = tmp_path / "tools.json"
    data.write_text(json.dumps(_sharegpt_tool_rows(), indent=1))
    out = tmp_path / "run"
    code, _, err = run(["train", "--data", str(data), "--set", f"model={model}", "--set", "method=lora",
                        "--set", f"output_dir={out}", "--validation-share", "0.25", *TRAIN,
                        "--set", "data.max_seq_len=1024"], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    train = _train_rows(data, 0.25)
    full = sum(len(r["messages"]) == 4 for r in train)  # call, result, answer
    calls_only = sum(len(r["messages"]) == 2 and "tool_calls" in r["messages"][1] for r in train)
    assert len(train) == 6 and metrics["data"]["data"]["turns"] == {
        "assistant": 2 * full + (6 - full), "trained": 2 * full + (6 - full), "weight_0": 0,
        "tool_calls": full + calls_only, "tool_results": full}
    result = json.loads((out / "eval" / "results.json").read_text())
    assert {"tool_call_name_match", "tool_call_exact_match"} <= set(result["metrics"]) & set(result["bootstrap"])
    assert {"tool_call_name_match", "tool_call_exact_match"} <= set(metrics["eval"])

    tok = AutoTokenizer.from_pretrained(model)

    def fake_generate(net, tokenizer, ids, arch, **kw):  # the right call for Paris, the wrong city for Rome
        texts = []
        for prompt in ids:
            asked = tok.decode(prompt).rsplit("<|im_start|>user\n", 1)[1]
            city = next((c for c in ("Paris", "Rome") if c in asked and "<|im_start|>tool" not in asked), None)
            args = {"city": "Paris" if city == "Paris" else "Milan"}
            texts.append(f'<tool_call>\n{json.dumps({"name": "get_weather", "arguments": args})}\n</tool_call>'
                         if city else "Fine, thanks.")
        return texts, 1

    monkeypatch.setattr(harness, "generate", fake_generate)
    code, printed, err = run(["eval", "--model", str(model), "--adapter", str(out), "--data", str(data),
                              "--max-new-tokens", "4", "--out", str(tmp_path / "ev"), "--bootstrap-iters", "50"], capsys)
    assert code == 0, err
    assert "tool_call_name_match=1.0000 tool_call_exact_match=0.8750" in printed
    scored = json.loads((tmp_path / "ev" / "results.json").read_text())
    examples = scored["examples"]
    assert [e["reference_calls"] for e in examples] == [[]] * 6 + [
        [{"name": "get_weather", "arguments": {"city": c}}] for c in ("Paris", "Rome")]
    assert examples[-1]["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Milan"}}]
    # rows 0-5 end in a text answer and get one (no call wanted: a match); row 6 calls Paris right;
    # row 7 calls the right function with the wrong city
    assert [e["tool_call_name_match"] for e in examples] == [1.0] * 8
    assert [e["tool_call_exact_match"] for e in examples] == [1.0] * 7 + [0.0]
    assert scored["metrics"]["tool_call_exact_match"] == 7 / 8 and scored["metrics"]["tool_call_name_match"] == 1.0
    interval = scored["bootstrap"]["tool_call_exact_match"]
    assert interval["ci_low"] < 7 / 8 <= interval["ci_high"]


def test_openai_tool_calls_train_and_a_template_without_tools_is_refused(tiny_llama_dir, tmp_path, capsys):
    """OpenAI messages with tool_calls, role tool and tools: trained two steps through a template
    that writes them; the tiny model's own ChatML, which drops them, is refused in one line."""
    from tests.data.fixtures import tool_model_dir

    data = tmp_path / "openai.jsonl"
    lines = []
    for i, city in enumerate(("Paris", "Rome", "Oslo", "Lima")):
        call = {"id": f"call_{i}", "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}
        lines.append({"messages": [{"role": "user", "content": f"Weather in {city}?"},
                                   {"role": "assistant", "content": None, "tool_calls": [call]},
                                   {"role": "tool", "tool_call_id": f"call_{i}", "content": "20 degrees"},
                                   {"role": "assistant", "content": f"20 degrees in {city}."}],
                      "tools": [{"type": "function", "function": WEATHER_TOOL}]})
    data.write_text("".join(json.dumps(r) + "\n" for r in lines))
    argv = ["train", "--data", str(data), "--set", "method=lora", "--validation-share", "0.25", *TRAIN,
            "--set", "data.max_seq_len=1024"]
    code, _, err = run(argv + ["--set", f"model={tiny_llama_dir}", "--set", f"output_dir={tmp_path / 'no'}"], capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert f"{data}:" in err and f"the chat template of {tiny_llama_dir} cannot express tools" in err
    model = tool_model_dir(tiny_llama_dir, tmp_path / "tool-model")
    out = tmp_path / "run"
    code, _, err = run(argv + ["--set", f"model={model}", "--set", f"output_dir={out}"], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["examples"] == 3 and metrics["data"]["data"]["turns"] == {
        "assistant": 6, "trained": 6, "weight_0": 0, "tool_calls": 3, "tool_results": 3}


def test_content_parts_and_loss_weights_train_and_are_recorded(tiny_llama_dir, tmp_path, capsys):
    """Content as lists of text parts (`text` and `value` keys) and per-turn loss_weight / weight:
    trained two steps; the run records how many assistant turns were trained and how many were context."""
    from tuneval.config import recipe_from_dict
    from tuneval.models import load_model
    from tuneval.tasks.mixtures import build_examples

    data = tmp_path / "parts.jsonl"
    rows = []
    for i in range(4):
        rows.append({"messages": [
            {"role": "user", "content": [{"type": "text", "value": f"question {i}, "}, {"type": "text", "text": "please"}],
             "loss_weight": 0.0},
            {"role": "assistant", "content": [{"type": "text", "text": f"draft answer {i}"}], "loss_weight": 0},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": [{"type": "text", "value": f"final answer {i}"}], "weight": 1.0}]})
    rows.append({"messages": [{"role": "user", "content": "context only"},
                              {"role": "assistant", "content": "nothing to learn here", "weight": 0}]})
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    code, _, err = run(["train", "--data", str(data), "--set", f"model={tiny_llama_dir}", "--set", "method=lora",
                        "--set", f"output_dir={out}", "--validation-share", "0.2", *TRAIN], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    summary = metrics["data"]["data"]
    train = _train_rows(data, 0.2)
    drafts = sum(len(r["messages"]) == 4 for r in train)
    context_only = len(train) - drafts
    assert context_only == 1  # the seeded split trains on the row with nothing to learn: it is counted, not trained
    assert summary["validation"]["rows"] == summary["rows"] == 5 and summary["train_rows"] == len(train) == 4
    assert summary["dropped"]["no_trained_turn"] == context_only and metrics["data"]["examples"] == drafts
    assert summary["turns"] == {"assistant": 2 * drafts + context_only, "trained": drafts,
                                "weight_0": drafts + context_only, "tool_calls": 0, "tool_results": 0}
    # the labels: only the final answers, never the drafts weighted 0 nor the user's parts
    recipe = recipe_from_dict({"model": str(tiny_llama_dir), "seed": 3,
                               "data": {"path": str(data), "validation_share": 0.2}})
    loaded = load_model(str(tiny_llama_dir))
    examples, _ = build_examples(recipe, loaded)
    decode = loaded.tokenizer.decode
    labelled = [decode([t for t, lab in zip(e["input_ids"], e["labels"]) if lab != -100]) for e in examples]
    assert len(labelled) == drafts and all(t.startswith("final answer ") and t.endswith("<|im_end|>") for t in labelled)
    assert all("question" in decode(e["input_ids"]) and "please" in decode(e["input_ids"])
               and "draft answer" in decode(e["input_ids"]) for e in examples)
NOTES = "First note: the meeting is at noon.\nBring the report.\n\nSecond note: call Tom later.\n\n\nThird note: book a table.\n" \
        "For two, tonight.\n\nFourth note: it is cold outside.\n"


@pytest.mark.parametrize("sample_by,documents", [(None, 4), ("line", 6)])
def test_plain_text_trains_as_documents_and_the_run_says_what_it_read(tiny_llama_dir, tmp_path, capsys, sample_by,
                                                                      documents):
    """`tuneval train --data notes.txt --format text` (issue 36): paragraphs (or lines) become documents,
    packed for continued pre-training; the held-out documents are scored by loss and perplexity, and
    metrics.json and the printed summary say the format, columns and how many documents went where."""
    notes = tmp_path / "notes.txt"
    notes.write_text(NOTES)
    out = tmp_path / "run"
    argv = ["train", "--data", str(notes), "--format", "text", "--set", f"model={tiny_llama_dir}",
            "--set", f"output_dir={out}", "--validation-share", "0.25", *TRAIN]
    code, stdout, err = run(argv + (["--sample-by", sample_by] if sample_by else []), capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    data = metrics["data"]["data"]
    held = round(documents * 0.25)
    assert data["format"] == "text" and data["format_given"] == "text" and data["columns"] == {"text": "text"}
    assert data["sample_by"] == (sample_by or "paragraph") and data["rows"] == documents
    assert data["kept"] == documents - held and data["dropped"]["held_out_for_validation"] == held
    assert data["validation"]["validation_rows"] == held
    assert metrics["eval"]["perplexity"] == pytest.approx(math.exp(metrics["eval"]["loss"]), rel=1e-6)
    line = f"data: {notes.resolve()}: format text (given, sample_by {sample_by or 'paragraph'}), columns text; " \
           f"{documents} documents read, {documents - held} trained on, {held} held out for validation"
    assert stdout.count(line) == 2  # as training starts, and in the summary at the end


def test_a_txt_without_a_format_names_a_command_that_works(tiny_llama_dir, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text(NOTES)
    code, _, err = run(["train", "--data", str(notes), "--set", f"model={tiny_llama_dir}",
                        "--set", f"output_dir={tmp_path / 'run'}", *TRAIN], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    hint = f"tuneval train --data {notes.resolve()} --format text"
    assert hint in err.replace("\n", "")
    code, _, err = run(hint.split()[1:] + ["--set", f"model={tiny_llama_dir}", "--set", f"output_dir={tmp_path / 'run'}",
                                           *TRAIN, "--set", "eval.after_training=false"], capsys)
    assert code == 0, err


def test_the_run_records_the_recognised_format_and_the_columns_it_read(tiny_llama_dir, tmp_path, capsys):
    """An alpaca file without --format: metrics.json says alpaca (recognised), which column each field came
    from, and the rows dropped because their first answer starts past data.max_seq_len."""
    rows = [{"instruction": f"Say hello {i}.", "output": "hello"} for i in range(5)]
    rows.append({"instruction": "long " * 400, "input": "x", "output": "never reached"})
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    code, stdout, err = run(["train", "--data", str(path), "--set", f"model={tiny_llama_dir}", "--set", f"output_dir={out}",
                             "--validation-share", "0.2", *TRAIN, "--set", "eval.after_training=false",
                             "--set", "seed=1"], capsys)
    assert code == 0, err
    data = json.loads((out / "metrics.json").read_text())["data"]["data"]
    assert data["format"] == "alpaca" and data["format_given"] == "auto"
    assert data["columns"] == {"instruction": "instruction", "output": "output", "input": "input"}
    from tuneval.data.formats import split_validation

    _, held, _ = split_validation(list(range(6)), 0.2, 1)
    long_dropped = 0 if 5 in held else 1  # the long row, unless it is the one held out
    assert data["rows"] == 6 and data["validation"]["validation_rows"] == 1 and data["train_rows"] == 5
    assert data["dropped"]["first_answer_past_max_seq_len"] == long_dropped and data["kept"] == 5 - long_dropped
    assert "format alpaca (recognised), columns instruction, output, input; 6 rows read" in stdout
