"""console.py: plain progress lines when nobody watches, and SIGTERM taken like Ctrl-C (issue 35)."""

from __future__ import annotations

import io
import os
import signal

import pytest

import tuneval.console as console
from tuneval.console import progress, stop_line, stop_on_sigterm


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_plain_lines_every_interval_or_tenth_with_rate_and_eta(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(console.time, "perf_counter", clock)
    out = io.StringIO()
    with progress("generating dialogsum", 200, every=30, stream=out, terminal=False) as p:
        for _ in range(20):  # 10 items per 2 s: 10% every 4 s (not yet 30/6 = 5 s apart), then every 6 s
            clock.now += 2
            p.advance(10)
    lines = out.getvalue().splitlines()
    assert lines[0] == "generating dialogsum: 30/200 (15%) 5.00/s elapsed 0m06s ETA 0m34s"
    assert lines[-1] == "generating dialogsum: 200/200 (100%) 5.00/s elapsed 0m40s"
    assert 5 <= len(lines) <= 8  # about one per 10%, never one per batch


def test_a_short_loop_says_nothing_and_a_terminal_gets_a_bar(monkeypatch):
    out = io.StringIO()
    with progress("scoring", 4, every=30, stream=out, terminal=False) as p:
        p.advance(4)
    assert out.getvalue() == ""
    with progress("scoring", 4, every=0, stream=out, terminal=True) as p:  # rich's bar, not lines
        p.advance(4)
    assert out.getvalue() == ""


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv(console.EVERY_ENV, "0")
    out = io.StringIO()
    with progress("scoring", 3, stream=out, terminal=False) as p:
        p.advance(1)
        p.advance(2)
    assert [line.split(" ")[1] for line in out.getvalue().splitlines()] == ["1/3", "3/3"]


def test_sigterm_raises_keyboard_interrupt_once_and_names_itself(monkeypatch):
    monkeypatch.setattr(console, "STOPPED_BY", None)
    before = signal.getsignal(signal.SIGTERM)
    try:
        stop_on_sigterm()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
        assert stop_line() == ("terminated (SIGTERM)", 143)
        os.kill(os.getpid(), signal.SIGTERM)  # a second one, while cleaning up, is ignored
    finally:
        signal.signal(signal.SIGTERM, before)
    monkeypatch.setattr(console, "STOPPED_BY", None)
    assert stop_line() == ("interrupted", 130)
