"""Read the BSNLP shared-task data: raw documents plus token-level gold mentions aligned to characters.

The release keeps text and annotation apart: ``raw/<lang>/<name>.txt`` (five header lines: id,
language, date, URL, title; then the body) and ``merged/<lang>/<name>.csv`` (one row per token:
``docId,sentenceId,tokenId,text,ner,clID``). The CSV has no character offsets, so the tokens are
found in the text in order. Quotes and spacing differ between the two (``„`` in the text, ``"`` in
the CSV; tokens glued or split differently), so a token that is not found verbatim is looked for
with quotes folded, and one that is still missing is counted (``AlignmentStats``) rather than
guessed; a mention loses only the tokens that failed, and is dropped only when none is left.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LANG_FOLDERS_SKIPPED = ()
_QUOTES = str.maketrans({c: '"' for c in "„“”«»‚‘’'`´″"})
_NUMERIC = re.compile(r"^\d+$")
SEARCH_WINDOW = 300  # characters a token may sit after the previous one (headers, skipped text)


@dataclass(frozen=True)
class GoldMention:
    """A gold mention with character offsets into ``GoldDocument.text``."""

    start: int
    end: int
    label: str
    cluster: str
    topic_local: bool = False  # a numeric id, unique only within its topic (see `align`)


@dataclass
class GoldDocument:
    """One BSNLP document: text (title + body) and its gold mentions."""

    external_id: str
    topic: str
    language: str
    text: str
    mentions: list[GoldMention] = field(default_factory=list)


@dataclass
class AlignmentStats:
    """What the CSV-to-text alignment could not place (reported by the evaluation)."""

    tokens: int = 0
    tokens_failed: int = 0
    mentions: int = 0
    mentions_dropped: int = 0
    mentions_partial: int = 0
    documents_without_csv: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _find(text: str, folded: str, token: str, pos: int) -> tuple[int, int] | None:
    """Where ``token`` starts at or after ``pos`` (verbatim, then quote-folded, then spaceless)."""
    limit = pos + SEARCH_WINDOW + len(token)
    at = text.find(token, pos, limit)
    if at >= 0:
        return at, at + len(token)
    ftoken = token.translate(_QUOTES)
    at = folded.find(ftoken, pos, limit)
    if at >= 0:
        return at, at + len(ftoken)
    # A token whose characters are separated by spaces in the text ("U . S ." vs "U.S.").
    chars = [re.escape(c) for c in ftoken if not c.isspace()]
    if chars:
        found = re.compile(r"\s*".join(chars)).search(folded, pos, limit)
        if found:
            return found.start(), found.end()
    return None


def read_raw(path: Path) -> tuple[str, str]:
    """The document id from the header and the text (title line onwards)."""
    lines = path.read_text(encoding="utf-8-sig").split("\n")
    doc_id = lines[0].strip()
    return doc_id, "\n".join(lines[4:]).strip("\n")


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def align(text: str, rows: Sequence[dict[str, str]], topic: str, stats: AlignmentStats) -> list[GoldMention]:
    """Turn IOB2 token rows into character-offset mentions of ``text``.

    Numeric cluster ids (topics ``ec``, ``trump``) are only unique within their topic, so they are
    prefixed with it; named ids (``PER-Nigel-Farage``) are global and kept as they are.
    """
    folded = text.translate(_QUOTES)
    pos = 0
    spans: list[tuple[int, int] | None] = []
    for row in rows:
        token = (row.get("text") or "").strip()
        stats.tokens += 1
        found = _find(text, folded, token, pos) if token else None
        if found is None:
            stats.tokens_failed += 1
        else:
            pos = found[1]
        spans.append(found)
    mentions: list[GoldMention] = []
    current: list[int] = []

    def close() -> None:
        if not current:
            return
        stats.mentions += 1
        placed = [spans[i] for i in current if spans[i] is not None]
        first = rows[current[0]]
        label = (first.get("ner") or "O")[2:]
        cluster = (first.get("clID") or "").strip() or f"{label}-unknown"
        topic_local = bool(_NUMERIC.match(cluster))
        if topic_local:
            cluster = f"{topic}:{cluster}"
        if not placed:
            stats.mentions_dropped += 1
        else:
            if len(placed) < len(current):
                stats.mentions_partial += 1
            mentions.append(GoldMention(placed[0][0], placed[-1][1], label, cluster, topic_local))  # type: ignore[index]
        current.clear()

    for i, row in enumerate(rows):
        tag = (row.get("ner") or "O").strip()
        if tag.startswith("B-") or (
            tag.startswith("I-")
            and (
                not current
                or rows[current[0]].get("clID") != row.get("clID")
                or tag[2:] != rows[current[0]]["ner"][2:]
            )
        ):
            close()
            current.append(i)
        elif tag.startswith("I-"):
            current.append(i)
        else:
            close()
    close()
    return mentions


def read_topic(
    root: Path, topic: str, stats: AlignmentStats, languages: Sequence[str] | None = None
) -> Iterator[GoldDocument]:
    """Yield the documents of one topic (all languages, sorted by language then file name)."""
    base = Path(root) / topic
    if not base.is_dir():
        raise FileNotFoundError(f"no BSNLP topic folder {base}")
    for lang_dir in sorted((base / "raw").iterdir()):
        lang = lang_dir.name
        if languages and lang not in languages:
            continue
        for raw in sorted(lang_dir.glob("*.txt")):
            csv_path = base / "merged" / lang / (raw.stem + ".csv")
            doc_id, text = read_raw(raw)
            if not csv_path.exists():
                stats.documents_without_csv += 1
                continue
            mentions = align(text, read_rows(csv_path), topic, stats)
            yield GoldDocument(f"{topic}/{lang}/{raw.stem}", topic, lang, text, mentions)


def read_bsnlp(
    root: Path, topics: Sequence[str], languages: Sequence[str] | None = None
) -> tuple[list[GoldDocument], AlignmentStats]:
    """Read several topics; returns the documents and the alignment counts."""
    stats = AlignmentStats()
    docs = [doc for topic in topics for doc in read_topic(root, topic, stats, languages)]
    return docs, stats
