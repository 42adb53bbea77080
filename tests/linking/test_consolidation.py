"""Entity-to-entity merging after ingest (linking/consolidation.py, Linker.consolidate)."""

import numpy as np
import pytest

from index import Store
from linking.consolidation import PlannedMerge, plan_merges, resolve
from linking.core import GroupView, MemoryEntities, link_embeddings
from linking.linker import Linker
from linking.settings import LinkSettings
from tests.linking.test_linker import DIM, SurfaceHashEmbedder, doc, entity_of

NAMES_ONLY = LinkSettings(vector_weight=0.0, link_threshold=0.9, cross_script_cosine=0.0)  # merges at 1.1


def _split_then_bridged() -> list[list[tuple[GroupView, None]]]:
    """ "EU" cannot link to "Unia Europejska" on its own (other initials), so online linking makes two
    entities; a later "Unia Europejska (EU)" links to the first and teaches it the alias "eu"."""
    return [
        [(GroupView(["Unia Europejska"], "ORG"), None)],
        [(GroupView(["EU"], "ORG"), None)],
        [(GroupView(["Unia Europejska", "EU"], "ORG"), None)],
        [(GroupView(["Theresa May"], "PER"), None)],
    ]


def test_online_linking_splits_and_consolidation_merges():
    docs = _split_then_bridged()
    assert link_embeddings(docs, NAMES_ONLY) == [[1], [2], [1], [3]]
    assert link_embeddings(docs, NAMES_ONLY, consolidate=True) == [[1], [1], [1], [3]]


def test_plan_leaves_the_table_alone_and_merges_small_into_large():
    table = MemoryEntities(dim=1)
    for (group, _), target in zip([d[0] for d in _split_then_bridged()], [None, None, 1, None], strict=True):
        table.add(group, None, target)
    before = {e.id: (list(e.aliases), e.mention_count) for e in table.entities.values()}
    plan = plan_merges(table, NAMES_ONLY)
    assert [(p.source, p.target) for p in plan] == [(2, 1)]
    assert {e.id: (list(e.aliases), e.mention_count) for e in table.entities.values()} == before
    table.merge(1, 2)
    assert table.entities[1].mention_count == 4 and 2 not in table.entities
    assert table.entities[1].alias_counts == {"unia europejska": 2, "eu": 2}


def test_a_higher_margin_merges_nothing():
    docs = _split_then_bridged()
    strict = LinkSettings(vector_weight=0.0, link_threshold=0.9, merge_margin=0.25, cross_script_cosine=0.0)
    assert link_embeddings(docs, strict, consolidate=True) == link_embeddings(docs, strict)


def test_resolve_follows_chains():
    assert resolve([PlannedMerge(5, 3, 1.2), PlannedMerge(3, 1, 1.3)]) == {5: 1, 3: 1}


def test_centroids_combine_when_entities_merge():
    table = MemoryEntities(dim=2)
    a = table.add(GroupView(["Brexit"], "EVT"), np.array([[1.0, 0.0], [1.0, 0.0]]), None)
    b = table.add(GroupView(["Брекзит"], "EVT"), np.array([[0.0, 1.0]]), None)
    table.merge(a, b)
    expected = np.array([2.0, 1.0]) / np.sqrt(5.0)
    assert np.allclose(table.entities[a].vector, expected, atol=1e-6)


@pytest.fixture
def linker(tmp_path):
    with Store.open(tmp_path / "spanlink.db", dim=DIM) as store:
        yield Linker(store, settings=NAMES_ONLY, embedder=SurfaceHashEmbedder())


def test_linker_consolidate_merges_in_the_store(linker):
    first, second, third = linker.ingest(
        [
            doc("d1", "Unia Europejska obraduje.", [("Unia Europejska", "ORG")]),
            doc("d2", "EU votes.", [("EU", "ORG")], "en"),
            doc("d3", "Unia Europejska (EU) znowu.", [("Unia Europejska", "ORG"), ("EU", "ORG")]),
        ]
    )
    union, eu = entity_of(first, 0), entity_of(second, 0)
    assert union != eu and entity_of(third, 0) == union
    assert linker.consolidate() == {eu: union}
    assert linker.store.get_entity(union).mention_count == 4
    assert linker.store.stats().entities == 1
    assert linker.consolidate() == {}, "a second pass finds nothing more"
