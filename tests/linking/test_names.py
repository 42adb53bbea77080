"""Name matching rules (linking/names.py) on hand-made multilingual examples."""

import pytest

from linking.names import form_similarity, is_acronym, name_keys, normalize_name, stem_match

MATCH = 0.8  # LinkSettings().coref_threshold


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Farage", "Farage'a"),  # Polish genitive after an apostrophe
        ("Farage", "Farage'owi"),  # Polish dative
        ("Donald Trump", "Donalda Trumpa"),  # Polish genitive of both tokens
        ("Evropská komise", "Evropské komisi"),  # Czech locative
        ("Тереза Мэй", "Терезы Мэй"),  # Russian genitive
        ("Европейският съюз", "Европейския съюз"),  # Bulgarian definite article forms
        ("Wielka Brytania", "Wielkiej Brytanii"),  # Polish genitive, both words
        ("Theresa May", "Терезa Мей"),  # Latin <-> Cyrillic transliteration
        ("Лондон", "London"),  # transliteration, identical
        ("Nigel Farage", "Farage"),  # surname only
        ("Unia Europejska", "UE"),  # acronym of the initials
        ("Европейски съюз", "ЕС"),  # Cyrillic acronym
        ("Юнкер", "Juncker"),  # Ю as Latin J
        ("Т.Мей", "Тереза Мей"),  # an initial glued to the surname by a dot
        ("T. May", "Theresa May"),
    ],
)
def test_forms_of_one_name_match(a, b):
    assert form_similarity(a, b) >= MATCH
    assert form_similarity(b, a) == form_similarity(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("David Cameron", "Boris Johnson"),  # different people
        ("Polska", "Polityka"),  # shared prefix, different words
        ("Theresa May", "Theresa Villiers"),  # same first name only
        ("UE", "Unia Afrykańska"),  # initials differ
        ("Praha", "Paříž"),  # same first letter
        ("J. Smith", "Adam Smith"),  # the initial disagrees
    ],
)
def test_different_names_do_not_match(a, b):
    assert form_similarity(a, b) < MATCH


def test_normalize_name_drops_apostrophe_endings_and_transliterates():
    assert normalize_name("Farage'owi") == "farage"
    assert normalize_name("ФАРАЖ") == "farazh"
    assert normalize_name("Sešlar-Naraks") == "seslar naraks"


def test_one_spelling_edit_between_long_transliterated_tokens_is_close():
    # The consonant skeletons differ (sh vs ch) but the spellings are one edit apart.
    assert form_similarity("Мишел Барние", "Michel Barnier") > 0.75
    assert form_similarity("Мишел Барние", "Michel Barnier") < form_similarity(
        "Michel Barnier", "Michel Barnier"
    )
    assert normalize_name("U.S.") == "us"  # dots of an acronym are not word breaks


def test_stem_match_tolerates_only_short_endings():
    assert stem_match("pakistan", "pakistanu")
    assert not stem_match("brexit", "brexitowskiego")  # a derived word, not an inflection
    assert not stem_match("ab", "abc")  # too short to call a stem


def test_is_acronym():
    assert is_acronym("UKIP") and is_acronym("ЕС") and is_acronym("NATO")
    assert not is_acronym("Nato is") and not is_acronym("London") and not is_acronym("A")


def test_name_keys_meet_across_inflection_script_and_acronym():
    assert name_keys("Farage") & name_keys("Farage'a")
    assert name_keys("Лондон") & name_keys("London")
    assert name_keys("UE") & name_keys("Unia Europejska")
    assert not name_keys("Paříž") & name_keys("Berlín")


@pytest.mark.parametrize(
    ("short", "long_"),
    [
        ("BBC", "BBC News"),  # an acronym that is a word of a longer name, not its initials
        ("ЄС", "Суд ЄС"),  # "EU" / "Court of the EU"
        ("EU", "Rady EU"),
        ("Совета Европы", "Комитет Министров Совета Европы"),  # a complement past the head words
        ("Европейского Союза", "Совета Европейского Союза"),
        ("Unije", "Sodiščem Evropske unije"),
        ("European Union", "Court of Justice of the European Union"),
    ],
)
def test_a_name_inside_a_longer_name_of_something_else_does_not_match(short, long_):
    assert form_similarity(short, long_) < MATCH
    assert form_similarity(long_, short) == form_similarity(short, long_)


@pytest.mark.parametrize(
    ("short", "long_"),
    [
        ("komise", "Evropská komise"),  # one word after a single (adjective) word
        ("Británie", "Velké Británie"),
        ("Sąd Najwyższy", "Sąd Najwyższy Pakistanu"),  # the head words kept, the complement dropped
        ("Komisja", "Komisja Europejska"),
        ("NATO", "NATO"),
        ("EU", "EU-a"),  # Croatian case ending after a hyphen
        ("TRUMP", "Donald Trump"),  # capitals alone do not make an acronym of a surname
    ],
)
def test_a_shorter_form_of_the_same_name_still_matches(short, long_):
    assert form_similarity(short, long_) >= MATCH


def test_a_persons_surname_past_middle_names_matches_as_a_person():
    # The complement rule is for organisations and places; with person=True a surname is a surname.
    assert form_similarity("Qadri", "Muhammad Afzal Qadri", person=True) >= MATCH


def test_normalize_name_drops_hyphenated_case_endings_of_acronyms_only():
    assert normalize_name("EU-a") == normalize_name("EU") == "eu"
    assert normalize_name("SAD-om") == "sad"
    assert normalize_name("Jean-Claude") == "jean claude"  # a double name, not an ending
    assert normalize_name("Ko-misja") == "ko misja"  # not capitals before the hyphen


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Multan", "Mulúk"),  # a city and a surname sharing three letters
        ("Irak", "Iran"),
        ("Eurostat", "Europy"),  # a 4-letter "ending" after the shared prefix
        ("Роснефть", "России"),
        ("Franciszek", "Francie"),  # the Pope and France
    ],
)
def test_a_short_shared_prefix_with_two_endings_is_not_an_inflection(a, b):
    assert form_similarity(a, b) < MATCH


@pytest.mark.parametrize(
    ("a", "b"),
    [("Polska", "Polsce"), ("Rosja", "Rosji"), ("Brno", "Brna"), ("Київ", "Києві"), ("Moskwa", "Moskwie")],
)
def test_case_endings_on_a_stem_still_match(a, b):
    assert form_similarity(a, b) >= MATCH


def test_an_acronym_inside_a_longer_name_is_found_against_casefolded_aliases_too():
    # Entity aliases are stored casefolded ("bbc news"), so case is known on one side only.
    assert form_similarity("BBC", "bbc news") < MATCH
    assert form_similarity("єс", "Суд ЄС") < MATCH
    assert form_similarity("TRUMP", "Donald Trump") >= MATCH  # not written as an acronym there


def test_a_short_head_of_a_long_title_is_not_the_title():
    long_ = "Європейська комісія з питань ефективності правосуддя Ради Європи"  # CEPEJ
    assert form_similarity("Європейська комісія", long_) < MATCH
    assert form_similarity("Komisja", "Komisja Weneckiej Rady Europy") < MATCH
    assert form_similarity("Sąd Najwyższy", "Sąd Najwyższy w Lahaur") >= MATCH  # two of three words
