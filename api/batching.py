"""``MicroBatcher``: concurrent extract requests share model calls, and a long one cannot stall the rest.

A transformer forward pass over 16 short texts costs little more than over one, so requests that
arrive within a few milliseconds of each other are worth running together. Request threads
``submit`` their texts and block on a future; one worker thread takes the first waiting request,
waits up to ``max_wait_s`` for more (until ``max_texts`` texts are queued) and starts one piece of
*work* per ``embeddings`` flag over all their texts. One worker also means the model never runs two
NER batches at once, which on a CPU only adds thread contention.

Work runs in steps. A 50k-word document is over a hundred model batches (a minute on two cores);
run in one call, it made a 20-character request wait for all of it. So the worker keeps every
started piece of work in a round-robin queue and runs one step (``step_units`` model batches, each
bounded by the model's token budget) of one piece at a time; requests that arrived meanwhile start
before the interrupted piece continues. A short request thus waits for at most one step of each
piece ahead of it, and results do not change: a piece of work is ``SpanModel.start_extract``, whose
steps give exactly what ``extract`` gives. Planning a long request (tokenizing and windowing it) is
not free either, so a request of ``plan_chars`` characters or more is planned in its caller's
thread and queued as work of its own.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger("spanlink.api")

ExtractFn = Callable[[list[str], bool], list[list[Any]]]
"""``fn(texts, embeddings) -> one list of entities per text``."""


class Work(Protocol):
    """A started extract call (``ner.ExtractJob`` is one): run it in steps, then take its result."""

    @property
    def done(self) -> bool: ...

    def step(self, batches: int = 1) -> bool:
        """Run up to ``batches`` units (all that are left when <= 0); True once done."""
        ...

    def result(self) -> list[list[Any]]:
        """One entity list per text, once done."""
        ...


StartFn = Callable[[list[str], bool], Work]
"""``start(texts, embeddings) -> Work``: plan an extract call without running it yet."""


class _WholeCall:
    """A plain :data:`ExtractFn` call as :class:`Work` of one step (it cannot be interleaved)."""

    def __init__(self, fn: ExtractFn, texts: list[str], embeddings: bool) -> None:
        self._fn, self._texts, self._embeddings = fn, texts, embeddings
        self._result: list[list[Any]] | None = None

    @property
    def done(self) -> bool:
        return self._result is not None

    def step(self, batches: int = 1) -> bool:  # noqa: ARG002 - one call, whatever the unit
        self._result = self._fn(self._texts, self._embeddings)
        return True

    def result(self) -> list[list[Any]]:
        assert self._result is not None
        return self._result


@dataclass
class _Job:
    texts: list[str]
    embeddings: bool
    future: Future = field(default_factory=Future)
    work: Work | None = None  # started in the caller's thread (a large request runs on its own)


@dataclass
class _Running:
    """Started work and the requests whose texts it holds, in order."""

    work: Work
    jobs: list[_Job]
    embeddings: bool


class BatcherClosed(RuntimeError):
    """``submit`` after ``close``: the service is shutting down."""


class MicroBatcher:
    """Collects texts from concurrent callers for a few milliseconds and runs them as one piece of work.

    Args:
        fn (ExtractFn | None): A batched call run whole, e.g.
            ``lambda texts, emb: model.extract(texts, embeddings=emb)``. Give this or ``start``.
        start (StartFn | None): Starts work that runs in steps, e.g.
            ``lambda texts, emb: model.start_extract(texts, embeddings=emb)``: long requests then
            interleave with short ones.
        max_wait_s (float): How long the first request of a batch waits for company. Defaults to 0.005.
        max_texts (int): Most texts per piece of work (a larger single request still runs as one).
            Defaults to 64.
        step_units (int): Units (model batches) one step runs before the worker turns to other work;
            0 runs each piece whole, so a long request holds the model until it is done. Defaults to 1.
        plan_chars (int): Requests of at least this many characters are started (planned: tokenized,
            windowed, batched) in the submitting thread and run as work of their own, so that their
            planning does not hold up the worker either; 0 plans everything in the worker.
            Defaults to 20,000.
        on_batch (Callable[[int], None] | None): Called with each finished piece's text count (metrics).

    >>> batcher = MicroBatcher(lambda texts, emb: [[t.upper()] for t in texts])
    >>> batcher.submit(["a", "b"]).result()
    [['A'], ['B']]
    >>> batcher.close()
    """

    def __init__(
        self,
        fn: ExtractFn | None = None,
        *,
        start: StartFn | None = None,
        max_wait_s: float = 0.005,
        max_texts: int = 64,
        step_units: int = 1,
        plan_chars: int = 20_000,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if (fn is None) == (start is None):
            raise ValueError("give exactly one of fn (a whole call) and start (work in steps)")
        self.start: StartFn = start if start is not None else (lambda texts, emb: _WholeCall(fn, texts, emb))
        self.max_wait_s, self.max_texts, self.on_batch = max_wait_s, max_texts, on_batch
        self.step_units, self.plan_chars = step_units, plan_chars
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
        if self.plan_chars and sum(len(text) for text in job.texts) >= self.plan_chars:
            try:  # plan here, beside the worker: planning 50k words takes it ~0.5 s
                job.work = self.start(job.texts, embeddings)
            except Exception as exc:  # noqa: BLE001 - the caller's future carries it, as for the rest
                job.future.set_exception(exc)
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

    def _collect(self, first: _Job, wait_s: float) -> tuple[list[_Job], bool]:
        """``first`` and the jobs that arrive within ``wait_s`` (up to ``max_texts``); True on close."""
        jobs, count = [first], len(first.texts)
        deadline = time.monotonic() + wait_s
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

    def _take_waiting(self, running: deque[_Running]) -> bool:
        """Start the jobs queued while the model ran (without waiting for more); True on close."""
        while True:
            try:
                first = self._queue.get_nowait()
            except queue.Empty:
                return False
            if first is None:
                return True
            jobs, stop = self._collect(first, 0.0)
            self._start(jobs, running)
            if stop:
                return True

    def _run(self) -> None:
        running: deque[_Running] = deque()
        stop = False
        while running or not stop:
            if not running:
                first = self._queue.get()
                if first is None:
                    break
                jobs, stop = self._collect(first, self.max_wait_s)
                self._start(jobs, running)
                continue
            current = running.popleft()
            finished = self._step(current, running)
            if not stop:
                stop = self._take_waiting(running)  # newcomers go before the interrupted work
            if not finished:
                running.append(current)
        while True:  # fail whatever arrived during shutdown rather than leaving callers hanging
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.future.set_exception(BatcherClosed("the service is shutting down"))

    def _start(self, jobs: list[_Job], running: deque[_Running]) -> None:
        running.extend(_Running(job.work, [job], job.embeddings) for job in jobs if job.work is not None)
        for flag in (False, True):
            group = [job for job in jobs if job.embeddings == flag and job.work is None]
            if group:
                self._start_group(group, flag, running)

    def _start_group(self, jobs: list[_Job], embeddings: bool, running: deque[_Running]) -> None:
        texts = [text for job in jobs for text in job.texts]
        try:
            work = self.start(texts, embeddings)
        except Exception as exc:  # noqa: BLE001 - isolate the request that failed, below
            self._isolate(jobs, embeddings, exc, running)
            return
        running.append(_Running(work, jobs, embeddings))

    def _isolate(self, jobs: list[_Job], embeddings: bool, exc: Exception, running: deque[_Running]) -> None:
        """One bad request must not fail its neighbours: start each request alone again."""
        if len(jobs) == 1:
            jobs[0].future.set_exception(exc)
            return
        for job in jobs:
            self._start_group([job], embeddings, running)

    def _step(self, current: _Running, running: deque[_Running]) -> bool:
        """Run one step of ``current``; deliver its results when done. True when it needs no more steps."""
        try:
            if not current.work.step(self.step_units):
                return False
            results = current.work.result()
        except Exception as exc:  # noqa: BLE001 - isolate the request that failed
            self._isolate(current.jobs, current.embeddings, exc, running)
            return True
        if self.on_batch is not None:
            self.on_batch(sum(len(job.texts) for job in current.jobs))
        at = 0
        for job in current.jobs:
            job.future.set_result(results[at : at + len(job.texts)])
            at += len(job.texts)
        return True
