"""Issue 14 item 5: one long extract must not hold the model while short requests wait.

Work that one step finishes runs at once on the worker; longer work runs on the long lane, one
bounded step at a time, round-robin, newcomers before the interrupted piece. These tests are
deterministic: the long request's first step blocks on an event until the test lets it go, and they
assert the order of completion and the model batches run before the short request finished (no
wall-clock thresholds).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
import pytest

from api.batching import BatcherClosed, MicroBatcher
from tests.ner.sentences import EXTRA_TEXTS, SENTENCES

# -- the worker with scripted work ---------------------------------------------------------------


_Gate = tuple[threading.Event, threading.Event]


class Scripted:
    """Work of ``sum(steps in texts)`` unit steps ("long:5" = 5); each step is logged.

    With a ``gate`` (entered, release), the first step sets ``entered`` and waits for ``release``.
    """

    def __init__(self, texts: list[str], log: list[str], gate: _Gate | None = None) -> None:
        self.texts, self.log, self.gate = texts, log, gate
        self.left = sum(int(t.split(":")[1]) for t in texts)

    @property
    def done(self) -> bool:
        return self.left == 0

    @property
    def steps_left(self) -> int:
        return self.left

    def step(self, batches: int = 1) -> bool:
        if any(t.startswith("bad") for t in self.texts):
            raise ValueError("bad text")
        if self.gate is not None:
            entered, release = self.gate
            entered.set()
            release.wait(30)
            self.gate = None
        n = self.left if batches <= 0 else min(batches, self.left)
        self.log.extend([self.texts[0].split(":")[0]] * n)
        self.left -= n
        return self.done

    def result(self) -> list[list[str]]:
        return [[t.upper()] for t in self.texts]


def _gated_batcher(step_units: int = 1) -> tuple[MicroBatcher, list[str], threading.Event, threading.Event]:
    """A batcher whose first work's first step blocks until ``release`` is set; ``entered`` tells
    that the step has begun."""
    log: list[str] = []
    entered, release = threading.Event(), threading.Event()
    first = [True]

    def start(texts: list[str], embeddings: bool) -> Scripted:  # noqa: ARG001
        gate = None
        if first[0]:
            first[0] = False
            gate = (entered, release)
        return Scripted(texts, log, gate)

    return MicroBatcher(start=start, max_wait_s=0.0, step_units=step_units), log, entered, release


def _finish_order(futures: dict[str, Future]) -> list[str]:
    """Names in the order the futures resolve (callbacks run in the worker, as it sets each result)."""
    order: list[str] = []
    for name, future in futures.items():
        future.add_done_callback(lambda _, name=name: order.append(name))
    return order


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_short_requests_never_wait_for_a_long_one_and_long_ones_take_turns():
    batcher, log, entered, release = _gated_batcher()
    long = batcher.submit(["long:6"])
    assert entered.wait(10)  # the long request is in its first step on the long lane, until release
    short = batcher.submit(["short:1"])
    assert short.result(10) == [["SHORT:1"]]  # finished while the long lane is inside a step
    assert log == ["short"]
    vectors = batcher.submit(["vec:2"], embeddings=True)  # two steps: the long lane
    _wait_for(lambda: batcher._long.qsize() == 1)
    order = _finish_order({"long": long, "vec": vectors})
    release.set()
    assert long.result(10) == [["LONG:6"]] and vectors.result(10) == [["VEC:2"]]
    batcher.close()
    # One step of the long request, then the newcomer, then round-robin until both are done.
    assert log == ["short", "long", "vec", "long", "vec", "long", "long", "long", "long"]
    assert order == ["vec", "long"]


def test_step_units_zero_runs_a_request_whole():
    """The behaviour before: the short request waits for all of the long one."""
    batcher, log, entered, release = _gated_batcher(step_units=0)
    long = batcher.submit(["long:6"])
    assert entered.wait(10)
    short = batcher.submit(["short:1"])
    order = _finish_order({"long": long, "short": short})
    release.set()
    short.result(10)
    batcher.close()
    assert log == ["long"] * 6 + ["short"] and order == ["long", "short"]


def test_requests_queued_together_share_work_and_a_bad_one_fails_alone():
    batcher, log, entered, release = _gated_batcher()
    gate = batcher.submit(["gate:1"])
    assert entered.wait(10)
    a, bad, b = batcher.submit(["a:1"]), batcher.submit(["bad:1"]), batcher.submit(["b:2"])
    release.set()
    assert gate.result(10) == [["GATE:1"]]
    assert a.result(10) == [["A:1"]] and b.result(10) == [["B:2"]]
    with pytest.raises(ValueError, match="bad text"):
        bad.result(10)
    batcher.close()
    assert log == ["gate", "a", "b", "b"]  # a, bad, b started together, failed, were retried alone


def test_close_finishes_started_and_queued_work_then_refuses():
    batcher, log, entered, release = _gated_batcher()
    long = batcher.submit(["long:3"])
    assert entered.wait(10)
    queued = batcher.submit(["queued:2"])
    closer = threading.Thread(target=batcher.close, kwargs={"timeout": 30})
    closer.start()
    release.set()
    closer.join(30)
    assert long.result(1) == [["LONG:3"]] and queued.result(1) == [["QUEUED:2"]]
    with pytest.raises(BatcherClosed):
        batcher.submit(["late:1"])


def test_large_requests_are_planned_by_the_caller_and_run_on_their_own():
    planned_in: dict[str, str] = {}
    entered, release = threading.Event(), threading.Event()

    def start(texts: list[str], embeddings: bool) -> Scripted:  # noqa: ARG001
        if any(t.startswith("huge") for t in texts):
            raise ValueError("cannot plan")
        planned_in["+".join(texts)] = threading.current_thread().name
        return Scripted(texts, [], (entered, release) if texts == ["gate:1"] else None)

    batcher = MicroBatcher(start=start, max_wait_s=0.0, plan_chars=40)
    batcher.submit(["gate:1"])
    assert entered.wait(10)  # the next three queue up while the worker is busy
    big = "big:2" + " " * 40
    futures = [batcher.submit(["a:1"]), batcher.submit([big]), batcher.submit(["b:1"])]
    failed = batcher.submit(["huge:1" + " " * 40])
    with pytest.raises(ValueError, match="cannot plan"):
        failed.result(0)  # refused in the caller's thread, before anything was queued
    release.set()
    assert [f.result(10) for f in futures] == [[["A:1"]], [[big.upper()]], [["B:1"]]]
    batcher.close()
    worker, caller = "spanlink-extract", threading.current_thread().name
    assert planned_in == {"gate:1": worker, big: caller, "a:1+b:1": worker}


def test_exactly_one_of_fn_and_start():
    with pytest.raises(ValueError, match="exactly one"):
        MicroBatcher()
    with pytest.raises(ValueError, match="exactly one"):
        MicroBatcher(lambda t, e: [], start=lambda t, e: None)


# -- the service with the tiny model -------------------------------------------------------------


def _rows(entities) -> list[tuple]:
    return [(e.start, e.end, e.text, e.label, e.score) for e in entities]


def test_service_short_extract_does_not_wait_for_a_long_one(tiny_model, tmp_path):
    """The long document's first model batch blocks until the test lets it go; meanwhile a short
    request must finish (with one model batch of its own), with the results of a direct
    ``model.extract``, and the long one too, afterwards."""
    from api.service import Service, open_store
    from api.settings import ServiceSettings
    from linking.embedding import SpanEmbedder

    model = tiny_model
    model.max_tokens = max(model.tokenizer.count_tokens(SENTENCES + EXTRA_TEXTS)) + 8
    model.token_budget = 1  # one window per model batch: the long document takes many batches
    document = " ".join((s if s[-1] in ".!?。" else s + ".") for s in (SENTENCES + EXTRA_TEXTS) * 2)
    short = SENTENCES[0]
    windows = len(model._text_windows(document))
    assert windows > 5
    expected_long = model.extract([document], embeddings=True, strip_spaces=True)[0]
    expected_short = model.extract([short], strip_spaces=True)[0]

    batches: list[int] = []
    entered, release = threading.Event(), threading.Event()
    encode = model._encode_text

    def gated_encode(batch):
        batches.append(len(batch))
        if len(batches) == 1:
            entered.set()
            release.wait(30)
        return encode(batch)

    model._encode_text = gated_encode
    settings = ServiceSettings(vectors="span", data_dir=tmp_path / "data")
    embedder = SpanEmbedder(model)
    service = Service(settings, model, open_store(settings, embedder.dim), embedder)
    try:
        done: list[tuple[str, int]] = []
        results: dict[str, list] = {}

        def run(name: str, text: str, embeddings: bool) -> None:
            results[name] = service.extract([text], embeddings=embeddings)[0]
            done.append((name, len(batches)))

        long = threading.Thread(target=run, args=("long", document, True))
        long.start()
        assert entered.wait(30)
        queued = service.batcher.submit([short])  # while the long request's first batch runs
        queued.add_done_callback(lambda _: done.append(("short", len(batches))))  # runs in the worker
        short_result = queued.result(30)[0]  # the long one's batch has not even finished yet
        release.set()
        long.join(60)
    finally:
        release.set()
        service.close()
    assert [name for name, _ in done] == ["short", "long"]
    assert done[0][1] == 2  # the long request's first batch (still running), the short request's own
    assert len(batches) == windows + 1
    assert _rows(short_result) == _rows(expected_short)
    assert _rows(results["long"]) == _rows(expected_long)
    assert all(np.array_equal(a.embedding, b.embedding) for a, b in zip(results["long"], expected_long))
