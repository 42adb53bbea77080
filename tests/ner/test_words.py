"""Word offsets: splitting text, finding tokens in text, mapping char spans onto words."""

import pytest

from ner.words import align_char_span, align_words, join_words, split_words


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Zürich, 北京!", ["Zürich", ",", "北", "京", "!"]),  # Latin run, punctuation, CJK per character
        ("Санкт-Петербург 2024", ["Санкт", "-", "Петербург", "2024"]),  # Cyrillic, hyphen splits
        ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),  # combining vowel signs stay inside the word
        ("ラーメン屋", ["ラ", "ー", "メ", "ン", "屋"]),  # kana one per character too
        ("  snake_case\tx ", ["snake_case", "x"]),  # underscore joins; surrounding whitespace ignored
    ],
)
def test_split_words(text: str, words: list[str]) -> None:
    assert [text[s:e] for s, e in split_words(text)] == words


def test_align_words() -> None:
    assert align_words("北京大学", ["北京", "大学"]) == [(0, 2), (2, 4)]
    assert align_words("a  b ", ["a", "b"]) == [(0, 1), (3, 4)]
    assert align_words("ab c", ["a", "c"]) is None  # skipping non-space text is not allowed
    assert align_words("a b extra", ["a", "b"]) is None  # leftover text


def test_join_words_offsets_point_at_each_word() -> None:
    text, offsets = join_words(["New", "York", "!"])
    assert text == "New York !"
    assert [text[s:e] for s, e in offsets] == ["New", "York", "!"]


def _index(offsets: list[tuple[int, int]]) -> tuple[dict[int, int], dict[int, int]]:
    return {s: i for i, (s, _) in enumerate(offsets)}, {e: i for i, (_, e) in enumerate(offsets)}


def test_align_char_span_maps_onto_words_or_names_the_words_it_cuts() -> None:
    text = "Acme Corp. hired Ann"
    offsets = split_words(text)
    starts, ends = _index(offsets)
    assert align_char_span(text, offsets, starts, ends, (0, 10, "ORG")) == (0, 3)
    assert align_char_span(text, offsets, starts, ends, (17, 20, "PER")) == (4, 5)
    with pytest.raises(ValueError, match=r"does not align with word boundaries.*\[0, 4\) \('Acme'\)"):
        align_char_span(text, offsets, starts, ends, (1, 4, "ORG"))
    with pytest.raises(ValueError, match="out of range"):
        align_char_span(text, offsets, starts, ends, (15, 99, "PER"))
    with pytest.raises(ValueError, match="only whitespace"):
        align_char_span("a  b", split_words("a  b"), *_index(split_words("a  b")), (1, 3, "X"))
