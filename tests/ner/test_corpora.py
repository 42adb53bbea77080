"""Tests for ner.corpora: formats, tag schemes, offsets, robustness and error messages.

Fixtures in tests/data/corpora/ are hand-made sentences, never lines of the licensed corpora.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from ner.corpora import (
    CorpusError,
    CorpusWarning,
    Sentence,
    Span,
    detect_format,
    detect_scheme,
    labels,
    read_corpus,
    tags_to_spans,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "corpora"

# Gold of the adjacent_*.conllu fixtures: two adjacent LOCs, a PER at sentence end; Cyrillic PER + LOC.
ADJACENT_GOLD = [
    [(1, 2, "LOC"), (2, 3, "LOC"), (7, 9, "PER")],
    [(0, 1, "PER"), (2, 4, "LOC")],
]


def _check_offsets(sentence: Sentence) -> None:
    """Every word and span must be recoverable from the text by its char offsets."""
    assert len(sentence.word_offsets) == len(sentence.words)
    for (start, end), word in zip(sentence.word_offsets, sentence.words, strict=True):
        assert sentence.text[start:end] == word
    for span in sentence.spans:
        first, last = sentence.word_offsets[span.start], sentence.word_offsets[span.end - 1]
        assert (span.char_start, span.char_end) == (first[0], last[1])


def _read_quietly(path: Path, **kwargs: object) -> list[Sentence]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorpusWarning)  # fixtures that should be clean must not warn
        return read_corpus(path, **kwargs)


# ----------------------------------------------------------------------------- tag schemes


@pytest.mark.parametrize(
    ("fixture", "expected_scheme"),
    [
        ("adjacent_iob1.conllu", "iob1"),  # I- starts entities; B- only splits the adjacent Köln|Bonn
        ("adjacent_iob2.conllu", "iob2"),  # every entity starts with B-
        ("adjacent_bioes.conllu", "bioes"),  # S- single-word entities, B-..E- multi-word ones
        ("adjacent_bilou.conllu", "bilou"),  # U-/L- instead of S-/E-
    ],
)
def test_schemes_decode_to_same_gold(fixture: str, expected_scheme: str) -> None:
    sentences_auto = _read_quietly(DATA / fixture)
    sentences_explicit = _read_quietly(DATA / fixture, scheme=expected_scheme)
    for sentences in (sentences_auto, sentences_explicit):
        assert [s.word_entities() for s in sentences] == ADJACENT_GOLD
        for sentence in sentences:
            _check_offsets(sentence)
    lines = (DATA / fixture).read_text(encoding="utf-8").splitlines()
    tags = [[line.split("\t")[2] for line in lines if line and "DOCSTART" not in line]]
    assert detect_scheme(tags) == expected_scheme


def test_entity_at_sentence_end_has_char_offsets() -> None:
    sentence = _read_quietly(DATA / "adjacent_iob2.conllu")[0]
    assert sentence.text == "Zwischen Köln Bonn liegt nichts , sagt Jürgen Müller"
    span = sentence.spans[-1]
    assert sentence.text[span.char_start : span.char_end] == "Jürgen Müller"
    assert span.char_end == len(sentence.text)


@pytest.mark.parametrize(
    ("tags", "scheme", "spans", "malformed"),
    [
        # IOB1: I- I- of one type is ONE entity; B- splits it
        (["I-LOC", "I-LOC", "B-LOC"], "iob1", [(0, 2, "LOC"), (2, 3, "LOC")], []),
        # IOB2: B- B- are two adjacent entities of the same type
        (["B-LOC", "B-LOC"], "iob2", [(0, 1, "LOC"), (1, 2, "LOC")], []),
        # IOB2 lenient: an I- after O starts an entity (conlleval / seqeval default), flagged malformed
        (["O", "I-PER", "I-PER"], "iob2", [(1, 3, "PER")], [1]),
        # type change inside an entity: the I-ORG starts a new entity
        (["B-PER", "I-ORG"], "iob2", [(0, 1, "PER"), (1, 2, "ORG")], [1]),
        # BIOES: S- S- adjacent singles, B- E- a pair
        (["S-LOC", "S-LOC", "B-PER", "E-PER"], "bioes", [(0, 1, "LOC"), (1, 2, "LOC"), (2, 4, "PER")], []),
        # BIOES: B- without E- still decodes, but is malformed
        (["B-PER", "I-PER", "O"], "bioes", [(0, 2, "PER")], [0]),
        # BIOES: an I- after E- starts a new entity
        (["B-PER", "E-PER", "I-PER", "E-PER"], "bioes", [(0, 2, "PER"), (2, 4, "PER")], [2]),
        # BILOU: L-/U- read as E-/S-
        (["U-ORG", "B-ORG", "I-ORG", "L-ORG"], "bilou", [(0, 1, "ORG"), (1, 4, "ORG")], []),
        # labels may contain hyphens: only the first one separates the prefix
        (["B-WORK-OF-ART", "I-WORK-OF-ART"], "iob2", [(0, 2, "WORK-OF-ART")], []),
        # all O: nothing
        (["O", "O"], "iob2", [], []),
    ],
)
def test_tags_to_spans(
    tags: list[str], scheme: str, spans: list[tuple[int, int, str]], malformed: list[int]
) -> None:
    assert tags_to_spans(tags, scheme) == (spans, malformed)


def test_tags_to_spans_rejects_foreign_prefix() -> None:
    with pytest.raises(ValueError, match="does not belong to scheme 'iob2'.*scheme='auto'"):
        tags_to_spans(["S-PER"], "iob2")


def test_detect_scheme_tolerates_stray_i_start_in_iob2() -> None:
    # one malformed I- start among many B- starts is still IOB2, so it gets reported
    assert detect_scheme([["B-PER", "O", "B-LOC"], ["O", "I-ORG"], ["B-ORG"]]) == "iob2"
    with pytest.raises(ValueError, match="mix BIOES"):
        detect_scheme([["S-PER", "U-LOC"]])


def test_iob1_read_as_iob2_warns_but_gives_same_spans() -> None:
    with pytest.warns(
        CorpusWarning, match=r"4 of 5 entities are malformed for scheme iob2 \(lines 4, 10, 15"
    ):
        sentences = read_corpus(DATA / "adjacent_iob1.conllu", scheme="iob2")
    assert [s.word_entities() for s in sentences] == ADJACENT_GOLD


# ----------------------------------------------------------------------------- conll / iob2


def test_docstart_marks_documents() -> None:
    sentences = _read_quietly(DATA / "adjacent_iob2.conllu")
    assert [s.doc_id for s in sentences] == ["doc-1", "doc-2"]
    assert [s.line for s in sentences] == [3, 15]
    assert all(s.sent_id is None for s in sentences)


def test_uner_text_alignment_chinese_and_fallback() -> None:
    with pytest.warns(CorpusWarning, match=r"1 of 3 '# text' lines do not match their tokens \(lines 23\)"):
        sentences = read_corpus(DATA / "uner_zh_hr.iob2")
    zh, hr, mismatched = sentences
    # Chinese: the original text without spaces, so char offsets index it directly
    assert zh.text == "李明在北京大学工作。"
    assert zh.word_offsets[:4] == [(0, 2), (2, 3), (3, 5), (5, 7)]
    assert zh.char_entities() == [(0, 2, "PER"), (3, 7, "ORG")]
    assert zh.text[3:7] == "北京大学"
    # Croatian: the '.' attaches to 'Zagreb' in the text, so the text is not the space join
    assert hr.text == "Ivo Sanader posjetio je Zagreb."
    assert hr.char_entities() == [(0, 11, "PER"), (24, 30, "LOC")]
    # '!' in the text vs '.' token: falls back to the space-joined tokens
    assert mismatched.text == "Eurovizija je počela ."
    assert [(s.doc_id, s.sent_id) for s in sentences] == [
        ("news-a", "zh-1"),
        ("news-a", "hr-1"),
        ("news-b", "hr-2"),
    ]
    for sentence in sentences:
        _check_offsets(sentence)
    assert labels(sentences) == ["LOC", "ORG", "OTH", "PER"]


@pytest.mark.parametrize(
    ("label_map", "expected"),
    [
        ({"OTH": "MISC"}, ["LOC", "MISC", "ORG", "PER"]),  # UNER's OTH onto the model's MISC
        ({"OTH": None}, ["LOC", "ORG", "PER"]),  # or dropped: those words become O
        ({"OTH": None, "PER": "PERSON"}, ["LOC", "ORG", "PERSON"]),  # drop and rename together
    ],
)
def test_label_map(label_map: dict[str, str | None], expected: list[str]) -> None:
    with pytest.warns(CorpusWarning):
        sentences = read_corpus(DATA / "uner_zh_hr.iob2", label_map=label_map)
    assert labels(sentences) == expected
    assert len(sentences) == 3


def test_label_map_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="label_map values"):
        read_corpus(DATA / "adjacent_iob2.conllu", label_map={"PER": ""})


def _conll(*rows: str) -> str:
    return "\n".join(rows)


CLEAN = _conll("0\tEU\tB-ORG", "1\tlehnt\tO", "2\tab\tO", "", "0\tÖl\tO", "1\tBP\tB-ORG", "")


@pytest.mark.parametrize(
    "raw",
    [
        CLEAN.encode(),  # reference
        b"\xef\xbb\xbf" + CLEAN.encode(),  # UTF-8 BOM
        CLEAN.replace("\n", "\r\n").encode(),  # CRLF
        CLEAN.replace("\n", "  \n").encode(),  # trailing whitespace
        CLEAN.rstrip("\n").encode(),  # no final newline / blank line
        ("\n\n" + CLEAN.replace("\n\n", "\n\n\n") + "\n\n").encode(),  # extra blank lines
    ],
)
def test_conll_robust_to_file_quirks(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "quirks.conll"
    path.write_bytes(raw)
    sentences = _read_quietly(path)
    assert [s.words for s in sentences] == [["EU", "lehnt", "ab"], ["Öl", "BP"]]
    assert [s.char_entities() for s in sentences] == [[(0, 2, "ORG")], [(3, 5, "ORG")]]


def test_empty_file_gives_no_sentences(tmp_path: Path) -> None:
    for name in ("empty.conllu", "empty.iob2", "empty.jsonl"):
        (tmp_path / name).write_text("")
        assert read_corpus(tmp_path / name) == []


def test_empty_token_is_dropped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "gap.conllu"
    path.write_text(_conll("0\tHerr\tO", "1\t\tO", "2\tMeier\tB-PER", ""), encoding="utf-8")
    with pytest.warns(CorpusWarning, match=r"dropped 1 empty token\(s\) \(lines 2\)"):
        (sentence,) = read_corpus(path)
    assert sentence.words == ["Herr", "Meier"]
    assert sentence.word_entities() == [(1, 2, "PER")]


def test_tokens_may_contain_spaces(tmp_path: Path) -> None:
    # UD tokens such as Swedish "t ex" or Croatian "34 470" keep their inner space
    path = tmp_path / "space.iob2"
    path.write_text(
        "# text = Det kostar 34 470 kr\n1\tDet\tO\n2\tkostar\tO\n3\t34 470\tO\n4\tkr\tO\n", encoding="utf-8"
    )
    (sentence,) = _read_quietly(path)
    assert sentence.words[2] == "34 470"
    assert sentence.word_offsets[2] == (11, 17)
    assert sentence.text == "Det kostar 34 470 kr"


# ----------------------------------------------------------------------------- jsonl


def test_jsonl_words_and_spans() -> None:
    sentences = _read_quietly(DATA / "custom.jsonl")
    assert len(sentences) == 4  # the blank line is skipped
    de, zh, empty, acme = sentences
    assert de.words == ["Angela", "Merkel", "besuchte", "Москва", "."]
    assert de.word_entities() == [(0, 2, "PER"), (3, 4, "LOC")]
    assert (de.doc_id, de.sent_id, de.line) == ("d1", "j1", 1)
    # CJK: one character per word; spans come back sorted by position
    assert zh.words == list("阿里巴巴总部在杭州")
    assert zh.word_entities() == [(0, 4, "ORG"), (7, 9, "LOC")]
    assert empty.spans == [] and empty.line == 4
    # dict-style spans; "Corp." is two words, the ORG covers both
    assert acme.words == ["Acme", "Corp", ".", "hired", "Ann"]
    assert acme.spans == [Span(0, 3, "ORG", 0, 10), Span(4, 5, "PER", 17, 20)]
    for sentence in sentences:
        _check_offsets(sentence)


# ----------------------------------------------------------------------------- format detection and errors


def test_detect_format_by_extension_and_content(tmp_path: Path) -> None:
    assert detect_format(DATA / "custom.jsonl") == "jsonl"
    assert detect_format(DATA / "uner_zh_hr.iob2") == "iob2"
    assert detect_format(DATA / "adjacent_iob1.conllu") == "conll"
    sniffed = {
        "a.tsv": "0\tBonn\tB-LOC\n",
        "b.data": '{"text": "x", "spans": []}\n',
        "c.dat": "# sent_id = 1\n# text = x\n1\tx\tO\n",
    }
    for name, content in sniffed.items():
        (tmp_path / name).write_text(content)
    assert [detect_format(tmp_path / name) for name in sniffed] == ["conll", "jsonl", "iob2"]
    (tmp_path / "d.xml").write_text("<doc/>")
    with pytest.raises(CorpusError, match="cannot tell the format.*pass format="):
        read_corpus(tmp_path / "d.xml")


def test_file_not_found() -> None:
    with pytest.raises(FileNotFoundError, match="corpus file not found: .*missing.conllu"):
        read_corpus(DATA / "missing.conllu")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        # space-separated instead of tabs
        ("a.conllu", "0\tDie\tO\n1 Post B-ORG\n", r"a\.conllu:2: malformed line '1 Post B-ORG'"),
        # a row with a missing column
        ("b.conllu", "0\tDie\tO\n1\tPost\tB-ORG\n\n0\tx\n", r"b\.conllu:4: malformed line"),
        # a fourth column appears half-way
        ("c.conllu", "0\tDie\tO\n1\tPost\tB-ORG\tx\n", r"c\.conllu:2: inconsistent columns: 4 here, 3"),
        # IO tags without prefix
        ("d.conllu", "0\tDie\tO\n1\tPost\tORG\n", r"d\.conllu:2: tag 'ORG' is not 'O' or '<prefix>-<label>'"),
        # BIOES tag in a file declared IOB2
        (
            "e.conllu",
            "0\tDie\tO\n\n0\tPost\tS-ORG\n",
            r"e\.conllu:3: tag 'S-ORG' does not belong to scheme 'iob2'",
        ),
        # mixed BIOES and BILOU under auto detection
        ("f.conllu", "0\tA\tS-ORG\n1\tB\tU-ORG\n", r"f\.conllu: tags mix BIOES"),
        # invalid JSON, with its line number
        ("g.jsonl", '{"text": "a", "spans": []}\n{"text": "b", spans}\n', r"g\.jsonl:2: invalid JSON"),
        # a pretty-printed JSON array instead of JSON Lines
        ("h.json", '[\n  {"text": "a"}\n]\n', r"h\.json:1: invalid JSON.*write one object per line"),
        # no text field
        ("i.jsonl", '{"sentence": "a"}\n', r"i\.jsonl:1: expected an object"),
        # span past the end of the text
        (
            "j.jsonl",
            '{"text": "Bonn", "spans": [[0, 5, "LOC"]]}\n',
            r"j\.jsonl:1: span \[0, 5\) 'LOC' is out of range",
        ),
        # span cutting a word: the error shows the word-aligned span
        (
            "k.jsonl",
            '{"text": "in Berlin", "spans": [[3, 8, "LOC"]]}\n',
            r"k\.jsonl:1: span \[3, 8\) 'LOC' \('Berli'\) does not align.*\[3, 9\) \('Berlin'\)",
        ),
        # overlapping spans
        (
            "l.jsonl",
            '{"text": "New York City", "spans": [[0, 8, "LOC"], [4, 13, "LOC"]]}\n',
            r"l\.jsonl:1: spans \[0, 8\) 'LOC' and \[4, 13\) 'LOC' overlap",
        ),
        # span as a string
        (
            "m.jsonl",
            '{"text": "Bonn", "spans": ["LOC"]}\n',
            r"m\.jsonl:1: span 'LOC' is not \[start, end, label\]",
        ),
        # whitespace-only span
        ("n.jsonl", '{"text": "a   b", "spans": [[1, 4, "X"]]}\n', r"n\.jsonl:1: .*covers only whitespace"),
    ],
)
def test_errors_name_path_and_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match=message):
        read_corpus(path, scheme="iob2" if name == "e.conllu" else "auto")


def test_corpus_error_carries_location(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "x"}) + "\n{oops\n")
    with pytest.raises(CorpusError) as info:
        read_corpus(path)
    assert (info.value.path, info.value.line) == (str(path), 2)


def test_unknown_options_list_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown format 'csv'; choose one of \('auto', 'conll'"):
        read_corpus(DATA / "custom.jsonl", format="csv")
    with pytest.raises(ValueError, match=r"unknown scheme 'io'; choose one of \('auto', 'iob1'"):
        read_corpus(DATA / "custom.jsonl", scheme="io")


def test_explicit_format_overrides_extension(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"  # .txt would mean conll
    path.write_text('{"text": "Ich mag Bonn", "spans": [[8, 12, "LOC"]]}\n', encoding="utf-8")
    (sentence,) = read_corpus(path, format="jsonl")
    assert sentence.word_entities() == [(2, 3, "LOC")]


def test_classic_docstart_line_without_index(tmp_path: Path) -> None:
    # original CoNLL-2003 writes "-DOCSTART- -X- -X- O" with spaces; it still marks a document
    path = tmp_path / "classic.conll"
    path.write_text("-DOCSTART- -X- -X- O\n\n0\tBonn\tB-LOC\n\n-DOCSTART- -X- -X- O\n\n0\tRom\tB-LOC\n")
    sentences = _read_quietly(path)
    assert [(s.doc_id, s.words) for s in sentences] == [("doc-1", ["Bonn"]), ("doc-2", ["Rom"])]


def test_multiconer_files_are_detected_and_read(tmp_path: Path) -> None:
    """MultiCoNER's `.conll` layout (`# id ...\tdomain=`, `token _ _ TAG`), Chinese without spaces."""
    path = tmp_path / "dev.conll"
    path.write_text(
        "# id 1f\tdomain=en\nthe _ _ O\nbeatles _ _ B-MusicalGRP\nplayed _ _ O\nin _ _ O\n"
        "new _ _ B-HumanSettlement\nyork _ _ I-HumanSettlement\n\n\n"
        "# id 2a\tdomain=zh\n在 _ _ O\n北 _ _ B-HumanSettlement\n京 _ _ I-HumanSettlement\n. _ _ O\n",
        encoding="utf-8",
    )
    assert detect_format(path) == "multiconer"
    first, second = read_corpus(path)
    assert first.sent_id == "1f" and second.sent_id == "2a"
    assert [(first.text[s:e], label) for s, e, label in first.char_entities()] == [
        ("beatles", "MusicalGRP"),
        ("new york", "HumanSettlement"),
    ]
    assert second.text == "在北京 ." and second.char_entities() == [(1, 3, "HumanSettlement")]
    for sentence in (first, second):
        _check_offsets(sentence)


def test_multiconer_malformed_line_names_its_place(tmp_path: Path) -> None:
    path = tmp_path / "bad.conll"
    path.write_text("# id 1\tdomain=en\nthe _ _ O\nbeatles _ _ X-MusicalGRP\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"bad.conll:3"):
        read_corpus(path)
