"""Read queries of the store: rows to public records, lookups, and name/alias search."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, defer, selectinload

from index.errors import InvalidInput, NotFound
from index.postgres import RowColumns
from index.records import (
    AliasPublic,
    DocumentPublic,
    EntityPublic,
    MentionPublic,
    normalize_surface,
)
from index.schema import Alias, Document, Entity, Mention
from index.vectors import VectorIndex

T = TypeVar("T")

MAX_FILTER_FETCH = 16384
"""Upper bound on candidates fetched from FAISS when label filters discard results."""

SEARCH_MODES = ("prefix", "substring", "exact")
"""How :func:`search_entities` matches the normalized query against names and aliases."""


def _utc(moment: datetime) -> datetime:
    # SQLite drops the timezone of DateTime(timezone=True) columns; every stored time is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


_MENTION_COLUMNS = (
    Mention.id,
    Mention.document_id,
    Mention.start,
    Mention.end,
    Mention.text,
    Mention.label,
    Mention.score,
    Mention.entity_id,
)
"""The columns of a :class:`MentionPublic`, in its field order."""


def mention_public(mention: Mention) -> MentionPublic:
    """Detach a mention row into a :class:`MentionPublic`."""
    return MentionPublic(
        id=mention.id,
        document_id=mention.document_id,
        start=mention.start,
        end=mention.end,
        text=mention.text,
        label=mention.label,
        score=mention.score,
        entity_id=mention.entity_id,
    )


def document_public(document: Document) -> DocumentPublic:
    """Detach a document row (mentions loaded) into a :class:`DocumentPublic`."""
    return DocumentPublic(
        id=document.id,
        external_id=document.external_id,
        text=document.text,
        language=document.language,
        metadata=dict(document.meta or {}),
        content_hash=document.content_hash,
        created_at=_utc(document.created_at),
        mentions=[mention_public(m) for m in document.mentions],
    )


def entity_public(entity: Entity) -> EntityPublic:
    """Detach an entity row (aliases loaded) into an :class:`EntityPublic`."""
    values = tuple(getattr(entity, column.key) for column in _ENTITY_COLUMNS)
    return _entity_public(entity.id, values, [(a.norm, a.count, a.kb) for a in entity.aliases])


_ENTITY_COLUMNS = (
    Entity.name,
    Entity.label,
    Entity.mention_count,
    Entity.created_at,
    Entity.updated_at,
    Entity.external_id,
    Entity.description,
    Entity.meta,
)
"""The columns of an entity that an :class:`EntityPublic` needs besides its id and aliases."""

_ALIASES_JSON = (
    select(func.json_agg(func.json_build_array(Alias.norm, Alias.count, Alias.kb)))
    .where(Alias.entity_id == Entity.id)
    .correlate(Entity)
    .scalar_subquery()
)
"""An entity's aliases as one JSON array of ``[norm, count, kb]`` (PostgreSQL), so that a search
hit brings them in its own row instead of a second query."""

ENTITY_ROW = RowColumns((*_ENTITY_COLUMNS, _ALIASES_JSON))
"""What :func:`entity_from_row` needs: the entity's columns and its aliases (PostgreSQL only)."""

MENTION_ROW = RowColumns((*_MENTION_COLUMNS, Document.external_id), (Document,))
"""A mention's columns and its document's external id (:func:`mention_from_row`)."""


def _entity_public(entity_id: int, values: Sequence, aliases: Iterable[Sequence]) -> EntityPublic:
    name, label, mention_count, created_at, updated_at, external_id, description, meta = values
    return EntityPublic(
        id=entity_id,
        name=name,
        label=label,
        mention_count=mention_count,
        created_at=_utc(created_at),
        updated_at=_utc(updated_at),
        aliases=[
            AliasPublic(norm=norm, count=count, kb=bool(kb))
            for norm, count, kb in sorted(aliases, key=lambda a: (-a[1], a[0]))
        ],
        external_id=external_id,
        description=description,
        metadata=dict(meta or {}),
    )


def entity_from_row(entity_id: int, row: Sequence) -> EntityPublic:
    """An entity from its ``ENTITY_ROW`` values (a search hit that came with its row)."""
    return _entity_public(entity_id, row[:-1], row[-1] or [])


def mention_from_row(row: tuple) -> tuple[MentionPublic, str]:
    """A mention and its document's external id from ``MENTION_ROW`` values."""
    return MentionPublic(*row[:-1]), row[-1]


def get_document(
    session: Session, *, document_id: int | None = None, external_id: str | None = None
) -> Document:
    """Load a document row with its mentions by id or external id.

    Raises:
        InvalidInput: Neither or both keys given.
        NotFound: No such document.
    """
    if (document_id is None) == (external_id is None):
        raise InvalidInput("give exactly one of document_id or external_id")
    stmt = select(Document).options(selectinload(Document.mentions))
    if document_id is not None:
        document = session.scalar(stmt.where(Document.id == document_id))
    else:
        document = session.scalar(stmt.where(Document.external_id == external_id))
    if document is None:
        raise NotFound("document", document_id if document_id is not None else external_id)
    return document


def get_entities(session: Session, entity_ids: Iterable[int]) -> dict[int, EntityPublic]:
    """Load entities (with aliases) by id; missing ids are absent from the result."""
    ids = list(entity_ids)
    if not ids:
        return {}
    # Without the vectors: a similarity query reads its hits through here, and pgvector values come
    # back as text that would be parsed (two 384-float vectors a row) only to be thrown away.
    options = (selectinload(Entity.aliases), defer(Entity.centroid), defer(Entity.kb_vector))
    rows = session.scalars(select(Entity).options(*options).where(Entity.id.in_(ids)))
    return {entity.id: entity_public(entity) for entity in rows}


def get_entities_with_centroids(
    session: Session, entity_ids: Iterable[int]
) -> dict[int, tuple[EntityPublic, bytes | None]]:
    """Entities (with aliases) and their centroid blobs by id, in two queries; missing ids are absent."""
    ids = list(entity_ids)
    if not ids:
        return {}
    stmt = select(Entity).options(selectinload(Entity.aliases)).where(Entity.id.in_(ids))
    return {entity.id: (entity_public(entity), entity.centroid) for entity in session.scalars(stmt)}


def list_entities(
    session: Session, *, after_id: int, limit: int, labels: Sequence[str] | None = None
) -> list[tuple[EntityPublic, bytes | None]]:
    """A page of entities in id order after ``after_id`` (keyset paging), with their centroid blobs."""
    if limit < 1 or after_id < 0:
        raise InvalidInput("limit must be >= 1 and after_id >= 0", limit=limit, after_id=after_id)
    stmt = (
        select(Entity).options(selectinload(Entity.aliases)).where(Entity.id > after_id).order_by(Entity.id)
    )
    if labels:
        stmt = stmt.where(Entity.label.in_(list(labels)))
    return [(entity_public(entity), entity.centroid) for entity in session.scalars(stmt.limit(limit))]


def get_entity(session: Session, entity_id: int) -> EntityPublic:
    """Load one entity. Raises :class:`NotFound` when it does not exist."""
    found = get_entities(session, [entity_id])
    if entity_id not in found:
        raise NotFound("entity", entity_id)
    return found[entity_id]


def _like_pattern(norm: str, mode: str) -> str:
    escaped = norm.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if mode == "prefix":
        return f"{escaped}%"
    if mode == "substring":
        return f"%{escaped}%"
    return escaped


def _search_filter(query: str, mode: str, labels: Sequence[str] | None) -> list[Any]:
    """The WHERE clauses of a name/alias search (shared by the page and its count)."""
    if mode not in SEARCH_MODES:
        raise InvalidInput(f"unknown search mode {mode!r}; expected one of {SEARCH_MODES}", mode=mode)
    norm = normalize_surface(query)
    if not norm:
        raise InvalidInput("search query must contain a non-space character")
    pattern = _like_pattern(norm, mode)
    alias_hits = select(Alias.entity_id).where(Alias.norm.like(pattern, escape="\\"))
    clauses: list[Any] = [or_(Entity.name_norm.like(pattern, escape="\\"), Entity.id.in_(alias_hits))]
    if labels:
        clauses.append(Entity.label.in_(list(labels)))
    return clauses


def search_entities(
    session: Session,
    query: str,
    *,
    mode: str = "prefix",
    labels: Sequence[str] | None = None,
    limit: int = 20,
    offset: int = 0,
    after: tuple[int, int] | None = None,
) -> list[EntityPublic]:
    """Find entities whose normalized name or an alias matches ``query``.

    Matching runs on normalized forms (:func:`normalize_surface`), so it is case-insensitive
    and ignores extra whitespace in every script, not only ASCII. Results are ordered by
    mention count (most mentioned first), then id.

    Args:
        after (tuple[int, int] | None): Keyset paging: ``(mention_count, id)`` of the last entity of
            the previous page; the page starts after it (``offset`` then skips further). Unlike an
            offset, it neither repeats nor skips entities when earlier ones are added or removed.
            Defaults to None (from the start).

    Raises:
        InvalidInput: Unknown ``mode``, empty query or bad paging values.
    """
    clauses = _search_filter(query, mode, labels)
    if limit < 1 or offset < 0:
        raise InvalidInput("limit must be >= 1 and offset >= 0", limit=limit, offset=offset)
    if after is not None:
        count, last_id = after
        clauses.append(
            or_(Entity.mention_count < count, and_(Entity.mention_count == count, Entity.id > last_id))
        )
    stmt = (
        select(Entity)
        .options(selectinload(Entity.aliases))
        .where(*clauses)
        .order_by(Entity.mention_count.desc(), Entity.id)
        .limit(limit)
        .offset(offset)
    )
    return [entity_public(entity) for entity in session.scalars(stmt)]


def count_entities(
    session: Session, query: str, *, mode: str = "prefix", labels: Sequence[str] | None = None
) -> int:
    """How many entities :func:`search_entities` finds for ``query`` over all pages."""
    clauses = _search_filter(query, mode, labels)
    return session.scalar(select(func.count()).select_from(Entity).where(*clauses)) or 0


def mentions_with_documents(
    session: Session, mention_ids: Iterable[int], labels: Sequence[str] | None = None
) -> dict[int, tuple[MentionPublic, str]]:
    """Load mentions with their document's external id, optionally only those with ``labels``."""
    ids = list(mention_ids)
    if not ids:
        return {}
    # Plain columns, not ORM rows: this runs for every similarity query, and a whole row would also
    # read the mention's 1.5 kB vector and build an identity-mapped object only to copy it.
    stmt = select(*_MENTION_COLUMNS, Document.external_id).join(Document).where(Mention.id.in_(ids))
    if labels:
        stmt = stmt.where(Mention.label.in_(list(labels)))
    return {row[0]: mention_from_row(row) for row in session.execute(stmt)}


def search_filtered(
    index: VectorIndex,
    query: np.ndarray,
    k: int,
    keep: Callable[[list[int]], dict[int, T]],
    *,
    skip: int | None = None,
) -> list[tuple[float, T]]:
    """Top-``k`` FAISS hits whose rows ``keep`` returns, best first.

    ``keep`` loads the rows for candidate ids and drops those failing the caller's filters
    (labels) or gone from the database. While fewer than ``k`` survive, the candidate list
    grows fourfold, up to :data:`MAX_FILTER_FETCH` (a very rare label may then get fewer
    than ``k`` hits).

    Args:
        index (VectorIndex): Index to search.
        query (np.ndarray): One normalized query, shape ``(1, dim)``.
        k (int): Number of hits wanted.
        keep (Callable): Maps candidate ids to ``{id: row}`` for the ones to keep.
        skip (int | None): Id to leave out (the query entity itself). Defaults to None.

    Returns:
        list[tuple[float, T]]: ``(score, row)`` pairs.
    """
    if k < 1:
        raise InvalidInput("k must be >= 1", k=k)
    total = index.ntotal
    fetch = k + (skip is not None)
    while True:
        fetch = min(fetch, total, MAX_FILTER_FETCH) if total else 1
        scores, ids = index.search(query, fetch)
        candidates = [
            (float(s), int(i)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0 and i != skip
        ]
        rows = keep([i for _, i in candidates])
        hits = [(score, rows[i]) for score, i in candidates if i in rows][:k]
        if len(hits) >= k or fetch >= min(total, MAX_FILTER_FETCH):
            return hits
        fetch *= 4
