"""Typed inputs and outputs of the store API, and the surface-form normalization that keys aliases.

Inputs are named ``*Create`` and outputs ``*Public`` (one vocabulary with the HTTP schemas).
Outputs are frozen dataclasses detached from any database session, so callers can keep them,
pass them across threads and serialize them (``dataclasses.asdict``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
"""Control characters other than the whitespace ones (tab, newlines, form feed)."""


def name_problem(text: str) -> str | None:
    """Why ``text`` cannot name an entity (or be one of its aliases), or ``None`` when it can.

    A name needs a letter or digit of some script: a span of only punctuation, a dash or a
    zero-width space would make an entity nobody can see or search. Control characters (NUL, ...)
    would be stored inside names and aliases, so they are refused too.

    >>> name_problem("Angela Merkel"), name_problem("—"), name_problem("angela\\x00 merkel")
    (None, 'has no letter or digit', 'holds a control character (U+0000)')
    """
    if bad := _CONTROL.search(text):
        return f"holds a control character (U+{ord(bad.group()):04X})"
    if not any(ch.isalnum() for ch in text):
        return "has no letter or digit"
    return None


def normalize_surface(text: str) -> str:
    """Normalize a surface form for alias matching and name search.

    NFKC (full-width and compatibility forms fold), case folding (``"STRASSE"`` and
    ``"straße"`` meet at ``"strasse"``), whitespace collapsed and trimmed. Diacritics are kept:
    in many languages they distinguish names.

    >>> normalize_surface("  Nigel   FARAGE ")
    'nigel farage'
    """
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


@dataclass(frozen=True)
class NewEntity:
    """An entity to create while adding a document.

    Mentions of one document that carry equal ``NewEntity`` values link to the same new entity;
    give distinct ``key`` values to create two entities with the same name and label.

    Args:
        name (str): Canonical name.
        label (str): Entity type, e.g. ``"PER"``.
        key (str): Disambiguates equal name/label pairs within one document. Defaults to ``""``.
    """

    name: str
    label: str
    key: str = ""


@dataclass(frozen=True)
class MentionCreate:
    """A mention to store with its document.

    Args:
        start (int): Character offset of the first character in the document text.
        end (int): Character offset after the last character.
        label (str): Predicted type.
        vector (np.ndarray | list[float]): Embedding; stored L2-normalized.
        score (float): Model confidence. Defaults to 1.0.
        text (str | None): Surface form; must equal ``document.text[start:end]`` when given.
            Defaults to that slice.
        entity_id (int | None): Existing entity to link to. Defaults to None.
        new_entity (NewEntity | None): Entity to create and link to instead. Defaults to None.
    """

    start: int
    end: int
    label: str
    vector: Any
    score: float = 1.0
    text: str | None = None
    entity_id: int | None = None
    new_entity: NewEntity | None = None


@dataclass(frozen=True)
class DocumentCreate:
    """A document with its mentions, added in one transaction.

    Args:
        external_id (str): Caller's key; adding it again replaces the earlier version.
        text (str): Full text the mention offsets refer to.
        mentions (list[MentionCreate]): Mentions and their entity assignments. Defaults to none.
        language (str | None): Language code if known. Defaults to None.
        metadata (dict[str, Any]): JSON-serializable user metadata. Defaults to empty.
    """

    external_id: str
    text: str
    mentions: list[MentionCreate] = field(default_factory=list)
    language: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EntityCreate:
    """An entity created or updated outside of document ingestion (e.g. from a knowledge base).

    Args:
        name (str): Canonical name.
        label (str): Entity type.
        aliases (list[str]): Surface forms to register (count 0 if new). Defaults to none.
        vector (Any): Vector used as the centroid while the entity has no mentions. Defaults to None.
    """

    name: str
    label: str
    aliases: list[str] = field(default_factory=list)
    vector: Any = None


@dataclass(frozen=True)
class KnownEntity:
    """An entity of the caller's knowledge base, imported by :meth:`Store.import_entities`.

    Importing the same ``external_id`` again updates the entity in place (name, label, aliases,
    description, metadata, vector); its mentions stay linked.

    Args:
        external_id (str): The caller's key, e.g. a Wikidata id ``"Q567"``.
        name (str): The name shown for it; mentions never rename it.
        label (str): Entity type.
        aliases (list[str]): Other names, in any language and script. Defaults to none.
        description (str | None): A short description. Defaults to None.
        metadata (dict[str, Any]): JSON-serializable extra fields. Defaults to empty.
        vector (Any): Its vector while it has no mention (from name, aliases and description).
            Defaults to None (then it is found by name only until a mention links to it).
    """

    external_id: str
    name: str
    label: str
    aliases: list[str] = field(default_factory=list)
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    vector: Any = None


@dataclass(frozen=True)
class MentionPublic:
    """A stored mention."""

    id: int
    document_id: int
    start: int
    end: int
    text: str
    label: str
    score: float
    entity_id: int | None


@dataclass(frozen=True)
class DocumentPublic:
    """A stored document with its mentions in text order."""

    id: int
    external_id: str
    text: str
    language: str | None
    metadata: dict[str, Any]
    content_hash: str
    created_at: datetime
    mentions: list[MentionPublic]


@dataclass(frozen=True)
class AliasPublic:
    """A normalized surface form of an entity and the number of mentions that used it; ``kb`` when
    the knowledge base gave it (such aliases stay at count 0)."""

    norm: str
    count: int
    kb: bool = False


@dataclass(frozen=True)
class EntityPublic:
    """A stored entity; ``aliases`` are sorted by count, most frequent first."""

    id: int
    name: str
    label: str
    mention_count: int
    created_at: datetime
    updated_at: datetime
    aliases: list[AliasPublic]
    external_id: str | None = None
    """The knowledge base's id; None for entities founded from mentions."""
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EntityHit:
    """An entity found by vector similarity; ``score`` is the cosine similarity."""

    score: float
    entity: EntityPublic


@dataclass(frozen=True)
class MentionHit:
    """A mention found by vector similarity, with its document's external id."""

    score: float
    mention: MentionPublic
    document_external_id: str


@dataclass(frozen=True)
class AddResult:
    """What :meth:`Store.add_document` did.

    Attributes:
        document (DocumentPublic): The stored document.
        replaced (bool): An earlier version with the same external id was replaced.
        created_entity_ids (list[int]): Entities created for ``NewEntity`` assignments.
        removed_entity_ids (list[int]): Entities removed because the replaced version held
            their last mentions.
    """

    document: DocumentPublic
    replaced: bool
    created_entity_ids: list[int]
    removed_entity_ids: list[int]


@dataclass(frozen=True)
class StoreStats:
    """Row and vector counts, and the FAISS configuration (for health and ``/-/versions``)."""

    documents: int
    mentions: int
    entities: int
    entity_vectors: int
    mention_vectors: int
    factory: str
    effective_factories: dict[str, str]
    dim: int
