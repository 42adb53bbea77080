"""Similarity search through the store against exact brute force, with label filters."""

import numpy as np
import pytest
from conftest import DIM, assert_consistent, clustered

from index import DocumentCreate, InvalidInput, MentionCreate, NewEntity
from tests.postgres import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Every test here runs on the embedded store and on PostgreSQL + pgvector."""
    return request.param


def fill(store, rng, n_clusters=12, per_cluster=8):
    """One document per cluster; its mentions found the cluster's entity. Labels alternate PER/LOC."""
    _, vectors, clusters = clustered(rng, n_clusters, per_cluster)
    for c in range(n_clusters):
        label = "PER" if c % 2 == 0 else "LOC"
        words = [f"w{c}x{i}" for i in range(per_cluster)]
        text = " ".join(words)
        mentions, start = [], 0
        for word, vector in zip(words, vectors[clusters == c], strict=True):
            mentions.append(
                MentionCreate(start, start + len(word), label, vector, new_entity=NewEntity(f"E{c}", label))
            )
            start += len(word) + 1
        store.add_document(DocumentCreate(f"doc{c}", text, mentions))
    return vectors


def brute_force(store, kind):
    """All (id, unit vector, label) of ``kind`` read back through the public API."""
    if kind == "entities":
        ids = store.faiss_ids("entities")
        return (
            ids,
            np.stack([store.entity_vector(int(i)) for i in ids]),
            [store.get_entity(int(i)).label for i in ids],
        )
    raise AssertionError(kind)


@pytest.mark.parametrize("factory", ["Flat", "HNSW16"])
def test_similar_entities_match_exact_search(store_factory, rng, factory):
    store = store_factory(factory=factory)
    fill(store, rng)
    ids, vectors, labels = brute_force(store, "entities")
    queries = rng.standard_normal((10, DIM)).astype(np.float32)
    for query in queries:
        query = query / np.linalg.norm(query)
        scores = vectors @ query
        order = np.argsort(-scores)[:5]
        hits = store.similar_entities(query, k=5)
        assert [h.entity.id for h in hits] == ids[order].tolist()
        np.testing.assert_allclose([h.score for h in hits], scores[order], atol=1e-5)
        per = [i for i in np.argsort(-scores) if labels[i] == "PER"][:3]
        hits = store.similar_entities(query, k=3, labels=["PER"])
        assert [h.entity.id for h in hits] == ids[per].tolist()


def test_similar_entities_by_entity_excludes_itself(store, rng):
    fill(store, rng)
    ids, vectors, _ = brute_force(store, "entities")
    target = int(ids[0])
    hits = store.similar_entities(entity_id=target, k=3)
    assert target not in [h.entity.id for h in hits] and len(hits) == 3
    expected = ids[1:][np.argsort(-(vectors[1:] @ vectors[0]))[:3]]
    assert [h.entity.id for h in hits] == expected.tolist()
    with pytest.raises(InvalidInput):
        store.similar_entities(np.ones(DIM), entity_id=target)
    with pytest.raises(InvalidInput):
        store.similar_entities(np.ones(DIM), k=0)


def test_similar_mentions_with_labels(store, rng):
    vectors = fill(store, rng)
    query = vectors[3] / np.linalg.norm(vectors[3])
    hits = store.similar_mentions(query, k=4)
    assert hits[0].score == pytest.approx(1.0, abs=1e-5) and hits[0].document_external_id == "doc0"
    stored = {m.id: m for m in store.get_document(external_id="doc0").mentions}
    assert hits[0].mention == stored[hits[0].mention.id]  # every field, as the document holds it
    assert [h.score for h in hits] == sorted([h.score for h in hits], reverse=True)
    loc = store.similar_mentions(query, k=4, labels=["LOC"])
    assert len(loc) == 4 and {h.mention.label for h in loc} == {"LOC"}
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    best_loc = max(float(units[i] @ query) for i in range(len(units)) if (i // 8) % 2 == 1)
    assert loc[0].score == pytest.approx(best_loc, abs=1e-5)
    by_entity = store.similar_mentions(entity_id=hits[0].mention.entity_id, k=8)
    assert {h.mention.entity_id for h in by_entity} == {hits[0].mention.entity_id}  # tight clusters
    assert store.similar_mentions(query, k=3, labels=["NOPE"]) == []
    assert_consistent(store)


def test_search_on_empty_store(store):
    assert store.similar_entities(np.ones(DIM), k=5) == []
    assert store.similar_mentions(np.ones(DIM), k=5) == []


def test_a_label_held_by_one_percent_of_the_mentions_still_gets_k_hits(store_factory, rng, backend):
    """Filters apply inside the search (pgvector's iterative index scan; FAISS over-fetching), so a
    rare label is not starved by the unfiltered nearest neighbours."""
    store = store_factory(factory="HNSW16")
    n, per_doc, k = 3000, 50, 10
    _, vectors, _ = clustered(rng, 60, n // 60)
    with store.transaction():
        for d in range(n // per_doc):
            words = [f"m{d}x{i}" for i in range(per_doc)]
            mentions, start = [], 0
            for i, word in enumerate(words):
                label = "RARE" if (d * per_doc + i) % 100 == 0 else "PER"
                vector = vectors[d * per_doc + i]
                mentions.append(MentionCreate(start, start + len(word), label, vector))
                start += len(word) + 1
            store.add_document(DocumentCreate(f"doc{d}", " ".join(words), mentions))
    rare = {
        m.id
        for d in range(n // per_doc)
        for m in store.get_document(external_id=f"doc{d}").mentions
        if m.label == "RARE"
    }
    assert len(rare) == n // 100
    if backend == "postgres":  # the query must be served by the HNSW index, not a sequential scan
        from sqlalchemy import text

        with store.engine.connect() as conn:
            conn.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    text("EXPLAIN SELECT id FROM mentions ORDER BY vector <=> CAST(:q AS vector) LIMIT 10"),
                    {"q": str(vectors[0].tolist())},
                )
            )
        assert "ix_mentions_vector_hnsw" in plan, plan
        from sqlalchemy.orm import Session

        from index import postgres

        with Session(store.engine) as session:  # through the index, efSearch 10: only the iterative
            session.execute(text("SET LOCAL enable_seqscan = off"))  # scan can find 10 RARE rows
            query = vectors[1] / np.linalg.norm(vectors[1])
            found = postgres.search(
                session, "mentions", query, k, labels=["RARE"], skip=None, ef_search=10, iterative=True
            )
        assert len(found) == k and {i for _, i, _ in found} <= rare
    for query in rng.standard_normal((5, DIM)).astype(np.float32):
        hits = store.similar_mentions(query, k=k, labels=["RARE"])
        assert len(hits) == k
        assert {h.mention.id for h in hits} <= rare
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("backend", ["postgres"])
def test_postgres_similarity_query_is_one_statement_outside_a_transaction(store_factory, rng, backend):
    """A similarity query's latency is mostly round trips: the kNN statement itself brings the rows
    (mentions with their document ids, entities with their aliases), with no BEGIN/ROLLBACK around
    it; a k above efSearch needs a transaction (SET LOCAL) and still gets k hits; inside an open
    transaction the search sees that transaction's own writes."""
    from sqlalchemy import event

    from index import StoreSettings

    store = store_factory(settings=StoreSettings(ef_search=10))
    vectors = fill(store, rng)
    statements: list[str] = []
    transactions: list[bool] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def seen(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        statements.append(statement)
        transactions.append(not conn.connection.dbapi_connection.autocommit)

    query = vectors[0] / np.linalg.norm(vectors[0])
    hits = store.similar_mentions(query, k=5)
    assert len(hits) == 5 and hits[0].document_external_id == "doc0"
    assert len(statements) == 1 and transactions == [False], statements
    statements.clear(), transactions.clear()
    entity_hits = store.similar_entities(query, k=3)
    assert entity_hits[0].entity.name == "E0" and len(entity_hits[0].entity.aliases) > 1
    assert len(statements) == 1 and transactions == [False], statements
    for hit in entity_hits:  # every field as a plain read gives it, aliases in their order
        assert hit.entity == store.get_entity(hit.entity.id)
    statements.clear(), transactions.clear()
    many = store.similar_mentions(query, k=40)  # over efSearch 10
    assert len(many) == 40 and any("SET LOCAL hnsw.ef_search" in s for s in statements)
    assert all(transactions)
    statements.clear(), transactions.clear()
    with store.transaction():
        store.add_document(
            DocumentCreate(
                "fresh", "twin", [MentionCreate(0, 4, "PER", vectors[0], new_entity=NewEntity("T", "PER"))]
            )
        )
        twins = store.similar_mentions(query, k=2)
        assert {h.document_external_id for h in twins} == {"doc0", "fresh"}
    event.remove(store.engine, "before_cursor_execute", seen)
