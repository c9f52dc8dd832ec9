"""What each prompt family generates from: one input per example, for a local model or an endpoint.

An input is {"text", "ids", "messages"}: the prompt as text (what results.json shows), its token
ids (what a local model, or a completions endpoint with a tokenizer, is given) and the chat
messages it was made from (what a chat endpoint is given; the server applies its own template).
With a tokenizer the ids are made exactly as training makes prompts (data/collate.py) or as
lm-eval makes a scoring prompt, so a local model and a server running the same weights see the
same tokens. An endpoint without a tokenizer gets the text as it is, uncut and without a
chat template (a chat endpoint: the messages).
"""

from __future__ import annotations

from typing import Any

from tuneval.data.collate import PromptFormatter
from tuneval.data.formats import generation_pair, has_tools
from tuneval.errors import TunevalError
from tuneval.evaluate.loglik import max_length
from tuneval.models.endpoint import Endpoint
from tuneval.tasks import Task


def _item(text: str, ids: list[int] | None, messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"text": text, "ids": ids, "messages": messages}


def _tokenless(model) -> bool:
    """An endpoint given text or messages, not ids: a chat endpoint, or one without a tokenizer."""
    return isinstance(model, Endpoint) and (model.api == "chat" or model.tokenizer is None)


def _serves_chat(model) -> bool:
    return isinstance(model, Endpoint) and model.api == "chat"


def scoring_inputs(model, tokenizer, arch: str, task: Task, contexts: list[str], chat_template: bool,
                   max_new_tokens: int) -> tuple[list[dict], bool]:
    """The scoring family's inputs: each context through the chat template when the tokenizer has
    one and the task allows it, cut from the left to fit the model; and whether a template was used."""
    if _tokenless(model):
        return [_item(ctx, None, [{"role": "user", "content": ctx}]) for ctx in contexts], _serves_chat(model)
    use_chat = chat_template and task.chat_template and arch == "causal" and bool(getattr(tokenizer, "chat_template", None))
    budget = max_length(model) - max_new_tokens if arch == "causal" else max_length(model)
    items = []
    for ctx in contexts:
        messages = [{"role": "user", "content": ctx}]
        if use_chat:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            enc = tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            text, enc = ctx, tokenizer(ctx)["input_ids"]
        items.append(_item(text, enc[-budget:], messages))
    return items, use_chat or _serves_chat(model)


def template_inputs(model, tokenizer, arch: str, task: Task, docs: list[dict], index: int, chat_template: bool,
                    max_new_tokens: int, max_seq_len: int) -> tuple[list[dict], list[list[str]], bool]:
    """The FLAN family's inputs, made exactly as training makes its prompts (the longest input field
    cut to fit), the rendered targets as references, and whether a chat template was used."""
    refs = [[task.templates.render(doc, index)[1]] for doc in docs]
    if tokenizer is None:  # an endpoint without a tokenizer: nothing to count tokens with, nothing cut
        items = []
        for doc in docs:
            instruction = task.templates.render(doc, index)[0]
            items.append(_item(instruction + "\n", None, [{"role": "user", "content": instruction}]))
        return items, refs, _serves_chat(model)
    fmt = PromptFormatter(tokenizer, arch, chat_template=chat_template, max_seq_len=max_seq_len)
    budget = fmt.generation_budget(max_new_tokens)
    items = []
    for doc in docs:
        instruction, enc = fmt.fit_prompt(task.templates, index, doc, budget, task.input_fields)
        items.append(_item(fmt.prompt_text(instruction), enc, [{"role": "user", "content": instruction}]))
    return items, refs, fmt.uses_chat or _serves_chat(model)


def conversation_inputs(model, tokenizer, arch: str, task: Task, docs: list[dict], chat_template: bool,
                        max_new_tokens: int, max_seq_len: int) -> tuple[list[dict], list[list[str]], bool]:
    """A data-format task's inputs: each conversation up to its last assistant turn, made as training
    makes them (data/collate.py); that turn is the reference."""
    pairs = [generation_pair(doc) for doc in docs]
    refs = [[reference] for _, reference in pairs]
    if _tokenless(model) and any(has_tools(doc) for doc in docs):
        raise TunevalError(f"task '{task.name}': conversations with tools are rendered by a chat template with "
                           "tools=, which an endpoint is not sent; give the endpoint tokenizer= in --model-args "
                           "(a completions endpoint) or evaluate the model locally")
    if tokenizer is None:
        if not _serves_chat(model):
            raise TunevalError(f"task '{task.name}': conversations need a chat endpoint (local-chat-completions) or "
                               "tokenizer= in --model-args to render them for a completions endpoint")
        shown = ["".join(f"{m['role']}: {m['content']}\n" for m in messages) for messages, _ in pairs]
        return [_item(text, None, messages) for text, (messages, _) in zip(shown, pairs)], refs, True
    fmt = PromptFormatter(tokenizer, arch, chat_template=chat_template, max_seq_len=max_seq_len)
    items = []
    for doc, (messages, _) in zip(docs, pairs):
        enc = fmt.conversation_prompt(messages, max_new_tokens, where=doc["_where"], tools=doc.get("tools"))
        items.append(_item(tokenizer.decode(enc), enc, messages))
    return items, refs, fmt.uses_chat or _serves_chat(model)
