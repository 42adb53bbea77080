"""Knowledge-base entities in the store (issue 18), on SQLite + FAISS and PostgreSQL + pgvector:
import and re-import by external id, the KB's aliases and vector outliving mentions, merges that keep
the KB identity, validation before any write, the copy to PostgreSQL, and the in-place upgrade."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DIM, assert_consistent, unit

from index import (
    DocumentCreate,
    InvalidInput,
    KnownEntity,
    MentionCreate,
    NewEntity,
    NotFound,
    SchemaMismatch,
    Store,
)
from tests.index.schema_v1 import make_version_1
from tests.postgres import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


def doc(external_id: str, surface: str, entity_id: int, vector: np.ndarray) -> DocumentCreate:
    return DocumentCreate(
        external_id, f"{surface} today.", [MentionCreate(0, len(surface), "LOC", vector, entity_id=entity_id)]
    )


def test_import_creates_then_updates_in_place(store, rng):
    seed = unit(rng.standard_normal(DIM).astype(np.float32))
    (moscow, created), (paris, _) = store.import_entities(
        [
            KnownEntity("Q649", "Moscow", "LOC", ["Москва", "莫斯科"], "capital", {"pop": 13}, seed),
            KnownEntity("Q90", "Paris", "LOC", ["Париж"]),
        ]
    )
    assert created and moscow.external_id == "Q649" and moscow.metadata == {"pop": 13}
    assert {(a.norm, a.count, a.kb) for a in moscow.aliases} == {
        ("moscow", 0, True), ("москва", 0, True), ("莫斯科", 0, True)
    }  # fmt: skip
    assert np.allclose(store.entity_vector(moscow.id), seed, atol=1e-6)
    assert store.entity_vector(paris.id) is None  # no vector given: found by name only
    assert [h.entity.id for h in store.similar_entities(seed, k=1)] == [moscow.id]

    mention = unit(rng.standard_normal(DIM).astype(np.float32))
    store.add_document(doc("d1", "Москве", moscow.id, mention))
    (again, created), = store.import_entities(
        [KnownEntity("Q649", "Moskva", "LOC", ["Москва", "Moskwa"], None, {}, seed)]
    )  # fmt: skip
    assert not created and again.id == moscow.id and again.name == "Moskva" and again.mention_count == 1
    assert again.description is None and again.metadata == {}
    assert {a.norm: (a.count, a.kb) for a in again.aliases} == {
        "moskva": (0, True), "москва": (0, True), "moskwa": (0, True), "москве": (1, False)
    }  # fmt: skip
    assert np.allclose(store.entity_vector(moscow.id), mention, atol=1e-6)  # mentions outrank the seed
    assert store.entity_by_external_id("Q649").id == moscow.id
    with pytest.raises(NotFound):
        store.entity_by_external_id("Q0")
    assert_consistent(store)


def test_a_kb_entity_outlives_its_mentions_and_keeps_its_aliases(store, rng):
    seed = unit(rng.standard_normal(DIM).astype(np.float32))
    paris = store.import_entities([KnownEntity("Q90", "Paris", "LOC", ["Paryż"], vector=seed)])[0][0]
    store.add_document(doc("d1", "Paryż", paris.id, unit(rng.standard_normal(DIM).astype(np.float32))))
    store.add_document(doc("d2", "Paryżu", paris.id, unit(rng.standard_normal(DIM).astype(np.float32))))
    assert store.delete_document(external_id="d1") == []
    assert {a.norm: a.count for a in store.get_entity(paris.id).aliases} == {
        "paris": 0,
        "paryż": 0,
        "paryżu": 1,
    }
    assert store.delete_document(external_id="d2") == []  # not removed, unlike an entity from mentions
    entity = store.get_entity(paris.id)
    assert entity.mention_count == 0 and {a.norm for a in entity.aliases} == {"paris", "paryż"}
    assert np.allclose(store.entity_vector(paris.id), seed, atol=1e-6)  # back on the KB's vector
    assert [h.entity.id for h in store.similar_entities(seed, k=1)] == [paris.id]
    assert_consistent(store)


def test_merges_keep_the_kb_identity_and_refuse_two_kb_entries(store, rng):
    vector = unit(rng.standard_normal(DIM).astype(np.float32))
    founded = store.add_document(
        DocumentCreate(
            "d1",
            "Moskwa milczy.",
            [MentionCreate(0, 6, "LOC", vector, new_entity=NewEntity("Moskwa", "LOC"))],
        )
    ).created_entity_ids[0]
    (moscow, _), (paris, _), (texas, _) = store.import_entities(
        [
            KnownEntity("Q649", "Moscow", "LOC", ["Москва"], "capital"),
            KnownEntity("Q90", "Paris", "LOC"),
            KnownEntity("Q830149", "Paris", "LOC", ["Paris, Texas"]),
        ]
    )
    merged = store.merge_entities(founded, moscow.id)  # the KB entry goes into the founded entity
    assert merged.id == founded and merged.external_id == "Q649" and merged.name == "Moscow"
    assert merged.description == "capital" and merged.mention_count == 1
    assert {a.norm: a.kb for a in merged.aliases} == {"moscow": True, "москва": True, "moskwa": False}
    with pytest.raises(InvalidInput, match="knowledge base"):
        store.merge_entities(paris.id, texas.id)
    assert store.get_entity(texas.id).external_id == "Q830149"
    assert_consistent(store)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            [KnownEntity("Q1", "A", "LOC"), KnownEntity("Q1", "B", "LOC")],
            r"entities\[2\] \(external_id 'Q1'\)",
        ),
        ([KnownEntity("Q1", "A", "LOC"), KnownEntity("Q2", "—", "LOC")], r"entities\[2\].*has no letter"),
        ([KnownEntity("Q1", "A", "LOC", ["ok", "\x00"])], "control character"),
        ([KnownEntity("Q1", "A", "")], "label must be non-empty"),
        ([KnownEntity("", "A", "LOC")], "external_id must be non-empty"),
        (
            [KnownEntity("Q1", "A", "LOC", vector=np.ones(DIM + 1))],
            r"entities\[1\] \(external_id 'Q1'\): entity vector must have 16",
        ),
    ],
)
def test_invalid_imports_write_nothing(store, items, message):
    store.import_entities([KnownEntity("Q9", "Kept", "LOC")])
    before = store.stats()
    with pytest.raises(InvalidInput, match=message):
        store.import_entities([KnownEntity("Q9", "Renamed", "LOC"), *items])
    assert store.stats() == before and store.entity_by_external_id("Q9").name == "Kept"


@pytest.mark.postgres
def test_migrate_carries_the_kb_columns(tmp_path, pg_url, rng):
    from index.migrate import migrate

    seed = unit(rng.standard_normal(DIM).astype(np.float32))
    source = tmp_path / "spanlink.db"
    with Store.open(source, dim=DIM) as store:
        (entity, _), = store.import_entities(
            [KnownEntity("Q649", "Moscow", "LOC", ["Москва"], "capital", {"pop": 13}, seed)]
        )  # fmt: skip
        before = store.get_entity(entity.id)
    report = migrate(source, pg_url)
    assert report.ok, report.as_dict()
    with Store.open(pg_url) as store:
        assert store.entity_by_external_id("Q649") == before
        assert np.allclose(store.entity_vector(entity.id), seed, atol=1e-6)
        with pytest.raises(InvalidInput):  # the unique index came along
            store.import_entities([KnownEntity("Q649", "Moscow", "LOC"), KnownEntity("Q649", "x", "LOC")])


def test_upgrade_from_version_1_in_place(store_factory, backend, rng):
    from index.upgrade import upgrade

    store = store_factory("old.db")
    vector = unit(rng.standard_normal(DIM).astype(np.float32))
    new = NewEntity("Paris", "LOC")
    store.add_document(DocumentCreate("d1", "Paris.", [MentionCreate(0, 5, "LOC", vector, new_entity=new)]))
    url = store.engine.url.render_as_string(hide_password=False)
    target = url if backend == "postgres" else store.engine.url.database
    store.close()
    make_version_1(url)
    with pytest.raises(SchemaMismatch, match="spanlink upgrade"):
        Store.open(target)
    report = upgrade(target)
    assert (report.found, report.version) == (1, 2) and "aliases.kb" in report.steps[0]
    assert upgrade(target).steps == []  # current already: nothing to do
    reopened = store_factory("old.db")
    assert reopened.get_entity(1).name == "Paris" and reopened.get_entity(1).external_id is None
    (paris, created), = reopened.import_entities([KnownEntity("Q90", "Paris", "LOC")])  # fmt: skip
    assert created and paris.external_id == "Q90"
    assert_consistent(reopened)
