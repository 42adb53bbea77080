"""Request and response bodies of the HTTP API, named by role (``*Create``, ``*Public``, ``*Request``).

Requests are strict (``"3"`` is not an integer, unknown fields are refused) so a client's typo
fails loudly instead of being half-understood. What pydantic can check from the body alone is
checked here (types, ranges, spans inside their text, overlapping spans); limits that come from
the settings (text length, items per request, k) are checked by the routes, which answer 413
rather than 422 for an oversized request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

MAX_ID = 2**63 - 1
"""Database ids are signed 64-bit integers; larger numbers are refused up front (422, not a 500)."""


def _json_integer(value: Any) -> Any:
    # JSON Schema counts 3.0 as an integer, and so do many JSON encoders (JavaScript's has no
    # int type); "3" and true are still refused. Strict mode alone would refuse 3.0 (found by
    # the schemathesis run), lax mode would accept "3".
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(_json_integer)]
Id = Annotated[Integer, Field(ge=1, le=MAX_ID)]
Offset = Annotated[Integer, Field(ge=0, le=MAX_ID)]
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$")]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


# -- extract -------------------------------------------------------------------------------------


class ExtractRequest(_Request):
    """Texts to run NER on; nothing is stored."""

    texts: list[str] = Field(min_length=1, description="Texts to analyse (each non-empty).")
    labels: list[Label] | None = Field(None, description="Keep only entities of these types.")
    min_score: Finite = Field(0.0, ge=0.0, le=1.0, description="Drop entities scoring below this.")
    embeddings: bool = Field(False, description="Add each entity's span embedding.")

    @model_validator(mode="after")
    def _non_empty(self) -> ExtractRequest:
        _check_texts(self.texts, "texts")
        return self


class ExtractedEntity(BaseModel):
    """An entity found by the model."""

    start: int
    end: int
    text: str
    label: str
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
    for m in mentions:
        if not m.start < m.end <= len(text):
            raise ValueError(
                f"{who}: mention ({m.start}, {m.end}) must satisfy 0 <= start < end <= {len(text)} "
                "(the text length)"
            )
    ordered = sorted(mentions, key=lambda m: (m.start, m.end))
    for a, b in zip(ordered, ordered[1:]):
        if b.start < a.end:
            raise ValueError(f"{who}: mentions ({a.start}, {a.end}) and ({b.start}, {b.end}) overlap")


class DocumentCreate(_Request):
    """A document to extract, link and store. The same ``id`` again replaces the stored version."""

    id: str | None = Field(
        None, min_length=1, max_length=512, description="Your key for the document; generated when absent."
    )
    text: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Any JSON object, stored as given.")
    language: str | None = Field(None, min_length=1, max_length=32)
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


class MentionPublic(BaseModel):
    """A stored mention and the entity it is linked to."""

    id: int
    start: int
    end: int
    text: str
    label: str
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

    text: str = Field(min_length=1)
    mentions: list[MentionCreate] | None = Field(None, description="Known mentions; absent runs NER.")

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


class LinkedMention(BaseModel):
    """A mention with the best known entity for it, or none (it would found a new entity)."""

    start: int
    end: int
    text: str
    label: str
    score: float
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


class EntityPublic(BaseModel):
    """A stored entity."""

    id: int
    name: str
    label: str
    mention_count: int
    aliases: list[AliasPublic]
    created_at: datetime
    updated_at: datetime


class MentionSample(BaseModel):
    """A mention of an entity, with the document it is in."""

    id: int
    document_id: str
    start: int
    end: int
    text: str
    label: str


class EntityDetail(EntityPublic):
    """An entity with some of its mentions."""

    mentions: list[MentionSample]


class EntitiesPublic(BaseModel):
    """A page of entities."""

    data: list[EntityPublic]
    count: int


class SimilarRequest(_Request):
    """A similarity query: exactly one of ``text``, ``entity_id`` or ``vector``."""

    text: str | None = Field(None, min_length=1, description="A name, or a text with `start`/`end`.")
    start: Offset | None = Field(None, description="With `text`: the mention's span in it.")
    end: Offset | None = None
    entity_id: Id | None = Field(None, description="Entities similar to this one (itself excluded).")
    vector: list[Finite] | None = Field(None, min_length=1, description="A query vector of the index's size.")
    k: Integer = Field(10, ge=1, le=MAX_ID, description="Number of hits (at most the configured max_k).")
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
    name: str | None = Field(None, min_length=1, max_length=512, description="Defaults to a moved mention.")
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
