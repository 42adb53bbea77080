"""Write transactions of the store, as functions over an open ``Session``.

Each function changes rows only; the caller (:class:`index.store.Store`) owns the transaction,
commits it, and then applies the returned :class:`VectorDelta` to FAISS. Validation happens
before the first write, and any error raised midway rolls the whole transaction back, so a
document is either fully stored (text, mentions, entity links, vectors, alias/count/centroid
updates) or not at all.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from index.errors import InvalidInput, NotFound
from index.records import (
    DocumentCreate,
    EntityCreate,
    KnownEntity,
    NewEntity,
    name_problem,
    normalize_surface,
)
from index.schema import Alias, Document, Entity, Mention, utcnow
from index.vectors import from_blob, normalize_rows, to_blob


@dataclass
class VectorDelta:
    """FAISS changes implied by one committed transaction."""

    mention_remove: list[int] = field(default_factory=list)
    mention_ids: list[int] = field(default_factory=list)
    mention_vectors: list[np.ndarray] = field(default_factory=list)
    entity_remove: set[int] = field(default_factory=set)
    entity_upsert: dict[int, np.ndarray] = field(default_factory=dict)
    entity_touched: set[int] = field(default_factory=set)
    """Entities whose row or aliases changed without a vector change (renames, aliases): not a FAISS
    change, but shared stores log it so that other processes reload them."""

    def changed_entities(self) -> set[int]:
        """Every entity this write created, changed or removed."""
        return set(self.entity_upsert) | self.entity_remove | self.entity_touched

    def __bool__(self) -> bool:
        return bool(self.mention_remove or self.mention_ids or self.entity_remove or self.entity_upsert)


class EntityChanges:
    """Accumulates mention gains/losses per entity and settles counts and centroids once.

    Entities that only gain mentions are updated incrementally (weighted mean of the stored
    unnormalized centroid and the new vectors). Entities that lose any mention are recomputed
    from their remaining mentions, which is exact and avoids drift from subtracting floats;
    those left with no mention are removed.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.gained: dict[int, tuple[np.ndarray, int]] = {}
        self.lost: set[int] = set()
        self.dropped: set[int] = set()

    def gain(self, entity_id: int, vector_sum: np.ndarray, n: int) -> None:
        """Record ``n`` new mentions (whose normalized vectors sum to ``vector_sum``)."""
        total, count = self.gained.get(entity_id, (np.zeros(self.dim, np.float64), 0))
        self.gained[entity_id] = (total + vector_sum, count + n)

    def lose(self, entity_id: int) -> None:
        """Record that ``entity_id`` lost at least one mention."""
        self.lost.add(entity_id)

    def settle(self, session: Session, delta: VectorDelta) -> list[int]:
        """Write counts and centroids, delete emptied entities; fill ``delta``.

        Set-based: one read per group of entities and one executemany UPDATE, whatever the
        number of entities a document touches.

        Returns:
            list[int]: Ids of the entities removed because they have no mentions left.
        """
        session.flush()
        now = utcnow()
        updates: list[dict[str, object]] = []
        lost = sorted(self.lost - self.dropped)
        removed: list[int] = []
        if lost:
            blobs: dict[int, list[bytes]] = defaultdict(list)
            for entity_id, blob in session.execute(
                select(Mention.entity_id, Mention.vector).where(Mention.entity_id.in_(lost))
            ):
                blobs[entity_id].append(blob)
            removed = [entity_id for entity_id in lost if entity_id not in blobs]
            if removed:  # knowledge-base entities stay, back on the vector the KB gave them
                for entity_id, seed in session.execute(
                    select(Entity.id, Entity.kb_vector).where(
                        Entity.id.in_(removed), Entity.external_id.is_not(None)
                    )
                ):
                    removed.remove(entity_id)
                    updates.append(_seed_row(entity_id, seed, self.dim, now, delta))
            if removed:
                session.execute(delete(Alias).where(Alias.entity_id.in_(removed)))
                session.execute(delete(Entity).where(Entity.id.in_(removed)))
                delta.entity_remove.update(removed)
            for entity_id, rows in blobs.items():
                vectors = np.frombuffer(b"".join(rows), dtype="<f4").reshape(len(rows), self.dim)
                centroid = vectors.astype(np.float64).mean(axis=0)
                updates.append(self._row(entity_id, centroid, len(rows), now, delta))
        gained = sorted(set(self.gained) - self.lost - self.dropped)
        if gained:
            for entity_id, old, blob in session.execute(
                select(Entity.id, Entity.mention_count, Entity.centroid).where(Entity.id.in_(gained))
            ):
                vector_sum, n = self.gained[entity_id]
                if old and blob is not None:
                    base = from_blob(blob, self.dim).astype(np.float64) * old
                else:
                    base = np.zeros(self.dim, np.float64)  # a seed vector is replaced by real mentions
                updates.append(self._row(entity_id, (base + vector_sum) / (old + n), old + n, now, delta))
        if updates:
            session.execute(update(Entity), updates)  # ORM bulk UPDATE by primary key (executemany)
        delta.entity_remove.update(self.dropped)
        return removed

    @staticmethod
    def _row(
        entity_id: int, centroid: np.ndarray, count: int, now: object, delta: VectorDelta
    ) -> dict[str, object]:
        norm = np.linalg.norm(centroid)
        if norm > 0:
            delta.entity_upsert[entity_id] = (centroid / norm).astype(np.float32)
        else:  # opposite vectors cancelled out: no direction to search by
            delta.entity_remove.add(entity_id)
        return {"id": entity_id, "centroid": to_blob(centroid), "mention_count": count, "updated_at": now}


def _seed_row(
    entity_id: int, seed: bytes | None, dim: int, now: object, delta: VectorDelta
) -> dict[str, object]:
    """A knowledge-base entity without mentions: count 0, centroid = the KB's vector (or none)."""
    if seed is None:
        delta.entity_remove.add(entity_id)
    else:
        delta.entity_upsert[entity_id] = normalize_rows(from_blob(seed, dim), dim)[0]
    return {"id": entity_id, "centroid": seed, "mention_count": 0, "updated_at": now}


def _bump_aliases(session: Session, counts: Counter[tuple[int, str]]) -> None:
    """Add ``counts[(entity_id, norm)]`` (may be negative) to alias rows; drop rows that reach 0,
    except those the knowledge base gave (``Alias.kb``), which stay at 0."""
    items = {key: n for key, n in counts.items() if n}
    if not items:
        return
    session.flush()
    existing = {
        (entity_id, norm): (alias_id, count, kb)
        for alias_id, entity_id, norm, count, kb in session.execute(
            select(Alias.id, Alias.entity_id, Alias.norm, Alias.count, Alias.kb).where(
                Alias.entity_id.in_({key[0] for key in items}), Alias.norm.in_({key[1] for key in items})
            )
        )
    }
    inserts, updates, deletes = [], [], []
    for (entity_id, norm), n in sorted(items.items()):
        if (entity_id, norm) not in existing:
            if n > 0:
                inserts.append({"entity_id": entity_id, "norm": norm, "count": n})
            continue
        alias_id, count, kb = existing[(entity_id, norm)]
        if count + n <= 0 and not kb:
            deletes.append(alias_id)
        elif count + n <= 0:
            updates.append({"id": alias_id, "count": 0})
        else:
            updates.append({"id": alias_id, "count": count + n})
    if inserts:
        session.execute(insert(Alias), inserts)
    if updates:
        session.execute(update(Alias), updates)
    if deletes:
        session.execute(delete(Alias).where(Alias.id.in_(deletes)))


def _validate(doc: DocumentCreate, dim: int) -> tuple[list[str], np.ndarray]:
    """Check a document before writing anything; return surface texts and normalized vectors."""
    if not doc.external_id:
        raise InvalidInput("external_id must be a non-empty string")
    surfaces: list[str] = []
    for i, mention in enumerate(doc.mentions):
        if not (0 <= mention.start < mention.end <= len(doc.text)):
            raise InvalidInput(
                "mention offsets must satisfy 0 <= start < end <= len(text)",
                mention=i,
                start=mention.start,
                end=mention.end,
                text_length=len(doc.text),
            )
        surface = doc.text[mention.start : mention.end]
        if mention.text is not None and mention.text != surface:
            raise InvalidInput(
                "mention text differs from text[start:end]; fix the offsets or omit the text",
                mention=i,
                given=mention.text,
                at_offsets=surface,
            )
        if mention.entity_id is not None and mention.new_entity is not None:
            raise InvalidInput("give entity_id or new_entity, not both", mention=i)
        if problem := name_problem(surface):
            raise InvalidInput(f"mention text {surface!r} {problem}", mention=i, start=mention.start)
        if mention.new_entity is not None and (problem := name_problem(mention.new_entity.name)):
            raise InvalidInput(f"a new entity's name {problem}", mention=i, name=mention.new_entity.name)
        if not mention.label:
            raise InvalidInput("mention label must be non-empty", mention=i)
        surfaces.append(surface)
    if not doc.mentions:
        return surfaces, np.empty((0, dim), np.float32)
    try:
        arrays = [np.asarray(m.vector, dtype=np.float32) for m in doc.mentions]
    except (TypeError, ValueError) as exc:
        raise InvalidInput("mention vectors must be sequences of floats") from exc
    if bad := [i for i, array in enumerate(arrays) if array.shape != (dim,)]:
        raise InvalidInput(
            f"mention vectors must have {dim} floats", mention=bad[0], shape=arrays[bad[0]].shape
        )
    vectors = normalize_rows(np.stack(arrays), dim, what="mention vector")
    return surfaces, vectors


def delete_document_rows(
    session: Session, document: Document, changes: EntityChanges, delta: VectorDelta
) -> None:
    """Delete a document and its mentions; record entity losses and alias decrements."""
    rows = session.execute(
        select(Mention.id, Mention.entity_id, Mention.text).where(Mention.document_id == document.id)
    ).all()
    aliases: Counter[tuple[int, str]] = Counter()
    for mention_id, entity_id, text in rows:
        delta.mention_remove.append(mention_id)
        if entity_id is not None:
            changes.lose(entity_id)
            aliases[(entity_id, normalize_surface(text))] -= 1
    session.execute(delete(Mention).where(Mention.document_id == document.id))
    session.execute(delete(Document).where(Document.id == document.id))
    session.expunge(document)
    _bump_aliases(session, aliases)


def add_document(
    session: Session, doc: DocumentCreate, dim: int, delta: VectorDelta
) -> tuple[int, bool, list[int], list[int]]:
    """Insert (or replace) a document with its mentions and entity links.

    Returns:
        tuple[int, bool, list[int], list[int]]: document id, whether an earlier version was
        replaced, ids of created entities, ids of entities removed by the replacement.

    Raises:
        InvalidInput: Bad offsets, vectors or assignments.
        NotFound: A mention names an entity id that does not exist.
    """
    surfaces, vectors = _validate(doc, dim)
    changes = EntityChanges(dim)
    existing = session.scalar(select(Document).where(Document.external_id == doc.external_id))
    if existing is not None:
        delete_document_rows(session, existing, changes, delta)
    document = Document(
        external_id=doc.external_id,
        text=doc.text,
        language=doc.language,
        meta=dict(doc.metadata),
        content_hash=hashlib.sha256(doc.text.encode("utf-8")).hexdigest(),
    )
    session.add(document)
    session.flush()

    known = {m.entity_id for m in doc.mentions if m.entity_id is not None}
    if known:
        found = set(session.scalars(select(Entity.id).where(Entity.id.in_(known))))
        if missing := sorted(known - found):
            raise NotFound("entity", missing[0])
    specs = list(dict.fromkeys(m.new_entity for m in doc.mentions if m.new_entity is not None))
    created = [Entity(name=s.name.strip(), name_norm=normalize_surface(s.name), label=s.label) for s in specs]
    session.add_all(created)
    session.flush()  # one multi-row INSERT ... RETURNING for all new entities
    new_ids = {spec: entity.id for spec, entity in zip(specs, created, strict=True)}

    entity_of = [
        m.entity_id if m.entity_id is not None else (new_ids[m.new_entity] if m.new_entity else None)
        for m in doc.mentions
    ]
    if doc.mentions:
        rows = [
            {
                "document_id": document.id,
                "start": m.start,
                "end": m.end,
                "text": surface,
                "label": m.label,
                "score": float(m.score),
                "entity_id": entity_id,
                "vector": to_blob(vector),
            }
            for m, surface, entity_id, vector in zip(doc.mentions, surfaces, entity_of, vectors, strict=True)
        ]
        mention_ids = session.scalars(
            insert(Mention).returning(Mention.id, sort_by_parameter_order=True), rows
        ).all()
        delta.mention_ids.extend(mention_ids)
        delta.mention_vectors.append(vectors)

    aliases: Counter[tuple[int, str]] = Counter()
    grouped: dict[int, list[int]] = defaultdict(list)
    for i, entity_id in enumerate(entity_of):
        if entity_id is not None:
            grouped[entity_id].append(i)
            aliases[(entity_id, normalize_surface(surfaces[i]))] += 1
    for entity_id, rows_of in grouped.items():
        changes.gain(entity_id, vectors[rows_of].astype(np.float64).sum(axis=0), len(rows_of))
    _bump_aliases(session, aliases)
    removed = changes.settle(session, delta)
    return document.id, existing is not None, sorted(new_ids.values()), removed


def delete_document(session: Session, document: Document, dim: int, delta: VectorDelta) -> list[int]:
    """Delete a document, its mentions and vectors; update or remove the entities it touched.

    Returns:
        list[int]: Ids of the entities removed because they lost their last mention.
    """
    changes = EntityChanges(dim)
    delete_document_rows(session, document, changes, delta)
    return changes.settle(session, delta)


def upsert_entity(
    session: Session, data: EntityCreate, entity_id: int | None, dim: int, delta: VectorDelta
) -> tuple[int, bool]:
    """Create or update an entity and register its aliases.

    Without ``entity_id`` an entity with the same normalized name and label is updated if one
    exists (so importing a knowledge base twice does not duplicate it), else one is created.

    Returns:
        tuple[int, bool]: The entity id and whether it was created.
    """
    for surface in [data.name, *data.aliases]:
        if problem := name_problem(surface):
            raise InvalidInput(f"entity name or alias {surface!r} {problem}")
    name_norm = normalize_surface(data.name)
    if not data.label:
        raise InvalidInput("entity label must be non-empty")
    vector = normalize_rows(data.vector, dim, what="entity vector")[0] if data.vector is not None else None
    if entity_id is not None:
        entity = session.get(Entity, entity_id)
        if entity is None:
            raise NotFound("entity", entity_id)
    else:
        entity = session.scalar(
            select(Entity)
            .where(Entity.name_norm == name_norm, Entity.label == data.label)
            .order_by(Entity.id)
        )
    created = entity is None
    if entity is None:
        entity = Entity(name=data.name.strip(), name_norm=name_norm, label=data.label, mention_count=0)
        session.add(entity)
    else:
        entity.name, entity.name_norm, entity.label = data.name.strip(), name_norm, data.label
        entity.updated_at = utcnow()
    if vector is not None and not entity.mention_count:
        entity.centroid = to_blob(vector)
        session.flush()
        delta.entity_upsert[entity.id] = vector
    session.flush()
    for surface in [data.name, *data.aliases]:
        norm = normalize_surface(surface)
        exists = session.scalar(select(Alias.id).where(Alias.entity_id == entity.id, Alias.norm == norm))
        if norm and exists is None:
            session.add(Alias(entity_id=entity.id, norm=norm, count=0))
    session.flush()
    return entity.id, created


def add_alias(session: Session, entity_id: int, surface: str, count: int) -> None:
    """Add ``count`` uses of ``surface`` to an entity's aliases (creating the alias if needed)."""
    if session.get(Entity, entity_id) is None:
        raise NotFound("entity", entity_id)
    norm = normalize_surface(surface)
    if not norm:
        raise InvalidInput("alias must be non-empty")
    if count < 0:
        raise InvalidInput("alias count must be >= 0", count=count)
    alias = session.scalar(select(Alias).where(Alias.entity_id == entity_id, Alias.norm == norm))
    if alias is None:
        session.add(Alias(entity_id=entity_id, norm=norm, count=count))
    else:
        alias.count += count
    session.flush()


def merge_entities(session: Session, target_id: int, source_id: int, dim: int, delta: VectorDelta) -> None:
    """Move every mention and alias of ``source_id`` to ``target_id`` and delete the source.

    The target's centroid becomes the mention-weighted mean of both centroids, which equals
    the mean over the union of their mentions.
    """
    if target_id == source_id:
        raise InvalidInput("cannot merge an entity into itself", entity_id=target_id)
    target, source = session.get(Entity, target_id), session.get(Entity, source_id)
    if target is None:
        raise NotFound("entity", target_id)
    if source is None:
        raise NotFound("entity", source_id)
    # A knowledge-base entity keeps its identity: merged into an entity founded from mentions, that
    # entity takes its external id, name, description, metadata and KB aliases. Two KB entities
    # are two entries of the caller's KB; merging them would lose one id, so it is refused.
    inherit = source.external_id is not None
    if inherit and target.external_id is not None:
        raise InvalidInput(
            "both entities come from the knowledge base; merging them would lose one external id "
            "(fix the knowledge base instead)",
            target_external_id=target.external_id,
            source_external_id=source.external_id,
        )
    identity = (source.external_id, source.name, source.name_norm, source.description, source.meta)
    seed = source.kb_vector
    kb_norms = [a.norm for a in source.aliases if a.kb]
    changes = EntityChanges(dim)
    if source.mention_count and source.centroid is not None:
        source_sum = from_blob(source.centroid, dim).astype(np.float64) * source.mention_count
        changes.gain(target_id, source_sum, source.mention_count)
    elif not target.mention_count and target.centroid is None and source.centroid is not None:
        target.centroid = source.centroid  # keep a seed vector when neither has mentions
        delta.entity_upsert[target_id] = normalize_rows(from_blob(source.centroid, dim), dim)[0]
    session.execute(update(Mention).where(Mention.entity_id == source_id).values(entity_id=target_id))
    moved = Counter({(target_id, a.norm): a.count for a in source.aliases})
    for alias in list(source.aliases):
        session.delete(alias)
    session.flush()
    for (entity_id, norm), n in moved.items():
        add_alias(session, entity_id, norm, n)
    session.execute(delete(Entity).where(Entity.id == source_id))
    session.expunge(source)
    if inherit:
        session.flush()  # the source row (and its unique external id) is gone first
        target.external_id, target.name, target.name_norm, target.description, target.meta = identity
        target.kb_vector = seed
        target.updated_at = utcnow()
        session.flush()
        if kb_norms:
            session.execute(
                update(Alias).where(Alias.entity_id == target_id, Alias.norm.in_(kb_norms)).values(kb=True)
            )
    changes.dropped.add(source_id)
    changes.settle(session, delta)


def reassign_mentions(
    session: Session,
    mention_ids: list[int],
    dim: int,
    delta: VectorDelta,
    *,
    entity_id: int | None = None,
    new_entity: NewEntity | None = None,
    from_entity: int | None = None,
) -> tuple[int, list[int]]:
    """Link mentions to another entity (existing, or created from ``new_entity``).

    Args:
        mention_ids (list[int]): Mentions to move.
        entity_id (int | None): Existing target entity.
        new_entity (NewEntity | None): Entity to create as the target (a split).
        from_entity (int | None): If given, every mention must currently belong to it.

    Returns:
        tuple[int, list[int]]: Target entity id and ids of entities left empty and removed.
    """
    if (entity_id is None) == (new_entity is None):
        raise InvalidInput("give exactly one of entity_id or new_entity")
    if not mention_ids:
        raise InvalidInput("no mention ids given")
    rows = session.execute(
        select(Mention.id, Mention.entity_id, Mention.text, Mention.vector).where(Mention.id.in_(mention_ids))
    ).all()
    if missing := sorted(set(mention_ids) - {row.id for row in rows}):
        raise NotFound("mention", missing[0])
    if from_entity is not None:
        strays = sorted(row.id for row in rows if row.entity_id != from_entity)
        if strays:
            raise InvalidInput(
                "mentions do not belong to the entity being split", entity_id=from_entity, mention_ids=strays
            )
    if new_entity is not None:
        if problem := name_problem(new_entity.name):
            raise InvalidInput(f"a new entity's name {problem}", name=new_entity.name)
        target = Entity(
            name=new_entity.name.strip(), name_norm=normalize_surface(new_entity.name), label=new_entity.label
        )
        session.add(target)
        session.flush()
        entity_id = target.id
    elif session.get(Entity, entity_id) is None:
        raise NotFound("entity", entity_id)
    assert entity_id is not None
    changes = EntityChanges(dim)
    aliases: Counter[tuple[int, str]] = Counter()
    moving = [row for row in rows if row.entity_id != entity_id]
    for row in moving:
        norm = normalize_surface(row.text)
        if row.entity_id is not None:
            changes.lose(row.entity_id)
            aliases[(row.entity_id, norm)] -= 1
        aliases[(entity_id, norm)] += 1
    if moving:
        vectors = np.frombuffer(b"".join(row.vector for row in moving), dtype="<f4").reshape(len(moving), dim)
        changes.gain(entity_id, vectors.astype(np.float64).sum(axis=0), len(moving))
        session.execute(
            update(Mention).where(Mention.id.in_([row.id for row in moving])).values(entity_id=entity_id)
        )
    _bump_aliases(session, aliases)
    return entity_id, changes.settle(session, delta)


def delete_entity(session: Session, entity_id: int, delta: VectorDelta) -> int:
    """Delete an entity with its mentions and aliases; the documents stay (issue 17's "delete entity").

    The mentions go too rather than being left unlinked: deleting an entity says "this is not an
    entity", so its spans should stop showing up as one. Returns the number of mentions deleted.
    """
    if session.get(Entity, entity_id) is None:
        raise NotFound("entity", entity_id)
    mention_ids = list(session.scalars(select(Mention.id).where(Mention.entity_id == entity_id)))
    session.execute(delete(Mention).where(Mention.entity_id == entity_id))
    session.execute(delete(Alias).where(Alias.entity_id == entity_id))
    session.execute(delete(Entity).where(Entity.id == entity_id))
    delta.mention_remove.extend(mention_ids)
    delta.entity_remove.add(entity_id)
    return len(mention_ids)


CHUNK = 500
"""Ids per ``IN (...)`` list (SQLite allows 32,766 bound values, older builds 999)."""


def _kb_where(i: int, item: KnownEntity) -> str:
    return f"entities[{i}] (external_id {item.external_id!r})"


def _check_known(items: Sequence[KnownEntity], dim: int) -> list[np.ndarray | None]:
    """Validate a whole import before the first write; return each item's normalized vector."""
    seen: dict[str, int] = {}
    vectors: list[np.ndarray | None] = []
    for i, item in enumerate(items):
        where = _kb_where(i, item)
        context = {"entity": i, "external_id": item.external_id}
        if not item.external_id or item.external_id != item.external_id.strip():
            raise InvalidInput(
                f"{where}: external_id must be non-empty, without spaces at its ends", **context
            )
        if item.external_id in seen:
            raise InvalidInput(
                f"{where}: external_id also names entities[{seen[item.external_id]}] of this batch",
                **context,
            )
        seen[item.external_id] = i
        if not item.label:
            raise InvalidInput(f"{where}: label must be non-empty", **context)
        for surface in [item.name, *item.aliases]:
            if problem := name_problem(surface):
                raise InvalidInput(f"{where}: name or alias {surface!r} {problem}", **context)
        if item.vector is None:
            vectors.append(None)
            continue
        try:
            vectors.append(normalize_rows(item.vector, dim, what="entity vector")[0])
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.message}", **context) from exc
    return vectors


def import_entities(
    session: Session, items: Sequence[KnownEntity], dim: int, delta: VectorDelta
) -> list[tuple[int, bool]]:
    """Create or update knowledge-base entities by ``external_id`` (all of them, or none on error).

    An existing entity keeps its id, mentions, mention counts and centroid; its name, label,
    description, metadata and KB vector are replaced, and its KB aliases become exactly the given
    ones (plus the name): aliases the KB no longer lists lose their ``kb`` mark and go unless
    mentions used them. While the entity has no mentions, its centroid is the KB vector.

    Returns:
        list[tuple[int, bool]]: Per item, the entity id and whether it was created.

    Raises:
        InvalidInput: An item is invalid (named ``entities[i] (external_id 'x')``); nothing is written.
    """
    vectors = _check_known(items, dim)
    ids = [item.external_id for item in items]
    existing: dict[str, Entity] = {}
    for at in range(0, len(ids), CHUNK):
        for entity in session.scalars(select(Entity).where(Entity.external_id.in_(ids[at : at + CHUNK]))):
            existing[entity.external_id] = entity  # type: ignore[index]
    now = utcnow()
    entities: list[Entity] = []
    for item, vector in zip(items, vectors, strict=True):
        entity = existing.get(item.external_id)
        if entity is None:
            entity = Entity(external_id=item.external_id, mention_count=0)
            session.add(entity)
        entity.name, entity.name_norm, entity.label = (
            item.name.strip(),
            normalize_surface(item.name),
            item.label,
        )
        entity.description, entity.meta = item.description, dict(item.metadata) or None
        entity.kb_vector = None if vector is None else to_blob(vector)
        entity.updated_at = now
        if not entity.mention_count:
            entity.centroid = entity.kb_vector
        entities.append(entity)
    session.flush()  # ids for the new ones
    for entity in entities:
        if not entity.mention_count:
            if entity.centroid is None:
                delta.entity_remove.add(entity.id)
            else:
                delta.entity_upsert[entity.id] = from_blob(entity.centroid, dim)
        delta.entity_touched.add(entity.id)
    by_id = {entity.id: entity for entity in entities}
    wanted = {
        entity.id: {normalize_surface(s) for s in [item.name, *item.aliases]} - {""}
        for item, entity in zip(items, entities, strict=True)
    }
    keys = list(by_id)
    have: dict[int, set[str]] = defaultdict(set)
    updates, deletes = [], []
    for at in range(0, len(keys), CHUNK):
        rows = session.execute(
            select(Alias.id, Alias.entity_id, Alias.norm, Alias.count, Alias.kb).where(
                Alias.entity_id.in_(keys[at : at + CHUNK])
            )
        )
        for alias_id, entity_id, norm, count, kb in rows:
            have[entity_id].add(norm)
            keep = norm in wanted[entity_id]
            if not keep and not count:
                deletes.append(alias_id)
            elif keep != bool(kb):
                updates.append({"id": alias_id, "kb": keep})
    inserts = [
        {"entity_id": entity_id, "norm": norm, "count": 0, "kb": True}
        for entity_id, norms in wanted.items()
        for norm in sorted(norms - have[entity_id])
    ]
    if deletes:
        for at in range(0, len(deletes), CHUNK):
            session.execute(delete(Alias).where(Alias.id.in_(deletes[at : at + CHUNK])))
    if updates:
        session.execute(update(Alias), updates)
    if inserts:
        session.execute(insert(Alias), inserts)
    return [(entity.id, entity.external_id not in existing) for entity in entities]
