"""Linker over a real SQLite store and FAISS (linking/linker.py): ingest, link, re-ingest, merge, split."""

import hashlib

import numpy as np
import pytest

from index import Store
from linking.linker import DocumentIn, Linker, LinkingError, MentionIn
from linking.settings import LinkSettings

DIM = 16
# Hash vectors carry no meaning: names alone decide, transliterations included (cross_script_cosine=0).
NAMES_ONLY = LinkSettings(vector_weight=0.0, link_threshold=0.9, cross_script_cosine=0.0)


class SurfaceHashEmbedder:
    """A stand-in embedder: one fixed random unit vector per normalized surface (no model needed)."""

    dim = DIM

    def embed(self, text, spans):
        rows = []
        for start, end in spans:
            seed = int(hashlib.sha1(text[start:end].casefold().encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32).reshape(len(spans), DIM)


def doc(external_id: str, text: str, items: list[tuple[str, str]], language: str = "pl") -> DocumentIn:
    mentions, pos = [], 0
    for surface, label in items:
        start = text.index(surface, pos)
        mentions.append(MentionIn(start, start + len(surface), label))
        pos = start + len(surface)
    return DocumentIn(external_id, text, mentions, language=language)


@pytest.fixture
def linker(tmp_path):
    with Store.open(tmp_path / "spanlink.db", dim=DIM) as store:
        # Hash vectors carry no meaning, so decide on names alone.
        yield Linker(store, settings=NAMES_ONLY, embedder=SurfaceHashEmbedder())


def entity_of(result, surface_start: int) -> int:
    return next(m.entity_id for m in result.mentions if m.start == surface_start)


def test_cross_document_and_cross_lingual_linking(linker):
    pl, ru, cs = linker.ingest(
        [
            doc(
                "pl-1",
                "Nigel Farage i Theresa May. Farage'a nie ma.",
                [("Nigel Farage", "PER"), ("Theresa May", "PER"), ("Farage'a", "PER")],
            ),
            doc("ru-1", "Фараж и Тереза Мэй.", [("Фараж", "PER"), ("Тереза Мэй", "PER")], "ru"),
            doc("cs-1", "Farageovi se nelíbí Londýn.", [("Farageovi", "PER"), ("Londýn", "LOC")], "cs"),
        ]
    )
    farage, may = entity_of(pl, 0), entity_of(pl, 15)
    assert farage != may and len(pl.created_entity_ids) == 2
    assert {m.entity_id for m in ru.mentions} == {farage, may} and ru.created_entity_ids == []
    assert entity_of(cs, 0) == farage and len(cs.created_entity_ids) == 1  # London is new
    entity = linker.store.get_entity(farage)
    assert entity.mention_count == 4
    assert {"nigel farage", "farage'a", "фараж", "farageovi"} <= {a.norm for a in entity.aliases}
    assert entity.name == "Nigel Farage"
    # The store keeps the centroid as the mean of the (normalized) mention vectors.
    texts = [
        "Nigel Farage i Theresa May. Farage'a nie ma.",
        "Фараж и Тереза Мэй.",
        "Farageovi se nelíbí Londýn.",
    ]
    spans = [(texts[0], (0, 12)), (texts[0], (28, 36)), (texts[1], (0, 5)), (texts[2], (0, 9))]
    rows = np.concatenate([SurfaceHashEmbedder().embed(t, [span]) for t, span in spans])
    expected = rows.mean(0) / np.linalg.norm(rows.mean(0))
    assert linker.store.entity_vector(farage) == pytest.approx(expected, abs=1e-5)


def test_link_does_not_store(linker):
    linker.ingest([doc("d1", "Unia Europejska działa.", [("Unia Europejska", "ORG")])])
    before = linker.store.stats()
    result = linker.link("UE i Pakistan.", [MentionIn(0, 2, "ORG"), MentionIn(5, 13, "LOC")])
    assert [m.entity_id is not None for m in result.mentions] == [True, False]
    assert result.decisions[0].candidates[0].name >= 0.8
    assert linker.store.stats() == before


def test_reingest_replaces_the_earlier_version(linker):
    first = linker.ingest(
        [doc("d1", "Boris Johnson w Londynie.", [("Boris Johnson", "PER"), ("Londynie", "LOC")])]
    )[0]
    johnson = entity_of(first, 0)
    again = linker.ingest([doc("d1", "Tylko Londyn.", [("Londyn", "LOC")])])[0]
    assert again.replaced and again.document_id != first.document_id
    assert johnson in again.removed_entity_ids
    assert linker.store.stats().mentions == 1 and linker.store.stats().documents == 1
    assert johnson not in linker.table.entities  # the cache forgot the removed entity
    # A later Johnson founds a new entity instead of linking to the removed one.
    later = linker.ingest([doc("d2", "Boris Johnson wraca.", [("Boris Johnson", "PER")])])[0]
    assert later.created_entity_ids and later.created_entity_ids[0] != johnson


def test_merge_and_split(linker):
    a, b = linker.ingest(
        [
            doc("d1", "Wielka Brytania głosuje.", [("Wielka Brytania", "LOC")]),
            doc("d2", "Zjednoczone Królestwo głosuje.", [("Zjednoczone Królestwo", "LOC")]),
        ]
    )
    uk, kingdom = entity_of(a, 0), entity_of(b, 0)
    assert uk != kingdom
    merged = linker.merge(uk, kingdom)
    assert merged.mention_count == 2 and {"zjednoczone królestwo"} <= {x.norm for x in merged.aliases}
    assert kingdom not in linker.table.entities
    # After the merge the other name links to the merged entity.
    c = linker.ingest([doc("d3", "Zjednoczone Królestwo znowu.", [("Zjednoczone Królestwo", "LOC")])])[0]
    assert entity_of(c, 0) == uk
    moved = [m.id for m in b.mentions] + [m.id for m in c.mentions]
    new = linker.split(uk, moved)
    assert new.name == "Zjednoczone Królestwo" and new.mention_count == 2
    assert linker.store.get_entity(uk).mention_count == 1
    with pytest.raises(LinkingError):
        linker.merge(uk, uk)


def test_reload_rebuilds_the_cache_from_the_store(linker):
    linker.ingest([doc("d1", "Donald Trump i Brexit.", [("Donald Trump", "PER"), ("Brexit", "EVT")])])
    fresh = Linker(linker.store, settings=linker.settings, embedder=SurfaceHashEmbedder())
    assert {e.name for e in fresh.table.entities.values()} == {"Donald Trump", "Brexit"}
    result = fresh.link("Donalda Trumpa", [MentionIn(0, 14, "PER")])
    assert result.mentions[0].entity_id is not None


def test_errors_are_clear(tmp_path, linker):
    with pytest.raises(LinkingError, match="NER model"):
        linker.link("Some text.")
    with pytest.raises(LinkingError, match="outside the text"):
        linker.link("abc", [MentionIn(2, 9, "PER")])
    with Store.open(tmp_path / "other.db", dim=8) as small, pytest.raises(LinkingError, match="8-d"):
        Linker(small, embedder=SurfaceHashEmbedder())
    with pytest.raises(LinkingError, match="NER model or an embedder"):
        Linker(linker.store)


def test_entity_known_by_surname_gets_the_full_name(linker):
    first = linker.ingest([doc("d1", "Farage mówi.", [("Farage", "PER")])])[0]
    farage = entity_of(first, 0)
    assert linker.store.get_entity(farage).name == "Farage"
    linker.ingest([doc("d2", "Nigel Farage mówi.", [("Nigel Farage", "PER")])])
    assert linker.store.get_entity(farage).name == "Nigel Farage"
    assert linker.table.entities[farage].name == "Nigel Farage"
