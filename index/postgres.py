"""The PostgreSQL + pgvector side of the store: schema set-up, similarity search, change log.

On PostgreSQL the database is the only truth: vectors live in pgvector columns (mention vectors,
entity centroids) with HNSW cosine indexes, and there are no FAISS files to keep in step. Several
processes share one store, so everything here is safe to run from any number of them at once.

Set-up (:func:`prepare`) runs under a session advisory lock, so processes that open a new
database together create it once: ``CREATE EXTENSION vector`` first (``create_all`` cannot create
``vector`` columns before it), then the tables, the version check, and for a new store the
vector size (``vector(dim)``, set once the size is known) and the HNSW indexes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, Float, Select, func, insert, select, text
from sqlalchemy.orm import Session

from index.errors import StoreError
from index.schema import META_ENTITY_GENERATION, Base, Entity, EntityChange, Mention, Meta, check_or_init_meta
from index.vectors import to_blob

logger = logging.getLogger(__name__)

_SETUP_LOCK = "spanlink:schema"
VECTOR_COLUMNS = {"mentions": ("mentions", "vector"), "entities": ("entities", "centroid")}
"""Kind -> (table, column) of the pgvector columns."""

MAX_EF_SEARCH = 1000
"""pgvector's limit on ``hnsw.ef_search``; a larger k relies on the iterative scan (it goes on past
efSearch, up to ``hnsw.max_scan_tuples``) or, without it, on an exact scan."""


@dataclass(frozen=True)
class RowColumns:
    """Columns to return with each search hit, and the tables (relationships) to join for them."""

    columns: tuple[Any, ...]
    joins: tuple[Any, ...] = ()


def index_name(kind: str) -> str:
    table, column = VECTOR_COLUMNS[kind]
    return f"ix_{table}_{column}_hnsw"


def prepare(engine: Engine, dim: int | None, url: str, ef_construction: int, m: int) -> tuple[int, bool]:
    """Create or check the store in a PostgreSQL database; a new store's HNSW indexes get ``m`` and
    ``ef_construction`` (existing indexes are kept as they are).

    Returns:
        tuple[int, bool]: The vector size, and whether pgvector supports iterative index scans
        (0.8+: filtered searches still return k hits without over-fetching).

    Raises:
        SchemaMismatch: Another schema version or vector size (nothing is altered).
    """
    with engine.begin() as conn:
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(_SETUP_LOCK))))
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        version = conn.execute(
            text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar_one()
    engine.dispose()  # connections opened before the extension existed lack the vector type
    with engine.begin() as conn:
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(_SETUP_LOCK))))
        Base.metadata.create_all(conn)
        with Session(bind=conn) as session:
            dim = check_or_init_meta(session, dim=dim, url=url)
            session.flush()
        for table, column in VECTOR_COLUMNS.values():
            typmod = conn.execute(
                text(
                    "SELECT atttypmod FROM pg_attribute "
                    "WHERE attrelid = CAST(:table AS regclass) AND attname = :column"
                ),
                {"table": table, "column": column},
            ).scalar_one()
            if typmod != dim:  # a new store: give the column its size (empty table, instant)
                if conn.execute(text(f"SELECT count(*) FROM {table} WHERE {column} IS NOT NULL")).scalar():
                    raise StoreError(f"{table}.{column} holds vectors of another size", expected=dim, url=url)
                conn.execute(text(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE vector({dim})"))
        # Existing indexes are looked up in the catalog first: CREATE INDEX IF NOT EXISTS takes a
        # SHARE lock on the table before it looks, and would deadlock with processes already writing.
        existing = set(conn.execute(text("SELECT indexname FROM pg_indexes")).scalars())
        if any(index_name(kind) not in existing for kind in VECTOR_COLUMNS):
            create_vector_indexes(conn, ef_construction, m)
    major, minor = (int(part) for part in version.split(".")[:2])
    return dim, (major, minor) >= (0, 8)


BUILD_MEMORY_KB = 1024 * 1024
"""At least this ``maintenance_work_mem`` (1 GB) for HNSW builds: pgvector builds much faster while
the graph fits in it (a million 384-d vectors need about 1.6 GB at m 16; beyond the budget it goes
on, more slowly). A server configured with more keeps its own value."""


def raise_build_memory(conn: Any) -> None:
    """``maintenance_work_mem`` of at least ``BUILD_MEMORY_KB`` until the caller's transaction ends."""
    configured = conn.execute(
        text("SELECT setting::bigint FROM pg_settings WHERE name = 'maintenance_work_mem'")
    ).scalar_one()  # in kB
    if configured < BUILD_MEMORY_KB:
        conn.execute(text(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY_KB}kB'"))


def create_vector_indexes(conn: Any, ef_construction: int, m: int) -> None:
    """Create the HNSW cosine indexes of both vector columns (if missing), in the caller's transaction."""
    raise_build_memory(conn)
    for kind, (table, column) in VECTOR_COLUMNS.items():
        conn.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {index_name(kind)} ON {table} "
                f"USING hnsw ({column} vector_cosine_ops) "
                f"WITH (m = {int(m)}, ef_construction = {max(ef_construction, 2 * int(m))})"
            )
        )


def drop_vector_indexes(conn: Any) -> None:
    """Drop both HNSW indexes (before a bulk load: one build afterwards beats a million inserts)."""
    for kind in VECTOR_COLUMNS:
        conn.execute(text(f"DROP INDEX IF EXISTS {index_name(kind)}"))


def search(
    session: Session,
    kind: str,
    query: np.ndarray,
    k: int,
    *,
    labels: Sequence[str] | None,
    skip: int | None,
    ef_search: int,
    iterative: bool,
    rows: RowColumns | None = None,
) -> list[tuple[float, int, tuple]]:
    """The ``k`` nearest rows of ``kind`` by cosine, as ``(similarity, id, row)``, best first.

    The query orders by the index's own operator (``<=>``, cosine distance) with a LIMIT, so the
    HNSW index serves it. Label filters are applied inside the index scan: with pgvector 0.8's
    iterative scan (``relaxed_order``, set on every connection by :mod:`index.engine`) the scan
    goes on until k rows pass the filter, so a label
    held by 1% of the rows still gets k hits; the rows are then put back in exact order here.
    Without it (older pgvector) the search over-fetches and filters, growing fourfold.

    ``rows`` names columns (and the tables to join for them) to return with each hit: with the
    iterative scan they come in the same statement, one round trip for a whole similarity query
    (the caller's latency is mostly round trips: each one is a chance to wait for a CPU). ``row``
    is then those columns' values, else ``()``.
    """
    model = Mention if kind == "mentions" else Entity
    column = model.vector if kind == "mentions" else model.centroid  # type: ignore[attr-defined]
    distance = column.op("<=>", return_type=Float)(to_blob(query))
    # these settings need a transaction block (needs_transaction says when)
    if k > ef_search:  # the connection's default (index.engine) is ef_search; pgvector allows 1000
        session.execute(text(f"SET LOCAL hnsw.ef_search = {min(int(k), MAX_EF_SEARCH)}"))
    if k > MAX_EF_SEARCH and not iterative:  # the index cannot return more than efSearch rows
        session.execute(text("SET LOCAL enable_indexscan = off"))  # exact: a scan and a sort
    clauses: list[Any] = [column.is_not(None)]
    if skip is not None:
        clauses.append(model.id != skip)
    if labels:
        clauses.append(model.label.in_(list(labels)))
    if iterative:
        stmt = _joined(select(model.id, distance, *(rows.columns if rows else ())), rows)
        found = session.execute(stmt.where(*clauses).order_by(distance).limit(k)).all()
    else:
        fetch = k + (skip is not None)
        while True:
            inner = select(model.id, model.label, distance.label("d")).where(column.is_not(None))
            inner = inner.order_by(distance).limit(fetch).subquery()
            outer = select(inner.c.id, inner.c.d)
            if skip is not None:
                outer = outer.where(inner.c.id != skip)
            if labels:
                outer = outer.where(inner.c.label.in_(list(labels)))
            found = session.execute(outer.order_by(inner.c.d).limit(k)).all()
            if len(found) >= k or fetch >= 16384:
                break
            fetch *= 4
        if rows and found:  # a second statement: the rows of the hits still there
            stmt = _joined(select(model.id, *rows.columns), rows).where(model.id.in_([i for i, _ in found]))
            by_id = {row[0]: tuple(row[1:]) for row in session.execute(stmt)}
            found = [(i, d, *by_id[i]) for i, d in found if i in by_id]
    # d != d: a zero vector, no direction
    hits = [(1.0 - float(row[1]), int(row[0]), tuple(row[2:])) for row in found if row[1] == row[1]]
    hits.sort(key=lambda hit: (-hit[0], hit[1]))
    return hits


def _joined(stmt: Select, rows: RowColumns | None) -> Select:
    for target in rows.joins if rows else ():
        stmt = stmt.join(target)
    return stmt


def needs_transaction(k: int, ef_search: int, iterative: bool) -> bool:
    """Whether :func:`search` must change settings for its query (``SET LOCAL``, which only lasts
    inside a transaction block): a ``k`` above the connection's efSearch. Other searches can run
    on an autocommit connection, saving the BEGIN and ROLLBACK round trips."""
    return k > ef_search or (k > MAX_EF_SEARCH and not iterative)


def vector_ids(session: Session, kind: str) -> np.ndarray:
    """Sorted ids of the rows of ``kind`` that carry a vector (what similarity search can return)."""
    model = Mention if kind == "mentions" else Entity
    column = model.vector if kind == "mentions" else model.centroid  # type: ignore[attr-defined]
    return np.fromiter(
        session.scalars(select(model.id).where(column.is_not(None)).order_by(model.id)), dtype=np.int64
    )


# -- entity change log (shared stores) ---------------------------------------------------------

META_CHANGES_FLOOR = "entity_changes_floor"
"""``spanlink_meta`` key: the log holds every change of the generations above this value (0, or
no row, when nothing was ever pruned)."""

CHANGE_LOG_RETAIN = 100_000
"""Generations of entity changes kept in the log (about an hour of writes at ~25 documents/s; a
few rows per generation, two integers each). A process whose cache is older reloads every entity."""

CHANGE_LOG_PRUNE_EVERY = 1_000
"""Prune the log on the commit of every this many-th generation (one indexed range delete)."""


def lock_entities(session: Session) -> int:
    """Take the store-wide entity lock for the rest of the transaction; return the generation.

    ``SELECT ... FOR UPDATE`` on the ``entity_generation`` row: a linking decision and the writes
    that follow it run while no other process changes entities, and see every earlier change.
    """
    value = session.scalar(select(Meta.value).where(Meta.key == META_ENTITY_GENERATION).with_for_update())
    return int(value or 0)


def log_entity_changes(session: Session, entity_ids: set[int]) -> int:
    """Bump the entity generation (row lock until commit) and log ``entity_ids`` under it.

    Every :data:`CHANGE_LOG_PRUNE_EVERY` generations the log is pruned in the same transaction
    (still under the lock): rows at or below the horizon ``generation - CHANGE_LOG_RETAIN`` are
    deleted and the horizon is recorded as the log's floor, so the log holds at most
    ``CHANGE_LOG_RETAIN + CHANGE_LOG_PRUNE_EVERY`` generations of rows however long the store lives.
    """
    generation = int(
        session.execute(
            text(
                "UPDATE spanlink_meta SET value = CAST(CAST(value AS bigint) + 1 AS text) "
                "WHERE key = :key RETURNING value"
            ),
            {"key": META_ENTITY_GENERATION},
        ).scalar_one()
    )
    if entity_ids:
        session.execute(
            insert(EntityChange), [{"generation": generation, "entity_id": i} for i in entity_ids]
        )
    if generation % CHANGE_LOG_PRUNE_EVERY == 0 and generation > CHANGE_LOG_RETAIN:
        prune_entity_changes(session, generation - CHANGE_LOG_RETAIN)
    return generation


def prune_entity_changes(session: Session, horizon: int) -> int:
    """Delete the change-log rows of generations ``<= horizon`` and raise the log's floor to it.

    Run under the entity lock (:func:`log_entity_changes`). A reader whose cache is older than
    the floor can no longer learn what changed from the log: :func:`entity_changes` tells it to
    reload everything. Returns the rows deleted.
    """
    deleted = session.execute(
        text("DELETE FROM entity_changes WHERE generation <= :horizon"), {"horizon": horizon}
    ).rowcount
    session.execute(
        text(
            "INSERT INTO spanlink_meta (key, value) VALUES (:key, :value) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value "
            "WHERE CAST(spanlink_meta.value AS bigint) < CAST(EXCLUDED.value AS bigint)"
        ),
        {"key": META_CHANGES_FLOOR, "value": str(horizon)},
    )
    return int(deleted or 0)


def entity_generation(session: Session) -> int:
    value = session.scalar(select(Meta.value).where(Meta.key == META_ENTITY_GENERATION))
    return int(value or 0)


def entity_changes(session: Session, since: int) -> tuple[int, set[int] | None]:
    """The current entity generation and the entities changed after ``since``.

    ``None`` instead of the set when the log no longer reaches back to ``since`` (pruned past it,
    :func:`prune_entity_changes`): the caller must reload every entity. The floor is read again
    after the changes, so a prune that commits between the two reads is noticed.
    """
    generation, floor = _generation_and_floor(session)
    if generation == since:
        return generation, set()
    if since < floor:
        return generation, None
    changed = set(
        session.scalars(select(EntityChange.entity_id).where(EntityChange.generation > since).distinct())
    )
    if since < _generation_and_floor(session)[1]:
        return generation, None
    return generation, changed


def _generation_and_floor(session: Session) -> tuple[int, int]:
    rows = dict(
        session.execute(
            select(Meta.key, Meta.value).where(Meta.key.in_([META_ENTITY_GENERATION, META_CHANGES_FLOOR]))
        ).all()
    )
    return int(rows.get(META_ENTITY_GENERATION) or 0), int(rows.get(META_CHANGES_FLOOR) or 0)
