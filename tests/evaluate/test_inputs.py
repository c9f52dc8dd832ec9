"""Each prompt family's inputs for a local model, a completions endpoint and a chat endpoint."""

from __future__ import annotations

import pytest

from tests.models.fake_openai import FakeServer
from tuneval.errors import TunevalError
from tuneval.evaluate.inputs import conversation_inputs, scoring_inputs, template_inputs
from tuneval.models import load_model
from tuneval.models.endpoint import open_endpoint
from tuneval.tasks import get_task


@pytest.fixture(scope="module")
def endpoints(tiny_llama_dir):
    with FakeServer(["ok"]) as s:
        yield {"ids": open_endpoint("local-completions", f"base_url={s.url},model=m,tokenizer={tiny_llama_dir}"),
               "text": open_endpoint("local-completions", f"base_url={s.url},model=m"),
               "chat": open_endpoint("local-chat-completions", f"base_url={s.url},model=m")}


def test_a_tokenizer_makes_the_local_models_inputs(tiny_llama_dir, endpoints, tiny_data_dir):
    loaded = load_model(str(tiny_llama_dir))
    task = get_task("dialogsum")
    from tuneval.tasks import load_rows

    docs = load_rows(task, "validation", tiny_data_dir)[:3]
    index = task.template_index(None)
    local, refs, chat = template_inputs(loaded.model, loaded.tokenizer, "causal", task, docs, index, True, 16, 256)
    ep = endpoints["ids"]
    remote, refs2, chat2 = template_inputs(ep, ep.tokenizer, "causal", task, docs, index, True, 16, 256)
    assert remote == local and refs == refs2 and chat == chat2
    assert all(x["ids"] and x["messages"][0]["role"] == "user" for x in local)


def test_without_a_tokenizer_text_or_messages_go_as_they_are(endpoints):
    task = get_task("copa")
    items, chat = scoring_inputs(endpoints["text"], None, "causal", task, ["ctx one", "ctx two"], True, 8)
    assert [x["text"] for x in items] == ["ctx one", "ctx two"] and items[0]["ids"] is None and not chat
    items, chat = scoring_inputs(endpoints["chat"], None, "causal", task, ["ctx one"], True, 8)
    assert items[0]["messages"] == [{"role": "user", "content": "ctx one"}] and chat


def test_conversations_need_a_chat_endpoint_or_a_tokenizer(endpoints):
    doc = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "_where": "d:1"}
    fake = type("T", (), {"name": "mine"})()
    items, refs, chat = conversation_inputs(endpoints["chat"], None, "causal", fake, [doc], True, 8, 64)
    assert items[0]["messages"] == [{"role": "user", "content": "hi"}] and refs == [["yo"]] and chat
    with pytest.raises(TunevalError, match="conversations need a chat endpoint"):
        conversation_inputs(endpoints["text"], None, "causal", fake, [doc], True, 8, 64)
