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
