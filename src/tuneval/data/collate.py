"""From rendered prompts to token ids, and from token ids to padded batches.

Causal LMs see prompt+response as one sequence with the loss on the response only
(prompt positions are labelled -100). Seq2seq models see the prompt as encoder input and
the response as labels. Batches are padded to their own longest row (dynamic padding),
never to a fixed maximum: on DialogSum (~260 tokens a row) pad-to-512 wastes half the compute.

Conversations (chat records of tuneval.data.formats) go through the tokenizer's chat template
(with the record's `tools`) with the loss on every assistant turn the record trains (its text and
tool calls, never a tool's result); plain text (format `text`) is packed into blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tuneval.data.formats import trained_turns
from tuneval.errors import TunevalError, first_line

IGNORE_INDEX = -100
TemplateSet = Any  # tuneval.tasks.prompts.TemplateSet, a layer up: anything with render(row, index)


@dataclass
class PromptFormatter:
    tokenizer: Any
    arch: str  # "causal" | "seq2seq"
    chat_template: bool = True
    max_seq_len: int = 1024
    max_target_tokens: int = 128

    @property
    def uses_chat(self) -> bool:
        return self.chat_template and self.arch == "causal" and bool(getattr(self.tokenizer, "chat_template", None))

    def prompt_text(self, instruction: str) -> str:
        if self.uses_chat:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": instruction}], tokenize=False, add_generation_prompt=True
            )
        return instruction + "\n" if self.arch == "causal" else instruction

    def encode_prompt(self, instruction: str) -> list[int]:
        # A chat template writes its own special tokens; plain text gets the tokenizer's (BOS, or T5's </s>).
        return self.tokenizer(self.prompt_text(instruction), add_special_tokens=not self.uses_chat)["input_ids"]

    def encode_target(self, target: str) -> list[int]:
        """Response tokens then EOS, so the model learns to stop (T5's tokenizer would add </s> the same way)."""
        ids = self.tokenizer(target, add_special_tokens=False)["input_ids"][: self.max_target_tokens - 1]
        return ids + [self.tokenizer.eos_token_id]

    def fit_prompt(self, templates: TemplateSet, index: int, row: dict, budget: int, fields: list[str]) -> tuple[str, list[int]]:
        """Render template `index`; if over `budget` tokens, cut the longest input field to fit."""
        row = dict(row)
        for _ in range(4):
            instruction, _ = templates.render(row, index)
            ids = self.encode_prompt(instruction)
            over = len(ids) - budget
            if over <= 0:
                return instruction, ids
            longest = max(fields, key=lambda f: len(row[f]))
            field_ids = self.tokenizer(row[longest], add_special_tokens=False)["input_ids"]
            keep = max(0, len(field_ids) - over - 8)
            row[longest] = self.tokenizer.decode(field_ids[:keep], skip_special_tokens=True)
        return instruction, ids[:budget]

    def generation_budget(self, max_new_tokens: int) -> int:
        return self.max_seq_len - max_new_tokens if self.arch == "causal" else self.max_seq_len

    def training_example(self, templates: TemplateSet, index: int, row: dict, fields: list[str]) -> dict[str, list[int]]:
        _, target = templates.render(row, index)
        target_ids = self.encode_target(target)
        budget = self.max_seq_len - len(target_ids) if self.arch == "causal" else self.max_seq_len
        _, prompt_ids = self.fit_prompt(templates, index, row, budget, fields)
        if self.arch == "seq2seq":
            return {"input_ids": prompt_ids, "labels": target_ids}
        return {
            "input_ids": prompt_ids + target_ids,
            "labels": [IGNORE_INDEX] * len(prompt_ids) + target_ids,
        }


    # Conversations: a chat record's messages (tuneval.data.formats), and continued pre-training text.

    def record_example(self, record: dict[str, Any]) -> dict[str, list[int]]:
        """A chat record as a training example: its tools offered to the template, the loss on the
        assistant turns it trains (formats.trained_turns: not the prompt's, not those weighted 0)."""
        return self.conversation_example(record["messages"], where=record.get("_where", ""), tools=record.get("tools"),
                                         trained=trained_turns(record))

    def conversation_example(self, messages: list[dict[str, Any]], prompt_turns: int = 0, where: str = "", *,
                             tools: list[dict] | None = None, trained: list[int] | None = None) -> dict[str, list[int]]:
        """Causal: the whole conversation, labelled -100 everywhere but the tokens of every assistant
        turn from message `prompt_turns` on (or of the turns `trained` lists): its content and tool
        calls and the end-of-turn token the chat template writes after it (so the model learns to
        stop), not the whitespace after that token nor the next turn's header; never a tool's
        result. `tools` go to the chat template (`apply_chat_template(..., tools=tools)`). Seq2seq:
        the conversation before the last assistant turn as encoder input, that turn plus EOS as labels.

        Too long a conversation keeps its first max_seq_len tokens (TRL's keep_start): the system
        prompt and first turns stay, the turns past the limit are lost. A first assistant turn that
        starts past the limit leaves nothing labelled; callers skip such examples.
        """
        if trained is None:
            trained = [i for i, m in enumerate(messages) if m["role"] == "assistant" and i >= prompt_turns]
        self._check_tools(messages, tools, where)
        if self.arch == "seq2seq":
            labels = self.encode_target(messages[-1]["content"])
            return {"input_ids": self._encoder_ids(messages[:-1]),
                    "labels": labels if len(messages) - 1 in trained else [IGNORE_INDEX] * len(labels)}
        ids, spans = self._chat_spans(messages, where, tools, trained) if self.uses_chat else self._plain_spans(messages)
        labels = [IGNORE_INDEX] * len(ids)
        for turn, start, end in spans:
            if turn in trained:
                labels[start:end] = ids[start:end]
        return {"input_ids": ids[: self.max_seq_len], "labels": labels[: self.max_seq_len]}

    def conversation_prompt(self, messages: list[dict[str, Any]], max_new_tokens: int = 0, where: str = "",
                            tools: list[dict] | None = None) -> list[int]:
        """Token ids to generate the next assistant turn from (for generative evaluation the
        reference is the record's last assistant turn, left out of `messages`). Too long a prompt
        keeps its last tokens: the turn being answered and the generation prompt matter most."""
        if messages and messages[-1]["role"] == "assistant":
            raise ValueError("conversation_prompt takes the messages before the assistant turn to generate")
        self._check_tools(messages, tools, where)
        if self.arch == "seq2seq":
            return self._encoder_ids(messages)
        if self.uses_chat:
            ids = self._render_chat(messages, True, where, tools)
        else:
            ids = self._plain_spans(messages)[0] + (self._encode("\n") if messages else []) + self._encode("Assistant:")
        return ids[-self.generation_budget(max_new_tokens):]

    def _check_tools(self, messages: list[dict[str, Any]], tools: list[dict] | None, where: str) -> None:
        """Tools and tool calls need a chat template that writes them: one that renders the
        conversation differently with them than without, the called functions' names in it."""
        calls = [c["function"]["name"] for m in messages for c in m.get("tool_calls", [])]
        if not tools and not calls:
            return
        where = where or "conversation"
        if not self.uses_chat:
            why = "a seq2seq model" if self.arch == "seq2seq" else (
                f"{self._template_name()} has no chat template" if self.chat_template else "data.chat_template is false")
            raise TunevalError(f"{where}: tool calls and tools need a causal model's chat template that writes them, "
                               f"and {why}")
        text = self._render_text(messages, False, where, tools)
        if tools and text == self._render_text(messages, False, where, None):
            raise TunevalError(f"{where}: the chat template of {self._template_name()} cannot express tools: it "
                               "ignores the record's 'tools' list; use a model or chat template made for tool calling "
                               "(e.g. --chat-template qwen2.5)")
        bare = [{k: v for k, v in m.items() if k != "tool_calls"} for m in messages]
        missing = [name for name in calls if name not in text]
        if calls and (missing or text == self._render_text(bare, False, where, tools)):
            raise TunevalError(f"{where}: the chat template of {self._template_name()} cannot express tools: it does "
                               f"not write the assistant's tool calls ({(missing or calls)[0]!r} is not in the rendered "
                               "text); use a model or chat template made for tool calling (e.g. --chat-template "
                               "qwen2.5)")

    def text_examples(self, texts: list[str], block_size: int | None = None) -> list[dict[str, list[int]]]:
        """Continued pre-training: every text tokenized and ended with EOS, all joined and cut into
        blocks of `block_size` tokens (default max_seq_len), labels = input_ids, as Hugging Face's
        run_clm groups texts; the last, shorter block is kept (batches are padded dynamically)."""
        if self.arch != "causal":
            raise TunevalError("format 'text' (continued pre-training) needs a causal language model, "
                               "not a seq2seq one")
        size = block_size or self.max_seq_len
        eos = self.tokenizer.eos_token_id
        stream: list[int] = []
        for text in texts:
            ids = self.tokenizer(text, add_special_tokens=True)["input_ids"]
            stream += ids if ids and ids[-1] == eos else ids + [eos]
        return [{"input_ids": stream[i:i + size], "labels": stream[i:i + size]} for i in range(0, len(stream), size)]

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _render_text(self, messages: list[dict[str, Any]], generation_prompt: bool, where: str,
                     tools: list[dict] | None = None) -> str:
        try:
            return self.tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False,
                                                      add_generation_prompt=generation_prompt)
        except Exception as e:  # jinja's raise_exception ("roles must alternate ..."), a template bug
            raise TunevalError(f"{where or 'conversation'}: the chat template of {self._template_name()} refused it "
                               f"({first_line(e)}); train with data.chat_template: false for plain "
                               "User:/Assistant: text") from None

    def _render_chat(self, messages: list[dict[str, Any]], generation_prompt: bool, where: str,
                     tools: list[dict] | None = None) -> list[int]:
        """The chat template's text, tokenized without added specials (the template writes its own)."""
        return self._encode(self._render_text(messages, generation_prompt, where, tools))

    def _template_name(self) -> str:
        return getattr(self.tokenizer, "name_or_path", "") or type(self.tokenizer).__name__

    def _chat_spans(self, messages: list[dict[str, Any]], where: str, tools: list[dict] | None,
                    trained: list[int]) -> tuple[list[int], list[tuple[int, int, int]]]:
        """Token ids of the conversation and (message index, start, end) of each trained assistant turn.

        Turn i spans from the end of messages[:i] rendered with the generation prompt to the end
        of messages[:i+1]. That holds only if each rendering is a prefix of the whole one; some
        templates (e.g. those dropping earlier turns' reasoning) render history differently, and
        then no span would be right, so that is an error naming the template.
        """
        ids = self._render_chat(messages, False, where, tools)
        spans = []
        for i in trained:
            before = self._render_chat(messages[:i], True, where, tools)
            through = self._render_chat(messages[: i + 1], False, where, tools)
            if not (len(before) < len(through) and ids[: len(through)] == through and through[: len(before)] == before):
                raise TunevalError(f"{where or 'conversation'}: the chat template of {self._template_name()} does not "
                                   f"render the conversation up to turn {i} as a prefix of the whole, so the assistant "
                                   "tokens cannot be located; train with data.chat_template: false for plain "
                                   "User:/Assistant: text")
            spans.append((i, len(before), self._turn_end(through, len(before))))
        return ids, spans

    def _turn_end(self, ids: list[int], start: int) -> int:
        """End of an assistant turn's labels: after its end-of-turn token, leaving out the newline a
        template such as ChatML writes after `<|im_end|>` (the next turn's, not the model's, to write)."""
        special = set(self.tokenizer.all_special_ids) | set(getattr(self.tokenizer, "added_tokens_decoder", {}))
        end = len(ids)
        while end > start and ids[end - 1] not in special and not self.tokenizer.decode([ids[end - 1]]).strip():
            end -= 1
        return end if end > start and ids[end - 1] in special else len(ids)

    def _plain_spans(self, messages: list[dict[str, str]]) -> tuple[list[int], list[tuple[int, int, int]]]:
        """Without a chat template: `User: ...` / `Assistant: ...` lines, each assistant turn ending
        in EOS (what the model learns to stop with), tokenized piece by piece so the prompt for
        generation is exactly a prefix of the training sequence."""
        eos = self.tokenizer.eos_token_id
        ids = [t for t in self.tokenizer("", add_special_tokens=True)["input_ids"] if t != eos]  # BOS, if any
        spans = []
        for i, message in enumerate(messages):
            if i:
                ids += self._encode("\n")
            if message["role"] == "assistant":
                ids += self._encode("Assistant:")
                start = len(ids)
                ids += self._encode(" " + message["content"]) + [eos]
                spans.append((i, start, len(ids)))
            else:
                ids += self._encode(f"{message['role'].capitalize()}: {message['content']}")
        return ids, spans

    def _encoder_ids(self, context: list[dict[str, str]]) -> list[int]:
        """A seq2seq model's input: a lone user turn as it is (as a single-turn task prompt would be),
        else `Role: content` lines. Too long keeps the end, the turn being answered."""
        if len(context) == 1 and context[0]["role"] == "user":
            text = context[0]["content"]
        else:
            text = "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in context)
        return self.tokenizer(text, add_special_tokens=True)["input_ids"][-self.max_seq_len:]


@dataclass
class DataCollator:
    """Pads a list of examples to the longest in the batch (right side for training)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def _pad(self, seqs: list[list[int]], value: int) -> torch.Tensor:
        longest = max(len(s) for s in seqs)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        return torch.tensor([s + [value] * (longest - len(s)) for s in seqs], dtype=torch.long)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [f["input_ids"] for f in features]
        batch = {
            "input_ids": self._pad(ids, self.pad_token_id),
            "attention_mask": self._pad([[1] * len(s) for s in ids], 0),
        }
        if "labels" in features[0]:
            batch["labels"] = self._pad([f["labels"] for f in features], IGNORE_INDEX)
        return batch
