"""What a trained soft prompt is near: each virtual token's nearest vocabulary tokens by cosine similarity.

Lester et al. (2021) found trained prompt vectors cluster near semantically related words
(and that many are near no word at all); this shows that for any prompt-tuning run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tuneval.errors import TunevalError
from tuneval.runs import CONFIG, TENSORS_FILE, RunDir


def _run_config(run: Path) -> tuple[RunDir, dict[str, Any]]:
    """The run directory (`run`, or its parent when given an old run's adapter/) and its saved recipe."""
    for candidate in (RunDir(run), RunDir(run.parent)):
        if candidate.config_file.is_file():
            return candidate, candidate.config() or {}
    raise TunevalError(f"{run}: not a run directory (no {CONFIG} there)")


def init_tokens(tokenizer, text: str | None, n: int) -> list[int] | None:
    """The token ids PEFT's TEXT initialisation used: the text's tokens, cut or repeated to n."""
    if not text:
        return None
    ids = tokenizer(text)["input_ids"]
    if not ids:
        return None
    return (ids * (-(-n // len(ids))))[:n]


def _show(tokenizer, token_id: int) -> str:
    text = tokenizer.decode([token_id])
    return repr(text)[1:-1] if text.strip() else repr(text)


def nearest_tokens(run: str | Path, model: str | None = None, top_k: int = 5) -> dict[str, Any]:
    from safetensors.torch import load_file

    from tuneval.models import load_model

    found, config = _run_config(Path(run))
    run_dir = found.path
    method = config.get("method")
    if method != "prompt_tuning":
        raise TunevalError(f"{run_dir}: inspect shows soft prompts, which only prompt_tuning runs have "
                           f"(this is a '{method}' run)")
    weights_file = found.result_dir / TENSORS_FILE
    if not weights_file.is_file():
        raise TunevalError(f"{run_dir}: no trained prompt at {weights_file} (did the run finish?)")
    prompts = load_file(str(weights_file))
    key = next((k for k in prompts if k.endswith("prompt_embeddings")), None)
    if key is None:
        raise TunevalError(f"{weights_file}: no prompt_embeddings tensor in it")
    prompt = prompts[key].float()
    loaded = load_model(model or config["model"], device="cpu")  # only its embedding table is read
    vocab = loaded.model.get_input_embeddings().weight.detach().float()
    if vocab.shape[1] != prompt.shape[1]:
        raise TunevalError(f"{run_dir}: the prompt has width {prompt.shape[1]} but model "
                           f"'{model or config['model']}' has embeddings of width {vocab.shape[1]}")
    tok = loaded.tokenizer
    settings = config.get("prompt_tuning") or {}
    n = int(settings.get("num_virtual_tokens", prompt.shape[0]))
    sims = torch.nn.functional.normalize(prompt, dim=1) @ torch.nn.functional.normalize(vocab, dim=1).T
    best = sims.topk(min(top_k, vocab.shape[0]), dim=1)
    text = settings.get("prompt_tuning_init_text") if str(settings.get("prompt_tuning_init", "")).upper() == "TEXT" else None
    init = init_tokens(tok, text, prompt.shape[0])
    rows = []
    for i in range(prompt.shape[0]):
        rows.append({
            "index": i,
            "part": ("encoder" if i < n else "decoder") if loaded.arch == "seq2seq" and prompt.shape[0] > n else None,
            "norm": round(float(prompt[i].norm()), 4),
            "init_token": _show(tok, init[i]) if init else None,
            "nearest": [{"token": _show(tok, int(t)), "id": int(t), "cosine": round(float(c), 4)}
                        for c, t in zip(best.values[i], best.indices[i])],
        })
    return {"run": str(run_dir), "model": model or config["model"], "num_virtual_tokens": n,
            "vocab_mean_norm": round(float(vocab.norm(dim=1).mean()), 4), "init_text": text, "tokens": rows}
