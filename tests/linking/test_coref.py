"""In-document grouping (linking/coref.py)."""

from linking.coref import MentionSpan, group_mentions
from linking.settings import LinkSettings


def spans(text: str, items: list[tuple[str, str]]) -> list[MentionSpan]:
    """Find each (surface, label) in order in the text."""
    out, pos = [], 0
    for surface, label in items:
        start = text.index(surface, pos)
        out.append(MentionSpan(start, start + len(surface), label, surface))
        pos = start + len(surface)
    return out


def test_polish_inflections_and_surname_join_the_full_name():
    text = "Nigel Farage mówi. Farage'a krytykują, a Farage'owi to nie przeszkadza. Theresa May milczy."
    mentions = spans(
        text, [("Nigel Farage", "PER"), ("Farage'a", "PER"), ("Farage'owi", "PER"), ("Theresa May", "PER")]
    )
    assert group_mentions(text, mentions) == [[0, 1, 2], [3]]


def test_russian_and_bulgarian_cases():
    text = "Тереза Мэй заявила. Позиция Терезы Мэй ясна. Лондон и Лондона."
    mentions = spans(
        text, [("Тереза Мэй", "PER"), ("Терезы Мэй", "PER"), ("Лондон", "LOC"), ("Лондона", "LOC")]
    )
    assert group_mentions(text, mentions) == [[0, 1], [2, 3]]
    text = "Европейският съюз реши. Европейския съюз не е съгласен."
    assert group_mentions(text, spans(text, [("Европейският съюз", "ORG"), ("Европейския съюз", "ORG")])) == [
        [0, 1]
    ]


def test_czech_case_forms():
    text = "Evropská komise rozhodla. Podle Evropské komise je to tak. Evropskou komisí."
    mentions = spans(
        text, [("Evropská komise", "ORG"), ("Evropské komise", "ORG"), ("Evropskou komisí", "ORG")]
    )
    assert group_mentions(text, mentions) == [[0, 1, 2]]


def test_bracketed_acronym_joins_its_expansion_even_without_matching_initials():
    text = "Partia Niepodległości Zjednoczonego Królestwa (UKIP) traci. UKIP ma problem."
    mentions = spans(
        text, [("Partia Niepodległości Zjednoczonego Królestwa", "ORG"), ("UKIP", "ORG"), ("UKIP", "ORG")]
    )
    assert group_mentions(text, mentions) == [[0, 1, 2]]


def test_acronym_of_initials_joins_expansion():
    text = "Unia Europejska i UE to to samo."
    assert group_mentions(text, spans(text, [("Unia Europejska", "ORG"), ("UE", "ORG")])) == [[0, 1]]


def test_types_must_agree_unless_the_names_are_equal():
    text = "Washington said. George Washington."
    mentions = spans(text, [("Washington", "LOC"), ("George Washington", "PER")])
    assert group_mentions(text, mentions) == [[0], [1]]  # surname match across types is not enough
    text = "Brexit happened. Brexit party."
    mentions = spans(text, [("Brexit", "EVT"), ("Brexit", "ORG")])
    assert group_mentions(text, mentions) == [[0, 1]]  # equal names: type noise, one entity
    strict = LinkSettings(coref_cross_type=False)
    assert group_mentions(text, mentions, strict) == [[0], [1]]


def test_ambiguous_surname_goes_to_the_best_match():
    text = "Theresa May and Brian May met. May spoke."
    mentions = spans(text, [("Theresa May", "PER"), ("Brian May", "PER"), ("May", "PER")])
    groups = group_mentions(text, mentions)
    assert [0] in groups or [0, 2] in groups
    assert len(groups) == 2 and sorted(i for g in groups for i in g) == [0, 1, 2]


def test_an_organisation_named_after_another_stays_apart_in_a_document():
    # "The Court of the EU" and "the EU"; "the Committee of Ministers of the Council of Europe" and
    # "the Council of Europe": the shorter name is what the longer one is *of* (names.py).
    text = "Суд ЄС вирішив, що ЄС має діяти. Комітет Міністрів Ради Європи та Рада Європи."
    mentions = spans(
        text,
        [("Суд ЄС", "ORG"), ("ЄС", "ORG"), ("Комітет Міністрів Ради Європи", "ORG"), ("Рада Європи", "ORG")],
    )
    assert group_mentions(text, mentions) == [[0], [1], [2], [3]]


def test_croatian_acronym_case_endings_join_the_acronym():
    text = "EU je odlučila. Prema odluci EU-a i SAD-a, SAD i EU surađuju."
    mentions = spans(text, [("EU", "ORG"), ("EU-a", "ORG"), ("SAD-a", "LOC"), ("SAD", "LOC"), ("EU", "ORG")])
    assert group_mentions(text, mentions) == [[0, 1, 4], [2, 3]]


def test_a_head_noun_alone_still_joins_its_adjective_name():
    text = "Evropská komise rozhodla. Komise to potvrdila."
    assert group_mentions(text, spans(text, [("Evropská komise", "ORG"), ("Komise", "ORG")])) == [[0, 1]]
