"""One precision policy for every command: train, eval, forgetting, sweep, serve, merge, demo.

`auto` is bf16 where the hardware computes it natively (CUDA with bf16, CPUs with
AVX512-BF16 or AMX) and fp32 elsewhere, because emulated bf16 is slower than fp32 and
buys nothing. `bf16` and `fp32` force it (bf16 is emulated where not native: slow, but
the same numbers, which is how the test suite covers the bf16 path on any host).

What it means per command:
- training: fp32 master weights, bf16 autocast (TrainingArguments `bf16=True`); the saved
  weights are fp32 either way.
- inference (eval, forgetting, serve, the demo's scoring): the base model's weights are
  loaded in that dtype; PEFT keeps adapter weights in fp32 over a bf16 base.
- merge/export: the merge is computed in fp32 and the result is saved in that dtype.

The resolved value ("bf16" or "fp32") is recorded in every metrics.json and results.json.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tuneval.errors import TunevalError

PRECISIONS = ("auto", "bf16", "fp32")
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
# Spellings users bring from transformers/accelerate (`bf16: true`, `dtype: bfloat16`).
_ALIASES = {"bfloat16": "bf16", "float32": "fp32", "true": "bf16", "false": "fp32", "no": "fp32", "yes": "bf16"}


# The /proc/cpuinfo flags of a CPU that computes bf16 matmuls natively (AVX512-BF16, AMX); benches read
# them too, to print a share of a bf16 peak only where there is one (bench/peaks.py).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bf16() -> bool:
    """Native bf16 matmul on this CPU (AVX512-BF16 or AMX); without it bf16 is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def native_bf16() -> bool:
    """Where `auto` picks bf16. Tests patch this to pin `auto` to one answer on every host."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()


def check_precision(setting: object, where: str = "precision") -> str:
    """Normalise a user's spelling to one of PRECISIONS, or one line naming `where`."""
    s = str(setting).strip().lower()
    s = _ALIASES.get(s, s)
    if s not in PRECISIONS:
        raise TunevalError(f"{where}: expected one of {', '.join(PRECISIONS)}, got {setting!r}")
    return s


def resolve_precision(setting: object = "auto", where: str = "precision") -> str:
    """'bf16' or 'fp32': what this host runs for `setting`."""
    s = check_precision(setting, where)
    if s == "auto":
        return "bf16" if native_bf16() else "fp32"
    return s


def precision_dtype(setting: object = "auto") -> torch.dtype:
    return DTYPES[resolve_precision(setting)]
