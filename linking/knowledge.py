"""Vectors of knowledge-base entities, made before any mention has been seen (issue 18).

A KB entity must be a candidate from the start, so it needs a vector in the same space as the
mention vectors it will be compared with: the store's embedder (``linking.embedding``) is asked for
the vectors of the entity's name and aliases as spans of one short text, ``"Name, alias 1, alias
2, ... . Description"``, and their normalized mean is the entity's vector. With the contextual
``span`` embedder the description is the context of the names (so two "Paris" entries with other
descriptions get other vectors); with ``surface`` vectors each name is embedded alone, exactly as a
mention string is. Once mentions link to the entity, their vectors replace this one in the
centroid (``index.writes``); it comes back if they all go.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from linking.core import mean_vector

MAX_FORMS = 32
"""Name and aliases embedded per entity (a KB may list hundreds; the first ones are the usual ones)."""
MAX_DESCRIPTION = 1000
"""Characters of the description kept as context."""


def entity_text(
    name: str, aliases: Sequence[str], description: str | None
) -> tuple[str, list[tuple[int, int]]]:
    """The text an entity is embedded from and the spans of its name and aliases in it.

    >>> entity_text("Moscow", ["Москва", "moscow"], "Capital of Russia")
    ('Moscow, Москва, moscow. Capital of Russia', [(0, 6), (8, 14), (16, 22)])
    """
    forms = list(dict.fromkeys(" ".join(f.split()) for f in [name, *aliases] if f.strip()))[:MAX_FORMS]
    text, spans = "", []
    for form in forms:
        if text:
            text += ", "
        spans.append((len(text), len(text) + len(form)))
        text += form
    if description and description.strip():
        text += ". " + " ".join(description.split())[:MAX_DESCRIPTION]
    return text, spans


def knowledge_vectors(
    embedder, items: Sequence[tuple[str, Sequence[str], str | None]]
) -> list[np.ndarray | None]:  # noqa: ANN001 - an Embedder
    """One normalized vector per ``(name, aliases, description)``; None when no span gives a vector.

    Surface embedders get every name of the batch in one call first (batched forward passes).
    """
    texts = [entity_text(name, aliases, description) for name, aliases, description in items]
    for part in (embedder, getattr(embedder, "surface", None)):
        if hasattr(part, "embed_strings"):
            part.embed_strings([text[s:e] for text, spans in texts for s, e in spans])
    return [mean_vector(embedder.embed(text, spans)) if spans else None for text, spans in texts]
