import pytest
from transformers import AutoTokenizer

from tuneval.data.collate import IGNORE_INDEX, DataCollator, PromptFormatter
from tuneval.tasks import get_task as load_task

ROW = {"dialogue": "#Person1#: hello how are you\n#Person2#: fine thanks", "summary": "They greet each other."}


@pytest.mark.parametrize("chat", [True, False])
def test_causal_loss_covers_only_the_response(tiny_llama_dir, chat):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    fmt = PromptFormatter(tok, "causal", chat_template=chat)
    ts = load_task("dialogsum").templates
    ex = fmt.training_example(ts, 4, ROW, ["dialogue"])
    prompt_ids = fmt.encode_prompt(ts.render(ROW, 4)[0])
    n = len(prompt_ids)
    assert ex["input_ids"][:n] == prompt_ids
    assert ex["labels"][:n] == [IGNORE_INDEX] * n
    response = ex["labels"][n:]
    assert IGNORE_INDEX not in response and response[-1] == tok.eos_token_id
    assert tok.decode(response[:-1]) == ROW["summary"]
    assert ex["input_ids"][n:] == response
    text = tok.decode(prompt_ids)
    assert ("<|im_start|>assistant" in text) == chat
    assert "Summarize the following conversation." in text


def test_seq2seq_labels_are_the_response(tiny_t5_dir):
    tok = AutoTokenizer.from_pretrained(tiny_t5_dir)
    fmt = PromptFormatter(tok, "seq2seq")
    ex = fmt.training_example(load_task("dialogsum").templates, 0, ROW, ["dialogue"])
    assert tok.decode(ex["labels"][:-1]) == ROW["summary"] and ex["labels"][-1] == tok.eos_token_id
    assert "Briefly summarize that dialogue." in tok.decode(ex["input_ids"])


def test_long_input_field_is_cut_and_instruction_kept(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    fmt = PromptFormatter(tok, "causal", max_seq_len=96, max_target_tokens=16)
    row = {"dialogue": "hello how are you " * 200, "summary": "greeting " * 40}
    ex = fmt.training_example(load_task("dialogsum").templates, 4, row, ["dialogue"])
    assert len(ex["input_ids"]) <= 96
    assert sum(label != IGNORE_INDEX for label in ex["labels"]) == 16
    prompt = tok.decode([t for t, label in zip(ex["input_ids"], ex["labels"]) if label == IGNORE_INDEX])
    assert "Summary:" in prompt and prompt.rstrip().endswith("<|im_start|>assistant")


def test_collator_pads_dynamically():
    batch = DataCollator(pad_token_id=0)([
        {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
        {"input_ids": [5], "labels": [5]},
    ])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [5, -100, -100]]
    assert DataCollator(0, pad_to_multiple_of=8)([{"input_ids": [1, 2, 3]}])["input_ids"].shape == (1, 8)
