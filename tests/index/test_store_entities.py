"""Entities: upsert, aliases, name search, merge and split keep counts, aliases and vectors right."""

import numpy as np
import pytest
from conftest import DIM, assert_consistent, make_doc, unit

from index import EntityCreate, InvalidInput, NotFound, normalize_surface
from tests.postgres import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Every test here runs on the embedded store and on PostgreSQL + pgvector."""
    return request.param


def test_normalize_surface():
    assert normalize_surface("  Nigel \t FARAGE ") == "nigel farage"
    assert normalize_surface("ＡＢＣ") == "abc"  # full-width forms fold (NFKC)
    assert normalize_surface("STRASSE") == normalize_surface("Straße")  # case folding, not lower()
    assert normalize_surface("Łódź") == "łódź"  # diacritics are kept


def test_upsert_entity_creates_then_updates(store, rng):
    vector = rng.standard_normal(DIM)
    created = store.upsert_entity(
        EntityCreate("Warsaw", "LOC", aliases=["Warszawa", "Varsovie"], vector=vector)
    )
    assert created.mention_count == 0
    assert {a.norm for a in created.aliases} == {"warsaw", "warszawa", "varsovie"}
    np.testing.assert_allclose(store.entity_vector(created.id), unit(vector), atol=1e-6)
    # Same normalized name and label: the same entity is updated, not duplicated.
    again = store.upsert_entity(EntityCreate("WARSAW", "LOC", aliases=["Warschau"]))
    assert again.id == created.id and again.name == "WARSAW"
    assert {a.norm for a in again.aliases} == {"warsaw", "warszawa", "varsovie", "warschau"}
    other_label = store.upsert_entity(EntityCreate("Warsaw", "ORG"))
    assert other_label.id != created.id
    assert set(store.faiss_ids("entities").tolist()) == {created.id}  # only the one with a vector
    with pytest.raises(NotFound):
        store.upsert_entity(EntityCreate("X", "PER"), entity_id=12345)
    with pytest.raises(InvalidInput):
        store.upsert_entity(EntityCreate("   ", "PER"))
    assert_consistent(store)


def test_add_alias_counts(store):
    entity = store.upsert_entity(EntityCreate("United Nations", "ORG"))
    store.add_alias(entity.id, "UN")
    entity = store.add_alias(entity.id, " un ", count=2)
    assert entity.aliases[0].norm == "un" and entity.aliases[0].count == 3  # most used first
    with pytest.raises(NotFound):
        store.add_alias(999, "x")


def test_search_entities_by_name_and_alias(store):
    farage = store.upsert_entity(EntityCreate("Nigel Farage", "PER", aliases=["Farage'a", "Фарадж"]))
    paris = store.upsert_entity(EntityCreate("Paris", "LOC", aliases=["Paryż"]))
    store.upsert_entity(EntityCreate("Paris Hilton", "PER"))
    store.upsert_entity(EntityCreate("100%_sure", "MISC"))

    def names(query, **kwargs):
        return [e.name for e in store.search_entities(query, **kwargs)]

    assert names("nigel") == ["Nigel Farage"]
    assert names("ARAGE") == []  # prefix of neither name nor alias...
    assert names("ARAGE", mode="substring") == ["Nigel Farage"]  # ...but a substring
    assert names("фар") == ["Nigel Farage"]  # Cyrillic alias, case-insensitive
    assert names("paryż") == ["Paris"]
    assert sorted(names("paris")) == ["Paris", "Paris Hilton"]
    assert names("paris", labels=["LOC"]) == ["Paris"]
    assert names("paris", mode="exact") == ["Paris"]
    assert names("100%") == ["100%_sure"] and names("1_0", mode="substring") == []  # LIKE wildcards escaped
    assert len(store.search_entities("paris", limit=1)) == 1
    assert (
        store.search_entities("paris", limit=1, offset=1)[0].id
        != store.search_entities("paris", limit=1)[0].id
    )
    with pytest.raises(InvalidInput, match="prefix"):
        store.search_entities("x", mode="fuzzy")
    with pytest.raises(InvalidInput):
        store.search_entities("   ")
    assert farage.id and paris.id


def two_entities(store, rng):
    """Alice (2 mentions, 'Alice'/'A. Smith') and Alicia (1 mention), with their mention vectors."""
    vectors = rng.standard_normal((3, DIM)).astype(np.float32)
    d1 = store.add_document(make_doc("d1", ["Alice", "Alicia"], vectors[:2])).document
    alice_id, alicia_id = d1.mentions[0].entity_id, d1.mentions[1].entity_id
    d2 = store.add_document(make_doc("d2", ["A. Smith"], vectors[2:], entity_ids=[alice_id])).document
    return alice_id, alicia_id, vectors, [d1.mentions[0].id, d1.mentions[1].id, d2.mentions[0].id]


def test_list_entities_pages_by_id_with_centroids(store, rng):
    vectors = rng.standard_normal((5, DIM))
    made = [
        store.upsert_entity(EntityCreate(f"E{i}", "PER" if i % 2 else "LOC", vector=vectors[i])).id
        for i in range(5)
    ]
    store.upsert_entity(EntityCreate("No vector", "ORG"))
    pages, after = [], 0
    while page := store.list_entities(after_id=after, limit=2):
        pages.append([entity.id for entity, _ in page])
        after = page[-1][0].id
    assert [len(p) for p in pages] == [2, 2, 2] and sum(pages, [])[:5] == made
    by_id = {entity.id: vector for entity, vector in store.list_entities(limit=10)}
    np.testing.assert_allclose(by_id[made[3]], unit(vectors[3]), atol=1e-6)
    assert by_id[max(by_id)] is None  # the entity without a vector
    assert [e.name for e, _ in store.list_entities(labels=["PER"])] == ["E1", "E3"]
    with pytest.raises(InvalidInput):
        store.list_entities(limit=0)


def test_merge_moves_mentions_aliases_and_vector(store, rng):
    alice_id, alicia_id, vectors, mention_ids = two_entities(store, rng)
    merged = store.merge_entities(alice_id, alicia_id)
    assert merged.mention_count == 3
    assert {(a.norm, a.count) for a in merged.aliases} == {("alice", 1), ("alicia", 1), ("a. smith", 1)}
    expected = unit(sum(unit(v) for v in vectors))
    np.testing.assert_allclose(store.entity_vector(alice_id), expected, atol=1e-5)
    with pytest.raises(NotFound):
        store.get_entity(alicia_id)
    assert {m.entity_id for m in store.get_document(external_id="d1").mentions} == {alice_id}
    assert store.faiss_ids("entities").tolist() == [alice_id]
    hit = store.similar_entities(expected, k=1)[0]
    assert hit.entity.id == alice_id and hit.score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InvalidInput):
        store.merge_entities(alice_id, alice_id)
    with pytest.raises(NotFound):
        store.merge_entities(alice_id, alicia_id)
    assert_consistent(store)


def test_split_creates_entity_from_mentions(store, rng):
    alice_id, alicia_id, vectors, mention_ids = two_entities(store, rng)
    smith = store.split_entity(alice_id, [mention_ids[2]], name="Anna Smith", label="PER")
    assert smith.id not in (alice_id, alicia_id)
    assert smith.mention_count == 1 and [a.norm for a in smith.aliases] == ["a. smith"]
    np.testing.assert_allclose(store.entity_vector(smith.id), unit(vectors[2]), atol=1e-6)
    alice = store.get_entity(alice_id)
    assert alice.mention_count == 1 and [a.norm for a in alice.aliases] == ["alice"]
    np.testing.assert_allclose(store.entity_vector(alice_id), unit(vectors[0]), atol=1e-6)
    # Mentions of another entity cannot be split off this one.
    with pytest.raises(InvalidInput, match="do not belong"):
        store.split_entity(alice_id, [mention_ids[1]], name="X", label="PER")
    with pytest.raises(NotFound):
        store.split_entity(alice_id, [99999], name="X", label="PER")
    # Splitting every mention off leaves the old entity empty: it is removed.
    store.split_entity(alicia_id, [mention_ids[1]], name="Alicia Keys", label="PER")
    with pytest.raises(NotFound):
        store.get_entity(alicia_id)
    assert_consistent(store)


def test_link_mentions_to_existing_entity(store, rng):
    alice_id, alicia_id, vectors, mention_ids = two_entities(store, rng)
    alice = store.link_mentions([mention_ids[1]], alice_id)
    assert alice.mention_count == 3
    with pytest.raises(NotFound):
        store.get_entity(alicia_id)
    assert_consistent(store)
