"""``/v1/entities``: read, search, similarity, merge, split and consolidate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.convert import entity_detail, entity_public
from api.deps import EntityDep, JsonBody, ServiceDep, WriteAccess
from api.schemas import (
    CURSOR_PATTERN,
    MAX_ID,
    NON_BLANK,
    ConsolidateResult,
    EntitiesPublic,
    EntityDetail,
    EntityHit,
    EntityHits,
    EntityPublic,
    Label,
    MergedEntity,
    MergeRequest,
    SimilarRequest,
    SplitRequest,
)
from index import EntityPublic as IndexEntity

router = APIRouter(prefix="/entities", tags=["entities"])

SAMPLE_MENTIONS = 10
"""Mentions shown with an entity."""


def parse_cursor(cursor: str | None) -> tuple[int, int] | None:
    """``"count.id"`` -> ``(count, id)``: the keyset position of the previous page's last entity.

    The schema's pattern already holds, so any value is a position; numbers beyond the database's
    64-bit ids are clamped (a page past every entity, not an overflow in SQLite).
    """
    if cursor is None:
        return None
    count, last_id = (min(int(part), MAX_ID) for part in cursor.split("."))
    return count, last_id


def make_cursor(entity: IndexEntity) -> str:
    """The position after ``entity`` in the search order (mention count descending, then id)."""
    return f"{entity.mention_count}.{entity.id}"


@router.get("", response_model=EntitiesPublic)
def search_entities(
    service: ServiceDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=512,
            pattern=NON_BLANK,
            description="Name or alias prefix (any case); must hold a non-space character.",
        ),
    ],
    label: Annotated[list[Label] | None, Query(description="Keep only these types (repeatable).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 20,
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="The `next` of the previous page; absent for the first."),
    ] = None,
    offset: Annotated[
        int, Query(ge=0, le=1_000_000, description="Entities to skip (after `cursor` when both are given).")
    ] = 0,
) -> EntitiesPublic:
    """Entities whose name or an alias starts with ``q``, most mentioned first.

    ``count`` is the number of matches over all pages; follow ``next`` (as ``cursor``) until it is null.
    A cursor neither repeats nor skips entities when others are added or removed meanwhile.
    """
    # One entity more than the page tells whether there is a next page.
    found, total = service.search_entities(
        q, labels=label, limit=limit + 1, offset=offset, after=parse_cursor(cursor)
    )
    page = found[:limit]
    following = make_cursor(page[-1]) if len(found) > limit else None
    return EntitiesPublic(data=[entity_public(e) for e in page], count=total, next=following)


@router.post("/similar", response_model=EntityHits, dependencies=[JsonBody])
def similar_entities(body: SimilarRequest, service: ServiceDep) -> EntityHits:
    """Entities nearest a name or mention in context, an entity, or a vector (cosine, best first)."""
    hits = service.similar(
        text=body.text,
        span=(body.start, body.end) if body.start is not None and body.end is not None else None,
        entity_id=body.entity_id,
        vector=body.vector,
        k=body.k,
        labels=body.labels,
    )
    return EntityHits(
        data=[EntityHit(score=float(h.score), entity=entity_public(h.entity)) for h in hits], count=len(hits)
    )


@router.get("/{entity_id:int}", response_model=EntityDetail)
def read_entity(entity: EntityDep, service: ServiceDep) -> EntityDetail:
    """An entity with its aliases, mention count and sample mentions with their document ids."""
    return entity_detail(entity, service.entity_mentions(entity, SAMPLE_MENTIONS))


@router.post("/consolidate", response_model=ConsolidateResult, dependencies=[WriteAccess])
def consolidate_entities(service: ServiceDep) -> ConsolidateResult:
    """Merge entities that are one but were split by online linking (run after bulk ingests).

    Each entity, smallest first, is scored against larger ones with the linking score (name,
    vector, type) and merged at ``link_threshold + merge_margin``; mentions, aliases and vectors follow.
    """
    merged = service.consolidate()
    return ConsolidateResult(merged=[MergedEntity(id=k, into=v) for k, v in sorted(merged.items())])


@router.post("/{entity_id:int}/merge", response_model=EntityPublic, dependencies=[WriteAccess, JsonBody])
def merge_entity(entity: EntityDep, body: MergeRequest, service: ServiceDep) -> EntityPublic:
    """Merge entity ``other`` into this one: its mentions, aliases and vector follow; it disappears."""
    return entity_public(service.merge(entity.id, body.other))


@router.post("/{entity_id:int}/split", response_model=EntityPublic, dependencies=[WriteAccess, JsonBody])
def split_entity(entity: EntityDep, body: SplitRequest, service: ServiceDep) -> EntityPublic:
    """Move some mentions of this entity to a new entity; returns the new entity."""
    return entity_public(service.split(entity.id, body.mention_ids, name=body.name, label=body.label))
