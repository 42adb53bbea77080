"""The model-free core (linking/core.py): scores, thresholds, NIL clustering, table updates."""

import numpy as np
import pytest

from linking.core import (
    EntityView,
    GroupView,
    MemoryEntities,
    decide,
    link_embeddings,
    mean_vector,
    score_candidate,
)
from linking.settings import LinkSettings


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


SETTINGS = LinkSettings(name_weight=1.0, vector_weight=0.5, type_weight=0.1, link_threshold=1.2)


def test_score_combines_name_cosine_and_type():
    group = GroupView(["Farage'a"], "PER", unit(1, 0))
    entity = EntityView(7, "Nigel Farage", "PER", ["farage"], unit(1, 0))
    score = score_candidate(group, entity, SETTINGS)
    assert score.name == 1.0 and score.cosine == pytest.approx(1.0) and score.same_type
    assert score.score == pytest.approx(1.0 + 0.5 + 0.1)
    other_type = score_candidate(GroupView(["Farage'a"], "LOC", unit(1, 0)), entity, SETTINGS)
    assert other_type.score == pytest.approx(1.5)


def test_name_alone_below_threshold_needs_vector_support():
    entity = EntityView(1, "Nigel Farage", "PER", [], unit(1, 0))
    near = GroupView(["Farage"], "PER", unit(1, 0.1))  # surname, similar context
    far = GroupView(["Farage"], "PER", unit(0, 1))  # surname, orthogonal vector
    assert decide(near, [entity], SETTINGS).entity_id == 1
    assert decide(far, [entity], SETTINGS).entity_id is None


def test_unrelated_name_is_vetoed_unless_the_vector_is_nearly_identical():
    entity = EntityView(1, "Wielka Brytania", "LOC", [], unit(1, 0))
    group = GroupView(["Обединеното кралство"], "LOC", unit(1, 0.01))  # a translation, not a spelling
    gated = LinkSettings(vector_only_cosine=0.99, link_threshold=0.3)
    assert decide(group, [entity], gated).entity_id == 1
    strict = LinkSettings(vector_only_cosine=1.0, link_threshold=0.3, translation_margin=1.0)
    assert decide(group, [entity], strict).entity_id is None


def test_a_near_identical_vector_does_not_override_a_persons_different_name_in_the_same_script():
    # Namesakes ("Ивана Петрова", genitive of Ivan Petrov; Anna Petrova) have near-identical surface
    # vectors; a person's name is not translated, so within one script the names decide.
    ivan = EntityView(1, "Иван Петров", "PER", [], unit(1, 0))
    anna = EntityView(2, "Анна Петрова", "PER", [], unit(1, 0.02))
    group = GroupView(["Ивана Петрова"], "PER", unit(1, 0.01))
    assert decide(group, [anna, ivan], LinkSettings()).entity_id == 1
    assert score_candidate(group, anna, LinkSettings()).name < 0.5
    # Across scripts, and for other types (translations), the vector still stands in for the name.
    latin = GroupView(["Vladimir Putin"], "PER", unit(1, 0.01))
    putin = EntityView(3, "Владимир Путин", "PER", [], unit(1, 0))
    assert score_candidate(latin, putin, LinkSettings()).name >= LinkSettings().vector_only_cosine
    place = GroupView(["Niemcy"], "LOC", unit(1, 0.01))
    germany = EntityView(4, "Germany", "LOC", [], unit(1, 0))
    assert score_candidate(place, germany, LinkSettings()).name >= LinkSettings().vector_only_cosine


@pytest.mark.parametrize(
    "forms, name, aliases, label",
    [
        (["Джавед Масих", "Масих"], "Ашик Масих", ["масих"], "PER"),  # namesakes through a surname
        (["Венеціанська комісія", "Комісія"], "Європейська комісія", ["комісія"], "ORG"),  # a head word
    ],
)
def test_conflicting_full_names_outweigh_a_shared_part(forms, name, aliases, label):
    entity = EntityView(1, name, label, aliases, unit(1, 0))
    group = GroupView(forms, label, unit(1, 0.5))  # cosine 0.89: the vector cannot stand in for the name
    capped = score_candidate(group, entity, LinkSettings())
    assert capped.name == pytest.approx(0.25)  # the full names' own similarity, not the part's 1.0
    assert decide(group, [entity], LinkSettings()).entity_id is None
    uncapped = score_candidate(group, entity, LinkSettings(full_name_conflict=0))
    assert uncapped.name == 1.0 and decide(group, [entity], LinkSettings(full_name_conflict=0)).entity_id == 1


@pytest.mark.parametrize(
    "forms, name",
    [
        (["Терезы Мэй", "Мэй"], "Тереза Мэй"),  # an inflected full name still agrees
        (["Donald Trump", "Trump"], "Donald John Trump"),  # a middle name
        (["Trump"], "Donald Trump"),  # no full name in the group: the part counts as before
    ],
)
def test_agreeing_or_missing_full_names_keep_the_parts_match(forms, name):
    entity = EntityView(1, name, "PER", [forms[-1].lower()], unit(1, 0))
    group = GroupView(forms, "PER", unit(1, 0.05))
    assert score_candidate(group, entity, LinkSettings()).name == 1.0
    assert decide(group, [entity], LinkSettings()).entity_id == 1


def test_best_candidate_wins_and_ties_break_by_id():
    a = EntityView(2, "Theresa May", "PER", [], unit(1, 0))
    b = EntityView(1, "Brian May", "PER", [], unit(0, 1))
    group = GroupView(["Theresa May"], "PER", unit(1, 0))
    decision = decide(group, [b, a], SETTINGS)
    assert decision.entity_id == 2 and [c.entity_id for c in decision.candidates] == [2, 1]


def test_nil_clustering_and_cross_lingual_links_without_a_model():
    docs = [
        [(GroupView(["Nigel Farage", "Farage'a"], "PER"), None), (GroupView(["Londyn"], "LOC"), None)],
        [(GroupView(["Фараж"], "PER"), None), (GroupView(["Лондон"], "LOC"), None)],
        [(GroupView(["Paříž"], "LOC"), None)],
    ]
    ids = link_embeddings(docs, LinkSettings(vector_weight=0.0, link_threshold=0.9, cross_script_cosine=0.0))
    assert ids == [[1, 2], [1, 2], [3]]


def test_memory_table_updates_centroid_aliases_and_candidates():
    table = MemoryEntities(dim=2)
    first = table.add(GroupView(["Brexit"], "EVT", unit(1, 0)), np.array([unit(1, 0)]), None)
    table.add(GroupView(["Брекзит"], "EVT", unit(0, 1)), np.array([unit(0, 1)]), first)
    entity = table.entities[first]
    assert entity.mention_count == 2 and entity.aliases == ["brexit", "брекзит"]
    assert entity.vector == pytest.approx(unit(1, 1))  # mean of the normalized mention vectors
    found = table.candidates(GroupView(["Brexitu"], "EVT", None), LinkSettings())
    assert [e.id for e in found] == [first]  # through the alias keys, no vector needed
    table.remove(first)
    assert table.candidates(GroupView(["Brexitu"], "EVT", unit(1, 0)), LinkSettings()) == []


def test_removed_entity_leaves_no_alias_key_behind():
    # "EU" files an acronym key that its casefolded alias "eu" would not give: removal must find it.
    table = MemoryEntities(dim=2)
    eu = table.add(GroupView(["Unia Europejska", "EU"], "ORG"), None, None)
    other = table.add(GroupView(["Unia Afrykańska"], "ORG"), None, None)
    table.merge(other, eu)
    assert all(eu not in posting for posting in table.keys.values())
    assert [e.id for e in table.candidates(GroupView(["EU"], "ORG"), LinkSettings())] == [other]


def test_mean_vector_ignores_zero_rows():
    assert mean_vector(np.zeros((2, 3))) is None
    assert mean_vector(np.array([[3.0, 0.0], [0.0, 0.0]])) == pytest.approx(unit(1, 0))
