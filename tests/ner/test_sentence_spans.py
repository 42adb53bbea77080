"""Issue 18 item 5: no entity across a sentence end or on punctuation (ner.words.sentence_safe), applied
by extract(strip_spaces=True), the mode the service, the CLI and the linker use. Hand-written texts."""

from __future__ import annotations

import re

import pytest

from ner.words import sentence_safe, split_words


def refused(text: str, longest: int = 4) -> set[str]:
    words = split_words(text)
    spans = [(i, j) for i in range(len(words)) for j in range(i + 1, min(len(words), i + longest) + 1)]
    flags = sentence_safe(text, words, spans)
    return {text[words[s][0] : words[e - 1][1]] for (s, e), ok in zip(spans, flags) if not ok}


@pytest.mark.parametrize(
    ("text", "junk"),
    [
        ("Spotkanie w Praze. Fiala potwierdził.", "Praze. Fiala"),
        ("Rozmowy w Madrid. Sánchez odpowiedział.", "Madrid. Sánchez"),
        ("Szczyt NATO. Scholz przyjechał.", "NATO. Scholz"),
        ("Министр прибыл в Анкару.", "Анкару."),
        ("Koniec akapitu.\n\nOlaf Scholz mówi.", ".\n\nOlaf Scholz"),
        ("Koniec akapitu\n\nOlaf Scholz mówi", "akapitu\n\nOlaf Scholz"),
        ("Kto? Merkel!", "Kto? Merkel"),
    ],
)
def test_spans_across_sentence_ends_or_on_punctuation_are_refused(text, junk):
    assert junk in refused(text)


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("J. Smith przyjechał.", "J. Smith"),
        ("The U.S. Army left.", "U.S. Army"),
        ("The U.S. left.", "U.S."),
        ("Festiwal św. Patryka trwa.", "św. Patryka"),
        ("Mieszka na ul. Długa w Krakowie.", "ul. Długa"),
        ("Dr. Watson przyszedł.", "Dr. Watson"),
    ],
)
def test_initials_and_abbreviations_stay_inside_entities(text, entity):
    assert entity not in refused(text)


TEXTS = [
    "Spotkanie odbyło się w Praze. Fiala potwierdził to w rozmowie.",
    "Pedro Sánchez przyjechał do Madrid. Sánchez powiedział, że NATO. Scholz nie odpowiedział.",
    "Министр Сергей Лавров прибыл в Анкару. Журналисты спросили Лаврова о переговорах.",
    "Die Regierung traf sich in Berlin.\n\nOlaf Scholz sagte, dass die NATO bleibt.",
]
_SENTENCE_END = re.compile(r"[.!?…]\s+\S|\n\s*\n")


def test_default_model_entities_hold_no_sentence_end():
    import ner

    model = ner.load()
    for text, entities in zip(TEXTS, model.extract(TEXTS, strip_spaces=True)):
        for e in entities:
            assert not _SENTENCE_END.search(e.text), (text, e.text)
            assert e.text[-1].isalnum() or e.text.endswith(")"), (text, e.text)
            assert e.text[0].isalnum() or e.text[0] in "(\"'«„", (text, e.text)
