"""The allocator switch (allocator.py): which library is preloaded, once, and what results record."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tuneval import allocator
from tuneval.errors import TunevalError


@pytest.fixture
def libdir(tmp_path, monkeypatch):
    """A library directory the search sees instead of the machine's."""
    monkeypatch.setattr(allocator, "_search_dirs", lambda: [tmp_path])
    return tmp_path


AUTO = {allocator.ENV: "auto"}


def test_nothing_is_preloaded_unless_asked(libdir):
    """Opt-in: unset (or `system`) re-executes nothing, even where tcmalloc is installed."""
    (libdir / "libtcmalloc.so.4").write_bytes(b"")
    assert allocator.preload_env({}) is None
    assert allocator.preload_env({allocator.ENV: ""}) is None
    assert allocator.preload_env({allocator.ENV: "system"}) is None
    assert allocator.preload_env(AUTO)["LD_PRELOAD"] == str(libdir / "libtcmalloc.so.4")


def test_auto_prefers_tcmalloc_then_jemalloc(libdir):
    (libdir / "libjemalloc.so.2").write_bytes(b"")
    assert allocator.preload_env(AUTO)["LD_PRELOAD"] == str(libdir / "libjemalloc.so.2")
    (libdir / "libtcmalloc_minimal.so.4").write_bytes(b"")
    env = allocator.preload_env({**AUTO, "LD_PRELOAD": "/opt/other.so", "PATH": "/bin"})
    assert env["LD_PRELOAD"] == f"{libdir / 'libtcmalloc_minimal.so.4'}:/opt/other.so"  # the user's own preload kept
    assert env[allocator._DONE] == "tcmalloc"
    assert allocator.preload_env({allocator.ENV: "jemalloc"})["LD_PRELOAD"] == str(libdir / "libjemalloc.so.2")
    assert env["PATH"] == "/bin" and "MALLOC_CONF" not in env  # jemalloc's own defaults (allocator.py says why)


def test_never_twice_and_not_over_a_users_choice(libdir):
    (libdir / "libtcmalloc.so.4").write_bytes(b"")
    env = allocator.preload_env(AUTO)
    assert allocator.preload_env(env) is None  # the re-executed process does not re-execute
    assert allocator.preload_env({**AUTO, "LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}) is None


def test_nothing_found(libdir):
    assert allocator.preload_env(AUTO) is None  # auto: glibc's malloc, silently
    with pytest.raises(TunevalError, match="TUNEVAL_ALLOCATOR=tcmalloc: no tcmalloc library found.*libtcmalloc-minimal4"):
        allocator.preload_env({allocator.ENV: "tcmalloc"})
    with pytest.raises(TunevalError, match="TUNEVAL_ALLOCATOR='mimalloc': expected one of system, auto, tcmalloc, jemalloc"):
        allocator.preload_env({allocator.ENV: "mimalloc"})


_PROBE = "from tuneval import allocator; allocator.maybe_reexec(); import sys; print(allocator.current(), sys.argv[1:])"


def _run(choice: str | None) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "TUNEVAL_ALLOCATOR_PRELOADED", "MALLOC_CONF", allocator.ENV)}
    if choice is not None:
        env[allocator.ENV] = choice
    out = subprocess.run([sys.executable, "-c", _PROBE, "a b", "c"], env=env, capture_output=True, text=True,
                         check=True, timeout=60)
    return out.stdout.strip()


def test_the_process_runs_with_what_was_chosen():
    """End to end: re-executed with the library preloaded, its arguments intact; glibc unless asked."""
    assert _run(None) == "glibc ['a b', 'c']"
    assert _run("system") == "glibc ['a b', 'c']"
    found = [k for k in ("tcmalloc", "jemalloc") if allocator.find(k)]
    if not found:
        pytest.skip("neither jemalloc nor tcmalloc on this machine (Debian: apt-get install libtcmalloc-minimal4)")
    assert _run("auto") == f"{found[0]} ['a b', 'c']"
    for kind in found:
        assert _run(kind) == f"{kind} ['a b', 'c']"
