"""Documents: one transaction each, replacement by external id, deletion updating entities."""

import numpy as np
import pytest
from conftest import DIM, assert_consistent, make_doc, unit

from index import DocumentCreate, InvalidInput, MentionCreate, NewEntity, NotFound
from tests.postgres import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Every test here runs on the embedded store and on PostgreSQL + pgvector."""
    return request.param


def vec(rng, n=1):
    return rng.standard_normal((n, DIM)).astype(np.float32)


def test_add_and_get_document(store, rng):
    vectors = vec(rng, 2)
    result = store.add_document(make_doc("d1", ["Alice", "Bob"], vectors))
    doc = result.document
    assert not result.replaced and len(result.created_entity_ids) == 2
    assert doc.external_id == "d1" and doc.text == "Alice and Bob." and doc.language == "en"
    assert doc.metadata == {"source": "test"} and len(doc.content_hash) == 64
    assert [(m.start, m.end, m.text) for m in doc.mentions] == [(0, 5, "Alice"), (10, 13, "Bob")]
    assert store.get_document(external_id="d1") == store.get_document(doc.id)
    alice = store.get_entity(doc.mentions[0].entity_id)
    assert (alice.name, alice.label, alice.mention_count) == ("Alice", "PER", 1)
    assert [(a.norm, a.count) for a in alice.aliases] == [("alice", 1)]
    np.testing.assert_allclose(store.entity_vector(alice.id), unit(vectors[0]), atol=1e-6)
    assert_consistent(store)


def test_mentions_of_one_new_entity_share_it(store, rng):
    spec = NewEntity("Nigel Farage", "PER")
    text = "Nigel Farage said Farage'a"
    mentions = [
        MentionCreate(0, 12, "PER", vec(rng)[0], new_entity=spec),
        MentionCreate(18, 26, "PER", vec(rng)[0], new_entity=spec),
    ]
    doc = store.add_document(DocumentCreate("d", text, mentions)).document
    entity = store.get_entity(doc.mentions[0].entity_id)
    assert doc.mentions[1].entity_id == entity.id and entity.mention_count == 2
    assert {a.norm for a in entity.aliases} == {"nigel farage", "farage'a"}


@pytest.mark.parametrize(
    "mention, match",
    [
        (MentionCreate(3, 2, "PER", np.ones(DIM)), "offsets"),  # end before start
        (MentionCreate(0, 99, "PER", np.ones(DIM)), "offsets"),  # past the end of the text
        (MentionCreate(0, 5, "PER", np.ones(DIM), text="Bobby"), "differs"),  # text does not match offsets
        (MentionCreate(0, 5, "PER", np.ones(DIM + 1)), "floats"),  # wrong vector size
        (MentionCreate(0, 5, "PER", np.zeros(DIM)), "zeros"),  # no direction
        (MentionCreate(0, 5, "", np.ones(DIM)), "label"),
        (MentionCreate(0, 5, "PER", np.ones(DIM), entity_id=1, new_entity=NewEntity("A", "PER")), "not both"),
    ],
)
def test_invalid_mentions_write_nothing(store, mention, match):
    with pytest.raises(InvalidInput, match=match):
        store.add_document(DocumentCreate("bad", "Alice and Bob.", [mention]))
    assert store.stats().documents == 0 and store.stats().entities == 0
    assert_consistent(store)


def test_unknown_entity_rolls_back_the_whole_document(store, rng):
    store.add_document(make_doc("d1", ["Alice"], vec(rng)))
    before = store.stats()
    doc = DocumentCreate(
        "d2",
        "Carol and Dave.",
        [
            MentionCreate(0, 5, "PER", vec(rng)[0], new_entity=NewEntity("Carol", "PER")),
            MentionCreate(10, 14, "PER", vec(rng)[0], entity_id=999),
        ],
    )
    with pytest.raises(NotFound) as info:
        store.add_document(doc)
    assert (info.value.kind, info.value.key) == ("entity", 999)
    assert store.stats() == before  # no document, no new entity "Carol", no vectors
    with pytest.raises(NotFound):
        store.get_document(external_id="d2")
    assert_consistent(store)


def test_readding_an_external_id_replaces_it(store, rng):
    first = store.add_document(make_doc("d1", ["Alice", "Bob"], vec(rng, 2))).document
    alice_id = first.mentions[0].entity_id
    # Version 2 links "Alice" to the same entity and drops Bob.
    second = store.add_document(make_doc("d1", ["Alice"], vec(rng), entity_ids=[alice_id]))
    assert second.replaced and second.document.id != first.id
    assert second.removed_entity_ids == [first.mentions[1].entity_id]
    assert store.stats().documents == 1 and store.stats().mentions == 1
    alice = store.get_entity(alice_id)
    assert alice.mention_count == 1 and [(a.norm, a.count) for a in alice.aliases] == [("alice", 1)]
    with pytest.raises(NotFound):
        store.get_entity(first.mentions[1].entity_id)
    old_mention_ids = {m.id for m in first.mentions}
    assert not old_mention_ids & set(store.faiss_ids("mentions").tolist())
    assert_consistent(store)


def test_delete_updates_counts_centroids_and_aliases(store, rng):
    v1, v2 = vec(rng, 2)
    d1 = store.add_document(make_doc("d1", ["Alice", "Bob"], np.stack([v1, vec(rng)[0]]))).document
    alice_id, bob_id = (m.entity_id for m in d1.mentions)
    store.add_document(make_doc("d2", ["ALICE"], v2[None], entity_ids=[alice_id]))
    alice = store.get_entity(alice_id)
    assert alice.mention_count == 2 and {(a.norm, a.count) for a in alice.aliases} == {("alice", 2)}
    np.testing.assert_allclose(store.entity_vector(alice_id), unit(unit(v1) + unit(v2)), atol=1e-6)

    removed = store.delete_document(external_id="d1")
    assert removed == [bob_id]  # Bob had no other mention
    alice = store.get_entity(alice_id)
    assert alice.mention_count == 1 and [(a.norm, a.count) for a in alice.aliases] == [("alice", 1)]
    np.testing.assert_allclose(store.entity_vector(alice_id), unit(v2), atol=1e-6)
    assert set(store.faiss_ids("entities").tolist()) == {alice_id}
    with pytest.raises(NotFound):
        store.get_document(external_id="d1")

    store.delete_document(external_id="d2")
    assert store.stats().entities == 0 and store.stats().mentions == 0
    assert store.faiss_ids("mentions").size == 0 and store.faiss_ids("entities").size == 0
    with pytest.raises(NotFound):
        store.delete_document(external_id="d2")
    assert_consistent(store)


def test_document_without_mentions(store):
    doc = store.add_document(DocumentCreate("empty", "Nothing to see.")).document
    assert doc.mentions == [] and store.stats().documents == 1
    assert_consistent(store)
