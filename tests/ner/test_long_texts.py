"""Texts longer than the model's limit: split, predicted, mapped back, nothing lost or duplicated."""

from __future__ import annotations

import pytest

from ner.segmentation import sentence_ranges, word_windows
from tests.ner.sentences import EXTRA_TEXTS, SENTENCES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three?", ["One.", "Two!", "Three?"]),
        ("他来了。她走了！", ["他来了。", "她走了！"]),  # CJK ends need no space
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        ("No end", ["No end"]),
        ("  \n ", []),
    ],
)
def test_sentence_ranges(text, expected):
    assert [text[a:b] for a, b in sentence_ranges(text)] == expected


def test_word_windows_cover_every_span_start_once():
    ends = list(range(1, 101))  # 100 words of one token each
    windows = word_windows(ends, max_tokens=20, entity_max_length=4)
    owned = [w for win in windows for w in range(win.own_start, win.own_end)]
    assert owned == list(range(100))  # each span start owned by exactly one window
    for win in windows:
        assert win.end - win.start <= 20
        # every span of up to 4 words starting in the owned range fits in the window
        assert win.own_end - 1 + 4 <= win.end or win.end == 100


def _long_document() -> str:
    """Sentences that all end in sentence punctuation, so windows are packed whole sentences."""
    sentences = [s if s[-1] in ".!?。" else s + "." for s in SENTENCES + EXTRA_TEXTS]
    return " ".join(sentences * 3)


def test_long_text_is_windowed_not_truncated(tiny_model):
    doc = _long_document()
    longest = max(tiny_model.tokenizer.count_tokens(SENTENCES + EXTRA_TEXTS))
    tiny_model.max_tokens = longest + 8  # every sentence fits, the document does not
    windows = tiny_model._text_windows(doc)
    assert len(windows) > 5 and not any(w.overlapping for w in windows)
    counts = tiny_model.tokenizer.count_tokens([doc[w.start : w.end] for w in windows])
    assert max(counts) <= tiny_model.max_tokens
    entities = tiny_model.extract(doc)
    # Packed sentence windows do not overlap: the result is each window's own result, shifted.
    expected = []
    for w, ents in zip(windows, tiny_model.extract([doc[w.start : w.end] for w in windows])):
        expected += [(e.start + w.start, e.end + w.start, e.label) for e in ents]
    assert [(e.start, e.end, e.label) for e in entities] == expected
    assert entities[-1].start > len(doc) * 0.9, "the end of the document is predicted too"
    assert all(e.text == doc[e.start : e.end] for e in entities)


def test_one_huge_sentence_uses_overlapping_windows(tiny_model):
    words = " ".join(s.rstrip(".!?。") for s in SENTENCES).replace(".", "").split()
    doc = " ".join(words * 3)  # no sentence end anywhere
    tiny_model.max_tokens = 48
    windows = tiny_model._text_windows(doc)
    assert any(w.overlapping for w in windows)
    entities = tiny_model.extract(doc)
    spans = [(e.start, e.end) for e in entities]
    assert spans == sorted(spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "no overlaps or duplicates"
    # Nothing lost: every entity a window finds in the part it owns is in the result, unless a
    # higher-scoring entity from the neighbouring window overlaps it.
    for w, ents in zip(windows, tiny_model.extract([doc[w.start : w.end] for w in windows])):
        for e in ents:
            s, t = e.start + w.start, e.end + w.start
            if not w.own_start <= s < w.own_end:
                continue
            kept = (s, t) in spans
            beaten = any(o.start < t and s < o.end and o.score >= e.score for o in entities)
            assert kept or beaten, (s, t, e.label)


def test_long_word_list_is_windowed(tiny_model):
    words = " ".join(SENTENCES).split() * 2
    tiny_model.max_tokens = 48
    entities = tiny_model.extract([words])[0]
    assert entities and entities[-1].word_end > len(words) * 0.8
    joined = " ".join(words)
    for e in entities:
        assert e.text == joined[e.start : e.end] == " ".join(words[e.word_start : e.word_end])
    spans = [(e.word_start, e.word_end) for e in entities]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
