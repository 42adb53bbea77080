"""In-document grouping: the mentions of one entity in a document become one group before linking.

Linking groups rather than single mentions gives each cross-document decision every surface
form the document uses ("Nigel Farage", "Farage'a", "UKIP lider") and one averaged vector, and
it keeps a bare surname from being linked on its own to the wrong namesake elsewhere.
Longer names are placed first, so "Farage" meets "Nigel Farage" already grouped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from linking.names import form_similarity, is_acronym
from linking.settings import LinkSettings

_PAREN_OPEN = re.compile(r"^\s*[(\[]\s*$")  # "Partia Niepodległości Wielkiej Brytanii (UKIP"


@dataclass(frozen=True)
class MentionSpan:
    """A mention to group: character span, type, surface form and the type's group (types agree
    when their groups do: `ner.labels`; defaults to the label)."""

    start: int
    end: int
    label: str
    text: str
    label_group: str = ""

    @property
    def kind(self) -> str:
        return self.label_group or self.label


def group_mentions(
    text: str, mentions: Sequence[MentionSpan], settings: LinkSettings | None = None
) -> list[list[int]]:
    """Group the mentions of one document that name the same entity.

    Rules, in order: an acronym in brackets right after a name is that name
    ("... Brytanii (UKIP)"); otherwise a mention joins the group holding its most similar form
    (``form_similarity``: inflections, transliteration, surname of a full name, acronym of
    the initials) when that similarity reaches ``coref_threshold`` and the types agree, or
    the forms are equal after normalization and ``coref_cross_type`` allows a type change.

    Args:
        text (str): The document text (only used for the bracket rule).
        mentions (Sequence[MentionSpan]): The mentions, any order.
        settings (LinkSettings | None): Thresholds. Defaults to ``LinkSettings()``.

    Returns:
        list[list[int]]: Groups of indexes into ``mentions``, each sorted, ordered by first index.

    >>> spans = [MentionSpan(0, 12, "PER", "Nigel Farage"), MentionSpan(20, 28, "PER", "Farage'a")]
    >>> group_mentions("Nigel Farage ... Farage'a", spans)
    [[0, 1]]
    """
    settings = settings or LinkSettings()
    order = sorted(
        range(len(mentions)), key=lambda i: (-len(mentions[i].text.split()), -len(mentions[i].text), i)
    )
    group_of: dict[int, int] = {}
    groups: list[list[int]] = []
    # Bracketed acronyms: "name (ACR)" ties ACR to the name, whatever the letters.
    by_start = {m.start: i for i, m in enumerate(mentions)}
    bracket: dict[int, int] = {}
    for i, m in enumerate(mentions):
        for j_start in range(m.end, min(len(text), m.end + 4) + 1):
            j = by_start.get(j_start)
            if (
                j is not None
                and j != i
                and _PAREN_OPEN.match(text[m.end : j_start])
                and is_acronym(mentions[j].text)
            ):
                bracket[j] = i
    for i in order:
        m = mentions[i]
        if i in bracket and bracket[i] in group_of:
            best_group = group_of[bracket[i]]
        else:
            best_group, best = -1, 0.0
            for g, members in enumerate(groups):
                for j in members:
                    other = mentions[j]
                    sim = form_similarity(m.text, other.text, settings.partial_for(m.kind), m.kind == "PER")
                    same_type = other.kind == m.kind
                    ok = (same_type and sim >= settings.coref_threshold) or (
                        settings.coref_cross_type and sim >= 1.0
                    )
                    if ok and sim > best:
                        best_group, best = g, sim
        if best_group < 0:
            group_of[i] = len(groups)
            groups.append([i])
        else:
            group_of[i] = best_group
            groups[best_group].append(i)
    # Longer names are placed first, so a bracketed acronym finds its name already grouped; in the
    # rare case of an acronym longer than a one-word name it falls back to name similarity.
    out = [sorted(g) for g in groups]
    return sorted(out, key=lambda g: g[0])
