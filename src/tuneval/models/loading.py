"""One loader for every way a user names a model.

Order: an embedded name, then a local directory (safetensors/bin, or a single .gguf file
inside), then a hub id. Causal and seq2seq models come back behind one small record so
the trainer and evaluator can branch on `arch` alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from tuneval.errors import TunevalError, first_line
from tuneval.model_args import ModelArgs
from tuneval.models.catalogue import EMBEDDED, ensure_embedded
from tuneval.runs import MODEL_CONFIG, PEFT_CONFIG, TOKENIZER_CONFIG


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    arch: str  # "causal" or "seq2seq"
    name: str  # what the user asked for
    path: str  # where the weights came from
    precision: str = "fp32"  # "bf16" or "fp32": the precision policy it was loaded under (see precision.py)
    args: ModelArgs = field(default_factory=ModelArgs)  # how it was loaded (model_args.py)
    dtype: str = "float32"  # the dtype the weights were loaded in: the policy's, or model_args.dtype
    merged: bool = False  # a trained adapter folded into these weights (methods/loading.load_result merge=True)

    @property
    def meta(self) -> dict:
        """What results.json and metrics.json record of how the model was loaded."""
        return {"precision": self.precision, "dtype": self.dtype, "revision": self.args.revision,
                "attn_implementation": self.args.attn_implementation, "merged": self.merged}


def _resolve(name_or_path: str) -> tuple[str, dict]:
    if name_or_path in EMBEDDED:
        return str(ensure_embedded(name_or_path)), {}
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        if (p / MODEL_CONFIG).is_file():
            return str(p), {}
        ggufs = sorted(p.glob("*.gguf"))
        if len(ggufs) == 1:
            return str(p), {"gguf_file": ggufs[0].name}
        if (p / PEFT_CONFIG).is_file():
            raise TunevalError(
                f"model '{name_or_path}' is a PEFT adapter, not a model: pass it as --adapter "
                "and the base model as --model"
            )
        raise TunevalError(f"model '{name_or_path}': directory has no config.json or single .gguf file")
    if p.is_file() and p.suffix == ".gguf":
        return str(p.parent), {"gguf_file": p.name}
    if p.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise TunevalError(f"model '{name_or_path}': no such model directory")
    return name_or_path, {}  # a hub id


def _needs_remote_code(name_or_path: str, e: Exception) -> None:
    """transformers refuses a model with its own code unless trust_remote_code: say so in one line."""
    if isinstance(e, ValueError) and "trust_remote_code" in str(e):
        raise TunevalError(f"model '{name_or_path}' needs custom code: pass --trust-remote-code "
                           "(or model_args.trust_remote_code: true) if you trust it") from None


def load_config(name_or_path: str, args: ModelArgs | None = None):
    """(config, arch, path, extra from_pretrained kwargs) without loading any weights.

    `extra` holds what every later from_pretrained of this model needs: a gguf file name and
    `args`' revision and trust_remote_code."""
    path, extra = _resolve(name_or_path)
    extra = {**extra, **(args or ModelArgs()).from_pretrained_kwargs()}
    try:
        config = AutoConfig.from_pretrained(path, **extra)
    except Exception as e:  # noqa: BLE001 (a local directory's config fails in many ways: each is about the directory)
        local = Path(path).is_dir()
        if not local and not isinstance(e, (OSError, ValueError)):
            raise
        _needs_remote_code(name_or_path, e)
        if local:  # a local model directory whose config.json transformers cannot read
            raise TunevalError(f"model directory '{name_or_path}': {Path(path) / extra.get('gguf_file', 'config.json')} "
                               f"is not a model transformers can read ({first_line(e)})") from None
        known = ", ".join(EMBEDDED)
        raise TunevalError(
            f"unknown model '{name_or_path}': not an embedded name ({known}), not a local "
            f"directory, and the hub could not provide it ({first_line(e)})"
        ) from None
    arch = "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"
    return config, arch, path, extra


def _tokenizer(name_or_path: str, path: str, extra: dict) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(path, **extra)
    except Exception as e:  # noqa: BLE001 (as in load_config: a local directory's tokenizer files are the user's)
        if not Path(path).is_dir():
            raise
        _needs_remote_code(name_or_path, e)
        raise TunevalError(f"model directory '{name_or_path}': its tokenizer cannot be loaded from {path} "
                           f"({first_line(e)}; are tokenizer.json / tokenizer_config.json there?)") from None


def load_tokenizer(name_or_path: str, args: ModelArgs | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer of a model (embedded name, directory or hub id) without its weights: an endpoint
    model's `tokenizer=` (models/endpoint.py). A directory of tokenizer files alone (what a GGUF export
    keeps beside its .gguf files) is a tokenizer too."""
    p = Path(name_or_path).expanduser()
    if p.is_dir() and not (p / MODEL_CONFIG).is_file() and (p / TOKENIZER_CONFIG).is_file():
        return _tokenizer(name_or_path, str(p), (args or ModelArgs()).from_pretrained_kwargs())
    _, _, path, extra = load_config(name_or_path, args)
    return _tokenizer(name_or_path, path, extra)


def default_device() -> str:
    """Where evaluation and serving put a model: the GPU when there is one, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(name_or_path: str, precision: str = "auto", device: str | None = None,
               args: ModelArgs | None = None, quantization: dict | None = None) -> LoadedModel:
    """Load weights and tokenizer in the precision policy's dtype; `device` None means `default_device()`.

    `args` (model_args.py) may name the dtype instead (`dtype: auto` keeps the policy's), a
    revision, trust_remote_code and the attention implementation.
    Training passes precision="fp32" (master weights; bf16 training is autocast over them;
    an explicit args.dtype still wins) and device="cpu": the Trainer (or accelerate, one GPU
    per process) places the model itself, and loading every rank's copy onto cuda:0 first
    would crowd one card. `quantization`: BitsAndBytesConfig options, to load the linear layers
    4-bit as they stream in (QLoRA; methods/qlora.py says when).
    """
    from tuneval.precision import resolve_precision

    precision = resolve_precision(precision)  # a bad value fails before anything loads
    args = args or ModelArgs()
    dtype = args.torch_dtype(precision)
    config, arch, path, extra = load_config(name_or_path, args)
    auto = AutoModelForSeq2SeqLM if arch == "seq2seq" else AutoModelForCausalLM
    tokenizer = _tokenizer(name_or_path, path, extra)  # first: a bad tokenizer fails before the weights load
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise TunevalError(f"model '{name_or_path}': its tokenizer has neither a pad nor an eos token "
                               f"(is tokenizer_config.json missing from {path}?)")
        tokenizer.pad_token = tokenizer.eos_token
    attn = {"attn_implementation": args.attn_implementation} if args.attn_implementation else {}
    device = device or default_device()
    try:
        if quantization is not None:
            from transformers import BitsAndBytesConfig

            model = auto.from_pretrained(path, dtype=dtype, quantization_config=BitsAndBytesConfig(
                load_in_4bit=True, **quantization), device_map=device, **attn, **extra)
        else:
            model = auto.from_pretrained(path, dtype=dtype, **attn, **extra).to(device)
    except ValueError as e:
        _needs_remote_code(name_or_path, e)
        raise
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model=model, tokenizer=tokenizer, arch=arch, name=name_or_path, path=path, precision=precision,
                       args=args, dtype=str(dtype).removeprefix("torch."))
