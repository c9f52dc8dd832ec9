"""The process's memory allocator: tcmalloc or jemalloc where the machine has one, glibc's otherwise.

Why: a training step on a CPU allocates and frees hundreds of activation tensors of a few MB to
a few hundred MB, each step a little different in shape (packed rows differ in length). glibc's
malloc returns the large ones to the kernel and faults them in again, zeroed, on the next step,
and its heap fragments across the shapes. Full fine-tuning of the embedded model on 480 DialogSum
examples (the demo's recipe, 2-core AMX Xeon, one run each, same loss to the last digit):
glibc 258 tokens/s and 7.0 GB peak RSS, jemalloc 312 and 5.3 GB, tcmalloc 333 and 5.5 GB; on 160
examples, two interleaved rounds: glibc 389, jemalloc 420 (1.08x), tcmalloc 480 (1.23x), peaks
6.1 / 4.9 / 5.0 GB (bench/README-speed.md, "Allocator"). PyTorch's own CPU launcher
(`python -m torch.backends.xeon.run_cpu`) preloads tcmalloc, else jemalloc, for the same reason.

An allocator can only be chosen before the process starts (LD_PRELOAD), so the `tuneval` command
re-executes itself once with it preloaded (`maybe_reexec`, called first in cli.main), and only when
asked: `TUNEVAL_ALLOCATOR` unset (or `system`) runs on glibc's malloc and re-executes nothing;
`tcmalloc` or `jemalloc` preload that library, `auto` tcmalloc, else jemalloc, else glibc. A
library asked for by name and not found is an error, not a silent fallback. Debian/Ubuntu:
`apt-get install libtcmalloc-minimal4` (`make setup` does it where it runs as root); `make demo`
runs with `TUNEVAL_ALLOCATOR=auto`, as the published demo numbers were measured.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tuneval.errors import TunevalError

ENV = "TUNEVAL_ALLOCATOR"
CHOICES = ("system", "auto", "tcmalloc", "jemalloc")  # the first: the default, unset
PACKAGES = {"tcmalloc": "libtcmalloc-minimal4", "jemalloc": "libjemalloc2"}  # Debian's names
_DONE = "TUNEVAL_ALLOCATOR_PRELOADED"  # set on the re-executed process: never re-execute twice
# jemalloc runs with its own defaults. torch's launcher adds MALLOC_CONF="oversize_threshold:1,
# background_thread:true,metadata_thp:auto"; on the 2-core Xeon that trained at 273 tokens/s against
# 312 with the defaults (its purging thread competes with torch's two for the two cores).
_NAMES = {"tcmalloc": ("libtcmalloc.so.4", "libtcmalloc.so", "libtcmalloc_minimal.so.4", "libtcmalloc_minimal.so"),
          "jemalloc": ("libjemalloc.so.2", "libjemalloc.so")}  # auto's order: the faster one measured first


def _search_dirs() -> list[Path]:
    dirs = [Path(sys.prefix) / "lib"]
    dirs += [Path(p) for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    dirs += [Path(p) for p in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/local/lib",
                                "/usr/local/lib64", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu")]
    return dirs


def find(kind: str) -> Path | None:
    """The shared library of `kind` (jemalloc, tcmalloc) on this machine, or None."""
    for d in _search_dirs():
        for name in _NAMES[kind]:
            if (d / name).is_file():
                return d / name
    return None


def choice(env: dict[str, str] | None = None) -> str:
    value = (env if env is not None else os.environ).get(ENV, "system").strip().lower() or "system"
    if value not in CHOICES:
        raise TunevalError(f"{ENV}={value!r}: expected one of {', '.join(CHOICES)}")
    return value


def wanted(env: dict[str, str] | None = None) -> tuple[str, Path] | None:
    """(kind, library) the process should run with, or None for glibc's malloc."""
    value = choice(env)
    if value == "system":
        return None
    for kind in (tuple(_NAMES) if value == "auto" else (value,)):
        lib = find(kind)
        if lib is not None:
            return kind, lib
    if value != "auto":
        raise TunevalError(f"{ENV}={value}: no {value} library found in {', '.join(map(str, _search_dirs()))} "
                           f"(Debian/Ubuntu: apt-get install {PACKAGES[value]})")
    return None


def preload_env(env: dict[str, str]) -> dict[str, str] | None:
    """The environment to re-execute with, or None when this process should run as it is:
    already preloaded (by us or by the user's own LD_PRELOAD), or glibc wanted or all there is."""
    if env.get(_DONE) or any(k in env.get("LD_PRELOAD", "") for k in _NAMES):
        return None
    target = wanted(env)
    if target is None:
        return None
    kind, lib = target
    new = dict(env)
    new["LD_PRELOAD"] = ":".join(p for p in (str(lib), env.get("LD_PRELOAD", "")) if p)
    new[_DONE] = kind
    return new


def maybe_reexec() -> None:
    """Re-execute this command with the allocator TUNEVAL_ALLOCATOR asks for preloaded (once); returns
    at once when it is unset or `system`, when the process already runs with it, or when there is
    nothing to preload."""
    new = preload_env(dict(os.environ))
    if new is None:
        return
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], new)
    except OSError:  # exec refused (a sandbox, say): glibc's malloc is still correct, just slower
        return


def current() -> str:
    """The allocator this process runs with, from its own memory map: what results record."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "unknown"
    for kind in _NAMES:
        if f"lib{kind}" in maps:
            return kind
    return "glibc"
