"""What a command shows while it runs, and how it stops: rich tables built from the summaries the
library returns, progress for long loops (a bar on a terminal, plain lines when nobody watches),
and SIGTERM taken like Ctrl-C.

The library's layers (data/, methods/, ...) return data; whoever runs them decides what to
print. This module imports nothing from tuneval.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

from rich import box, get_console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

STOPPED_BY: str | None = None  # "SIGTERM" once one arrived (set by the handler stop_on_sigterm installs)


def stop_on_sigterm() -> None:
    """SIGTERM (`timeout`, schedulers, `docker stop`) stops the command the way Ctrl-C does: a
    KeyboardInterrupt in the main thread, so training removes a run directory that holds no complete
    checkpoint (train/rundir.py) and keeps one that does, for --resume, and nothing is half-written
    (results go through io's atomic writes). A second SIGTERM while that cleanup runs is ignored."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        global STOPPED_BY
        if STOPPED_BY is None:
            STOPPED_BY = "SIGTERM"
            raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, handler)


def stop_line() -> tuple[str, int]:
    """The one line a stopped command prints, and its exit status (128 + the signal, as shells report)."""
    if STOPPED_BY == "SIGTERM":
        return "terminated (SIGTERM)", 128 + signal.SIGTERM
    return "interrupted", 130


EVERY_ENV = "TUNEVAL_PROGRESS_SECONDS"  # how often plain progress lines come (seconds; 0: at every step)
DEFAULT_EVERY = 30.0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class LoopProgress:
    """Progress of one loop of `total` items: a transient bar on a terminal; elsewhere (a file, a
    pipe, a scheduler's log) a plain line every `every` seconds or 10% of the way, whichever comes
    first after at least `every / 6` seconds, and one at the end:
    `generating dialogsum: 40/200 (20%) 1.3/s elapsed 0m31s ETA 2m03s`."""

    def __init__(self, description: str, total: int, *, every: float | None = None, stream=None,
                 terminal: bool | None = None):
        if every is None:
            every = float(os.environ.get(EVERY_ENV) or DEFAULT_EVERY)
        self.description, self.total, self.every, self.stream = description, max(int(total), 0), every, stream
        self.terminal = get_console().is_terminal if terminal is None else terminal
        self.done = 0
        self.start = self.last = time.perf_counter()
        self.last_share = 0.0
        self.bar: Progress | None = None

    def __enter__(self) -> "LoopProgress":
        if self.terminal:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TimeRemainingColumn(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=self.total)
        self.start = self.last = time.perf_counter()
        return self

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.advance(self.task, n)
            return
        now = time.perf_counter()
        share = self.done / self.total if self.total else 1.0
        due = now - self.last >= self.every or (share - self.last_share >= 0.1 and now - self.last >= self.every / 6)
        if due and self.done < self.total:
            self._print(now)
            self.last, self.last_share = now, share

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.perf_counter()) - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta = f" ETA {_duration((self.total - self.done) / rate)}" if rate > 0 and self.done < self.total else ""
        return f"{self.description}: {self.done}/{self.total}{share} {rate:.2f}/s elapsed {_duration(elapsed)}{eta}"

    def _print(self, now: float) -> None:
        print(self.line(now), file=self.stream or sys.stdout, flush=True)

    def __exit__(self, *exc) -> bool:
        if self.bar is not None:
            self.bar.stop()
        elif exc[0] is None and self.total and self.done and time.perf_counter() - self.start >= self.every / 6:
            self._print(time.perf_counter())  # the end, for a loop long enough to have spoken
        return False


def progress(description: str, total: int, **kw) -> LoopProgress:
    """`with progress("generating", n) as p: ... p.advance(k)`: what every long loop of tuneval reports
    through (generation, log-likelihood scoring; training has its callbacks, train/callbacks.py)."""
    return LoopProgress(description, total, **kw)


def mixture_table(summary: dict[str, Any]) -> Table:
    """The resolved mixture of a run, as tasks/mixtures.build_examples summarises it
    (its `mixture`, also saved as RUN/mixture.json): rates, rows drawn per task and per template."""
    mixture = summary["mixture"]
    how = mixture["strategy"] + (f", cap {mixture['cap']}" if mixture["cap"] else "") + (
        f", T={mixture['temperature']:g}" if mixture["strategy"] == "temperature" else "")
    table = Table(title=f"mixture ({how}): {mixture['examples']} examples, seed {mixture['seed']}", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("task", "pool", "rate", "drawn", "unique", "per template", "tok/ex"):
        text = col in ("task", "per template")
        table.add_column(col, justify="left" if text else "right", no_wrap=not text, min_width=9 if col == "task" else None)
    for t in mixture["tasks"]:
        # Counts by template index, in order; '-' marks a phrasing this task does not train on.
        n = max(int(k) for k in (*t["per_template"], *map(str, t["holdout_templates"]))) + 1
        per = " ".join(str(t["per_template"].get(str(i), "-")) for i in range(n))
        name = t["task"] + (" (replay)" if t["replay"] else "")
        table.add_row(name, f"{t['pool']:,}", f"{t['rate']:.3f}", f"{t['drawn']:,}", f"{t['unique']:,}",
                      per, f"{t['mean_length']:.0f}")
    return table


def data_line(data: dict[str, Any]) -> str:
    """One line of what a run read from the user's own data (metrics.json's data.data, tasks/mixtures.py):
    the format and whether it was recognised or given, the columns read, rows kept and dropped, and why."""
    unit = "documents" if data["format"] == "text" else "rows"
    how = "recognised" if data["format_given"] == "auto" else "given"
    split = f", sample_by {data['sample_by']}" if data.get("sample_by") else ""
    columns = ", ".join(f + (f"<-{c}" if c != f else "") for f, c in (data.get("columns") or {}).items())
    reasons = {"held_out_for_validation": "held out for validation",
               "beyond_data_train_examples": "past data.train_examples",
               "first_answer_past_max_seq_len": "first answer past data.max_seq_len"}
    dropped = [f"{n} {reasons.get(k, k)}" for k, n in (data.get("dropped") or {}).items() if n]
    return (f"data: {data['source']}: format {data['format']} ({how}{split}), columns {columns or 'none'}; "
            f"{data['rows']} {unit} read, {data['kept']} trained on" + (f", {', '.join(dropped)}" if dropped else ""))
