"""The linker suite (``test_linker.py``) again, over a PostgreSQL + pgvector store.

On a shared store the linker decides under the store-wide entity lock and syncs its cache from
the entity change log (``Linker.sync``); these tests check that nothing a single process sees
changes with it. The multi-process behaviour is in ``tests/api/test_postgres_multiprocess.py``.
"""

import pytest

from index import Store
from linking.linker import Linker
from tests.linking.test_linker import (  # noqa: F401 - collected again here, with the fixture below
    DIM,
    NAMES_ONLY,
    SurfaceHashEmbedder,
    doc,
    test_cross_document_and_cross_lingual_linking,
    test_entity_known_by_surname_gets_the_full_name,
    test_link_does_not_store,
    test_merge_and_split,
    test_reingest_replaces_the_earlier_version,
    test_reload_rebuilds_the_cache_from_the_store,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def linker(pg_url):
    with Store.open(pg_url, dim=DIM) as store:
        assert store.shared
        yield Linker(store, settings=NAMES_ONLY, embedder=SurfaceHashEmbedder())


def test_a_second_linker_sees_what_the_first_wrote_before_deciding(pg_url):
    """Two linkers on one store (as two processes would be): no reload() needed."""
    with Store.open(pg_url, dim=DIM) as one, Store.open(pg_url) as two:
        first = Linker(one, settings=NAMES_ONLY, embedder=SurfaceHashEmbedder())
        second = Linker(two, settings=NAMES_ONLY, embedder=SurfaceHashEmbedder())
        a = first.ingest_one(doc("a", "Nigel Farage spoke.", [("Nigel Farage", "PER")]))
        b = second.ingest_one(doc("b", "Nigel Farage again.", [("Nigel Farage", "PER")]))
        assert b.linked_entity_ids == a.created_entity_ids and not b.created_entity_ids
        c = first.ingest_one(doc("c", "Boris Johnson too.", [("Boris Johnson", "PER")]))
        second.merge(a.created_entity_ids[0], c.created_entity_ids[0])
        linked = first.link(
            "Boris Johnson", [doc("x", "Boris Johnson", [("Boris Johnson", "PER")]).mentions[0]]
        )
        assert linked.mentions[0].entity_id == a.created_entity_ids[0]


def _cache(linker: Linker) -> dict[int, tuple]:
    return {
        i: (e.name, e.label, e.mention_count, sorted(e.alias_counts.items()))
        for i, e in linker.table.entities.items()
    }


def test_a_linker_behind_the_pruned_change_log_reloads_and_converges(pg_url, monkeypatch):
    """The change log keeps only its last generations; a linker that fell further behind (an idle
    process) reloads every entity instead of missing the pruned changes."""
    from index import postgres

    monkeypatch.setattr(postgres, "CHANGE_LOG_RETAIN", 3)
    monkeypatch.setattr(postgres, "CHANGE_LOG_PRUNE_EVERY", 2)
    with Store.open(pg_url, dim=DIM) as one, Store.open(pg_url) as two:
        busy = Linker(one, settings=NAMES_ONLY, embedder=SurfaceHashEmbedder())
        idle = Linker(two, settings=NAMES_ONLY, embedder=SurfaceHashEmbedder())
        reloads = []
        real_reload = idle.reload
        monkeypatch.setattr(idle, "reload", lambda: (reloads.append(1), real_reload()))
        farage = busy.ingest_one(
            doc("a", "Nigel Farage spoke.", [("Nigel Farage", "PER")])
        ).created_entity_ids[0]
        idle.sync()
        assert not reloads and farage in idle.table.entities
        # the busy one writes on: a new entity, a merge, more documents (many generations)
        boris = busy.ingest_one(
            doc("b", "Boris Johnson too.", [("Boris Johnson", "PER")])
        ).created_entity_ids[0]
        busy.merge(farage, boris)
        starmer = busy.ingest_one(doc("c", "Keir Starmer.", [("Keir Starmer", "PER")])).created_entity_ids[0]
        for i in range(5):
            busy.ingest_one(doc(f"c{i}", f"Keir Starmer {i}.", [("Keir Starmer", "PER")]))
        assert two.entity_changes(idle._generation)[1] is None  # pruned past the idle cache
        # the idle one's next decision: a full reload, then it links to what exists
        result = idle.ingest_one(
            doc("d", "Boris Johnson and Keir Starmer.", [("Boris Johnson", "PER"), ("Keir Starmer", "PER")])
        )
        assert reloads == [1]
        assert not result.created_entity_ids
        assert set(result.linked_entity_ids) == {farage, starmer}  # Boris Johnson was merged into Farage
        assert boris not in idle.table.entities
        fresh = Linker(two, settings=NAMES_ONLY, embedder=SurfaceHashEmbedder())
        assert _cache(idle) == _cache(fresh)
        busy.sync()
        assert _cache(busy) == _cache(fresh)
        assert two.check().ok
