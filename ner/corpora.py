"""Corpus readers: turn NER corpus files into sentences with word- and char-level gold spans.

Three formats are read (issue 3):

- ``conll``: ``index<TAB>token<TAB>tag`` lines, a blank line between sentences, ``-DOCSTART-`` lines
  between documents (CoNLL-2002/2003, WikiNEuRal, WikiANN as shipped in ``shared/data/ner``).
- ``iob2``: Universal NER; the same rows (extra columns ignored) after ``# newdoc id``, ``# sent_id``
  and ``# text = ...`` comments. The ``# text`` line becomes :attr:`Sentence.text` when the tokens can
  be found in it in order, which gives real character offsets for languages written without spaces.
- ``jsonl``: one ``{"text": ..., "spans": [[start, end, label], ...]}`` object per line with char
  offsets, for users who bring their own data and entity types. Words come from :func:`split_words`.

Tags may use IOB1, IOB2, BIOES or BILOU; the scheme is detected per file unless given. Decoding is
lenient in the way conlleval and seqeval's default mode are (see :func:`tags_to_spans`), so every
tag sequence decodes and malformed ones are counted in a :class:`CorpusWarning` instead of failing.

Example:
    >>> from ner.corpora import read_corpus, labels
    >>> sentences = read_corpus("../shared/data/ner/conll/de/val.conllu")  # doctest: +SKIP
    >>> labels(sentences)  # doctest: +SKIP
    ['LOC', 'MISC', 'ORG', 'PER']
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ner.tagging import SCHEME_PREFIXES, SCHEMES, detect_scheme, parse_tag, tags_to_spans
from ner.words import align_char_span, align_words, is_cjk_char, join_words, split_words

FORMATS = ("auto", "conll", "iob2", "jsonl", "multiconer")

# Extension -> format; anything else is sniffed from the content (see detect_format).
_EXTENSIONS = {
    ".conllu": "conll",
    ".conll": "conll",
    ".txt": "conll",
    ".iob2": "iob2",
    ".jsonl": "jsonl",
    ".json": "jsonl",
}
_DOCSTART = "-DOCSTART-"
_EXAMPLES = 3  # how many example locations a warning names


class CorpusError(ValueError):
    """A corpus file could not be read; the message starts with ``path:line:`` where known.

    Attributes:
        path (str | None): The file being read.
        line (int | None): The 1-based line number of the problem.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        location = "" if path is None else (f"{path}:{line}: " if line is not None else f"{path}: ")
        super().__init__(location + message)


class CorpusWarning(UserWarning):
    """Something in a corpus was dropped, repaired or decoded leniently; the message counts it."""


@dataclass(frozen=True)
class Span:
    """One gold entity of a sentence.

    Attributes:
        start (int): Index of the first word.
        end (int): Index one past the last word (exclusive), so ``words[start:end]`` is the entity.
        label (str): Entity type, e.g. ``"PER"``.
        char_start (int): Char offset of the entity's first character in :attr:`Sentence.text`.
        char_end (int): Char offset one past its last character, so ``text[char_start:char_end]``.
    """

    start: int
    end: int
    label: str
    char_start: int
    char_end: int


@dataclass(frozen=True)
class Sentence:
    """A sentence with its words and gold entities, in both word and char coordinates.

    Attributes:
        words (list[str]): The tokens, as the corpus gives them.
        text (str): The sentence text; ``text[s:e] == words[i]`` for ``(s, e) = word_offsets[i]``.
        word_offsets (list[tuple[int, int]]): Char start and end of each word in :attr:`text`.
        spans (list[Span]): Gold entities, sorted by position, never overlapping.
        doc_id (str | None): Document id (``# newdoc id``, ``doc-N`` after the N-th ``-DOCSTART-``,
            or a JSONL ``doc_id``); None where unknown, e.g. before a file's first ``-DOCSTART-``.
        sent_id (str | None): Sentence id (``# sent_id`` or a JSONL ``id``); None where unknown.
        line (int | None): 1-based line in the file where the sentence starts, for error reports.
    """

    words: list[str]
    text: str
    word_offsets: list[tuple[int, int]]
    spans: list[Span] = field(default_factory=list)
    doc_id: str | None = None
    sent_id: str | None = None
    line: int | None = None

    def word_entities(self) -> list[tuple[int, int, str]]:
        """Returns the gold entities as ``(start, end, label)`` word indices, the form evaluation takes."""
        return [(span.start, span.end, span.label) for span in self.spans]

    def char_entities(self) -> list[tuple[int, int, str]]:
        """Returns the gold entities as ``(char_start, char_end, label)`` offsets into :attr:`text`."""
        return [(span.char_start, span.char_end, span.label) for span in self.spans]


# --------------------------------------------------------------------------- format detection


def detect_format(path: str | Path) -> str:
    """Picks the reader for a file: by extension, else by sniffing the first non-blank lines.

    Returns:
        str: ``"conll"``, ``"iob2"`` or ``"jsonl"``.

    Raises:
        FileNotFoundError: If the file does not exist.
        CorpusError: If neither the extension nor the content identifies a format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file not found: {path}")
    if _looks_like_multiconer(path):  # MultiCoNER ships `.conll` files of another layout
        return "multiconer"
    by_extension = _EXTENSIONS.get(path.suffix.lower())
    if by_extension is not None:
        return by_extension
    with path.open(encoding="utf-8-sig") as handle:
        for raw in handle:
            line = raw.strip()
            if not line:
                continue
            if line.startswith(("{", "[")):
                return "jsonl"
            if line.startswith("#"):
                if line.lstrip("#").lstrip().startswith(("text", "sent_id", "newdoc")):
                    return "iob2"
                continue
            if "\t" in line and line.split("\t", 1)[0].isdigit():
                return "conll"
            break
    raise CorpusError(
        f"cannot tell the format from the extension {path.suffix!r} or the content; "
        f"pass format= one of {FORMATS[1:]} (extensions: {', '.join(sorted(_EXTENSIONS))})",
        path,
    )


def _looks_like_multiconer(path: Path) -> bool:
    """MultiCoNER's files open with ``# id <uuid>\tdomain=<lang>``."""
    with path.open(encoding="utf-8-sig") as handle:
        for raw in handle:
            if raw.strip():
                return raw.startswith("# id ") and "domain=" in raw
    return False


# --------------------------------------------------------------------------- MultiCoNER reader


def _join_tokens(words: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Space-joined text, except between two CJK characters: MultiCoNER's Chinese gives one
    character per token, and a space between them would be text no user ever sends."""
    text, offsets = "", []
    for word in words:
        if text and not (is_cjk_char(text[-1]) and is_cjk_char(word[0])):
            text += " "
        offsets.append((len(text), len(text) + len(word)))
        text += word
    return text, offsets


def _read_multiconer(path: Path, scheme: str) -> list[Sentence]:
    """MultiCoNER v2 (SemEval-2023 Task 2): ``# id <uuid>\tdomain=<lang>`` then ``token _ _ TAG``
    lines, a blank line between sentences. Tokens are whitespace-separated fields, the tag last."""
    blocks: list[_Block] = []
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    sent_id: str | None = None

    def flush() -> None:
        nonlocal words, tags, lines
        if lines:
            blocks.append(_Block(words, tags, lines, None, None, sent_id))
        words, tags, lines = [], [], []

    with path.open(encoding="utf-8-sig") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line:
                flush()
                continue
            if line.startswith("# id "):
                flush()
                sent_id = line[5:].split("\t", 1)[0].strip()
                continue
            fields = line.split()
            if len(fields) < 2:
                raise CorpusError(f"malformed line {line[:60]!r}: expected 'token _ _ TAG'", path, number)
            try:
                parse_tag(fields[-1])
            except ValueError as error:
                raise CorpusError(str(error), path, number) from None
            words.append(fields[0])
            tags.append(fields[-1])
            lines.append(number)
    flush()
    return _decode_blocks(path, blocks, [], scheme, join=_join_tokens)


# --------------------------------------------------------------------------- token-per-line reader


@dataclass
class _Block:
    """One sentence as read from a token-per-line file, before decoding."""

    words: list[str]
    tags: list[str]
    lines: list[int]
    text: str | None
    doc_id: str | None
    sent_id: str | None


def _read_blocks(path: Path) -> tuple[list[_Block], list[int]]:
    """Reads ``index<TAB>token<TAB>tag[<TAB>...]`` rows into sentence blocks.

    Returns:
        tuple[list[_Block], list[int]]: The blocks, and the line numbers of dropped empty tokens.
        Sentences before a file's first ``-DOCSTART-`` (or ``# newdoc id``) get no ``doc_id``.
    """
    blocks: list[_Block] = []
    dropped: list[int] = []
    documents = 0
    columns: int | None = None
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    meta: dict[str, str] = {}
    doc_id: str | None = None

    def flush() -> None:
        nonlocal words, tags, lines, meta
        if lines:
            blocks.append(_Block(words, tags, lines, meta.get("text"), doc_id, meta.get("sent_id")))
        words, tags, lines, meta = [], [], [], {}

    with path.open(encoding="utf-8-sig") as handle:  # -sig drops a BOM; universal newlines drop CR
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip()
            if not line:
                flush()
                continue
            if line.startswith("#"):
                key, sep, value = line.lstrip("#").partition("=")
                if sep:
                    key = key.strip()
                    if key == "newdoc id":
                        doc_id = value.strip()
                    elif key in ("sent_id", "text"):
                        if key == "sent_id" and lines:  # a new sentence without a blank line before it
                            flush()
                        meta[key] = value.strip() if key == "sent_id" else value.lstrip(" ").rstrip()
                continue
            fields = [value.strip() for value in line.split("\t")]
            if fields[0].startswith(_DOCSTART) or fields[1:2] == [_DOCSTART]:  # classic or indexed
                flush()
                documents += 1
                doc_id = f"doc-{documents}"
                continue
            if len(fields) < 3 or not fields[0].isdigit():
                raise CorpusError(
                    f"malformed line {line[:60]!r}: expected 'index<TAB>token<TAB>tag', tab-separated",
                    path,
                    number,
                )
            if columns is None:
                columns = len(fields)
            elif len(fields) != columns:
                raise CorpusError(
                    f"inconsistent columns: {len(fields)} here, {columns} on the first token line",
                    path,
                    number,
                )
            try:
                parse_tag(fields[2])
            except ValueError as error:
                raise CorpusError(str(error), path, number) from None
            if not fields[1]:
                dropped.append(number)
                continue
            words.append(fields[1])
            tags.append(fields[2])
            lines.append(number)
    flush()
    return blocks, dropped


def _read_token_file(path: Path, scheme: str) -> list[Sentence]:
    """Reads a ``conll`` or ``iob2`` file (one parser; ``# text`` comments are used where present)."""
    blocks, dropped = _read_blocks(path)
    return _decode_blocks(path, blocks, dropped, scheme)


def _decode_blocks(
    path: Path,
    blocks: list[_Block],
    dropped: list[int],
    scheme: str,
    join=join_words,  # noqa: ANN001
) -> list[Sentence]:
    """Tags to spans and words to text, for every token-per-line reader."""
    if scheme == "auto":
        try:
            scheme = detect_scheme(block.tags for block in blocks)
        except ValueError as error:
            raise CorpusError(f"{error}; pass scheme= one of {SCHEMES[1:]}", path) from None
    sentences: list[Sentence] = []
    malformed: list[int] = []
    misaligned: list[int] = []
    texts = 0
    for block in blocks:
        try:
            word_spans, bad = tags_to_spans(block.tags, scheme)
        except ValueError as error:
            number = next(
                line for line, tag in zip(block.lines, block.tags, strict=True) if _tag_error(tag, scheme)
            )
            raise CorpusError(str(error), path, number) from None
        malformed.extend(block.lines[index] for index in bad)
        offsets = None
        text = ""
        if block.text is not None:
            texts += 1
            offsets = align_words(block.text, block.words)
            if offsets is None:
                misaligned.append(block.lines[0])
            else:
                text = block.text
        if offsets is None:
            text, offsets = join(block.words)
        spans = [Span(s, e, label, offsets[s][0], offsets[e - 1][1]) for s, e, label in word_spans]
        sentences.append(
            Sentence(block.words, text, offsets, spans, block.doc_id, block.sent_id, block.lines[0])
        )
    if dropped:
        _warn(f"{path}: dropped {len(dropped)} empty token(s)", dropped, "the rest of each sentence is kept")
    if malformed:
        _warn(
            f"{path}: {len(malformed)} of {sum(len(s.spans) for s in sentences)} entities are malformed "
            f"for scheme {scheme}",
            malformed,
            "decoded leniently like conlleval: an I-/E- tag without a B- starts an entity",
        )
    if misaligned:
        _warn(
            f"{path}: {len(misaligned)} of {texts} '# text' lines do not match their tokens",
            misaligned,
            "those sentences use the space-joined tokens as text",
        )
    return sentences


def _tag_error(tag: str, scheme: str) -> bool:
    """Whether this tag is the one :func:`tags_to_spans` rejects, to name its line in the error."""
    try:
        prefix, _ = parse_tag(tag)
    except ValueError:
        return True
    return prefix != "O" and prefix not in SCHEME_PREFIXES[scheme]


def _warn(summary: str, lines: list[int], consequence: str) -> None:
    """Emits one counted :class:`CorpusWarning` per file and problem, naming the first lines."""
    examples = ", ".join(str(line) for line in lines[:_EXAMPLES])
    more = ", ..." if len(lines) > _EXAMPLES else ""
    warnings.warn(f"{summary} (lines {examples}{more}); {consequence}", CorpusWarning, stacklevel=4)


# --------------------------------------------------------------------------- JSONL reader


def _json_span(raw: object) -> tuple[int, int, str]:
    """Accepts ``[start, end, label]`` or ``{"start": .., "end": .., "label": ..}``."""
    if isinstance(raw, Mapping):
        raw = [raw.get("start"), raw.get("end"), raw.get("label")]
    if not isinstance(raw, (list, tuple)) or len(raw) != 3:
        raise ValueError(f"span {raw!r} is not [start, end, label]")
    start, end, label = raw
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in (start, end)):
        raise ValueError(f"span {raw!r}: start and end must be integers (char offsets)")
    if not isinstance(label, str) or not label:
        raise ValueError(f"span {raw!r}: label must be a non-empty string")
    return start, end, label


def _read_jsonl(path: Path) -> list[Sentence]:
    """Reads one ``{"text": ..., "spans": [[start, end, label], ...]}`` object per line."""
    sentences: list[Sentence] = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                hint = " (a JSON array? write one object per line: JSON Lines)" if line == "[" else ""
                raise CorpusError(
                    f"invalid JSON: {error.msg} at column {error.colno}{hint}", path, number
                ) from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise CorpusError(
                    'expected an object {"text": "...", "spans": [[start, end, label], ...]}', path, number
                )
            raw_spans = record.get("spans", [])
            if not isinstance(raw_spans, list):
                raise CorpusError(f"'spans' must be a list, got {type(raw_spans).__name__}", path, number)
            text = record["text"]
            offsets = split_words(text)
            words = [text[s:e] for s, e in offsets]
            starts = {s: index for index, (s, _) in enumerate(offsets)}
            ends = {e: index for index, (_, e) in enumerate(offsets)}
            spans: list[Span] = []
            try:
                for raw_span in raw_spans:
                    start, end, label = _json_span(raw_span)
                    word_start, word_end = align_char_span(text, offsets, starts, ends, (start, end, label))
                    spans.append(Span(word_start, word_end, label, start, end))
                spans.sort(key=lambda span: (span.start, span.end))
                for before, after in zip(spans, spans[1:], strict=False):
                    if after.start < before.end:
                        raise ValueError(
                            f"spans [{before.char_start}, {before.char_end}) {before.label!r} and "
                            f"[{after.char_start}, {after.char_end}) {after.label!r} overlap; "
                            "the model predicts flat, non-overlapping entities"
                        )
            except ValueError as error:
                raise CorpusError(str(error), path, number) from None
            doc_id, sent_id = record.get("doc_id"), record.get("id", record.get("sent_id"))
            sentences.append(
                Sentence(
                    words,
                    text,
                    offsets,
                    spans,
                    None if doc_id is None else str(doc_id),
                    None if sent_id is None else str(sent_id),
                    number,
                )
            )
    return sentences


# --------------------------------------------------------------------------- public entry points


def _relabel(sentences: list[Sentence], label_map: Mapping[str, str | None]) -> Iterator[Sentence]:
    """Renames labels per ``label_map``; a None value drops that label's spans (the words become O)."""
    for value in label_map.values():
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"label_map values must be non-empty strings or None (to drop), got {value!r}")
    for sentence in sentences:
        spans = []
        for span in sentence.spans:
            label = label_map.get(span.label, span.label)
            if label is not None:
                spans.append(
                    span
                    if label == span.label
                    else Span(span.start, span.end, label, span.char_start, span.char_end)
                )
        yield Sentence(
            sentence.words,
            sentence.text,
            sentence.word_offsets,
            spans,
            sentence.doc_id,
            sentence.sent_id,
            sentence.line,
        )


def read_corpus(
    path: str | Path,
    format: str = "auto",
    scheme: str = "auto",
    label_map: Mapping[str, str | None] | None = None,
) -> list[Sentence]:
    """Reads a corpus file into sentences with word- and char-level gold spans.

    Args:
        path (str | Path): The file (UTF-8; a BOM, CRLF line ends, trailing whitespace and a missing
            final blank line are all fine; an empty file gives no sentences).
        format (str): ``"conll"``, ``"iob2"``, ``"jsonl"`` or ``"auto"`` (by extension:
            ``.conllu``/``.conll``/``.txt`` conll, ``.iob2`` iob2, ``.jsonl``/``.json`` jsonl; else
            by content). Defaults to ``"auto"``.
        scheme (str): Tagging scheme of conll/iob2 files: ``"iob1"``, ``"iob2"``, ``"bioes"``,
            ``"bilou"`` or ``"auto"`` (see :func:`detect_scheme`). Ignored for jsonl. Defaults to
            ``"auto"``.
        label_map (Mapping[str, str | None] | None): Renames labels, e.g. ``{"OTH": "MISC"}``;
            mapping to None drops them, e.g. ``{"OTH": None}``. Unlisted labels are kept.
            Defaults to None.

    Returns:
        list[Sentence]: The sentences, in file order.

    Raises:
        FileNotFoundError: If the file does not exist.
        CorpusError: If the file is malformed; the message names ``path:line``.
        ValueError: If ``format``, ``scheme`` or ``label_map`` is invalid.

    Example:
        >>> sentences = read_corpus("uner/hr_set-ud-dev.iob2", label_map={"OTH": "MISC"})  # doctest: +SKIP
        >>> sentences[0].char_entities()  # doctest: +SKIP
        [(24, 30, 'LOC')]
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {FORMATS}")
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {SCHEMES}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file not found: {path}")
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "jsonl":
        sentences = _read_jsonl(path)
    elif fmt == "multiconer":
        sentences = _read_multiconer(path, scheme)
    else:
        sentences = _read_token_file(path, scheme)
    if label_map:
        sentences = list(_relabel(sentences, label_map))
    return sentences


def labels(sentences: Iterable[Sentence]) -> list[str]:
    """Returns the sorted set of entity labels in the sentences, e.g. to configure a model."""
    return sorted({span.label for sentence in sentences for span in sentence.spans})
