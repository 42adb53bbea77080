"""Keep the FAISS indexes in step with the database, which is the source of truth.

On open, each FAISS file is loaded and checked against the database: same factory string and
vector size, same vector generation (a counter bumped in every transaction that changes
vectors, so a centroid updated after the last save is caught), same count and same id set.
Anything else means the file is stale (e.g. the process died between a commit and the next
save) and the index is rebuilt from the vectors stored in the database, except that a stale
mention index is repaired in place when the change is small (``IMMUTABLE_KINDS``): after a crash
a million-vector HNSW store is back in seconds instead of the many minutes of a rebuild.

Vectors are read in big chunks and decoded with ``numpy.frombuffer`` into one preallocated
array, so a rebuild of a million vectors spends its time in FAISS, not in Python.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from index.schema import META_GENERATION, Document, Entity, Mention, Meta
from index.vectors import VectorIndex

logger = logging.getLogger(__name__)

READ_CHUNK_ROWS = 65536
"""Rows fetched per round trip while reading vectors for a rebuild."""

KINDS = ("entities", "mentions")
"""The two vector indexes of a store: entity centroids and mention vectors."""

IMMUTABLE_KINDS = ("mentions",)
"""Kinds whose rows never change their vector once written, and whose ids are never reused: for
them the id-set difference between a stale FAISS file and the database is the whole change since
the save, so the file is repaired in place instead of rebuilt (an HNSW rebuild of a million
vectors takes many minutes on a small machine; a repair costs as much as the change)."""

REPAIR_MAX_FRACTION = 0.2
REPAIR_ALWAYS = 10_000
"""A stale immutable-kind file is repaired when the change is at most ``REPAIR_ALWAYS`` vectors or
``REPAIR_MAX_FRACTION`` of them; a larger change is rebuilt (a fresh graph is better than a patched one)."""

_ID_CHUNK = 5000  # ids per ``IN (...)`` query, well under SQLite's variable limit


def _columns(kind: str) -> tuple[Any, Any]:
    if kind == "entities":
        return Entity.id, Entity.centroid
    if kind == "mentions":
        return Mention.id, Mention.vector
    raise ValueError(f"unknown vector kind {kind!r}; expected one of {KINDS}")


def database_generation(session: Session) -> int:
    """The vector generation recorded in the database."""
    return int(session.scalar(select(Meta.value).where(Meta.key == META_GENERATION)) or 0)


def bump_generation(session: Session) -> int:
    """Increment the vector generation inside the caller's transaction and return it."""
    row = session.get(Meta, META_GENERATION)
    assert row is not None, "spanlink_meta lacks the vector generation"
    row.value = str(int(row.value) + 1)
    return int(row.value)


def database_ids(engine: Engine, kind: str) -> np.ndarray:
    """Sorted ids of the rows of ``kind`` that carry a vector."""
    id_col, vec_col = _columns(kind)
    with engine.connect() as conn:
        result = conn.execute(select(id_col).where(vec_col.is_not(None)).order_by(id_col))
        return np.fromiter(result.scalars(), dtype=np.int64)


def read_vectors(engine: Engine, kind: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Read every stored vector of ``kind``.

    Returns:
        tuple[np.ndarray, np.ndarray]: int64 ``ids`` and float32 ``(n, dim)`` unit ``vectors``.
    """
    id_col, vec_col = _columns(kind)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).where(vec_col.is_not(None))).scalar_one()
        ids = np.empty(total, dtype=np.int64)
        vectors = np.empty((total, dim), dtype=np.float32)
        stmt = select(id_col, vec_col).where(vec_col.is_not(None)).order_by(id_col)
        result = conn.execution_options(stream_results=True, yield_per=READ_CHUNK_ROWS).execute(stmt)
        filled = 0
        for chunk in result.partitions(READ_CHUNK_ROWS):
            n = len(chunk)
            assert filled + n <= total, "rows were added while reading vectors"
            ids[filled : filled + n] = [row[0] for row in chunk]
            blob = b"".join(row[1] for row in chunk)
            vectors[filled : filled + n] = np.frombuffer(blob, dtype="<f4").reshape(n, dim)
            filled += n
    return ids[:filled], vectors[:filled]


def read_vectors_by_id(
    engine: Engine, kind: str, dim: int, wanted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The stored vectors of the ``wanted`` ids of ``kind`` (those without a vector are skipped)."""
    id_col, vec_col = _columns(kind)
    ids: list[int] = []
    blobs: list[bytes] = []
    with engine.connect() as conn:
        for start in range(0, len(wanted), _ID_CHUNK):
            chunk = [int(i) for i in wanted[start : start + _ID_CHUNK]]
            rows = conn.execute(select(id_col, vec_col).where(id_col.in_(chunk), vec_col.is_not(None)))
            for row_id, blob in rows:
                ids.append(row_id)
                blobs.append(blob)
    vectors = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(ids), dim)
    return np.asarray(ids, dtype=np.int64), vectors


def repair(engine: Engine, index: VectorIndex, kind: str, dim: int, generation: int) -> str | None:
    """Bring a stale index of an immutable kind up to date by its id-set difference, in place.

    Returns:
        str | None: What was done, or None when the change is too large (the caller rebuilds).
    """
    db_ids = database_ids(engine, kind)
    faiss_ids = index.ids()
    missing = np.setdiff1d(db_ids, faiss_ids, assume_unique=True)
    extra = np.setdiff1d(faiss_ids, db_ids, assume_unique=True)
    if len(missing) + len(extra) > max(REPAIR_ALWAYS, REPAIR_MAX_FRACTION * len(db_ids)):
        return None
    ids, vectors = read_vectors_by_id(engine, kind, dim, missing)
    index.apply(remove=extra, ids=ids, vectors=vectors)
    index.generation = generation
    return f"repaired in place: {len(ids)} added, {len(extra)} removed"


def rebuild(engine: Engine, kind: str, dim: int, factory: str, generation: int, **params: int) -> VectorIndex:
    """Build the ``kind`` index from the database in bulk."""
    started = time.perf_counter()
    ids, vectors = read_vectors(engine, kind, dim)
    if kind == "entities":  # centroids are stored unnormalized (exact means); FAISS holds unit rows
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.divide(vectors, norms, out=vectors, where=norms > 0)
    index = VectorIndex.build(dim, factory, ids, vectors, **params)
    index.generation = generation
    logger.info(
        "rebuilt %s index (%s, %d vectors) in %.1fs", kind, factory, len(ids), time.perf_counter() - started
    )
    return index


@dataclass(frozen=True)
class VectorCheck:
    """Why a FAISS file was (or was not) accepted on open."""

    kind: str
    loaded: bool
    reason: str


def load_checked(
    engine: Engine, path: Path, kind: str, dim: int, factory: str, *, save: bool = True, **params: int
) -> tuple[VectorIndex, VectorCheck]:
    """Load the ``kind`` index from ``path`` if it matches the database, else rebuild and save it.

    Args:
        engine (Engine): The store's engine.
        path (Path): FAISS file of this index.
        kind (str): ``"entities"`` or ``"mentions"``.
        dim (int): Vector size.
        factory (str): Requested FAISS factory string.
        save (bool): Save a repaired or rebuilt index (False for a reader that does not own the
            store: the owner's files are not its to write).
        **params (int): Search/build parameters for :class:`VectorIndex`.

    Returns:
        tuple[VectorIndex, VectorCheck]: The index and why it was loaded or rebuilt.
    """
    with Session(engine) as session:
        generation = database_generation(session)
    if save:
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a save that was killed
            stale.unlink(missing_ok=True)
    index = VectorIndex.load(path, **params)
    reason = ""
    if index is None:
        reason = "no readable FAISS file" if path.exists() else "no FAISS file yet"
    elif index.factory != factory:
        reason = f"factory changed from {index.factory!r} to {factory!r}"
    elif index.dim != dim:
        reason = f"vector size {index.dim} != {dim}"
    elif index.generation != generation:
        reason = f"FAISS generation {index.generation} != database generation {generation}"
    elif index.effective_factory != factory and len(
        database_ids(engine, kind)
    ) >= VectorIndex.min_train_points(factory, dim):
        reason = f"enough vectors now to train {factory!r}"
    else:
        faiss_ids = index.ids()
        db_ids = database_ids(engine, kind)
        if len(faiss_ids) != len(db_ids):
            reason = f"FAISS holds {len(faiss_ids)} vectors, the database {len(db_ids)}"
        elif not np.array_equal(faiss_ids, db_ids):
            reason = "FAISS ids differ from database ids"
    if not reason:
        return index, VectorCheck(kind, loaded=True, reason="matches the database")
    repairable = (
        index is not None
        and kind in IMMUTABLE_KINDS
        and (index.factory, index.dim, index.effective_factory) == (factory, dim, factory)
    )
    if repairable:
        assert index is not None
        done = repair(engine, index, kind, dim, generation)
        if done is not None:
            logger.warning("the %s FAISS index was stale (%s): %s", kind, reason, done)
            if save:
                index.save(path)
            return index, VectorCheck(kind, loaded=True, reason=f"{reason}; {done}")
    log = logger.info if reason == "no FAISS file yet" else logger.warning
    log("rebuilding the %s FAISS index from the database: %s", kind, reason)
    index = rebuild(engine, kind, dim, factory, generation, **params)
    if save:
        index.save(path)
    return index, VectorCheck(kind, loaded=False, reason=reason)


@dataclass(frozen=True)
class ConsistencyReport:
    """Result of :meth:`Store.check`; ``ok`` is true when every list is empty.

    Attributes:
        integrity (list[str]): ``PRAGMA integrity_check`` complaints (SQLite).
        mentions_without_document (int): Mentions whose document is gone.
        bad_mention_counts (list[int]): Entities whose ``mention_count`` differs from their mentions.
        faiss_mismatch (list[str]): Kinds whose FAISS ids differ from the database's (embedded).
        bad_aliases (list[int]): Entities with an alias count below the mentions using that surface.
        bad_centroids (list[int]): Entities whose centroid is not the mean of their mention vectors.
    """

    integrity: list[str]
    mentions_without_document: int
    bad_mention_counts: list[int]
    faiss_mismatch: list[str]
    bad_aliases: list[int] = field(default_factory=list)
    bad_centroids: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.integrity
            or self.mentions_without_document
            or self.bad_mention_counts
            or self.faiss_mismatch
            or self.bad_aliases
            or self.bad_centroids
        )


CENTROID_TOLERANCE = 1e-4
"""Largest difference per component between a stored centroid and the mean of its mention vectors
(float32 sums over a few thousand mentions stay far below it; a lost update does not)."""


def _aliases_and_centroids(session: Session, dim: int) -> tuple[list[int], list[int]]:
    """Entities whose aliases or centroid disagree with their mentions (one pass over the mentions,
    in entity order, so memory holds one entity's vectors at a time)."""
    from index.records import normalize_surface
    from index.schema import Alias

    aliases: dict[tuple[int, str], int] = {
        (entity_id, norm): count
        for entity_id, norm, count in session.execute(select(Alias.entity_id, Alias.norm, Alias.count))
    }
    centroids = {
        entity_id: blob
        for entity_id, blob in session.execute(
            select(Entity.id, Entity.centroid).where(Entity.mention_count > 0)
        )
    }
    bad_aliases: set[int] = set()
    bad_centroids: set[int] = set()

    def settle(entity_id: int, texts: list[str], blobs: list[bytes]) -> None:
        used: dict[str, int] = {}
        for text_ in texts:
            norm = normalize_surface(text_)
            used[norm] = used.get(norm, 0) + 1
        if any(aliases.get((entity_id, norm), 0) < n for norm, n in used.items()):
            bad_aliases.add(entity_id)
        stored = centroids.get(entity_id)
        if stored is None:
            bad_centroids.add(entity_id)
            return
        mean = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim).astype(np.float64)
        mean = mean.mean(axis=0)
        if not np.allclose(np.frombuffer(stored, dtype="<f4"), mean, atol=CENTROID_TOLERANCE, rtol=0):
            bad_centroids.add(entity_id)

    stmt = (
        select(Mention.entity_id, Mention.text, Mention.vector)
        .where(Mention.entity_id.is_not(None))
        .order_by(Mention.entity_id)
    )
    current, texts, blobs = None, [], []
    for entity_id, text_, blob in session.execute(stmt.execution_options(yield_per=READ_CHUNK_ROWS)):
        if entity_id != current:
            if current is not None:
                settle(current, texts, blobs)
            current, texts, blobs = entity_id, [], []
        texts.append(text_)
        blobs.append(blob)
    if current is not None:
        settle(current, texts, blobs)
    return sorted(bad_aliases), sorted(bad_centroids)


def check_consistency(
    engine: Engine, vectors: dict[str, VectorIndex] | None, dim: int | None = None
) -> ConsistencyReport:
    """Check the database (``PRAGMA integrity_check`` on SQLite), entity counts, aliases and
    centroids against the mentions, and FAISS ids against the database.

    Args:
        engine (Engine): The store's engine.
        vectors (dict[str, VectorIndex] | None): The store's FAISS indexes by kind; None for a
            store without FAISS (PostgreSQL).
        dim (int | None): Vector size; None skips the alias and centroid checks.
    """
    with Session(engine) as session:
        integrity: list[str] = []
        if engine.url.get_backend_name() == "sqlite":
            integrity = [r for (r,) in session.execute(text("PRAGMA integrity_check")) if r != "ok"]
        orphans = session.scalar(
            select(func.count()).select_from(Mention).where(~Mention.document_id.in_(select(Document.id)))
        )
        actual = (
            select(Mention.entity_id, func.count().label("n"))
            .where(Mention.entity_id.is_not(None))
            .group_by(Mention.entity_id)
            .subquery()
        )
        bad = list(
            session.scalars(
                select(Entity.id)
                .outerjoin(actual, actual.c.entity_id == Entity.id)
                .where(Entity.mention_count != func.coalesce(actual.c.n, 0))
            )
        )
        bad_aliases, bad_centroids = _aliases_and_centroids(session, dim) if dim is not None else ([], [])
    mismatch = []
    if vectors is not None:
        mismatch = [
            kind for kind in KINDS if not np.array_equal(vectors[kind].ids(), database_ids(engine, kind))
        ]
    return ConsistencyReport(integrity, int(orphans or 0), bad, mismatch, bad_aliases, bad_centroids)
