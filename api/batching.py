"""``MicroBatcher``: concurrent extract requests share one model call.

A transformer forward pass over 16 short texts costs little more than over one, so requests that
arrive within a few milliseconds of each other are worth running together. Request threads
``submit`` their texts and block on a future; one worker thread takes the first waiting request,
waits up to ``max_wait_s`` for more (until ``max_texts`` texts are queued), runs one call per
``embeddings`` flag, and hands each request its slice of the results. One worker also means the
model never runs two NER batches at once, which on a CPU only adds thread contention.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("spanlink.api")

ExtractFn = Callable[[list[str], bool], list[list[Any]]]
"""``fn(texts, embeddings) -> one list of entities per text``."""


@dataclass
class _Job:
    texts: list[str]
    embeddings: bool
    future: Future = field(default_factory=Future)


class BatcherClosed(RuntimeError):
    """``submit`` after ``close``: the service is shutting down."""


class MicroBatcher:
    """Collects texts from concurrent callers for a few milliseconds and runs them in one call.

    Args:
        fn (ExtractFn): The batched call, e.g. ``lambda texts, emb: model.extract(texts, embeddings=emb)``.
        max_wait_s (float): How long the first request of a batch waits for company. Defaults to 0.005.
        max_texts (int): Most texts per call (a larger single request still runs whole). Defaults to 64.
        on_batch (Callable[[int], None] | None): Called with each call's text count (metrics).

    >>> batcher = MicroBatcher(lambda texts, emb: [[t.upper()] for t in texts])
    >>> batcher.submit(["a", "b"]).result()
    [['A'], ['B']]
    >>> batcher.close()
    """

    def __init__(
        self,
        fn: ExtractFn,
        *,
        max_wait_s: float = 0.005,
        max_texts: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.fn, self.max_wait_s, self.max_texts, self.on_batch = fn, max_wait_s, max_texts, on_batch
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="spanlink-extract", daemon=True)
        self._thread.start()

    def submit(self, texts: Sequence[str], *, embeddings: bool = False) -> Future:
        """Queue texts; the future resolves to one entity list per text, in order."""
        if self._closed:
            raise BatcherClosed("the extract queue is closed")
        job = _Job(list(texts), embeddings)
        if not job.texts:
            job.future.set_result([])
            return job.future
        self._queue.put(job)
        return job.future

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker after the queued jobs; later ``submit`` calls raise :class:`BatcherClosed`."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)

    # -- worker ---------------------------------------------------------------------------------

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs, count = [first], len(first.texts)
        deadline = time.monotonic() + self.max_wait_s
        while count < self.max_texts:
            remaining = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            count += len(job.texts)
        return jobs, False

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            jobs, stop = self._collect(first)
            for flag in (False, True):
                group = [job for job in jobs if job.embeddings == flag]
                if group:
                    self._run_group(group, flag)
        while True:  # fail whatever arrived during shutdown rather than leaving callers hanging
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.future.set_exception(BatcherClosed("the service is shutting down"))

    def _run_group(self, jobs: list[_Job], embeddings: bool) -> None:
        texts = [text for job in jobs for text in job.texts]
        try:
            results = self.fn(texts, embeddings)
        except Exception as exc:  # noqa: BLE001 - isolate the request that failed, below
            if len(jobs) == 1:
                jobs[0].future.set_exception(exc)
                return
            for job in jobs:  # one bad request must not fail its batch neighbours
                self._run_group([job], embeddings)
            return
        if self.on_batch is not None:
            self.on_batch(len(texts))
        at = 0
        for job in jobs:
            job.future.set_result(results[at : at + len(job.texts)])
            at += len(job.texts)
