"""Read queries for browsing the store page by page: document lists, entity lists, an entity's mentions
in context and the documents it occurs in.

They exist for the web page and its JSON endpoints (issue 17): every list is paged and counted in SQL,
and none loads a whole document text — a 50k-word document or an entity with 10k mentions costs one
page of rows, not all of them. Plain SQLAlchemy 2.0 (``substr``, ``length``, JSON ``->>``/
``json_extract`` through the generic ``JSON`` type), so the same queries run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, selectinload

from index.errors import InvalidInput
from index.reads import _MENTION_COLUMNS, _utc, entity_public
from index.records import EntityPublic, MentionPublic
from index.schema import Document, Entity, Mention

ENTITY_SORTS = ("mentions", "name", "last_seen")
"""Orders of :func:`entities_page`: most mentioned first, by name, most recently changed first."""

PREVIEW_CHARS = 240
"""Characters of a document's text shown in a list."""


@dataclass(frozen=True)
class DocumentSummary:
    """A document in a list: everything but its full text (a preview and the length instead)."""

    id: int
    external_id: str
    language: str | None
    metadata: dict[str, Any]
    created_at: datetime
    length: int
    preview: str
    mention_count: int


@dataclass(frozen=True)
class MentionContext:
    """A mention with the text around it (``before``/``after``, at most ``context`` characters each)."""

    mention: MentionPublic
    document_external_id: str
    before: str
    after: str


def _check_page(limit: int, offset: int) -> None:
    if limit < 1 or offset < 0:
        raise InvalidInput("limit must be >= 1 and offset >= 0", limit=limit, offset=offset)


def _document_filters(source: str | None, entity_id: int | None) -> list[Any]:
    clauses: list[Any] = []
    if source is not None:
        clauses.append(Document.meta["source"].as_string() == source)
    if entity_id is not None:
        clauses.append(Document.id.in_(select(Mention.document_id).where(Mention.entity_id == entity_id)))
    return clauses


def _summaries(session: Session, clauses: list[Any], limit: int, offset: int) -> list[DocumentSummary]:
    mentions = select(func.count(Mention.id)).where(Mention.document_id == Document.id).scalar_subquery()
    stmt = (
        select(
            Document.id,
            Document.external_id,
            Document.language,
            Document.meta,
            Document.created_at,
            func.length(Document.text),
            func.substr(Document.text, 1, PREVIEW_CHARS),
            mentions,
        )
        .where(*clauses)
        .order_by(Document.id.desc())  # ids only grow: a replaced document is new again
        .limit(limit)
        .offset(offset)
    )
    return [
        DocumentSummary(row[0], row[1], row[2], dict(row[3] or {}), _utc(row[4]), row[5], row[6], row[7])
        for row in session.execute(stmt)
    ]


def list_documents(
    session: Session,
    *,
    limit: int,
    offset: int = 0,
    source: str | None = None,
    entity_id: int | None = None,
) -> tuple[list[DocumentSummary], int]:
    """A page of documents, newest first, and how many match over all pages.

    Args:
        source (str | None): Keep documents whose ``metadata["source"]`` is this string.
        entity_id (int | None): Keep documents with a mention of this entity.
    """
    _check_page(limit, offset)
    if entity_id is not None and source is None:
        # The entity's documents in one pass over its mentions (an index range), paged here: an
        # IN-subquery for the page and another for the count would read every mention row twice.
        ids = sorted(
            session.scalars(select(Mention.document_id).where(Mention.entity_id == entity_id).distinct()),
            reverse=True,
        )
        wanted = ids[offset : offset + limit]
        page = _summaries(session, [Document.id.in_(wanted)], limit, 0) if wanted else []
        return page, len(ids)
    clauses = _document_filters(source, entity_id)
    total = session.scalar(select(func.count()).select_from(Document).where(*clauses)) or 0
    return _summaries(session, clauses, limit, offset), total


def _entity_order(sort: str) -> list[Any]:
    if sort == "mentions":
        return [Entity.mention_count.desc(), Entity.id]
    if sort == "name":
        return [Entity.name_norm, Entity.id]
    return [Entity.updated_at.desc(), Entity.id.desc()]


def entities_page(
    session: Session,
    *,
    sort: str = "mentions",
    labels: Sequence[str] | None = None,
    limit: int = 20,
    offset: int = 0,
    after: tuple[int, int] | None = None,
) -> tuple[list[EntityPublic], int]:
    """A page of all entities in ``sort`` order (:data:`ENTITY_SORTS`) and how many there are.

    ``after`` (``(mention_count, id)`` of the previous page's last entity) pages by keyset, for the
    ``mentions`` order only; the others page by ``offset``.
    """
    if sort not in ENTITY_SORTS:
        raise InvalidInput(f"unknown sort {sort!r}; expected one of {ENTITY_SORTS}", sort=sort)
    _check_page(limit, offset)
    clauses: list[Any] = [Entity.label.in_(list(labels))] if labels else []
    total = session.scalar(select(func.count()).select_from(Entity).where(*clauses)) or 0
    if after is not None:
        if sort != "mentions":
            raise InvalidInput("keyset paging (after) is for the mentions order", sort=sort)
        count, last_id = after
        clauses.append(
            or_(Entity.mention_count < count, and_(Entity.mention_count == count, Entity.id > last_id))
        )
    stmt = (
        select(Entity)
        .options(selectinload(Entity.aliases))
        .where(*clauses)
        .order_by(*_entity_order(sort))
        .limit(limit)
        .offset(offset)
    )
    return [entity_public(entity) for entity in session.scalars(stmt)], total


def entity_mentions(
    session: Session, entity_id: int, *, limit: int, offset: int = 0, context: int = 160
) -> tuple[list[MentionContext], int]:
    """A page of an entity's mentions, newest first, each with up to ``context`` characters either side.

    Only the windows are read from the database (``substr``), never the documents' whole texts.
    """
    _check_page(limit, offset)
    if context < 0:
        raise InvalidInput("context must be >= 0", context=context)
    # substr is 1-based in SQLite and PostgreSQL; the window before a mention starts at most
    # `context` characters earlier, never before the text.
    from_ = case((Mention.start > context, Mention.start - context), else_=0)
    stmt = (
        select(
            *_MENTION_COLUMNS,
            Document.external_id,
            func.substr(Document.text, from_ + 1, Mention.start - from_),
            func.substr(Document.text, Mention.end + 1, context),
        )
        .join(Document, Document.id == Mention.document_id)
        .where(Mention.entity_id == entity_id)
        .order_by(Mention.id.desc())
        .limit(limit)
        .offset(offset)
    )
    n = len(_MENTION_COLUMNS)
    page = [
        MentionContext(MentionPublic(*row[:n]), row[n], row[n + 1], row[n + 2])
        for row in session.execute(stmt)
    ]
    total = session.scalar(select(func.count()).select_from(Mention).where(Mention.entity_id == entity_id))
    return page, total or 0
