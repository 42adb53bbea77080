"""Pure helpers behind the browse endpoints and the web page: folded name search, keyword-in-context
trimming, aliases by script, and cutting a long document into highlighted pages.

No store, no model, no linking here: the service hands in what it read, so each rule is testable on
plain values.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

_SENTENCE_END = re.compile(r"[.!?。！？]\s+|\n\s*\n|\n")


def folded_matches(
    query: str,
    entities: Iterable[tuple[int, str, int, Sequence[str]]],
    fold: Callable[[str], str],
    labels: Sequence[str] | None = None,
) -> list[tuple[int, int]]:
    """``(mention_count, id)`` of the entities with a form whose folded words start with the folded query.

    ``fold`` maps a name to one Latin, lower-case, accent-free form (``linking.names.normalize_name``,
    anyascii inside), so "Путин" finds "Putin", "macron" finds "Macrón" and "merkel" finds "Angela
    Merkel" (a word of a form may start the match, not only the first). Queries that fold to nothing
    (punctuation only) are compared casefolded instead. Sorted most mentioned first, then by id.

    Args:
        entities: ``(id, label, mention_count, forms)`` per entity; forms are the name and aliases.
    """
    key = fold(query) or " ".join(query.casefold().split())
    keep = set(labels) if labels else None
    found: list[tuple[int, int]] = []
    for entity_id, label, count, forms in entities:
        if keep is not None and label not in keep:
            continue
        for form in forms:
            folded = fold(form) or " ".join(form.casefold().split())
            if folded.startswith(key) or f" {key}" in folded:
                found.append((count, entity_id))
                break
    found.sort(key=lambda item: (-item[0], item[1]))
    return found


def sentence_context(before: str, after: str) -> tuple[str, str]:
    """Trim the text around a mention to its sentence: after the last sentence end in ``before``, up to
    and including the first one in ``after`` (keyword-in-context lines read as sentences)."""
    ends = list(_SENTENCE_END.finditer(before))
    if ends:
        before = before[ends[-1].end() :]
    first = _SENTENCE_END.search(after)
    if first is not None:
        after = after[: first.start() + 1].rstrip()
    return before.lstrip(), after


def script_of(text: str) -> str:
    """The Unicode script of the first letter ("LATIN", "CYRILLIC", "GREEK", "CJK", ...) or "OTHER"."""
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            return name.split(" ", 1)[0] if name else "OTHER"
    return "OTHER"


def aliases_by_script(aliases: Iterable[tuple[str, int]]) -> list[tuple[str, list[tuple[str, int]]]]:
    """Aliases grouped by script, the script with most uses first; inside a group most used first."""
    groups: dict[str, list[tuple[str, int]]] = {}
    for alias, count in aliases:
        groups.setdefault(script_of(alias), []).append((alias, count))
    ordered = sorted(groups.items(), key=lambda item: (-sum(c for _, c in item[1]), item[0]))
    return [(script, sorted(items, key=lambda a: (-a[1], a[0]))) for script, items in ordered]


@dataclass(frozen=True)
class Segment:
    """A piece of a document page: plain text, or a mention (``mention`` set) to highlight."""

    text: str
    start: int
    mention: object | None = None


def page_bounds(text: str, spans: Sequence[tuple[int, int]], page_chars: int) -> list[tuple[int, int]]:
    """Cut ``text`` into pages of about ``page_chars`` characters, at whitespace, never inside a span.

    Spans are ``(start, end)``, sorted. Returns ``(start, end)`` per page, covering the text.
    """
    bounds: list[tuple[int, int]] = []
    start, at = 0, 0
    n = len(text)
    while start < n:
        cut = min(start + page_chars, n)
        if cut < n:
            space = text.rfind(" ", start + page_chars // 2, cut)
            newline = text.rfind("\n", start + page_chars // 2, cut)
            cut = max(space, newline) + 1 if max(space, newline) >= 0 else cut
            while at < len(spans) and spans[at][1] <= cut:
                at += 1
            if at < len(spans) and spans[at][0] < cut:  # the cut falls inside a span: after it
                cut = spans[at][1]
        bounds.append((start, cut))
        start = cut
    return bounds or [(0, 0)]


def segments(text: str, mentions: Sequence[object], start: int, end: int) -> list[Segment]:
    """``text[start:end]`` as plain and mention segments (mentions have ``start``/``end``, sorted,
    not overlapping), for a template to render — escaping is the template's job."""
    out: list[Segment] = []
    at = start
    for mention in mentions:
        m_start, m_end = mention.start, mention.end  # type: ignore[attr-defined]
        if m_end <= start or m_start >= end or m_start < at:
            continue
        if m_start > at:
            out.append(Segment(text[at:m_start], at))
        out.append(Segment(text[m_start:m_end], m_start, mention))
        at = m_end
    if at < end:
        out.append(Segment(text[at:end], at))
    return out
