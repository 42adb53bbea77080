"""Fault injection: a failure at any statement of any write leaves the store as it was.

Each write (add, replace, delete, merge, split, upsert, a multi-document transaction) is run again
and again with an error injected at its 1st, 2nd, ... SQL statement, until it gets through. After
every failed attempt the database and both FAISS indexes must equal a snapshot taken before, and
the store's consistency check must pass; the attempt that gets through must then change the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from sqlalchemy import event

from index import EntityCreate, InvalidInput, Store
from tests.index.conftest import DIM, assert_consistent, make_doc
from tests.index.snapshots import snapshot


class Injected(RuntimeError):
    """The error the tests inject."""


@contextmanager
def fail_at(store: Store, n: int) -> Iterator[list[int]]:
    """Raise :class:`Injected` at the ``n``-th SQL statement (0-based) run while the block is open."""
    seen = [0]

    def before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        seen[0] += 1
        if seen[0] - 1 == n:
            raise Injected(f"statement {n}: {statement[:60]}")

    event.listen(store.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", before)


def seeded(store: Store, rng: np.random.Generator) -> dict[str, int]:
    """Two documents, three entities; returns the ids the operations need."""
    first = store.add_document(make_doc("d1", ["Alice", "Bob"], rng.standard_normal((2, DIM))))
    alice, bob = first.created_entity_ids
    second = store.add_document(make_doc("d2", ["Carol", "Dave"], rng.standard_normal((2, DIM))))
    store.add_document(make_doc("d3", ["Alice"], rng.standard_normal((1, DIM)), entity_ids=[alice]))
    carol, dave = second.created_entity_ids
    mention = store.get_document(external_id="d3").mentions[0].id
    return {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "d3_mention": mention}


def operations(rng: np.random.Generator) -> dict[str, Callable[[Store, dict[str, int]], object]]:
    vectors = rng.standard_normal((4, DIM))
    return {
        "add": lambda s, ids: s.add_document(
            make_doc("new", ["Alice", "Eve"], vectors[:2], entity_ids=[ids["alice"], None])
        ),
        "replace": lambda s, ids: s.add_document(make_doc("d1", ["Zed"], vectors[2:3])),
        "delete": lambda s, ids: s.delete_document(external_id="d2"),
        "merge": lambda s, ids: s.merge_entities(ids["alice"], ids["carol"]),
        "split": lambda s, ids: s.split_entity(ids["alice"], [ids["d3_mention"]], name="Alicia", label="PER"),
        "upsert": lambda s, ids: s.upsert_entity(
            EntityCreate("Bobby", "PER", aliases=["Robert"]), entity_id=ids["bob"]
        ),
        "batch": lambda s, ids: s.add_documents(
            [make_doc("b1", ["Frank"], vectors[:1]), make_doc("d2", ["Gina"], vectors[1:2])]
        ),
    }


@pytest.mark.parametrize("op", ["add", "replace", "delete", "merge", "split", "upsert", "batch"])
@pytest.mark.parametrize("factory", ["Flat", "HNSW32"])
def test_a_failure_at_any_statement_changes_nothing(store_factory, rng, op, factory):
    store = store_factory(factory=factory)
    ids = seeded(store, rng)
    run = operations(rng)[op]
    before = snapshot(store)
    for n in range(500):
        with fail_at(store, n) as seen:
            try:
                run(store, ids)
            except Injected:
                pass
            else:
                break
        assert snapshot(store) == before, f"{op}: failure at statement {n} left a change"
        assert_consistent(store)
    else:  # pragma: no cover - an operation of 500 statements is a bug in itself
        pytest.fail(f"{op} never got through")
    assert seen[0] > 1, "the operation ran no statement, so nothing was injected"
    assert snapshot(store) != before, f"{op} got through but changed nothing"
    assert_consistent(store)


def test_transaction_rolls_back_earlier_documents_and_their_vectors(store, rng):
    seeded(store, rng)
    before = snapshot(store)
    with pytest.raises(Injected), store.transaction():
        store.add_document(make_doc("t1", ["Hank"], rng.standard_normal((1, DIM))))
        store.add_document(make_doc("d1", ["Ivy"], rng.standard_normal((1, DIM))))  # replaces d1
        # what the transaction wrote so far is visible to its own reads, FAISS included
        hank = store.get_document(external_id="t1").mentions[0].entity_id
        assert store.get_entity(hank).name == "Hank"
        assert hank in store.faiss_ids("entities")
        raise Injected("the caller fails after two writes")
    assert snapshot(store) == before
    assert_consistent(store)


def test_a_refused_write_inside_a_transaction_fails_the_whole_block(store, rng):
    from index import NotFound, StoreError

    seeded(store, rng)
    before = snapshot(store)
    with pytest.raises(StoreError, match="failed"), store.transaction():
        store.add_document(make_doc("t1", ["Hank"], rng.standard_normal((1, DIM))))
        with pytest.raises(NotFound):  # a caller that swallows the error cannot commit half
            store.split_entity(1, [10_000], name="Hank", label="PER")
    assert snapshot(store) == before
    assert_consistent(store)


def test_names_without_letters_or_with_control_characters_are_refused(store, rng):
    vector = rng.standard_normal((1, DIM))
    for name in ("\u200b", "\u00ad", "—", "angela\x00 merkel"):
        doc = make_doc("x", [name], vector)
        with pytest.raises(InvalidInput):
            store.add_document(doc)
        with pytest.raises(InvalidInput):
            store.upsert_entity(EntityCreate(name, "PER"))
    assert store.stats().documents == 0
    assert store.add_document(make_doc("x", ["Merkel"], vector)).document.mentions[0].text == "Merkel"
