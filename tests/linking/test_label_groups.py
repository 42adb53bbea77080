"""Linking with a label hierarchy (the `fine` model): types agree when their groups do.

The rule: an "Artist" and a "Politician" mention are both PER, so they may be one person (the
fine type is a role in context: Schwarzenegger is both); a PER and a GRP mention disagree in type
exactly as a PER and an ORG do with flat labels. Flat label sets are each label's own group.
"""

from __future__ import annotations

import pytest

from index import Store
from linking.core import EntityView, GroupView, score_candidate
from linking.coref import MentionSpan, group_mentions
from linking.linker import Linker
from linking.settings import LinkSettings
from ner.labels import MULTICONER_GROUPS
from tests.linking.test_linker import DIM, SurfaceHashEmbedder, doc

# Exact names score 1.0; only the type bonus (0.1) lifts a candidate over the threshold.
TYPE_DECIDES = LinkSettings(vector_weight=0.0, link_threshold=1.05, cross_script_cosine=0.0)
NAME = "Arnold Schwarzenegger"


def test_type_agreement_compares_groups():
    entity = EntityView(1, NAME, "Artist", [NAME.casefold()], label_group="PER")
    politician = GroupView([NAME], "Politician", label_group="PER")
    company = GroupView([NAME], "PublicCorp", label_group="GRP")
    assert score_candidate(politician, entity, TYPE_DECIDES).same_type
    assert not score_candidate(company, entity, TYPE_DECIDES).same_type
    # Without a hierarchy the group is the label: two fine types disagree.
    flat = EntityView(1, NAME, "Artist", [NAME.casefold()])
    assert flat.label_group == "Artist"
    assert not score_candidate(GroupView([NAME], "Politician"), flat, TYPE_DECIDES).same_type


def test_coreference_within_a_group():
    text = "Arnold Schwarzenegger ... Schwarzenegger ... Schwarzenegger"
    spans = [(0, 21), (26, 40), (45, 59)]

    def grouped(labels, groups):
        mentions = [
            MentionSpan(s, e, label, text[s:e], groups.get(label, "")) for (s, e), label in zip(spans, labels)
        ]
        return group_mentions(text, mentions, LinkSettings(coref_cross_type=False))

    assert grouped(["Politician", "Artist", "Athlete"], MULTICONER_GROUPS) == [[0, 1, 2]]
    assert grouped(["Politician", "Artist", "Athlete"], {}) == [[0], [1], [2]]  # fine types alone differ
    assert grouped(["Politician", "PublicCorp", "Artist"], MULTICONER_GROUPS) == [[0, 2], [1]]


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "spanlink.db", dim=DIM) as store:
        yield store


def test_linking_across_documents_by_group(store):
    linker = Linker(
        store, settings=TYPE_DECIDES, embedder=SurfaceHashEmbedder(), label_groups=MULTICONER_GROUPS
    )
    first, second, third = linker.ingest(
        [
            doc("a", f"{NAME} starred in the film.", [(NAME, "Artist")]),
            doc("b", f"Governor {NAME} signed the bill.", [(NAME, "Politician")]),
            doc("c", f"{NAME} Inc. reported profits.", [(NAME, "PublicCorp")]),
        ]
    )
    person = first.created_entity_ids[0]
    assert second.linked_entity_ids == [person] and second.created_entity_ids == []
    assert third.created_entity_ids and third.mentions[0].entity_id != person
    assert store.get_entity(person).label == "Artist"
    assert store.get_entity(third.mentions[0].entity_id).label == "PublicCorp"
    assert [m.label for m in store.get_document(external_id="b").mentions] == ["Politician"]


def test_without_a_hierarchy_fine_types_do_not_agree(store):
    linker = Linker(store, settings=TYPE_DECIDES, embedder=SurfaceHashEmbedder())
    first, second = linker.ingest(
        [
            doc("a", f"{NAME} starred in the film.", [(NAME, "Artist")]),
            doc("b", f"Governor {NAME} signed the bill.", [(NAME, "Politician")]),
        ]
    )
    assert second.created_entity_ids and second.mentions[0].entity_id != first.mentions[0].entity_id


def test_entity_type_is_the_main_group_and_its_most_frequent_label(store):
    linker = Linker(
        store, settings=TYPE_DECIDES, embedder=SurfaceHashEmbedder(), label_groups=MULTICONER_GROUPS
    )
    text = "Ferrari won. Ferrari sold cars. Ferrari shares rose."
    (result,) = linker.ingest(
        [doc("a", text, [("Ferrari", "Athlete"), ("Ferrari", "CarManufacturer"), ("Ferrari", "PublicCorp")])]
    )
    (entity_id,) = result.created_entity_ids  # identical names: one in-document group across types
    # Two of three mentions are GRP; of those, the first most frequent fine type names the entity
    # (the most frequent fine type over all mentions, ties to the first, would be "Athlete").
    assert store.get_entity(entity_id).label == "CarManufacturer"
    assert linker.table.entities[entity_id].label_group == "GRP"


def test_groups_come_from_the_model(tmp_path, tiny_fine_checkpoint, tiny_model):
    import ner

    fine = ner.load(tiny_fine_checkpoint)
    with Store.open(tmp_path / "fine.db", dim=fine.hidden_size) as store:
        assert Linker(store, fine).label_groups == fine.config.label_groups
        assert Linker(store, fine).label_groups["Politician"] == "PER"
    with Store.open(tmp_path / "flat.db", dim=tiny_model.hidden_size) as store:
        assert Linker(store, tiny_model).label_groups == {}


def test_entity_label_follows_its_mentions_within_its_group(store):
    names_decide = LinkSettings(vector_weight=0.0, link_threshold=0.9, cross_script_cosine=0.0)
    linker = Linker(
        store, settings=names_decide, embedder=SurfaceHashEmbedder(), label_groups=MULTICONER_GROUPS
    )

    def ingest(key, label):
        (result,) = linker.ingest([doc(key, f"{NAME} was in the news.", [(NAME, label)])])
        return result.mentions[0].entity_id

    entity_id = ingest("a", "Artist")
    assert ingest("b", "Politician") == entity_id
    assert store.get_entity(entity_id).label == "Artist"  # a tie keeps the label
    ingest("c", "Politician")
    assert store.get_entity(entity_id).label == "Politician"  # now the most frequent
    for key in "def":  # names alone link these; GRP outnumbers PER, but the group stays
        assert ingest(key, "PublicCorp") == entity_id
    assert store.get_entity(entity_id).label == "Politician"
    assert linker.table.entities[entity_id].label == "Politician"
    linker.delete_document("b")
    linker.delete_document("c")
    assert store.get_entity(entity_id).label == "Artist"
    assert store.mention_labels([entity_id]) == {entity_id: {"Artist": 1, "PublicCorp": 3}}


def test_flat_labels_keep_the_founding_type(store):
    names_decide = LinkSettings(vector_weight=0.0, link_threshold=0.9, cross_script_cosine=0.0)
    linker = Linker(store, settings=names_decide, embedder=SurfaceHashEmbedder())
    results = linker.ingest(
        [doc(k, f"{NAME} spoke.", [(NAME, label)]) for k, label in zip("abc", ["PER", "ORG", "ORG"])]
    )
    entity_id = results[0].mentions[0].entity_id
    assert all(r.mentions[0].entity_id == entity_id for r in results)
    assert store.get_entity(entity_id).label == "PER"
