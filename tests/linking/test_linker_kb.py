"""Knowledge-base entities in the linker (issue 18), on SQLite + FAISS and on PostgreSQL + pgvector.

The KB is ``kb_fixture.knowledge_base()``: 265 entities, names in Latin, Cyrillic, Han and Arabic
script, 240 of them namesakes. The vectors are hash vectors without meaning, and the settings let
names alone decide (``vector_weight`` 0, threshold 0.9; transliteration across alphabets does not
count without a vector), so every cross-script link below comes from a KB alias, and every
inflected one from the name rules against the KB's forms.
"""

from __future__ import annotations

import numpy as np
import pytest

from index import InvalidInput, KnownEntity, Store
from linking.linker import DocumentIn, Linker, MentionIn
from linking.settings import LinkSettings
from tests.linking.kb_fixture import knowledge_base
from tests.linking.test_linker import DIM, SurfaceHashEmbedder
from tests.postgres import BACKENDS

NAMES_DECIDE = LinkSettings(vector_weight=0.0, link_threshold=0.9)


def doc(external_id: str, text: str, spans: list[tuple[str, str]]) -> DocumentIn:
    """A document whose mentions are the given (surface, label) pairs, found left to right."""
    mentions, at = [], 0
    for surface, label in spans:
        start = text.index(surface, at)
        mentions.append(MentionIn(start, start + len(surface), label))
        at = start + len(surface)
    return DocumentIn(external_id, text, mentions)


# (document, mentions with the KB id each must link to; None = not in the KB)
DOCUMENTS = [
    (  # Russian: inflected city, surname alone in another case
        "ru-1",
        "Владимир Путин прилетел в Пекин. В Москве о Путине не говорили.",
        [("Владимир Путин", "PER", "Q7747"), ("Пекин", "LOC", "Q956"), ("Москве", "LOC", "Q649"),
         ("Путине", "PER", "Q7747")],
    ),
    (  # Polish: instrumental and locative forms of Latin-script KB names
        "pl-1",
        "Macron rozmawiał z Putinem w Moskwie, a potem w Paryżu i w Niemczech.",
        [("Macron", "PER", "Q3052772"), ("Putinem", "PER", "Q7747"), ("Moskwie", "LOC", "Q649"),
         ("Paryżu", "LOC", "Q90"), ("Niemczech", "LOC", "Q183")],
    ),
    (  # Chinese: Han aliases
        "zh-1",
        "默克尔在柏林会见了马克龙和普京。",
        [("默克尔", "PER", "Q567"), ("柏林", "LOC", "Q64"), ("马克龙", "PER", "Q3052772"),
         ("普京", "PER", "Q7747")],
    ),
    (  # Arabic
        "ar-1",
        "زار إيمانويل ماكرون موسكو ثم باريس.",
        [("إيمانويل ماكرون", "PER", "Q3052772"), ("موسكو", "LOC", "Q649"), ("باريس", "LOC", "Q90")],
    ),
    (  # German: aliases of another Latin-script language, an acronym
        "de-1",
        "Angela Merkel und Olaf Scholz sprachen in Moskau über die EU und die NATO.",
        [("Angela Merkel", "PER", "Q567"), ("Olaf Scholz", "PER", "Q61053"), ("Moskau", "LOC", "Q649"),
         ("EU", "ORG", "Q458"), ("NATO", "ORG", "Q7184")],
    ),
    (  # namesakes: inflected full names find their own Petrov / Petrova; a person outside the KB
        "ru-2",
        "Ивана Петрова и Анну Петрову видели в Варшаве с Яном Ковальским.",
        [("Ивана Петрова", "PER", "X-ivan-petrov"), ("Анну Петрову", "PER", "X-anna-petrova"),
         ("Варшаве", "LOC", "Q270"), ("Яном Ковальским", "PER", None)],
    ),
]  # fmt: skip


@pytest.fixture(params=BACKENDS)
def linker(request, tmp_path):
    target = tmp_path / "spanlink.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    with Store.open(target, dim=DIM) as store:
        yield Linker(store, settings=NAMES_DECIDE, embedder=SurfaceHashEmbedder())


def ingest_all(linker: Linker, **options) -> dict[str, int | None]:
    """Ingest ``DOCUMENTS``; return each mention's entity id keyed by ``"doc:surface"``."""
    out = {}
    for external_id, text, spans in DOCUMENTS:
        result = linker.ingest_one(doc(external_id, text, [(s, label) for s, label, _ in spans]), **options)
        for mention in result.mentions:
            out[f"{external_id}:{mention.text}"] = mention.entity_id
    return out


def test_mentions_in_four_scripts_link_to_the_knowledge_base(linker):
    imported = linker.import_entities(knowledge_base())
    assert len(imported) == 265 and all(created for _, created in imported)
    ids = {entity.external_id: entity.id for entity, _ in imported}
    names = {entity.id: entity.name for entity, _ in imported}
    assert all(entity.mention_count == 0 for entity, _ in imported)
    assert linker.store.entity_vector(ids["Q649"]) is not None  # a candidate by vector from the start

    linked = ingest_all(linker)
    for external_id, _, spans in DOCUMENTS:
        for surface, _, kb in spans:
            entity_id = linked[f"{external_id}:{surface}"]
            if kb is None:  # not in the KB: a new entity (NIL), without an external id
                assert entity_id not in names and entity_id is not None, surface
                assert linker.store.get_entity(entity_id).external_id is None
            else:
                assert entity_id == ids[kb], (surface, kb)
    # Putin in Russian, Polish and Chinese is one entity; mentions never rename a KB entity.
    putin = linker.store.get_entity(ids["Q7747"])
    assert putin.mention_count == 4 and putin.name == "Vladimir Putin"
    assert {"путине", "putinem", "普京"} <= {a.norm for a in putin.aliases if a.count}
    moscow = linker.store.get_entity(ids["Q649"])
    assert moscow.name == "Moscow" and moscow.mention_count == 4 and moscow.external_id == "Q649"
    assert {e.id: e.name for e in linker.store.get_entities(list(names)).values()} == names
    assert linker.store.check().ok


def test_reimport_is_idempotent_and_updates_without_losing_mentions(linker):
    first = linker.import_entities(knowledge_base())
    ingest_all(linker)
    before = {
        e.id: (e.name, e.mention_count) for e in linker.store.get_entities([e.id for e, _ in first]).values()
    }
    again = linker.import_entities(knowledge_base())
    assert [e.id for e, _ in again] == [e.id for e, _ in first] and not any(created for _, created in again)
    assert {e.id: (e.name, e.mention_count) for e, _ in again} == before
    # A changed entry: new name, one alias dropped, one added; the mentions and their aliases stay.
    moscow_id = linker.store.entity_by_external_id("Q649").id
    changed = KnownEntity("Q649", "Moskva", "LOC", ["Москва", "Moskwa", "Mosca"], description="capital")
    ((entity, created),) = linker.import_entities([changed])
    assert entity.id == moscow_id and not created and entity.name == "Moskva"
    assert entity.mention_count == 4 and entity.description == "capital"
    aliases = {a.norm: (a.count, a.kb) for a in entity.aliases}
    assert aliases["mosca"] == (0, True) and aliases["москве"] == (1, False)
    assert "莫斯科" not in aliases  # dropped by the KB and never used by a mention
    assert linker.link("Mosca", [MentionIn(0, 5, "LOC")]).mentions[0].entity_id == moscow_id
    assert linker.store.check().ok


def test_kb_only_links_to_the_kb_and_founds_nothing(linker):
    linker.import_entities(knowledge_base())
    # An entity founded from mentions, outside the KB: kb_only must not link to it either.
    outside = linker.ingest_one(doc("pl-0", "Jan Kowalski mówi.", [("Jan Kowalski", "PER")]))
    entities = linker.store.stats().entities
    result = linker.ingest_one(
        doc("pl-2", "Jan Kowalski był w Moskwie z Pawłem Nowakiem.",
            [("Jan Kowalski", "PER"), ("Moskwie", "LOC"), ("Pawłem Nowakiem", "PER")]),
        kb_only=True,
    )  # fmt: skip
    assert [m.entity_id for m in result.mentions] == [
        None,
        linker.store.entity_by_external_id("Q649").id,
        None,
    ]
    assert result.created_entity_ids == [] and linker.store.stats().entities == entities
    preview = linker.link("Jan Kowalski", [MentionIn(0, 12, "PER")], kb_only=True)
    assert preview.mentions[0].entity_id is None
    assert (
        linker.link("Jan Kowalski", [MentionIn(0, 12, "PER")]).mentions[0].entity_id
        == (outside.created_entity_ids[0])
    )
    assert linker.store.check().ok


def test_a_kb_entity_stays_when_its_last_mention_goes(linker):
    ((paris, _),) = linker.import_entities([KnownEntity("Q90", "Paris", "LOC", ["Paryż", "Париж"])])
    seed = linker.store.entity_vector(paris.id)
    linker.ingest_one(doc("pl-3", "W Paryżu pada.", [("Paryżu", "LOC")]))
    assert linker.store.get_entity(paris.id).mention_count == 1
    assert not np.allclose(linker.store.entity_vector(paris.id), seed)  # the mention's vector now
    assert linker.delete_document("pl-3") == []
    entity = linker.store.get_entity(paris.id)
    assert entity.mention_count == 0 and entity.name == "Paris"
    assert {a.norm for a in entity.aliases} == {"paris", "paryż", "париж"}  # "paryżu" went with its mention
    assert np.allclose(linker.store.entity_vector(paris.id), seed, atol=1e-6)
    assert linker.link("Paryż", [MentionIn(0, 5, "LOC")]).mentions[0].entity_id == paris.id
    assert linker.store.check().ok


def test_consolidation_keeps_kb_entries_apart_and_a_merge_keeps_the_kb_identity(linker):
    # Founded from a mention before the KB knew it: consolidation folds the two, keeping Q649.
    early = linker.ingest_one(doc("pl-4", "Moskwa milczy.", [("Moskwa", "LOC")])).created_entity_ids[0]
    (moscow, _), (paris, _), (texas, _) = linker.import_entities(
        [
            KnownEntity("Q649", "Moscow", "LOC", ["Moskwa"]),
            KnownEntity("Q90", "Paris", "LOC", ["Paryż"]),
            KnownEntity("Q830149", "Paris", "LOC", ["Paris, Texas"], description="a city in Texas"),
        ]
    )
    merged = linker.consolidate()
    assert paris.id not in merged and texas.id not in merged  # two KB entries stay two entities
    home = linker.store.entity_by_external_id("Q649")
    assert merged == {moscow.id: early} and home.id == early
    assert home.name == "Moscow" and home.mention_count == 1
    with pytest.raises(InvalidInput, match="knowledge base"):
        linker.merge(paris.id, texas.id)
    assert linker.store.check().ok
