"""``/v1/entities``: knowledge-base import, read, search, similarity, merge, split and consolidate."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.convert import entity_detail, entity_public, mention_context
from api.deps import EntityDep, JsonBody, ServiceDep, SettingsDep, WriteAccess
from api.errors import ServiceError
from api.routes.limits import check_items, check_text
from api.schemas import (
    CURSOR_PATTERN,
    MAX_ID,
    NON_BLANK,
    ConsolidateResult,
    EntitiesImport,
    EntitiesImported,
    EntitiesPublic,
    EntityDeleted,
    EntityDetail,
    EntityHit,
    EntityHits,
    EntityImported,
    EntityPublic,
    EntityUpdate,
    ErrorPublic,
    Key,
    Label,
    MentionContextsPublic,
    MergedEntity,
    MergeRequest,
    SimilarRequest,
    SplitRequest,
)
from index import EntityPublic as IndexEntity
from index import InvalidInput

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
        str | None,
        Query(
            min_length=1,
            max_length=512,
            pattern=NON_BLANK,
            description="Name or alias to search (word start; ignores case, accents and script); "
            "absent lists every entity.",
        ),
    ] = None,
    # A list, not "list or null": a query parameter cannot be null, and the schema should not say so.
    label: Annotated[list[Label], Query(description="Keep only these types (repeatable).")] = [],  # noqa: B006
    sort: Annotated[
        Literal["mentions", "name", "last_seen"],
        Query(
            description="Order: most mentioned first, by name, or most recently changed first; "
            "searches (`q`) are ordered by mentions."
        ),
    ] = "mentions",
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 20,
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="The `next` of the previous page; absent for the first."),
    ] = None,
    offset: Annotated[
        int, Query(ge=0, le=1_000_000, description="Entities to skip (after `cursor` when both are given).")
    ] = 0,
    external_id: Annotated[
        Key | None,
        Query(
            min_length=1,
            max_length=512,
            description="The knowledge-base entity with this external id (`POST /v1/entities`): a page "
            "of one, or of none; the other parameters then do not apply.",
        ),
    ] = None,
) -> EntitiesPublic:
    """Entities whose name or an alias has a word starting with ``q`` (most mentioned first), or, without
    ``q``, every entity in ``sort`` order.

    The search folds both sides to one Latin, lower-case, accent-free form (anyascii), so "Путин" finds
    "Putin" and "putin" finds "Путин". ``count`` is the number of matches over all pages; follow
    ``next`` (as ``cursor``) until it is null. In the mentions order a cursor neither repeats nor skips
    entities when others are added or removed meanwhile; in the name and last_seen orders it is a position.
    """
    if external_id is not None:
        found = service.entity_by_external_id(external_id)
        data = [entity_public(found, service.label_groups)] if found else []
        return EntitiesPublic(data=data, count=len(data), next=None)
    if q is not None and sort != "mentions":
        raise ServiceError(422, f"a search (q) is ordered by mentions; sort={sort!r} lists without q")
    labels = label or None
    if sort != "mentions":
        skip = (parse_cursor(cursor) or (0, 0))[0] + offset
        found, total = service.list_entities(sort=sort, labels=labels, limit=limit + 1, offset=skip)
        page = found[:limit]
        following = f"{skip + limit}.0" if len(found) > limit else None
        return EntitiesPublic(
            data=[entity_public(e, service.label_groups) for e in page], count=total, next=following
        )
    # One entity more than the page tells whether there is a next page.
    if q is None:
        found, total = service.list_entities(
            sort=sort, labels=labels, limit=limit + 1, offset=offset, after=parse_cursor(cursor)
        )
    else:
        found, total = service.find_entities(
            q, labels=labels, limit=limit + 1, offset=offset, after=parse_cursor(cursor)
        )
    page = found[:limit]
    following = make_cursor(page[-1]) if len(found) > limit else None
    return EntitiesPublic(
        data=[entity_public(e, service.label_groups) for e in page], count=total, next=following
    )


def unit_scale(vector: list[float] | None) -> list[float] | None:
    """The vector divided by its largest magnitude: the same direction, so the same cosine hits.

    The index holds float32: a vector of tiny values (1e-320) or huge ones (1e300), valid JSON
    numbers, would turn to zeros or infinities there and be refused although its direction is fine.
    """
    if not vector:
        return vector
    largest = max(abs(v) for v in vector)
    return vector if largest == 0 else [v / largest for v in vector]


@router.post("/similar", response_model=EntityHits, dependencies=[JsonBody])
def similar_entities(body: SimilarRequest, service: ServiceDep, settings: SettingsDep) -> EntityHits:
    """Entities nearest a name or mention in context, an entity, or a vector (cosine, best first)."""
    if body.text is not None:
        check_text(body.text, "text", settings)
    hits = service.similar(
        text=body.text,
        span=(body.start, body.end) if body.start is not None and body.end is not None else None,
        entity_id=body.entity_id,
        vector=unit_scale(body.vector),
        k=body.k,
        labels=body.labels,
    )
    return EntityHits(
        data=[
            EntityHit(score=float(h.score), entity=entity_public(h.entity, service.label_groups))
            for h in hits
        ],
        count=len(hits),
    )


@router.get("/{entity_id:int}", response_model=EntityDetail)
def read_entity(entity: EntityDep, service: ServiceDep) -> EntityDetail:
    """An entity with its aliases, mention count and sample mentions with their document ids."""
    return entity_detail(entity, service.entity_mentions(entity, SAMPLE_MENTIONS), service.label_groups)


@router.post("/consolidate", response_model=ConsolidateResult, dependencies=[WriteAccess])
def consolidate_entities(service: ServiceDep) -> ConsolidateResult:
    """Merge entities that are one but were split by online linking (run after bulk ingests).

    Each entity, smallest first, is scored against larger ones with the linking score (name,
    vector, type) and merged at ``link_threshold + merge_margin``; mentions, aliases and vectors follow.
    """
    merged = service.consolidate()
    return ConsolidateResult(merged=[MergedEntity(id=k, into=v) for k, v in sorted(merged.items())])


@router.post(
    "/{entity_id:int}/merge",
    response_model=EntityPublic,
    dependencies=[WriteAccess, JsonBody],
    responses={409: {"model": ErrorPublic, "description": "Both entities come from the knowledge base."}},
)
def merge_entity(entity: EntityDep, body: MergeRequest, service: ServiceDep) -> EntityPublic:
    """Merge entity ``other`` into this one: its mentions, aliases and vector follow; it disappears.

    409 when both come from the knowledge base (two KB entries stay two entities).
    """
    return entity_public(service.merge(entity.id, body.other), service.label_groups)


@router.post(
    "/{entity_id:int}/split",
    response_model=EntityPublic,
    dependencies=[WriteAccess, JsonBody],
    responses={409: {"model": ErrorPublic, "description": "A mention is not (or no longer) the entity's."}},
)
def split_entity(entity: EntityDep, body: SplitRequest, service: ServiceDep) -> EntityPublic:
    """Move some mentions of this entity to a new entity; returns the new entity.

    409 when a mention is not (or no longer) one of this entity's.
    """
    try:
        new = service.split(entity.id, body.mention_ids, name=body.name, label=body.label)
    except InvalidInput as exc:
        # The store names the strays: the request is well formed, the entity's mentions moved on.
        strays = exc.context.get("mention_ids")
        if not strays or exc.context.get("entity_id") != entity.id:
            raise
        raise ServiceError(
            409, f"mentions {strays} are not mentions of entity {entity.id} (any more)", exc.context
        ) from exc
    return entity_public(new, service.label_groups)


@router.get("/{entity_id:int}/mentions", response_model=MentionContextsPublic)
def entity_mentions(
    entity: EntityDep,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Mentions to skip.")] = 0,
    context: Annotated[
        int, Query(ge=0, le=2000, description="Most characters of context read on either side.")
    ] = 160,
) -> MentionContextsPublic:
    """A page of the entity's mentions, newest first, each in its sentence (keyword in context)."""
    page, total = service.entity_mentions_page(entity.id, limit=limit, offset=offset, context=context)
    return MentionContextsPublic(data=[mention_context(c, service.label_groups) for c in page], count=total)


@router.patch("/{entity_id:int}", response_model=EntityPublic, dependencies=[WriteAccess, JsonBody])
def update_entity(entity: EntityDep, body: EntityUpdate, service: ServiceDep) -> EntityPublic:
    """Rename the entity and/or change its type; its aliases stay (searchable) and the new name joins them."""
    return entity_public(
        service.update_entity(entity.id, name=body.name, label=body.label), service.label_groups
    )


@router.delete("/{entity_id:int}", response_model=EntityDeleted, dependencies=[WriteAccess])
def delete_entity(entity: EntityDep, service: ServiceDep) -> EntityDeleted:
    """Delete the entity and its mentions (the documents stay: their spans stop being an entity)."""
    return EntityDeleted(id=entity.id, removed_mentions=service.delete_entity(entity.id))


@router.post("", response_model=EntitiesImported, dependencies=[WriteAccess, JsonBody])
def import_entities(body: EntitiesImport, service: ServiceDep, settings: SettingsDep) -> EntitiesImported:
    """Create or update entities of your knowledge base, all or none; a known `external_id` updates it.

    Mentions link to them like to any entity (by their name and aliases, in any script, and by a
    vector made from name, aliases and description), never rename them, and stay linked when the
    entity is imported again with other names. An invalid entity is named in the error
    (`entities[2] (external_id 'Q1'): ...`) and nothing is written.
    """
    check_items(len(body.entities), "entities", settings)
    from index import KnownEntity

    items = [
        KnownEntity(e.external_id, e.name, e.label, list(e.aliases), e.description, dict(e.metadata))
        for e in body.entities
    ]
    stored = service.import_entities(items)
    return EntitiesImported(
        data=[
            EntityImported(created=created, entity=entity_public(entity, service.label_groups))
            for entity, created in stored
        ],
        count=len(stored),
        created=sum(created for _, created in stored),
    )
