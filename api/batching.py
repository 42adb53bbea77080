"""``MicroBatcher``: concurrent extract requests share model calls, and a long one cannot stall the rest.

A transformer forward pass over 16 short texts costs little more than over one, so requests that
arrive within a few milliseconds of each other are worth running together. Request threads
``submit`` their texts and block on a future; the worker thread takes the first waiting request,
waits up to ``max_wait_s`` for more (until ``max_texts`` texts are queued) and starts one piece of
*work* per ``embeddings`` flag over all their texts.

A 50k-word document is over a hundred model batches (a minute or two on two cores); run in one
call, it made a 20-character request wait for all of it. So work is planned first and run in steps
(``step_units`` model batches, each bounded by the model's token budget), on two lanes:

* work that one step finishes (a short request) runs at once on the worker thread;
* longer work goes to the *long lane*, a second thread that runs one step of one piece at a time,
  round-robin, and lets work that arrived meanwhile go before the interrupted piece.

A short request therefore never waits for a long one (the two lanes' forward passes share the CPU
for a moment instead), and long requests take turns. At most two model batches run at once.
Results do not change: a piece of work is ``SpanModel.start_extract``, whose steps give exactly what
``extract`` gives. Planning a long request (tokenizing and windowing it) is not free either, so a
request of ``plan_chars`` characters or more is planned in its caller's thread and runs as work
of its own. ``step_units=0`` gives the old behaviour: one lane, each piece run whole.
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

    @property
    def steps_left(self) -> int:
        """Units (model batches) still to run."""
        ...

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

    @property
    def steps_left(self) -> int:
        return 0 if self.done else 1

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
            run beside short ones and take turns with each other.
        max_wait_s (float): How long the first request of a batch waits for company. Defaults to 0.005.
        max_texts (int): Most texts per piece of work (a larger single request still runs as one).
            Defaults to 64.
        step_units (int): Units (model batches) of one step. Work that needs more steps goes to the
            long lane, which runs one step of one piece at a time; 0 runs every piece whole on one
            lane, so a long request holds the model until it is done. Defaults to 1.
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
        self._long: queue.Queue[_Running | None] = queue.Queue()  # the long lane's inbox
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="spanlink-extract", daemon=True)
        self._long_thread = threading.Thread(target=self._run_long, name="spanlink-extract-long", daemon=True)
        self._thread.start()
        self._long_thread.start()

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
        """Stop after the queued and started work; later ``submit`` calls raise :class:`BatcherClosed`."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        deadline = time.monotonic() + timeout
        self._thread.join(timeout)
        self._long_thread.join(max(0.0, deadline - time.monotonic()))

    # -- the worker: collect, start, run short work, hand long work on ---------------------------

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` and the jobs that arrive within ``max_wait_s`` (up to ``max_texts``); True on close."""
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
            for job in jobs:
                if job.work is not None:
                    self._dispatch(_Running(job.work, [job], job.embeddings))
            for flag in (False, True):
                group = [job for job in jobs if job.embeddings == flag and job.work is None]
                if group:
                    self._start_group(group, flag)
        self._long.put(None)  # the long lane finishes what it holds, then stops
        while True:  # fail whatever arrived during shutdown rather than leaving callers hanging
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.future.set_exception(BatcherClosed("the service is shutting down"))

    def _start_group(self, jobs: list[_Job], embeddings: bool) -> None:
        texts = [text for job in jobs for text in job.texts]
        try:
            work = self.start(texts, embeddings)
        except Exception as exc:  # noqa: BLE001 - isolate the request that failed, below
            self._isolate(jobs, embeddings, exc)
            return
        self._dispatch(_Running(work, jobs, embeddings))

    def _dispatch(self, running: _Running) -> None:
        """Run work that one step finishes here and now; give longer work to the long lane."""
        if self.step_units > 0 and running.work.steps_left > self.step_units:
            self._long.put(running)
        else:
            self._step(running, 0)

    def _isolate(self, jobs: list[_Job], embeddings: bool, exc: Exception) -> None:
        """One bad request must not fail its neighbours: start each request alone again."""
        if len(jobs) == 1:
            jobs[0].future.set_exception(exc)
            return
        for job in jobs:
            self._start_group([job], embeddings)

    def _step(self, running: _Running, units: int) -> bool:
        """Run one step of ``units`` (0: to the end); deliver the results when done. True when done."""
        try:
            if not running.work.step(units):
                return False
            results = running.work.result()
        except Exception as exc:  # noqa: BLE001 - isolate the request that failed
            self._isolate(running.jobs, running.embeddings, exc)
            return True
        if self.on_batch is not None:
            self.on_batch(sum(len(job.texts) for job in running.jobs))
        at = 0
        for job in running.jobs:
            job.future.set_result(results[at : at + len(job.texts)])
            at += len(job.texts)
        return True

    # -- the long lane: round-robin, one step at a time -------------------------------------------

    def _run_long(self) -> None:
        active: deque[_Running] = deque()
        stop = False
        while active or not stop:
            if not active:
                item = self._long.get()
                if item is None:
                    break
                active.append(item)
                continue
            current = active.popleft()
            finished = self._step(current, self.step_units)
            stop = self._take_long(active) or stop  # newcomers go before the interrupted work
            if not finished:
                active.append(current)

    def _take_long(self, active: deque[_Running]) -> bool:
        """Move the long lane's new work into ``active``; True once the worker has closed the lane."""
        stop = False
        while True:
            try:
                item = self._long.get_nowait()
            except queue.Empty:
                return stop
            if item is None:
                stop = True
            else:
                active.append(item)
