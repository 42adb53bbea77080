"""Request and response bodies of the HTTP API, named by role (``*Create``, ``*Public``, ``*Request``).

Requests are strict (``"3"`` is not an integer, unknown fields are refused) so a client's typo
fails loudly instead of being half-understood. What pydantic can check from the body alone is
checked here (types, ranges, spans inside their text, overlapping spans); limits that come from
the settings (text length, items per request, k) are checked by the routes, which answer 413
rather than 422 for an oversized request.
"""

from __future__ import annotations

import math
import unicodedata
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

MAX_ID = 2**63 - 1
"""Database ids are signed 64-bit integers; larger numbers are refused up front (422, not a 500)."""


def _json_integer(value: Any) -> Any:
    # JSON Schema counts 3.0 as an integer, and so do many JSON encoders (JavaScript's has no
    # int type); "3" and true are still refused. Strict mode alone would refuse 3.0 (found by
    # the schemathesis run), lax mode would accept "3".
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _unicode_problem(value: str) -> str | None:
    """Why a string cannot be stored: a lone surrogate (JSON's ``"\\ud800"``) or NUL, else None.

    Lone surrogates cannot be encoded (the tokenizer and the database both fail on them); NUL ends
    strings in C libraries and PostgreSQL refuses it in text. Every text field gets this check,
    so every endpoint answers the same 422.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"is not valid Unicode ({exc.reason} at character {exc.start})"
    if (at := value.find("\x00")) >= 0:
        return f"holds a NUL character (at character {at})"
    return None


def _valid_text(value: str) -> str:
    if problem := _unicode_problem(value):
        raise ValueError(f"text {problem}")
    return value


def _valid_key(value: str) -> str:
    """Ids: visible characters with no whitespace at either end (a key of only spaces is a typo)."""
    _valid_text(value)
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not hold control characters")
    return value


def _valid_name(value: str) -> str:
    """Entity names: the store's rule (a letter or digit, no control characters)."""
    from index import name_problem

    _valid_text(value)
    if problem := name_problem(value):
        raise ValueError(f"name {value!r} {problem}")
    return value


def _valid_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """JSON that survives storage as given: finite numbers, valid strings, bounded nesting."""

    def walk(item: Any, where: str, depth: int) -> None:
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels at {where}")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"metadata{where} is {item}: JSON numbers must be finite")
        if isinstance(item, str) and (problem := _unicode_problem(item)):
            raise ValueError(f"metadata{where} {problem}")
        if isinstance(item, dict):
            for key, inner in item.items():
                if problem := _unicode_problem(key):
                    raise ValueError(f"metadata key at {where or 'top level'} {problem}")
                walk(inner, f"{where}.{key}", depth + 1)
        elif isinstance(item, list):
            for i, inner in enumerate(item):
                walk(inner, f"{where}[{i}]", depth + 1)

    walk(value, "", 0)
    return value


MAX_METADATA_DEPTH = 32
"""Deepest nesting of document metadata (deeper JSON is refused, not stored)."""

Text = Annotated[str, AfterValidator(_valid_text)]
"""Free text: any Unicode but lone surrogates and NUL."""
Key = Annotated[str, AfterValidator(_valid_key)]
Name = Annotated[str, AfterValidator(_valid_name)]
Metadata = Annotated[dict[str, Any], AfterValidator(_valid_metadata)]

SPACES = r"\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""``str.strip``'s whitespace as the inside of a regex class. Patterns spell it out because ``\\s``
differs between Python, JSON Schema (ECMA-262) and pydantic's Rust regex (``\\x85``, ``\\ufeff``)."""
NON_BLANK = f"[^{SPACES}]"
"""Holds a character that is not whitespace."""

Integer = Annotated[int, BeforeValidator(_json_integer)]
# The bounds stand before the validator: after it, pydantic cannot place them on the integer and
# the JSON schema said "ge"/"le" (not keywords) instead of "minimum"/"maximum" — no bounds at all.
Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_json_integer)]
Offset = Annotated[int, Field(ge=0, le=MAX_ID), BeforeValidator(_json_integer)]
_LABEL_END = f"[^{SPACES}\\x00-\\x1f\\x7f]"
LABEL_PATTERN = f"^{_LABEL_END}([^\\x00-\\x1f\\x7f]*{_LABEL_END})?$"
"""No control character, no whitespace at either end."""
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=LABEL_PATTERN)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


# -- extract -------------------------------------------------------------------------------------


class ExtractRequest(_Request):
    """Texts to run NER on; nothing is stored."""

    texts: list[Text] = Field(min_length=1, description="Texts to analyse (each non-empty).")
    labels: list[Label] | None = Field(None, description="Keep only entities of these types.")
    min_score: Finite = Field(0.0, ge=0.0, le=1.0, description="Drop entities scoring below this.")
    embeddings: bool = Field(False, description="Add each entity's span embedding.")

    @model_validator(mode="after")
    def _non_empty(self) -> ExtractRequest:
        _check_texts(self.texts, "texts")
        return self


GROUP_HELP = (
    "The label's group in the model's label hierarchy (PER for Artist or Politician with the `fine` "
    "model); the label itself for models with flat labels."
)
STORED_GROUP_HELP = GROUP_HELP + " Null where no model is loaded to know it."


class ExtractedEntity(BaseModel):
    """An entity found by the model."""

    start: int
    end: int
    text: str
    label: str
    group: str = Field(description=GROUP_HELP)
    score: float
    embedding: list[float] | None = None


class ExtractResult(BaseModel):
    """The entities of one input text."""

    entities: list[ExtractedEntity]


class ExtractResponse(BaseModel):
    """One result per input text, in order."""

    results: list[ExtractResult]


# -- documents -----------------------------------------------------------------------------------


class MentionCreate(_Request):
    """A caller-given mention: a character span of the text and its type."""

    start: Offset
    end: Offset
    label: Label


def _check_texts(texts: list[str], where: str) -> None:
    for i, text in enumerate(texts):
        if not text.strip():
            raise ValueError(f"{where}[{i}] is empty or only whitespace")


def check_spans(text: str, mentions: list[MentionCreate], who: str) -> None:
    """Spans must lie inside the text, be non-empty and not overlap (they are linked as given)."""
    from index import name_problem

    for m in mentions:
        if not m.start < m.end <= len(text):
            raise ValueError(
                f"{who}: mention ({m.start}, {m.end}) must satisfy 0 <= start < end <= {len(text)} "
                "(the text length)"
            )
        span = text[m.start : m.end]
        if problem := name_problem(span):
            raise ValueError(f"{who}: mention ({m.start}, {m.end}) {span!r} {problem}")
        if span != span.strip():
            start = m.start + len(span) - len(span.lstrip())
            end = m.end - (len(span) - len(span.rstrip()))
            raise ValueError(
                f"{who}: mention ({m.start}, {m.end}) {span!r} has whitespace at its ends; "
                f"give ({start}, {end})"
            )
    ordered = sorted(mentions, key=lambda m: (m.start, m.end))
    for a, b in zip(ordered, ordered[1:]):
        if b.start < a.end:
            raise ValueError(f"{who}: mentions ({a.start}, {a.end}) and ({b.start}, {b.end}) overlap")


class DocumentCreate(_Request):
    """A document to extract, link and store. The same ``id`` again replaces the stored version."""

    id: Key | None = Field(
        None, min_length=1, max_length=512, description="Your key for the document; generated when absent."
    )
    text: Text = Field(min_length=1)
    metadata: Metadata = Field(
        default_factory=dict, description="Any JSON object (finite numbers), stored as given."
    )
    language: Key | None = Field(None, min_length=1, max_length=32)
    mentions: list[MentionCreate] | None = Field(
        None, description="Known mentions: NER is skipped and exactly these spans are linked."
    )

    @model_validator(mode="after")
    def _valid_spans(self) -> DocumentCreate:
        who = f"document {self.id!r}" if self.id is not None else "document"
        if not self.text.strip():
            raise ValueError(f"{who}: text is empty or only whitespace")
        if self.mentions:
            check_spans(self.text, self.mentions, who)
        return self


class DocumentsCreate(_Request):
    """A batch of documents: all are stored, or none (the error names the bad one)."""

    documents: list[DocumentCreate] = Field(min_length=1)
    kb_only: bool = Field(
        False,
        description="Link only to knowledge-base entities (`POST /v1/entities`): mentions that match "
        "none are stored unlinked (`entity_id` null) and no entity is created.",
    )


class MentionPublic(BaseModel):
    """A stored mention and the entity it is linked to."""

    id: int
    start: int
    end: int
    text: str
    label: str
    group: str | None = Field(None, description=STORED_GROUP_HELP)
    score: float
    entity_id: int | None


class DocumentLinked(BaseModel):
    """What ingesting one document stored."""

    id: str
    replaced: bool = Field(description="An earlier version with this id was replaced.")
    mentions: list[MentionPublic]


class DocumentsLinked(BaseModel):
    """One entry per request document, in request order."""

    documents: list[DocumentLinked]


class DocumentPublic(BaseModel):
    """A stored document."""

    id: str
    text: str
    metadata: dict[str, Any]
    language: str | None
    created_at: datetime
    mentions: list[MentionPublic]


class DocumentDeleted(BaseModel):
    """A deleted document and the entities that went with it (they had no other mention)."""

    id: str
    removed_entity_ids: list[int]


# -- linking -------------------------------------------------------------------------------------


class LinkRequest(_Request):
    """A text and optionally its mentions, to link against the stored entities without storing."""

    text: Text = Field(min_length=1)
    mentions: list[MentionCreate] | None = Field(None, description="Known mentions; absent runs NER.")
    kb_only: bool = Field(False, description="Consider only knowledge-base entities (`POST /v1/entities`).")

    @model_validator(mode="after")
    def _valid_spans(self) -> LinkRequest:
        if not self.text.strip():
            raise ValueError("text is empty or only whitespace")
        if self.mentions:
            check_spans(self.text, self.mentions, "text")
        return self


class EntityRef(BaseModel):
    """An entity named in another response."""

    id: int
    name: str
    label: str
    external_id: str | None = Field(None, description="The knowledge base's id; null outside the KB.")
    group: str | None = Field(None, description=STORED_GROUP_HELP)


class LinkedMention(BaseModel):
    """A mention with the best known entity for it, or none (it would found a new entity)."""

    start: int
    end: int
    text: str
    label: str
    score: float
    label_group: str = Field(description=GROUP_HELP + " (`group` is the in-text mention group.)")
    group: int = Field(description="Mentions of one entity within the text share a group.")
    entity: EntityRef | None
    link_score: float | None = Field(description="Score of the chosen entity; null when none qualified.")


class LinkResponse(BaseModel):
    """The text's mentions in text order."""

    mentions: list[LinkedMention]


# -- entities ------------------------------------------------------------------------------------


class AliasPublic(BaseModel):
    """A normalized surface form and how many mentions used it."""

    alias: str
    count: int
    kb: bool = Field(False, description="Given by the knowledge base (kept at count 0).")


class EntityPublic(BaseModel):
    """A stored entity."""

    id: int
    name: str
    label: str
    group: str | None = Field(None, description=STORED_GROUP_HELP)
    mention_count: int
    aliases: list[AliasPublic]
    created_at: datetime
    updated_at: datetime
    external_id: str | None = Field(
        None, description="The knowledge base's id (`POST /v1/entities`); null for entities found in text."
    )
    description: str | None = Field(None, description="The knowledge base's description.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="The knowledge base's metadata.")


class MentionSample(BaseModel):
    """A mention of an entity, with the document it is in."""

    id: int
    document_id: str
    start: int
    end: int
    text: str
    label: str
    group: str | None = Field(None, description=STORED_GROUP_HELP)


class EntityDetail(EntityPublic):
    """An entity with some of its mentions."""

    mentions: list[MentionSample]


CURSOR_PATTERN = r"^[0-9]{1,19}\.[0-9]{1,19}$"
"""A search page's position: the last entity's mention count and id (opaque to clients)."""


class EntitiesPublic(BaseModel):
    """A page of entities, how many match in all, and where the next page starts."""

    data: list[EntityPublic]
    count: int = Field(description="Entities matching the query over all pages (not the page size).")
    next: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page.", pattern=CURSOR_PATTERN
    )


class SimilarRequest(_Request):
    """A similarity query: exactly one of ``text``, ``entity_id`` or ``vector``."""

    text: Text | None = Field(None, min_length=1, description="A name, or a text with `start`/`end`.")
    start: Offset | None = Field(None, description="With `text`: the mention's span in it.")
    end: Offset | None = None
    entity_id: Id | None = Field(None, description="Entities similar to this one (itself excluded).")
    vector: list[Finite] | None = Field(None, min_length=1, description="A query vector of the index's size.")
    k: Id = Field(10, description="Number of hits (at most the configured max_k).")
    labels: list[Label] | None = Field(None, description="Keep only entities of these types.")

    @model_validator(mode="after")
    def _one_query(self) -> SimilarRequest:
        given = [name for name in ("text", "entity_id", "vector") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of text, entity_id or vector (got {given or 'none'})")
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither")
        if self.start is not None:
            if self.text is None:
                raise ValueError("start and end need text")
            check_spans(self.text, [MentionCreate(start=self.start, end=self.end, label="X")], "text")
        elif self.text is not None and not self.text.strip():
            raise ValueError("text is empty or only whitespace")
        return self


class EntityHit(BaseModel):
    """An entity and its cosine similarity to the query."""

    score: float
    entity: EntityPublic


class EntityHits(BaseModel):
    """Hits, best first."""

    data: list[EntityHit]
    count: int


class MergeRequest(_Request):
    """The entity to merge into the one in the path (it disappears)."""

    other: Id


class MergedEntity(BaseModel):
    """One entity that consolidation merged away, and where its mentions went."""

    id: int
    into: int


class ConsolidateResult(BaseModel):
    """What ``POST /v1/entities/consolidate`` merged."""

    merged: list[MergedEntity]


class SplitRequest(_Request):
    """Mentions of the entity in the path that become a new entity."""

    mention_ids: list[Id] = Field(min_length=1)
    name: Name | None = Field(None, min_length=1, max_length=512, description="Defaults to a moved mention.")
    label: Label | None = Field(None, description="Defaults to the old entity's type.")


# -- meta ----------------------------------------------------------------------------------------


class StoreCounts(BaseModel):
    """Row counts of the store."""

    documents: int
    mentions: int
    entities: int


class HealthPublic(BaseModel):
    """Whether the service can answer."""

    status: str = Field(description="ok, or unavailable when the store cannot be read.")
    model_loaded: bool
    store_reachable: bool
    counts: StoreCounts | None


class ErrorInfo(BaseModel):
    """What went wrong."""

    status: int
    message: str
    detail: Any = None


class ErrorPublic(BaseModel):
    """The body of every error response."""

    error: ErrorInfo


# -- browsing and corrections (the web page, issue 17) -------------------------------------------

ENTITY_SORTS = ("mentions", "name", "last_seen")
"""Orders of ``GET /v1/entities``: most mentioned first, by name, most recently changed first."""


class DocumentSummaryPublic(BaseModel):
    """A document in a list: a preview of its text instead of the whole."""

    id: str
    language: str | None
    metadata: dict[str, Any]
    created_at: datetime
    length: int = Field(description="Characters in the text.")
    preview: str = Field(description="The text's first characters.")
    mention_count: int


class DocumentsPublic(BaseModel):
    """A page of documents, newest first, and how many match over all pages."""

    data: list[DocumentSummaryPublic]
    count: int = Field(description="Documents matching the filters over all pages (not the page size).")


class MentionContextPublic(BaseModel):
    """A mention of an entity with its sentence around it (keyword in context)."""

    id: int
    document_id: str
    start: int
    end: int
    text: str
    label: str
    group: str | None = Field(None, description=STORED_GROUP_HELP)
    score: float
    before: str = Field(description="Text before the mention, from the start of its sentence.")
    after: str = Field(description="Text after the mention, to the end of its sentence.")


class MentionContextsPublic(BaseModel):
    """A page of an entity's mentions, newest first, and how many it has."""

    data: list[MentionContextPublic]
    count: int


class EntityUpdate(_Request):
    """A new name and/or type for an entity (at least one)."""

    name: Name | None = Field(None, min_length=1, max_length=512, description="The new name.")
    label: Label | None = Field(None, description="The new type (a known label).")

    @model_validator(mode="after")
    def _something(self) -> EntityUpdate:
        if self.name is None and self.label is None:
            raise ValueError("give name, label or both")
        return self


class EntityDeleted(BaseModel):
    """A deleted entity and how many mentions went with it (their documents stay)."""

    id: int
    removed_mentions: int


# -- knowledge base (issue 18) -------------------------------------------------------------------


class KnownEntityCreate(_Request):
    """An entity of your knowledge base; the same ``external_id`` again updates it in place."""

    external_id: Key = Field(min_length=1, max_length=512, description="Your id for it, e.g. `Q567`.")
    name: Name = Field(min_length=1, max_length=1024, description="Its name; mentions never rename it.")
    label: Label = Field(description="Its type: one the model predicts (or already in the store).")
    aliases: list[Annotated[Name, Field(min_length=1, max_length=1024)]] = Field(
        default_factory=list, max_length=1000, description="Other names, in any language and script."
    )
    description: Text | None = Field(None, max_length=10_000, description="A short description.")
    metadata: Metadata = Field(default_factory=dict, description="Any JSON object, stored as given.")


class EntitiesImport(_Request):
    """A batch of knowledge-base entities: all are stored, or none (the error names the bad one)."""

    entities: list[KnownEntityCreate] = Field(min_length=1)


class EntityImported(BaseModel):
    """One imported entity, and whether this request created it (false: it was updated)."""

    created: bool
    entity: EntityPublic


class EntitiesImported(BaseModel):
    """One entry per request entity, in request order."""

    data: list[EntityImported]
    count: int
    created: int = Field(description="How many entities this request created (the rest were updated).")
