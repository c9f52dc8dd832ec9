"""`tuneval chat`: talk to a model (and a trained adapter over it) in the terminal.

The point is to *look* at what a run learned, turn by turn, the way a user would meet it:
the whole conversation goes through the tokenizer's chat template every turn (the format
the instruct model and its fine-tunes were trained on), and tokens appear as they are
generated. Generation runs in a background thread feeding a `TextIteratorStreamer`, so
the main thread stays free to take Ctrl-C: that stops the reply in progress (a stopping
criterion watching an event ends `generate` at the next token) and the prompt comes back.

    session = open_chat(adapter="runs/dialogsum-lora", system="You are terse.")
    run_chat(session, input, write_stdout)   # or session.reply("hi", on_token=print)

The loop takes its input and output as functions, so tests drive it line by line.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from tuneval.errors import TunevalError, first_line
from tuneval.runs import PEFT_CONFIG, RunDir

DEFAULT_MODEL = "smollm2-135m-instruct"
PROMPT = "you> "
COMMANDS = "/reset clears the conversation, /exit (or Ctrl-D) quits"


class GenerationStopped(Exception):
    """Ctrl-C during a reply: generation was stopped; `partial` is what had been shown."""

    def __init__(self, partial: str):
        super().__init__("generation stopped")
        self.partial = partial


class _StopOnEvent(StoppingCriteria):
    """Ends `generate` at the next token once the event is set (Ctrl-C in the main thread)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)

    def __deepcopy__(self, memo):  # PEFT deep-copies generate kwargs for seq2seq prompt tuning; an Event cannot be
        return self


class _Streamer(TextIteratorStreamer):
    def __deepcopy__(self, memo):  # as above: its queue holds locks
        return self


def check_sampling(max_new_tokens: int, temperature: float, top_p: float) -> None:
    """Refuse bad generation settings before any model loads."""
    if max_new_tokens < 1:
        raise TunevalError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    if not temperature >= 0:
        raise TunevalError(f"--temperature must be 0 (greedy) or more, got {temperature}")
    if not 0 < top_p <= 1:
        raise TunevalError(f"--top-p must be in (0, 1], got {top_p}")


def context_window(model) -> int | None:
    """Tokens the model attends over (None when its config does not say: T5's relative positions)."""
    config = getattr(model, "config", None)
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class ChatSession:
    """One conversation with one model: the history, the prompt built from it, and streamed replies.

    `temperature` 0 is greedy (the same answer every time, and the one `generate` gives);
    above 0 samples with `top_p`. `context` caps prompt + reply tokens (default: the
    model's window); when the conversation outgrows it the oldest turns go, the system
    message stays. `on_notice` hears what the user should know (fallback prompts, trimming).
    """

    def __init__(self, model, tokenizer, arch: str, system: str | None = None, max_new_tokens: int = 256,
                 temperature: float = 0.0, top_p: float = 1.0, context: int | None = None,
                 on_notice: Callable[[str], None] | None = None, name: str = "model", adapter: str = "none",
                 dtype: str = "", precision: str = ""):
        check_sampling(max_new_tokens, temperature, top_p)
        self.model, self.tokenizer, self.arch = model.eval(), tokenizer, arch
        self.system, self.max_new_tokens, self.temperature, self.top_p = system, max_new_tokens, temperature, top_p
        self.context = context if context is not None else context_window(model)
        if self.context is not None and arch == "causal" and self.context <= max_new_tokens:
            raise TunevalError(f"--max-new-tokens {max_new_tokens} leaves no room for a prompt in the model's "
                               f"context of {self.context} tokens")
        self.on_notice = on_notice or (lambda text: print(text, file=sys.stderr, flush=True))
        self.name, self.adapter, self.dtype, self.precision = name, adapter, dtype, precision
        self.history: list[dict[str, str]] = []
        self.last_prompt = ""  # the text the last reply was generated from
        self.last_new_tokens = 0  # tokens the last reply generated (EOS included)
        self._told_fallback = False

    @property
    def uses_chat_template(self) -> bool:
        return self.arch == "causal" and bool(getattr(self.tokenizer, "chat_template", None))

    def header(self) -> str:
        dtype = f"{self.dtype} ({self.precision})" if self.precision else self.dtype or "?"
        return f"tuneval chat: {self.name} | adapter: {self.adapter} | {dtype} | Ctrl-D to quit, /reset to clear"

    def reset(self) -> None:
        self.history = []

    def messages(self, user_text: str, history: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
        """The conversation as the template sees it: system (if any), history, the new user turn."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + (self.history if history is None else history) + [{"role": "user", "content": user_text}]

    def render(self, messages: list[dict[str, str]]) -> tuple[str, list[int]]:
        """(prompt text, its ids): the chat template, else plain 'User:/Assistant:' lines (causal) or
        the last user text (seq2seq, which has no conversation format)."""
        tok = self.tokenizer
        if self.uses_chat_template:
            try:
                text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            except Exception as e:  # a template that refuses a role (some have no system turn) or their order
                raise TunevalError(f"the model's chat template refuses this conversation: {first_line(e)}") from None
            return text, tok(text, add_special_tokens=False)["input_ids"]
        if not self._told_fallback:
            self._told_fallback = True
            self.on_notice("note: seq2seq model: each reply sees only your last message (no chat format)"
                           if self.arch == "seq2seq" else
                           "note: the tokenizer has no chat template: using plain 'User: ... Assistant:' prompts")
        if self.arch == "seq2seq":
            text = messages[-1]["content"]
        else:
            text = "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages) + "\nAssistant:"
        return text, tok(text)["input_ids"]

    def _fit(self, user_text: str) -> tuple[str, list[int], list[dict[str, str]]]:
        """(prompt, its ids, the history it holds): the oldest turns dropped (never the system message)
        until prompt and reply fit the context. The session's history changes only once the reply is made."""
        budget = None if self.context is None else self.context - (self.max_new_tokens if self.arch == "causal" else 0)
        history = list(self.history)
        while True:
            text, ids = self.render(self.messages(user_text, history))
            if budget is None or len(ids) <= budget:
                break
            if not history or self.arch == "seq2seq":  # a seq2seq prompt holds no history to drop
                raise TunevalError(f"message too long: the prompt is {len(ids)} tokens, and the model's context of "
                                   f"{self.context} leaves {budget} beside --max-new-tokens {self.max_new_tokens}")
            history = history[2 if len(history) > 1 and history[1]["role"] == "assistant" else 1:]
        dropped = len(self.history) - len(history)
        if dropped:
            self.on_notice(f"note: the conversation outgrew the context ({self.context} tokens): "
                           f"dropped the oldest {dropped} message{'s' if dropped != 1 else ''}")
        return text, ids, history

    def _generation_config(self) -> GenerationConfig:
        gc = self.model.generation_config
        eos = gc.eos_token_id if gc.eos_token_id is not None else self.tokenizer.eos_token_id
        eos = sorted({e for e in (eos if isinstance(eos, list) else [eos]) if e is not None}
                     | ({self.tokenizer.eos_token_id} - {None}))
        sample = self.temperature > 0
        extra = dict(temperature=self.temperature, top_p=self.top_p, top_k=0) if sample else {}
        return GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=sample, num_beams=1, use_cache=True,
                                eos_token_id=eos or None, pad_token_id=self.tokenizer.pad_token_id,
                                bos_token_id=gc.bos_token_id,
                                decoder_start_token_id=getattr(gc, "decoder_start_token_id", None), **extra)

    def _start(self, ids: list[int], stop: threading.Event) -> tuple[_Streamer, threading.Thread, dict[str, Any]]:
        """Start `generate` in a daemon thread (a stuck one never holds the process open)."""
        streamer = _Streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        device = next(self.model.parameters()).device
        input_ids = torch.tensor([ids], device=device)
        kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), streamer=streamer,
                      generation_config=self._generation_config(),
                      stopping_criteria=StoppingCriteriaList([_StopOnEvent(stop)]))
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                with torch.inference_mode():
                    out = self.model.generate(**kwargs)
                outcome["new_tokens"] = out.shape[1] - (len(ids) if self.arch == "causal" else 1)
            except BaseException as e:  # handed to the main thread, which re-raises it
                outcome["error"] = e
                streamer.end()  # unblock the reader

        thread = threading.Thread(target=work, name="tuneval-chat-generate", daemon=True)
        thread.start()
        return streamer, thread, outcome

    def reply(self, user_text: str, on_token: Callable[[str], None] | None = None) -> str:
        """Answer `user_text` in the conversation so far; each piece of text goes to `on_token` as it is made.

        Returns the whole reply (the streamed pieces joined) and keeps the turn in the history.
        Ctrl-C while it streams stops generation and raises GenerationStopped; that turn is not kept.
        """
        text, ids, history = self._fit(user_text)
        self.last_prompt = text
        stop = threading.Event()
        streamer, thread, outcome = self._start(ids, stop)
        pieces: list[str] = []
        try:
            for piece in streamer:
                if piece:
                    pieces.append(piece)
                    (on_token or (lambda _: None))(piece)
        except BaseException as e:
            stop.set()
            thread.join()
            self.last_new_tokens = outcome.get("new_tokens", 0)
            if isinstance(e, KeyboardInterrupt):
                raise GenerationStopped("".join(pieces)) from None
            raise
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        self.last_new_tokens = outcome["new_tokens"]
        answer = "".join(pieces)
        self.history = history + [{"role": "user", "content": user_text}, {"role": "assistant", "content": answer.strip()}]
        return answer


def run_chat(session: ChatSession, read_line: Callable[[str], str], write: Callable[[str], None]) -> int:
    """The terminal loop: read a line, stream the reply, until /exit, Ctrl-D or Ctrl-C at the prompt.

    Returns the exit status (0). Ctrl-C during a reply stops only that reply.
    """
    while True:
        try:
            line = read_line(PROMPT)
        except (EOFError, KeyboardInterrupt):
            write("\n")
            return 0
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return 0
        if text == "/reset":
            session.reset()
            write("(conversation cleared)\n")
            continue
        if text.startswith("/"):
            write(f"unknown command {text}: {COMMANDS}\n")
            continue
        try:
            session.reply(text, write)
        except GenerationStopped:
            write("\n(stopped; this turn is not kept)\n")
            continue
        except KeyboardInterrupt:  # a second Ctrl-C while the first one was stopping generation
            write("\n")
            return 0
        except TunevalError as e:
            write(f"error: {e}\n")
            continue
        write("\n")


def run_once(session: ChatSession, prompt: str, write: Callable[[str], None]) -> int:
    """`--once`: stream one reply (and a newline) to `write`; 0, or 130 when Ctrl-C cut it short."""
    try:
        session.reply(prompt, write)
    except GenerationStopped:
        write("\n")
        return 130
    write("\n")
    return 0


def write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def read_terminal(prompt: str) -> str:
    """input() with line editing and history where the platform has readline."""
    try:
        import readline  # noqa: F401  (importing it is what turns editing on for input())
    except ImportError:
        pass
    return input(prompt)


def _adapter_root(adapter: Path) -> Path:
    """Where the result's files are: a run's root (an old run's adapter/ or model/), else the directory itself."""
    return RunDir(adapter).result_dir  # full weights or an adapter alike: RunDir finds them


def describe_adapter(adapter: str | Path | None) -> str:
    """'PATH (method)' for the header: the method from tuneval's marker, else PEFT's type, else the run's recipe."""
    if adapter is None:
        return "none"
    from tuneval.methods.common import read_marker

    run, where = RunDir(adapter), _adapter_root(Path(adapter))
    if run.has_model:
        return f"{where} ({(run.config() or {}).get('method') or 'full'}: full weights)"
    method = (read_marker(where) or {}).get("method")
    if method is None and (where / PEFT_CONFIG).is_file():
        try:
            method = json.loads((where / PEFT_CONFIG).read_text(encoding="utf-8")).get("peft_type")
        except (OSError, ValueError, AttributeError):
            method = None
    return f"{where} ({method or (run.config() or {}).get('method') or '?'})"


def base_of(adapter: str | Path) -> str:
    """The base model an adapter (or run) belongs to, for `--adapter RUN` without `--model`."""
    from tuneval.serve.adapters import AdapterDir
    from tuneval.serve.merge import base_model_of

    adapter = Path(adapter)
    if RunDir(adapter).has_model:
        return str(RunDir(adapter).result_dir)  # a full fine-tune is its own model
    where = _adapter_root(adapter)
    try:
        config = json.loads((where / PEFT_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    return base_model_of(adapter, AdapterDir(path=where.resolve(), config=config if isinstance(config, dict) else {}))


def open_chat(model: str | None = None, adapter: str | Path | None = None, *, precision: str = "auto",
              model_args=None, **session: Any) -> ChatSession:
    """Load `model` (default: the adapter's base, else DEFAULT_MODEL) with `adapter` over it; a ChatSession.

    `session` holds ChatSession's settings (system, max_new_tokens, temperature, top_p, on_notice, ...).
    Loading goes through `load_result`, the path `tuneval eval` scores through, so the chat
    talks to the very model the scores are about.
    """
    from tuneval.methods.loading import load_result

    check_sampling(session.get("max_new_tokens", 256), session.get("temperature", 0.0), session.get("top_p", 1.0))
    if adapter is not None and not Path(adapter).is_dir():
        raise TunevalError(f"--adapter {adapter}: no such directory")
    if model is None:
        model = base_of(adapter) if adapter is not None else DEFAULT_MODEL
    label = describe_adapter(adapter)
    loaded, net = load_result(model, adapter, precision=precision, args=model_args)
    return ChatSession(net, loaded.tokenizer, loaded.arch, name=loaded.name, adapter=label, dtype=loaded.dtype,
                       precision=loaded.precision, **session)
