"""Paged browsing reads (index.browse) and Store.delete_entity, on SQLite and on PostgreSQL + pgvector."""

import numpy as np
import pytest
from conftest import DIM, assert_consistent, make_doc

from index import DocumentCreate, InvalidInput, MentionCreate, NewEntity, NotFound
from tests.postgres import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Every test here runs on the embedded store and on PostgreSQL + pgvector."""
    return request.param


def _news(store, rng):
    """Three documents: Ada twice, Bob once; sources a, b, a."""
    ada = store.add_document(make_doc("d1", ["Ada", "Bob"], rng.standard_normal((2, DIM))))
    ada_id, bob_id = (m.entity_id for m in ada.document.mentions)
    store.add_document(make_doc("d2", ["Cy"], rng.standard_normal((1, DIM))))
    text = "First line.\nThen Ada spoke. Later more."
    start = text.index("Ada")
    vector = rng.standard_normal(DIM)
    mention = MentionCreate(start, start + 3, "PER", vector, entity_id=ada_id)
    store.add_document(DocumentCreate("d3", text, [mention], metadata={"source": "a"}))
    return ada_id, bob_id


def test_documents_newest_first_with_filters_counts_and_previews(store, rng):
    ada, bob = _news(store, rng)
    page, total = store.list_documents(limit=2)
    assert total == 3 and [d.external_id for d in page] == ["d3", "d2"]
    assert page[0].mention_count == 1 and page[0].length == len("First line.\nThen Ada spoke. Later more.")
    assert page[0].preview.startswith("First line.")
    assert [d.external_id for d in store.list_documents(limit=2, offset=2)[0]] == ["d1"]
    assert store.list_documents(source="a")[1] == 1  # make_doc's source is "test"
    assert {d.external_id for d in store.list_documents(entity_id=ada)[0]} == {"d1", "d3"}
    assert store.list_documents(entity_id=bob)[1] == 1
    with pytest.raises(InvalidInput):
        store.list_documents(limit=0)


def test_entities_in_every_order_with_labels_and_keyset(store, rng):
    ada, _ = _news(store, rng)
    by_mentions, total = store.entities_page()
    assert total == 3 and by_mentions[0].id == ada
    assert [e.name for e in store.entities_page(sort="name")[0]] == ["Ada", "Bob", "Cy"]
    recent = store.entities_page(sort="last_seen")[0]
    assert recent[0].id == ada  # it gained a mention last
    after = (by_mentions[0].mention_count, by_mentions[0].id)
    assert [e.id for e in store.entities_page(after=after)[0]] == [e.id for e in by_mentions[1:]]
    assert store.entities_page(labels=["LOC"]) == ([], 0)
    with pytest.raises(InvalidInput):
        store.entities_page(sort="size")
    with pytest.raises(InvalidInput):
        store.entities_page(sort="name", after=after)


def test_mentions_with_text_around_them_newest_first(store, rng):
    ada, _ = _news(store, rng)
    page, total = store.entity_mentions(ada, limit=10, context=10)
    assert total == 2 and [c.document_external_id for c in page] == ["d3", "d1"]
    assert page[0].before == "ine.\nThen " and page[0].after == " spoke. La"  # 10 characters either side
    assert page[1].before == "" and page[1].after == " and Bob."
    assert store.entity_mentions(ada, limit=1, offset=1)[0][0].document_external_id == "d1"
    assert store.entity_mentions(123456, limit=5) == ([], 0)


def test_delete_entity_removes_its_mentions_and_keeps_documents(store, rng):
    ada, bob = _news(store, rng)
    assert store.delete_entity(ada) == 2
    with pytest.raises(NotFound):
        store.get_entity(ada)
    assert [m.text for m in store.get_document(external_id="d1").mentions] == ["Bob"]
    assert store.get_document(external_id="d3").mentions == []
    assert store.get_entity(bob).mention_count == 1
    assert ada not in store.faiss_ids("entities").tolist()
    assert_consistent(store)
    with pytest.raises(NotFound):
        store.delete_entity(ada)


def test_a_new_entity_after_delete_gets_a_new_id(store, rng):
    ada, _ = _news(store, rng)
    store.delete_entity(ada)
    vector = np.ones(DIM)
    again = store.add_document(
        DocumentCreate("d4", "Ada.", [MentionCreate(0, 3, "PER", vector, new_entity=NewEntity("Ada", "PER"))])
    )
    assert again.created_entity_ids[0] != ada
