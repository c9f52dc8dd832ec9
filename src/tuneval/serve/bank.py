"""An adapter bank: one frozen base model, many PEFT adapters, switched per row.

Why a bank and not one PeftModel: PEFT keeps one adapter *type* per PeftModel ("Cannot
combine adapters with different peft types"). The bank keeps one PeftModel per type (a
"slot": LoRA, IA3, prompt tuning, ...), every slot wrapping the *same* base object, so the
base weights are in memory once. Injecting tuners (LoRA, IA3) wrap the base's linear
layers in place; prompt-learning tuners only add inputs. When one slot runs, the layers of
every other injecting slot are switched off, so each row sees exactly its own adapter.

Mixed batches: LoRA rows (and bare-base rows, PEFT's "__base__") go through one
`generate(adapter_names=[...])` call, PEFT's own mixed-batch path. Adapters PEFT cannot mix
in one batch (prompt tuning, IA3, DoRA) run as one sub-batch per adapter inside the same
`generate` call of the bank; results always come back in row order. Greedy rows answer
exactly as they would alone (left padding is masked; tested).

Log-probabilities (scoring.py): a row may ask for its generated tokens' log-probs, and a
causal row for its prompt's too (the server's `echo` + `logprobs`); prompts are scored in one
forward pass per adapter group, planned like generation, before anything is generated.

Everything is guarded by one re-entrant lock: a load, unload or switch waits for the
batch in flight, and never sees a half-configured model.
"""

from __future__ import annotations

import itertools
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from tuneval.errors import TunevalError, first_line
from tuneval.models import LoadedModel
from tuneval.models.templates import saved_template
from tuneval.runs import PEFT_CONFIG
from tuneval.serve.adapters import check_adapter_dir, check_name, resolve_under_root
from tuneval.serve.scoring import StepLogprobs, TokenLogprob, chunks, pick, score_prompts

BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch


class UnknownAdapter(TunevalError):
    """A name that is not loaded (the server answers 404)."""


@dataclass(frozen=True)
class AdapterInfo:
    name: str  # what users call it
    key: str  # the name inside PEFT (bank0, bank1, ...): free of dots, and of clashes with PEFT's prefixes
    peft_type: str
    path: str
    mixable: bool  # can share a generate call with other adapters (LoRA without DoRA)
    prompt_learning: bool
    params: int
    loaded_at: float
    chat_template: str | None = None  # the one the run trained with and saved (models/templates.py), else the base's


@dataclass
class Row:
    """One prompt to complete. `adapter=None` is the bare base model.

    `logprobs` (k, None: none) asks for each generated token's log-probability and the k most
    likely tokens at its step; `score_prompt` asks the same for the prompt's tokens (causal models),
    and with `max_new_tokens=0` the row is only scored.
    """

    prompt: list[int]
    adapter: str | None = None
    max_new_tokens: int = 16
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    on_text: Callable[[str], None] | None = None  # streaming: called with each new piece of text
    cancelled: threading.Event | None = None  # set it to stop the row early (client went away)
    logprobs: int | None = None
    score_prompt: bool = False


@dataclass
class Output:
    text: str
    tokens: list[int]  # generated ids, the EOS included when there was one
    finish_reason: str  # "stop" (EOS or a stop string), "length", "cancelled"
    token_logprobs: list[TokenLogprob] | None = None  # one per token in `tokens`, when the row asked
    prompt_logprobs: list[TokenLogprob] | None = None  # one per prompt token after the first, when asked


@dataclass
class _Slot:
    model: Any  # a PeftModel wrapping the bank's base
    prompt_learning: bool
    layers: list | None = None  # the slot's tuner layers inside the base, cached


class _RowState:
    """Per-row bookkeeping inside one generate call: tokens, stop strings, streaming text."""

    def __init__(self, row: Row, tokenizer, eos: set[int]):
        self.row, self.tokenizer, self.eos = row, tokenizer, eos
        self.tokens: list[int] = []
        self.text = ""
        self.sent = 0
        self.finish: str | None = None
        self.live = bool(row.on_text or row.stop)  # decode every step only when someone needs it
        self.logprobs: list[TokenLogprob] | None = [] if row.logprobs is not None else None

    def push(self, token: int, entry: TokenLogprob | None = None) -> None:
        if self.finish:
            return
        self.tokens.append(token)
        if self.logprobs is not None and entry is not None:
            self.logprobs.append(entry.first(self.row.logprobs or 0))
        if token in self.eos:
            self.finish = "stop"
        elif self.row.cancelled is not None and self.row.cancelled.is_set():
            self.finish = "cancelled"
        elif len(self.tokens) >= self.row.max_new_tokens:
            self.finish = "length"
        if self.live:
            self._update_text()

    def _content(self) -> list[int]:
        return self.tokens[:-1] if self.tokens and self.tokens[-1] in self.eos else self.tokens

    def _update_text(self) -> None:
        text = self.tokenizer.decode(self._content(), skip_special_tokens=True)
        hold = 0
        for s in self.row.stop:
            at = text.find(s)
            if at >= 0:
                text, self.finish = text[:at], "stop"
        if not self.finish:
            # hold back what may be the start of a stop string, or half of a UTF-8 character
            for s in self.row.stop:
                hold = max(hold, max((k for k in range(1, len(s)) if text.endswith(s[:k])), default=0))
            if text.endswith("\ufffd"):
                hold = max(hold, 1)
        self.text = text
        upto = len(text) - hold
        if self.row.on_text and upto > self.sent:
            self.row.on_text(text[self.sent:upto])
            self.sent = upto

    def output(self) -> Output:
        if not self.live:
            self.text = self.tokenizer.decode(self._content(), skip_special_tokens=True)
        return Output(text=self.text, tokens=list(self.tokens), finish_reason=self.finish or "length",
                      token_logprobs=self.logprobs)


class _PerRow(StoppingCriteria):
    """Feeds each step's new token (and, when asked, its log-probs) to its row; a finished row stops."""

    def __init__(self, states: list[_RowState], steps: StepLogprobs | None = None):
        self.states, self.steps = states, steps

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        last = input_ids[:, -1].tolist()
        entries: list = [None] * len(last)
        if self.steps is not None and self.steps.last is not None:
            entries = pick(self.steps.last, last, max(s.row.logprobs or 0 for s in self.states))
        for state, token, entry in zip(self.states, last, entries):
            state.push(token, entry)
        return torch.tensor([s.finish is not None for s in self.states], device=input_ids.device)

    def __deepcopy__(self, memo):  # PEFT deep-copies generate kwargs for seq2seq prompt tuning
        return self


class AdapterBank:
    """Load a base once; load, switch, unload adapters by name; generate with one adapter per row."""

    def __init__(self, loaded: LoadedModel, base_name: str | None = None):
        self.loaded = loaded
        self.base = loaded.model.eval()
        self.tokenizer = loaded.tokenizer
        self.arch = loaded.arch
        self.base_name = base_name or loaded.name
        self.lock = threading.RLock()
        self._slots: dict[str, _Slot] = {}
        self._adapters: dict[str, AdapterInfo] = {}
        self._keys = (f"bank{i}" for i in itertools.count())
        self._active: str | None = None
        self.last_plan: list[tuple[str, int]] = []  # what the last generate ran: (group, rows)
        eos = self.base.generation_config.eos_token_id
        eos = self.tokenizer.eos_token_id if eos is None else eos
        self.eos_ids = {e for e in (eos if isinstance(eos, list) else [eos]) if e is not None}

    # --- the catalogue -------------------------------------------------------------------

    def names(self) -> list[str]:
        with self.lock:
            return list(self._adapters)

    def catalogue(self) -> list[AdapterInfo]:
        """A snapshot without the lock, so a server can list adapters while a batch runs."""
        return list(self._adapters.copy().values())

    def info(self, name: str) -> AdapterInfo:
        with self.lock:
            if name not in self._adapters:
                raise UnknownAdapter(f"unknown adapter '{name}' (loaded: {', '.join(self._adapters) or 'none'})")
            return self._adapters[name]

    def __contains__(self, name: object) -> bool:
        return name in self._adapters

    def load(self, name: str, path: str | Path, root: str | Path | None = None) -> AdapterInfo:
        """Load an adapter (or a run directory's adapter) under `name`.

        With `root`, `path` is untrusted and must stay under it (see adapters.py).
        """
        from peft.auto import MODEL_TYPE_TO_PEFT_MODEL_MAPPING
        from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

        check_name(name)
        if name in (self.base_name, BASE):
            raise TunevalError(f"adapter name '{name}' is taken by the base model")
        real = resolve_under_root(str(path), root) if root is not None else path
        vetted = check_adapter_dir(real)
        template = saved_template(vetted.path)  # a run's own chat template: a bad one fails before anything loads
        with self.lock:
            if name in self._adapters:
                raise TunevalError(f"adapter '{name}' is already loaded; unload it first")
            try:
                config = PEFT_TYPE_TO_CONFIG_MAPPING[vetted.peft_type].from_pretrained(str(vetted.path))
            except Exception as e:  # unknown peft_type, bad fields
                raise TunevalError(f"adapter '{path}': unreadable {PEFT_CONFIG} ({first_line(e)})") from None
            peft_type = str(config.peft_type.value if hasattr(config.peft_type, "value") else config.peft_type)
            task = "SEQ_2_SEQ_LM" if self.arch == "seq2seq" else "CAUSAL_LM"
            config.task_type = task
            config.inference_mode = True
            key = next(self._keys)
            slot = self._slots.get(peft_type)
            try:
                if slot is None:
                    # Build the slot around the shared base first, so a failed weight load can be undone.
                    model = MODEL_TYPE_TO_PEFT_MODEL_MAPPING[task](self.base, config, adapter_name=key)
                    slot = self._slots[peft_type] = _Slot(model, prompt_learning=config.is_prompt_learning)
                result = slot.model.load_adapter(str(vetted.path), adapter_name=key)
                if result.missing_keys:
                    raise TunevalError(f"weights missing for {len(result.missing_keys)} tensors, "
                                       f"e.g. {result.missing_keys[0]}")
            except Exception as e:
                self._drop(slot, key)
                raise TunevalError(f"adapter '{name}' does not fit base '{self.base_name}': {first_line(e)}") from None
            slot.layers = None
            slot.model.eval()
            params = sum(p.numel() for n, p in slot.model.named_parameters() if f".{key}." in n or n.endswith(f".{key}"))
            info = AdapterInfo(
                name=name, key=key, peft_type=peft_type, path=str(vetted.path),
                mixable=peft_type == "LORA" and not getattr(config, "use_dora", False),
                prompt_learning=config.is_prompt_learning, params=params, loaded_at=time.time(),
                chat_template=template,
            )
            self._adapters[name] = info
            self._activate(self._active)
            return info

    def unload(self, name: str) -> None:
        with self.lock:
            info = self.info(name)
            self._drop(self._slots[info.peft_type], info.key)
            del self._adapters[name]
            if self._active == name:
                self._active = None
            self._activate(self._active)

    def _drop(self, slot: _Slot | None, key: str) -> None:
        if slot is None or key not in slot.model.peft_config:
            return
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "adapter X was active, now Y": the bank picks per call
            slot.model.delete_adapter(key)
        slot.layers = None

    # --- switching -------------------------------------------------------------------------

    def set_active(self, name: str | None) -> None:
        """Make `name` (None: the bare base) the adapter that `bank.model` runs."""
        with self.lock:
            if name is not None:
                self.info(name)
            self._active = name
            self._activate(name)

    @property
    def active(self) -> str | None:
        return self._active

    @property
    def model(self) -> torch.nn.Module:
        """The model with the active adapter alone switched on (a PeftModel, or the base)."""
        with self.lock:
            return self._activate(self._active)

    @contextmanager
    def use(self, name: str | None) -> Iterator[torch.nn.Module]:
        """Hold the lock and run `name` alone inside the block; the active adapter comes back after."""
        with self.lock:
            try:
                yield self._activate(name)
            finally:
                self._activate(self._active)

    def _layers(self, slot: _Slot) -> list:
        from peft.tuners.tuners_utils import BaseTunerLayer

        if slot.layers is None:
            prefix = slot.model.base_model.prefix
            slot.layers = [m for m in self.base.modules() if isinstance(m, BaseTunerLayer)
                           and m.adapter_layer_names and m.adapter_layer_names[0].startswith(prefix)]
        return slot.layers

    def _enable_only(self, peft_type: str | None) -> None:
        """Switch on the injected layers of one slot (None: no slot) and off those of all others."""
        for t, slot in self._slots.items():
            if slot.prompt_learning:
                continue
            on = t == peft_type
            for layer in self._layers(slot):
                if layer.disable_adapters == on:
                    layer.enable_adapters(on)

    def _activate(self, name: str | None) -> torch.nn.Module:
        if name is None or name not in self._adapters:
            self._enable_only(None)
            return self.base
        info = self._adapters[name]
        slot = self._slots[info.peft_type]
        self._enable_only(None if info.prompt_learning else info.peft_type)
        slot.model.set_adapter(info.key, inference_mode=True)
        return slot.model

    # --- generation ------------------------------------------------------------------------

    def generate(self, rows: list[Row], batch_size: int | None = None) -> list[Output]:
        """Complete every row with its own adapter; outputs in row order.

        Rows are grouped by sampling settings, then LoRA and base rows share one PEFT
        mixed-batch call; every other adapter gets a sub-batch of its own. Rows that score their
        prompt go first through one forward pass per group, planned the same way; a greedy row
        that wants one token more takes it from that pass rather than from a `generate` call.
        """
        with self.lock, torch.inference_mode():
            for r in rows:
                if r.adapter is not None and r.adapter not in self._adapters:
                    raise UnknownAdapter(f"unknown adapter '{r.adapter}' (loaded: {', '.join(self._adapters) or 'none'})")
                if not r.prompt or r.max_new_tokens < 0:
                    raise TunevalError("each row needs a non-empty prompt and max_new_tokens >= 0")
            outputs: list[Output | None] = [None] * len(rows)
            self.last_plan = []
            try:
                scored = self._score(rows, [i for i, r in enumerate(rows) if r.score_prompt])
                todo = []
                for i, r in enumerate(rows):
                    outputs[i] = self._without_generate(r, scored.get(i))
                    if outputs[i] is None:
                        todo.append(i)
                self._generate(rows, todo, outputs, batch_size)
                for i, (entries, _) in scored.items():
                    outputs[i].prompt_logprobs = entries  # type: ignore[union-attr]
            finally:
                self._activate(self._active)
            return outputs  # type: ignore[return-value]

    def _generate(self, rows: list[Row], todo: list[int], outputs: list, batch_size: int | None) -> None:
        """Fill `outputs[i]` for each row index in `todo` through `generate` calls, as planned."""
        sub = [rows[i] for i in todo]
        for label, model, idx, names in self._plan(sub):
            step = batch_size or len(idx)
            for s in range(0, len(idx), step):
                part = idx[s:s + step]
                self.last_plan.append((label, len(part)))
                outs = self._run(model(), [sub[i] for i in part], [names[i] for i in part] if names else None)
                for i, o in zip(part, outs):
                    outputs[todo[i]] = o

    def _score(self, rows: list[Row], idx: list[int]) -> dict[int, tuple[list[TokenLogprob], torch.Tensor]]:
        """Score the prompts of rows `idx` (scoring.score_prompts), each through its own adapter."""
        if not idx:
            return {}
        if self.arch != "causal":
            raise TunevalError("scoring a prompt (echo with logprobs) needs a decoder-only model; this one is seq2seq")
        sub = [rows[i] for i in idx]
        vocabulary = int(getattr(self.base.config, "vocab_size", 0) or 50_000)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        scored = {}
        for label, model, part, names in self._plan(sub):
            for group in chunks([len(sub[j].prompt) for j in part], vocabulary):
                these = [part[g] for g in group]
                self.last_plan.append((f"score:{label}", len(these)))
                results = score_prompts(model(), [sub[j].prompt for j in these], [sub[j].logprobs or 0 for j in these],
                                        pad, [names[j] for j in these] if names else None)
                for j, result in zip(these, results):
                    scored[idx[j]] = result
        return scored

    def _without_generate(self, row: Row, scored: tuple[list[TokenLogprob], torch.Tensor] | None) -> Output | None:
        """The output of a row that needs no `generate` call (None: it does): nothing to generate, or
        one greedy token, read off the distribution its prompt's scoring pass ended on."""
        if row.max_new_tokens == 0:
            return Output(text="", tokens=[], finish_reason="length", token_logprobs=[] if row.logprobs is not None else None)
        if scored is None or row.max_new_tokens != 1 or row.temperature > 0:
            return None
        after = scored[1]
        token = int(after.argmax())
        state = _RowState(row, self.tokenizer, self.eos_ids)
        state.push(token, pick(after[None], [token], row.logprobs or 0)[0])
        return state.output()

    def _plan(self, rows: list[Row]):
        """[(label, model factory, row indices, PEFT adapter_names by row or None)]."""
        by_sampling: dict[tuple, list[int]] = {}
        for i, r in enumerate(rows):
            key = (0.0, 1.0) if r.temperature <= 0 else (float(r.temperature), float(r.top_p))
            by_sampling.setdefault(key, []).append(i)
        plan = []
        for idx in by_sampling.values():
            shared = [i for i in idx if rows[i].adapter is None or self._adapters[rows[i].adapter].mixable]
            in_shared = set(shared)
            loras = {rows[i].adapter for i in shared} - {None}
            if shared and not loras:
                plan.append(("base", lambda: self._activate(None), shared, None))
            elif len(loras) == 1 and all(rows[i].adapter is not None for i in shared):
                (name,) = loras
                plan.append((f"adapter:{name}", lambda n=name: self._activate(n), shared, None))
            elif shared:
                names = {i: self._adapters[rows[i].adapter].key if rows[i].adapter else BASE for i in shared}
                label = "mixed:" + "+".join(sorted(loras)) + ("+base" if any(rows[i].adapter is None for i in shared) else "")
                plan.append((label, lambda n=min(loras): self._mixed(n), shared, names))
            alone: dict[tuple[str, int], list[int]] = {}
            for i in idx:
                if i not in in_shared:
                    name = rows[i].adapter
                    # PEFT drops position_ids for prompt learning, so a left-padded row would see shifted
                    # positions: causal prompt-learning rows only batch with rows of their own length.
                    length = len(rows[i].prompt) if self.arch == "causal" and self._adapters[name].prompt_learning else 0
                    alone.setdefault((name, length), []).append(i)
            for (name, _), part in alone.items():
                plan.append((f"adapter:{name}", lambda n=name: self._activate(n), part, None))
        return plan

    def _mixed(self, any_lora: str) -> torch.nn.Module:
        """The LoRA slot, ready for adapter_names (PEFT still wants *an* active adapter that exists)."""
        return self._activate(any_lora)

    def _run(self, model, rows: list[Row], adapter_names: list[str] | None) -> list[Output]:
        pad = self.tokenizer.pad_token_id
        longest = max(len(r.prompt) for r in rows)
        ids, mask = [], []
        for r in rows:
            gap = [pad] * (longest - len(r.prompt))
            causal = self.arch == "causal"  # causal models pad on the left, so every row's next token lines up
            ids.append(gap + r.prompt if causal else r.prompt + gap)
            mask.append([0] * len(gap) + [1] * len(r.prompt) if causal else [1] * len(r.prompt) + [0] * len(gap))
        device = next(self.base.parameters()).device
        states = [_RowState(r, self.tokenizer, self.eos_ids) for r in rows]
        steps = StepLogprobs() if any(r.logprobs is not None for r in rows) else None
        kwargs: dict[str, Any] = dict(
            input_ids=torch.tensor(ids, device=device),
            attention_mask=torch.tensor(mask, device=device),
            generation_config=self._config(rows),
            stopping_criteria=StoppingCriteriaList([_PerRow(states, steps)]),
        )
        if steps is not None:
            kwargs["logits_processor"] = LogitsProcessorList([steps])
        if adapter_names is not None:
            kwargs["adapter_names"] = adapter_names
        model.generate(**kwargs)
        return [s.output() for s in states]

    def _config(self, rows: list[Row]) -> GenerationConfig:
        gc = self.base.generation_config
        sample = rows[0].temperature > 0
        extra = dict(temperature=rows[0].temperature, top_p=rows[0].top_p, top_k=0) if sample else {}
        return GenerationConfig(
            max_new_tokens=max(r.max_new_tokens for r in rows),
            do_sample=sample,
            num_beams=1,
            use_cache=True,
            eos_token_id=sorted(self.eos_ids) or None,
            pad_token_id=self.tokenizer.pad_token_id,
            bos_token_id=gc.bos_token_id,
            decoder_start_token_id=getattr(gc, "decoder_start_token_id", None),
            **extra,
        )
