"""``LinkSettings``: every threshold and weight of the linker, with defaults and help text.

The defaults were chosen on BSNLP development topics (asia_bibi, ec, trump) and reported on
the others (brexit, other); see ``linking/README.md`` for the figures and the command.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

VECTOR_KINDS = ("span", "surface", "mix")
NEVER = 2.0  # a cosine no vector reaches: turns a cosine-gated rule off


def _setting(default: Any, help: str) -> Any:  # noqa: A002 - "help" reads best in the table
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class LinkSettings:
    """Tunables of in-document grouping and cross-document linking.

    A group of mentions joins the best candidate entity when
    ``name_weight * name + vector_weight * cosine + type_weight * same_type >= link_threshold``;
    otherwise it founds a new entity.
    """

    coref_threshold: float = _setting(
        0.8, "Name similarity at or above which two mentions of one document are the same entity."
    )
    coref_cross_type: bool = _setting(
        True, "Group mentions of different types in a document when their names match exactly."
    )
    partial_person: float = _setting(
        0.8, "Base name similarity of a part of a longer person name (surname for full name)."
    )
    partial_other: float = _setting(
        0.8, "Base name similarity of a part of a longer non-person name ('Ireland' in 'Northern Ireland')."
    )
    name_weight: float = _setting(1.0, "Weight of the name similarity (0..1) in the link score.")
    vector_weight: float = _setting(
        0.25, "Weight of the cosine between the group vector and the entity centroid."
    )
    type_weight: float = _setting(0.1, "Bonus for a candidate of the same type.")
    full_name_conflict: float = _setting(
        0.8,
        "When a group's and an entity's full names (two or more words) in one script match below "
        "this, a shorter form's match does not count (namesakes through a surname; 0 = off).",
    )
    link_threshold: float = _setting(1.1, "Link score at or above which a group joins an existing entity.")
    min_name_similarity: float = _setting(
        0.5, "Candidates with a lower name similarity are linked only on a very high cosine (see next)."
    )
    vector_only_cosine: float = _setting(
        0.95,
        "Cosine at or above which the cosine stands in for the name similarity (translations); not "
        "for a person whose name is written in the candidate's script (namesakes).",
    )
    surname_cosine: float = _setting(
        0.85,
        "Across documents an inflected surname alone ('Macrona') scores as a surname of a full name "
        "only at this cosine (0 = always; inside a document always).",
    )
    cross_script_cosine: float = _setting(
        0.8,
        "A name matched only through transliteration into another alphabet counts when the cosine "
        "reaches this (0 = transliteration alone decides).",
    )
    translation_cosine: float = _setting(
        0.8, "Across scripts, the nearest same-type entity by cosine may stand in for the name from here..."
    )
    translation_margin: float = _setting(
        0.02, "... when it beats the next same-type candidate by this cosine margin (1 = off)."
    )
    alphabet_translation_margin: float = _setting(
        0.05, "The same margin between two alphabets (Latin/Cyrillic/Greek), where names could be compared."
    )
    rename_entities: bool = _setting(
        True, "Rename an entity known by part of its name ('Farage') to a fuller form ('Nigel Farage')."
    )
    vector_candidates: int = _setting(10, "Nearest entities fetched from the FAISS index per group.")
    name_candidates: int = _setting(50, "Most candidates taken from the alias-key table per group.")
    merge_margin: float = _setting(
        0.2, "Consolidation: an entity merges into a larger one at link_threshold + this score."
    )
    merge_forms: int = _setting(
        10, "Consolidation: how many of an entity's most frequent aliases stand for it (besides its name)."
    )
    vector_kind: str = _setting(
        "surface",
        "Mention vector: 'span' (contextual span embedding), 'surface' (sentence embedding of the "
        "mention text) or 'mix' (normalized sum of both); the CLI builds it, a Linker uses the "
        "embedder given.",
    )

    def __post_init__(self) -> None:
        if self.vector_kind not in VECTOR_KINDS:
            raise ValueError(f"vector_kind must be one of {VECTOR_KINDS}, got {self.vector_kind!r}")
        for name in (
            "coref_threshold",
            "min_name_similarity",
            "vector_only_cosine",
            "partial_person",
            "partial_other",
            "translation_margin",
            "alphabet_translation_margin",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.merge_forms < 0:
            raise ValueError("merge_forms must be >= 0")
        if self.vector_candidates < 0 or self.name_candidates < 0:
            raise ValueError("vector_candidates and name_candidates must be >= 0")

    def partial_for(self, label: str) -> float:
        """The partial-name base for a type (``partial_person`` for PER, else ``partial_other``)."""
        return self.partial_person if label == "PER" else self.partial_other


def describe_settings() -> list[dict[str, Any]]:
    """One row per setting: name, default and help (drives CLI help and the docs test)."""
    return [{"name": f.name, "default": f.default, "help": f.metadata["help"]} for f in fields(LinkSettings)]
