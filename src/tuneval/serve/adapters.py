"""Finding and vetting adapter directories before PEFT ever opens them.

An adapter directory is untrusted input once a server can be asked to load one, so the
checks here run before any file is read by PEFT or torch:

- a *name* is a short printable label (it travels in URLs and JSON), never a path;
- a *path* sent over HTTP must stay under the operator's `--adapters-root`: relative,
  no `..`, and still inside the root after every symlink is resolved;
- weights must be `adapter_model.safetensors`. A directory holding only
  `adapter_model.bin` (a pickle: loading it can run arbitrary code) is refused, never
  "converted";
- initialisations that rewrite the *base* weights while an adapter is loaded (PiSSA,
  OLoRA, LoftQ, CorDA, EVA) are refused: in a bank they would corrupt every other adapter.

A run directory written by `tuneval train` works wherever an adapter directory does.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from tuneval.errors import TunevalError
from tuneval.runs import MARKER, RunDir
from tuneval.runs import PEFT_CONFIG as CONFIG
from tuneval.runs import TENSORS_FILE as WEIGHTS

PICKLES = ("adapter_model.bin", "adapter_model.pt", "adapter_model.pth", "adapter_model.pkl")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
# LoRA initialisations that change the base model's own weights when the adapter is added.
BASE_REWRITING_INITS = ("pissa", "olora", "loftq", "corda", "eva")


@dataclass(frozen=True)
class AdapterDir:
    path: Path  # the real directory (symlinks resolved) that holds CONFIG and WEIGHTS
    config: dict[str, Any]  # adapter_config.json as plain JSON

    @property
    def peft_type(self) -> str:
        return str(self.config.get("peft_type", "?"))


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or "//" in name or name.endswith("/"):
        raise TunevalError(
            f"adapter name {name!r}: use 1-128 characters from letters, digits and . _ : / - "
            "(starting with a letter or digit)"
        )
    return name


def _marker_method(p: Path) -> str | None:
    try:
        return str(json.loads((p / MARKER).read_text(encoding="utf-8")).get("method") or "?")
    except (OSError, ValueError, AttributeError):
        return None


def _inside(child: Path, root: Path) -> bool:
    return child == root or root in child.parents


def resolve_under_root(path: str, root: str | os.PathLike) -> Path:
    """The real directory `root/path`, or a TunevalError if `path` tries to leave the root.

    Refused before touching the disk: absolute paths (POSIX or Windows), any `..` part,
    NUL bytes. Refused after resolving: anything whose real location is outside the root
    (a symlink pointing out), and files inside the adapter that are symlinks out.
    """
    if not isinstance(path, str) or not path.strip():
        raise TunevalError("adapter path: must be a non-empty relative path under the adapters root")
    if "\x00" in path:
        raise TunevalError("adapter path: contains a NUL byte")
    posix, windows = PurePosixPath(path), PureWindowsPath(path)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or path.startswith(("~", "\\")):
        raise TunevalError(f"adapter path {path!r}: absolute paths are refused; give a path relative to the adapters root")
    if ".." in posix.parts or ".." in windows.parts:
        raise TunevalError(f"adapter path {path!r}: '..' is refused; the path must stay under the adapters root")
    real_root = Path(root).resolve(strict=True)
    candidate = real_root / posix
    try:
        real = candidate.resolve(strict=True)
    except (FileNotFoundError, RuntimeError, OSError):
        raise TunevalError(f"adapter path {path!r}: no such directory under the adapters root") from None
    if not _inside(real, real_root):
        raise TunevalError(f"adapter path {path!r}: resolves outside the adapters root (symlink?); refused")
    real = RunDir.adapter_files(real).resolve(strict=True)
    if not _inside(real, real_root):
        raise TunevalError(f"adapter path {path!r}: its adapter files resolve outside the adapters root; refused")
    for name in (CONFIG, WEIGHTS):
        f = real / name
        if f.exists() and not _inside(f.resolve(), real_root):
            raise TunevalError(f"adapter path {path!r}: {name} is a link to outside the adapters root; refused")
    return real


def check_adapter_dir(path: str | os.PathLike) -> AdapterDir:
    """Vet a local adapter (or run) directory: config present, safetensors weights, sane init."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise TunevalError(f"adapter '{path}': no such directory")
    if RunDir(p).has_model:
        raise TunevalError(f"adapter '{path}': full weights (a full fine-tuning run), not an adapter; serve it with --model")
    p = RunDir.adapter_files(p).resolve(strict=True)
    if not (p / CONFIG).is_file():
        method = _marker_method(p)
        if method:
            raise TunevalError(
                f"adapter '{path}': a tuneval '{method}' result (trained base tensors, not a PEFT adapter); it "
                "replaces weights of the base itself, so it cannot share a base with other adapters"
            )
        raise TunevalError(f"adapter '{path}': no {CONFIG} there")
    if not (p / WEIGHTS).is_file():
        pickles = [n for n in PICKLES if (p / n).exists()]
        if pickles:
            raise TunevalError(
                f"adapter '{path}': only pickled weights ({', '.join(pickles)}); they can run code when "
                f"loaded and are refused. Re-save the adapter with safetensors ({WEIGHTS})"
            )
        raise TunevalError(f"adapter '{path}': no {WEIGHTS} there")
    try:
        config = json.loads((p / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TunevalError(f"adapter '{path}': {CONFIG} is not valid JSON ({e})") from None
    if not isinstance(config, dict) or "peft_type" not in config:
        raise TunevalError(f"adapter '{path}': {CONFIG} has no peft_type")
    init = config.get("init_lora_weights")
    if isinstance(init, str) and init.lower().startswith(BASE_REWRITING_INITS):
        raise TunevalError(
            f"adapter '{path}': init_lora_weights={init!r} rewrites the base model's weights when loaded, "
            "which would change every other adapter sharing the base; convert it to plain LoRA first"
        )
    return AdapterDir(path=p, config=config)
