"""`tuneval chat`: the conversation through the chat template, streamed replies, and the loop's exits.

The 'lively' tiny models (serve/conftest.py) answer with long varied text rather than an
echo, so a turn that went missing from the prompt, or a reply cut short, shows.
"""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from tuneval.errors import TunevalError
from tuneval.models import load_model
from tuneval.serve.chat import ChatSession, GenerationStopped, open_chat, run_chat

from .conftest import make_run

USER1, USER2, USER3 = "hello how are you", "can we move it to monday", "book a table for two tonight"


@pytest.fixture(scope="module")
def llama(lively_llama):
    return load_model(str(lively_llama), precision="fp32", device="cpu")


def _session(loaded, **kw) -> ChatSession:
    notices = kw.pop("notices", [])
    return ChatSession(loaded.model, loaded.tokenizer, loaded.arch, on_notice=notices.append,
                       **{"max_new_tokens": 24, **kw})


def _template(tok, messages) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _script(*lines, end=EOFError):
    """A read_line that answers `lines` in turn, then raises `end` (Ctrl-D: EOFError, Ctrl-C: KeyboardInterrupt)."""
    it = iter(lines)

    def read_line(prompt: str) -> str:
        try:
            return next(it)
        except StopIteration:
            raise end() from None

    return read_line


def test_second_turn_prompt_holds_the_first_turn_through_the_template(llama):
    s = _session(llama, system="Be brief.")
    first = s.reply(USER1)
    assert first.strip()
    s.reply(USER2)
    expected = _template(llama.tokenizer, [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": USER1},
                                           {"role": "assistant", "content": first.strip()},
                                           {"role": "user", "content": USER2}])
    assert s.last_prompt == expected
    assert f"<|im_start|>user\n{USER1}<|im_end|>" in s.last_prompt and first.strip() in s.last_prompt
    assert [m["role"] for m in s.history] == ["user", "assistant", "user", "assistant"]


@torch.inference_mode()
def test_streamed_pieces_join_to_the_reply_and_greedy_matches_generate(llama):
    s = _session(llama)
    pieces: list[str] = []
    reply = s.reply(USER1, pieces.append)
    assert len(pieces) > 1 and "".join(pieces) == reply  # it streamed, and nothing was lost on the way
    tok = llama.tokenizer
    ids = torch.tensor([tok(_template(tok, [{"role": "user", "content": USER1}]), add_special_tokens=False)["input_ids"]])
    out = llama.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False,
                               eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)[0, ids.shape[1]:]
    assert reply == tok.decode(out, skip_special_tokens=True)
    assert s.last_new_tokens == len(out)


def test_sampling_streams_and_follows_the_seed(llama):
    replies = []
    for _ in range(2):
        torch.manual_seed(7)
        pieces: list[str] = []
        replies.append(_session(llama, temperature=0.9, top_p=0.9).reply(USER1, pieces.append))
        assert "".join(pieces) == replies[-1]
    assert replies[0] == replies[1] and replies[0].strip()


@pytest.mark.parametrize("end", [EOFError, KeyboardInterrupt], ids=["ctrl-d", "ctrl-c"])
def test_the_loop_ends_cleanly_with_0_and_a_newline(llama, end):
    s, out = _session(llama, max_new_tokens=4), []
    assert run_chat(s, _script(USER1, "", end=end), out.append) == 0
    assert out[-1] == "\n" and len(s.history) == 2
    assert "".join(out[:-2]).strip() == s.history[1]["content"]  # the reply, then its newline, then the exit's


def test_exit_command_ends_the_loop(llama):
    s, out = _session(llama, max_new_tokens=4), []
    assert run_chat(s, _script("/exit", USER1), out.append) == 0
    assert s.history == [] and out == []


def test_reset_clears_the_conversation(llama):
    s, out = _session(llama, system="Be brief.", max_new_tokens=4), []
    assert run_chat(s, _script(USER1, "/reset", USER2, "/nonsense"), out.append) == 0
    assert "(conversation cleared)\n" in out and any("unknown command /nonsense" in o for o in out)
    assert [m["content"] for m in s.history if m["role"] == "user"] == [USER2]
    assert s.last_prompt == _template(llama.tokenizer, [{"role": "system", "content": "Be brief."},
                                                        {"role": "user", "content": USER2}])


def test_ctrl_c_during_a_reply_stops_generation_and_returns_to_the_prompt(llama):
    s = _session(llama, max_new_tokens=200)
    full = s.reply(USER1)
    assert s.last_new_tokens == 200  # this model does not stop by itself within 200 tokens
    s.reset()

    def interrupt(piece: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(GenerationStopped) as stopped:
        s.reply(USER1, interrupt)
    assert s.last_new_tokens < 100 and full.startswith(stopped.value.partial)
    assert s.history == []  # the cut-off turn is not kept

    calls = []

    def write(text: str) -> None:  # Ctrl-C at the first streamed piece of the first reply only
        calls.append(text)
        if len(calls) == 1:
            raise KeyboardInterrupt

    assert run_chat(s, _script(USER1, USER2), write) == 0
    assert "\n(stopped; this turn is not kept)\n" in calls
    assert [m["content"] for m in s.history if m["role"] == "user"] == [USER2]  # the loop went on


def test_trimming_drops_the_oldest_turns_and_keeps_the_system_message(llama):
    notices: list[str] = []
    s = _session(llama, system="Be brief.", max_new_tokens=8, notices=notices)
    s.reply(USER1)
    s.reply(USER2)
    first, second = s.history[:2], s.history[2:]
    tok = llama.tokenizer
    system = [{"role": "system", "content": "Be brief."}]
    without_first = tok(_template(tok, system + second + [{"role": "user", "content": USER3}]),
                        add_special_tokens=False)["input_ids"]
    s.context = len(without_first) + 8  # room for the last two turns, not for all three
    s.reply(USER3)
    assert notices == ["note: the conversation outgrew the context "
                       f"({s.context} tokens): dropped the oldest 2 messages"]
    assert s.last_prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert s.history[:2] == second and first[0] not in s.history


def test_a_message_too_long_for_the_context_is_refused_and_the_loop_goes_on(llama):
    s, out = _session(llama, max_new_tokens=8, context=32), []
    with pytest.raises(TunevalError, match="message too long"):
        s.reply(" ".join([USER1] * 10))
    assert run_chat(s, _script(" ".join([USER1] * 10), "fine"), out.append) == 0
    assert any(o.startswith("error: message too long") for o in out) and len(s.history) == 2


def test_max_new_tokens_must_leave_room_for_a_prompt(llama):
    with pytest.raises(TunevalError, match="leaves no room"):
        _session(llama, max_new_tokens=1024)
    with pytest.raises(TunevalError, match="--temperature"):
        _session(llama, temperature=-1)


def test_without_a_chat_template_plain_prompts_and_one_note(lively_llama):
    loaded = load_model(str(lively_llama), precision="fp32", device="cpu")
    loaded.tokenizer.chat_template = None
    notices: list[str] = []
    s = _session(loaded, notices=notices)
    first = s.reply(USER1)
    s.reply(USER2)
    assert s.last_prompt == f"User: {USER1}\nAssistant: {first.strip()}\nUser: {USER2}\nAssistant:"
    assert len(notices) == 1 and "no chat template" in notices[0]


def test_seq2seq_answers_the_last_message(lively_t5):
    loaded = load_model(str(lively_t5), precision="fp32", device="cpu")
    notices: list[str] = []
    s = _session(loaded, notices=notices)
    pieces: list[str] = []
    s.reply(USER1)
    reply = s.reply(USER2, pieces.append)
    assert s.last_prompt == USER2 and "".join(pieces) == reply and reply.strip()
    assert len(notices) == 1 and "seq2seq" in notices[0]


def _cli(*args):
    from tuneval.cli import app

    return CliRunner().invoke(app, ["chat", *args, "--max-new-tokens", "12"])


def test_once_prints_only_the_reply_on_stdout(llama, lively_llama):
    result = _cli("--model", str(lively_llama), "--once", USER1, "--system", "Be brief.")
    assert result.exit_code == 0, result.output
    expected = _session(llama, system="Be brief.", max_new_tokens=12).reply(USER1)
    assert result.stdout == expected + "\n"
    assert f"tuneval chat: {lively_llama} | adapter: none | float32 (fp32)" in result.stderr
    assert "Ctrl-D to quit, /reset to clear" in result.stderr


def test_interactive_cli_reads_until_end_of_input(lively_llama):
    from tuneval.cli import app

    result = CliRunner().invoke(app, ["chat", "--model", str(lively_llama), "--max-new-tokens", "4"],
                                input=f"{USER1}\n/reset\n")
    assert result.exit_code == 0, result.output
    assert "(conversation cleared)" in result.stdout and result.stdout.endswith("\n")


def test_adapter_header_names_the_adapter_and_its_base(tmp_path, llama, lively_llama, llama_adapters):
    run = make_run(lively_llama, llama_adapters["lora_a"], tmp_path / "run")
    s = open_chat(adapter=run, precision="fp32", max_new_tokens=12, on_notice=lambda _: None)
    assert s.name == str(lively_llama)  # --model taken from the run's recipe
    assert f"adapter: {run} (LORA)" in s.header()
    with_adapter = s.reply(USER1)
    assert with_adapter != _session(llama, max_new_tokens=12).reply(USER1)  # the adapter is really on

    result = _cli("--adapter", str(run), "--once", USER1)
    assert result.exit_code == 0, result.output
    assert result.stdout == with_adapter + "\n"
    assert f"adapter: {run} (LORA)" in result.stderr


def test_missing_adapter_is_one_line_error(tmp_path):
    result = _cli("--adapter", str(tmp_path / "nope"), "--once", "hi")
    assert isinstance(result.exception, TunevalError) and "no such directory" in str(result.exception)
    with pytest.raises(TunevalError, match="no such directory"):
        open_chat(adapter=tmp_path / "nope")


def test_a_template_that_refuses_the_conversation_is_one_line(lively_llama):
    loaded = load_model(str(lively_llama), precision="fp32", device="cpu")
    loaded.tokenizer.chat_template = ("{% if messages[0]['role'] == 'system' %}"
                                      "{{ raise_exception('System role not supported') }}{% endif %}x")
    out: list[str] = []
    assert run_chat(_session(loaded, system="Be brief."), _script(USER1), out.append) == 0
    assert out[0] == "error: the model's chat template refuses this conversation: System role not supported\n"
