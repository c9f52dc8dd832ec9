"""Batching for the server: requests that arrive together run together, whatever adapter they name.

One worker thread owns the model. HTTP handlers put rows on a queue and await a future.
The worker waits a few milliseconds after the first row arrives (so a burst of concurrent
clients lands in one batch), takes up to `max_batch_size` rows, and hands them to
`AdapterBank.generate`, which runs LoRA/base rows in one PEFT mixed-batch call. While a
batch runs, new rows queue up and form the next batch: throughput grows with load instead
of each client waiting for every earlier one alone.

The worker takes the bank's lock *before* draining the queue, so a hot load or unload
that holds the lock delays the next batch rather than racing it, and a row whose adapter
was unloaded while it waited fails alone with "unknown model".

The queue is bounded (`max_queue` rows): past it, `submit` raises QueueFull and the server
answers 503 with a Retry-After, so a flood of clients costs a fast refusal each instead of
unbounded memory and latency for everyone. Rows whose caller gave up (timeout, client gone)
are dropped from the queue before counting, so dead requests do not hold places.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

from tuneval.serve.bank import AdapterBank, Output, Row, UnknownAdapter

log = logging.getLogger("tuneval.serve")


class QueueFull(Exception):
    """The batch queue holds `max_queue` rows already; the server answers 503."""

    def __init__(self, queued: int, limit: int, retry_after: int):
        super().__init__(f"the server is busy: {queued} rows are queued (limit {limit}); retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class Job:
    row: Row
    future: Future
    enqueued: float


@dataclass(frozen=True)
class BatchRecord:
    rows: int
    adapters: tuple[str, ...]  # per row, "" for the base
    plan: tuple[tuple[str, int], ...]  # the bank's generate groups
    seconds: float


class Batcher:
    def __init__(self, bank: AdapterBank, max_batch_size: int = 16, window_s: float = 0.005, max_queue: int = 256):
        if max_batch_size < 1 or max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be >= 1")
        self.bank = bank
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.window_s = window_s
        self._queue: deque[Job] = deque()
        self._cv = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._running: list[Job] = []  # the batch in flight, so shutdown can cut it short
        self.history: deque[BatchRecord] = deque(maxlen=1024)  # recent batches, for tests
        self.batches = 0  # since start, for GET /stats
        self.rows_done = 0
        self.rejected = 0  # requests refused because the queue was full

    def start(self) -> None:
        with self._cv:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="tuneval-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
            for job in self._running:  # rows stop at their next token instead of running to max_tokens
                if job.row.cancelled is not None:
                    job.row.cancelled.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cv:
            while self._queue:
                job = self._queue.popleft()
                if job.future.set_running_or_notify_cancel():
                    job.future.set_exception(RuntimeError("the server is shutting down"))

    def submit(self, rows: list[Row]) -> list[Future]:
        """Queue rows (all or none); QueueFull when they do not fit.

        An empty queue takes any request, so one larger than `max_queue` is not refused forever.
        """
        self.start()
        jobs = [Job(row, Future(), time.monotonic()) for row in rows]
        with self._cv:
            if self._stopping:
                raise RuntimeError("the server is shutting down")
            if any(j.future.cancelled() for j in self._queue):
                self._queue = deque(j for j in self._queue if not j.future.cancelled())
            if self._queue and len(self._queue) + len(jobs) > self.max_queue:
                self.rejected += 1
                raise QueueFull(len(self._queue), self.max_queue, self._retry_after())
            self._queue.extend(jobs)
            self._cv.notify_all()
        return [j.future for j in jobs]

    def pending(self) -> int:
        with self._cv:
            return len(self._queue)

    def _retry_after(self) -> int:
        """Seconds until the queue has drained, from recent batch times: 1 to 60."""
        recent = list(self.history)[-16:]
        per_batch = sum(r.seconds for r in recent) / len(recent) if recent else 1.0
        return max(1, min(60, math.ceil(per_batch * len(self._queue) / self.max_batch_size)))

    def _take(self) -> list[Job]:
        jobs: list[Job] = []
        with self._cv:
            while self._queue and len(jobs) < self.max_batch_size:
                job = self._queue.popleft()
                if job.future.set_running_or_notify_cancel():  # False: the caller gave up
                    jobs.append(job)
        return jobs

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stopping:
                    self._cv.wait(0.5)
                if self._stopping:
                    return
                few = len(self._queue) < self.max_batch_size
            if few and self.window_s > 0:
                time.sleep(self.window_s)  # let a burst of concurrent requests arrive
            with self.bank.lock:
                jobs = self._take()
                if jobs:
                    self._run(jobs)

    def _run(self, jobs: list[Job]) -> None:
        live = []
        for job in jobs:
            if job.row.adapter is not None and job.row.adapter not in self.bank:
                job.future.set_exception(UnknownAdapter(f"model '{job.row.adapter}' was unloaded"))
            else:
                live.append(job)
        if not live:
            return
        start = time.perf_counter()
        with self._cv:
            self._running = live
        try:
            outputs: list[Output] = self.bank.generate([j.row for j in live])
        except Exception as e:  # a bug or a bad adapter: fail this batch, keep serving
            log.exception("batch of %d rows failed", len(live))
            for job in live:
                job.future.set_exception(e)
            return
        finally:
            with self._cv:
                self._running = []
        self.batches += 1
        self.rows_done += len(live)
        self.history.append(BatchRecord(
            rows=len(live), adapters=tuple(j.row.adapter or "" for j in live),
            plan=tuple(self.bank.last_plan), seconds=time.perf_counter() - start,
        ))
        for job, out in zip(live, outputs):
            job.future.set_result(out)
