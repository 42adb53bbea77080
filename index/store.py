"""The store: one object that owns the database engine and both FAISS indexes.

All writes go through :class:`Store` methods that hold one write lock across the database
transaction *and* the FAISS update that follows its commit, so FAISS always reflects the
committed transactions in commit order, and concurrent writer threads cannot interleave.
Reads use their own short sessions (SQLite WAL lets them run beside the writer) and a shared
lock on FAISS. If the process dies between a commit and the next FAISS save, the open-time
check (:mod:`index.sync`) finds the FAISS file stale and rebuilds it from the database.

>>> import numpy as np, tempfile, os
>>> from index import DocumentCreate, MentionCreate, NewEntity, Store
>>> path = os.path.join(tempfile.mkdtemp(), "store.db")
>>> with Store.open(path, dim=4) as store:
...     mention = MentionCreate(0, 5, "PER", np.ones(4), new_entity=NewEntity("Alice", "PER"))
...     result = store.add_document(DocumentCreate("doc-1", "Alice smiled.", [mention]))
...     [hit.entity.name for hit in store.similar_entities(np.ones(4), k=1)]
['Alice']
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from index import browse, postgres, reads, writes
from index.engine import create_store_engine
from index.errors import InvalidInput, NotFound, StoreClosed, StoreConflict, StoreError
from index.ownership import StoreOwnership, acquire
from index.records import (
    AddResult,
    DocumentCreate,
    DocumentPublic,
    EntityCreate,
    EntityHit,
    EntityPublic,
    KnownEntity,
    MentionHit,
    NewEntity,
    StoreStats,
)
from index.schema import Base, Document, Entity, Mention, check_or_init_meta
from index.settings import StoreSettings
from index.sync import (
    KINDS,
    ConsistencyReport,
    VectorCheck,
    bump_generation,
    check_consistency,
    database_generation,
    load_checked,
    read_vectors_by_id,
    rebuild,
)
from index.vectors import VectorIndex, from_blob, normalize_rows

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _Transaction:
    """An open :meth:`Store.transaction`: its session, owner thread, and what FAISS got meanwhile.

    FAISS is updated after every write inside the transaction, so that later steps (the linker's
    candidate search) see what earlier ones wrote; ``touched`` lists those ids so that a rollback
    can put them back the way the database has them.
    """

    session: Session
    owner: int
    generations: dict[str, int]
    touched: dict[str, set[int]] = field(default_factory=lambda: {kind: set() for kind in KINDS})
    failed: bool = False

    def record(self, delta: writes.VectorDelta) -> None:
        self.touched["mentions"].update(delta.mention_remove)
        self.touched["mentions"].update(delta.mention_ids)
        self.touched["entities"].update(delta.entity_remove)
        self.touched["entities"].update(delta.entity_upsert)


class Store:
    """Documents, mentions, entities and aliases in SQL, with indexes of their vectors.

    Create it with :meth:`open`. Two backends behind one API:

    * **embedded** (SQLite file, the default): vectors searched through FAISS indexes kept in this
      process's memory and saved beside the database. One process owns the store (a lock file,
      :mod:`index.ownership`); others may only read it (``owner=False``).
    * **shared** (PostgreSQL + pgvector): vectors searched by pgvector HNSW indexes in the
      database, no files; any number of processes on any number of machines (:attr:`shared`).

    Thread-safe: writes are serialized by one lock, reads run concurrently.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        dim: int,
        vector_paths: dict[str, Path],
        settings: StoreSettings,
        vectors: dict[str, VectorIndex],
        checks: list[VectorCheck],
        ownership: StoreOwnership | None = None,
        iterative_scan: bool = False,
        owner: bool = True,
    ) -> None:
        self._engine: Engine | None = engine
        self._ownership = ownership
        self._owner = owner  # may save FAISS files
        self.shared = engine.url.get_backend_name() == "postgresql"
        """True on PostgreSQL: vectors in pgvector, no FAISS, many processes (see :meth:`lock_entities`)."""
        self._iterative_scan = iterative_scan
        self.dim = dim
        self.settings = settings
        self.vector_paths = vector_paths
        self._vectors = vectors
        self.open_checks = checks
        self._write_lock = threading.RLock()
        self._transaction: _Transaction | None = None
        self._autocommit_engine: Engine | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        target: str | os.PathLike[str],
        *,
        dim: int | None = None,
        factory: str | None = None,
        vector_dir: str | os.PathLike[str] | None = None,
        settings: StoreSettings | None = None,
        owner: bool = True,
    ) -> Store:
        """Open (or create) a store and bring its FAISS indexes in line with the database.

        Args:
            target (str | PathLike): SQLite file path, or any SQLAlchemy URL
                (``postgresql+psycopg://...``).
            dim (int | None): Vector size. Required for a new store; checked on an old one.
            factory (str | None): FAISS factory string; overrides ``settings.factory``. Changing
                it on an existing store rebuilds the indexes; ``None`` keeps the saved one.
            vector_dir (str | PathLike | None): Where FAISS files live. Defaults to the SQLite
                file's folder; required for non-file URLs other than PostgreSQL (which keeps
                vectors in pgvector columns and ignores it).
            settings (StoreSettings | None): Tunables. Defaults to ``StoreSettings()``.
            owner (bool): Take the embedded store's owner lock (:mod:`index.ownership`). False
                for readers that never write: they do not save FAISS files either. Ignored on
                PostgreSQL, where every process may write.

        Returns:
            Store: The open store; use it as a context manager or call :meth:`close`.

        Raises:
            SchemaMismatch: Another schema version or vector size, or ``dim`` missing for a new store.
            InvalidInput: Bad settings or factory string, or no ``vector_dir`` for a server URL.
            StoreLocked: Another process owns this embedded store.
            StoreError: The database cannot be opened.

        >>> Store.open("/tmp/spanlink-example.db", dim=384, factory="HNSW32")  # doctest: +SKIP
        """
        settings = settings or StoreSettings()
        if factory is not None:
            settings = replace(settings, factory=factory)
        engine, db_path = create_store_engine(target, settings)
        if engine.url.get_backend_name() == "postgresql":
            return cls._open_postgres(engine, dim, settings)
        ownership = None
        try:
            if owner and db_path is not None:
                ownership = acquire(db_path)
            if vector_dir is None and db_path is None:
                raise InvalidInput(
                    "FAISS files need a folder for this database URL: "
                    "Store.open(url, vector_dir='/var/lib/spanlink')",
                    url=engine.url.render_as_string(hide_password=True),
                )
            folder = Path(vector_dir) if vector_dir is not None else db_path.parent  # type: ignore[union-attr]
            stem = db_path.name if db_path is not None and vector_dir is None else "spanlink"
            folder.mkdir(parents=True, exist_ok=True)
            url = engine.url.render_as_string(hide_password=True)
            try:
                Base.metadata.create_all(engine)
                with Session(engine) as session, session.begin():
                    dim = check_or_init_meta(session, dim=dim, url=url)
            except SQLAlchemyError as exc:
                raise StoreError("cannot open the database", url=url, error=str(exc)) from exc
            paths = {kind: folder / f"{stem}.{kind}.faiss" for kind in KINDS}
            if settings.factory is None:  # keep the factory saved with the index, Flat when new
                header = VectorIndex.read_header(paths["entities"]) or {}
                settings = replace(settings, factory=str(header.get("factory", "Flat")))
            vectors: dict[str, VectorIndex] = {}
            checks: list[VectorCheck] = []
            for kind in KINDS:
                index, check = load_checked(
                    engine, paths[kind], kind, dim, settings.factory, save=owner, **settings.vector_params()
                )
                vectors[kind] = index
                checks.append(check)
        except BaseException:
            engine.dispose()
            if ownership is not None:
                ownership.release()
            raise
        return cls(
            engine,
            dim=dim,
            vector_paths=paths,
            settings=settings,
            vectors=vectors,
            checks=checks,
            ownership=ownership,
            owner=owner,
        )

    @classmethod
    def _open_postgres(cls, engine: Engine, dim: int | None, settings: StoreSettings) -> Store:
        url = engine.url.render_as_string(hide_password=True)
        try:
            dim, iterative = postgres.prepare(engine, dim, url, settings.ef_construction, settings.hnsw_m)
        except StoreError:
            engine.dispose()
            raise
        except (SQLAlchemyError, ImportError) as exc:
            engine.dispose()
            raise StoreError("cannot open the database", url=url, error=str(exc)) from exc
        settings = replace(settings, factory=settings.factory or "pgvector-hnsw")
        return cls(
            engine,
            dim=dim,
            vector_paths={},
            settings=settings,
            vectors={},
            checks=[],
            iterative_scan=iterative,
        )

    def close(self, *, save: bool = True) -> None:
        """Save the FAISS indexes (unless ``save`` is false or this process is not the owner) and
        release the database connections and the owner lock."""
        with self._write_lock:
            if self._engine is None:
                return
            try:
                if save and self._owner:
                    self.save_vectors()
            finally:
                self._engine.dispose()
                self._engine = self._autocommit_engine = None
                if self._ownership is not None:
                    self._ownership.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine. Raises :class:`StoreClosed` after :meth:`close`."""
        if self._engine is None:
            raise StoreClosed()
        return self._engine

    def save_vectors(self) -> None:
        """Write both FAISS indexes to disk atomically (also done by :meth:`close`); nothing on
        PostgreSQL, whose vectors live in the database."""
        with self._write_lock:
            for kind, index in self._vectors.items():
                index.save(self.vector_paths[kind])

    def rebuild_vectors(self, kinds: Sequence[str] = KINDS) -> None:
        """Rebuild FAISS indexes from the database in bulk and save them (e.g. after tuning).

        On PostgreSQL this ``REINDEX``es the pgvector HNSW indexes instead.
        """
        if self.shared:
            with self.engine.begin() as conn:
                postgres.raise_build_memory(conn)
                for kind in kinds:
                    conn.exec_driver_sql(f"REINDEX INDEX {postgres.index_name(kind)}")
            return
        with self._write_lock:
            with Session(self.engine) as session:
                generation = database_generation(session)
            for kind in kinds:
                index = rebuild(
                    self.engine,
                    kind,
                    self.dim,
                    self.settings.factory,
                    generation,
                    **self.settings.vector_params(),
                )
                self._vectors[kind] = index
                index.save(self.vector_paths[kind])

    # -- transactions --------------------------------------------------------------------------

    def _current(self) -> _Transaction | None:
        """The open transaction, if this thread owns it (other threads see committed data only)."""
        tx = self._transaction
        return tx if tx is not None and tx.owner == threading.get_ident() else None

    @contextmanager
    def _read(self, *, autocommit: bool = False) -> Iterator[Session]:
        """A session for reads: the open transaction's when this thread has one; else a new one,
        with ``autocommit`` outside any transaction block (no BEGIN and ROLLBACK round trips; under
        READ COMMITTED every statement has its own snapshot either way)."""
        tx = self._current()
        if tx is not None:  # read what this transaction wrote so far
            tx.session.expunge_all()  # no stale objects across bulk UPDATEs
            try:
                yield tx.session
            except SQLAlchemyError as exc:
                tx.failed = True
                raise StoreError("database read failed", error=str(exc)) from exc
            finally:
                tx.session.expunge_all()
            return
        engine = self.engine
        if autocommit:  # one option view of the engine (same pool), made once: this is the hot path
            if self._autocommit_engine is None:
                self._autocommit_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
            engine = self._autocommit_engine
        with Session(engine, expire_on_commit=False) as session:
            try:
                yield session
            except SQLAlchemyError as exc:
                raise StoreError("database read failed", error=str(exc)) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Make every write inside the block one transaction: all of it is stored, or none.

        Reads and writes of this thread inside the block see the block's own changes; other
        threads read the last commit and wait to write. If anything raises inside the block, the
        database rolls back and the FAISS entries the block changed are restored from it, so the
        store is as it was before. Blocks nest (an inner block joins the outer one).

        >>> with store.transaction():  # doctest: +SKIP
        ...     store.add_document(first)
        ...     store.add_document(second)  # if this fails, `first` is not stored either
        """
        with self._write_lock:
            if self._current() is not None:
                yield
                return
            session = Session(self.engine, expire_on_commit=False)
            tx = _Transaction(
                session,
                threading.get_ident(),
                {kind: index.generation for kind, index in self._vectors.items()},
            )
            self._transaction = tx
            try:
                session.begin()
                yield
                if tx.failed:
                    raise StoreError("a write of this transaction failed; nothing was written")
                try:
                    session.commit()
                except SQLAlchemyError as exc:
                    raise database_error(exc) from exc
            except BaseException:
                self._transaction = None
                session.rollback()
                session.close()
                self._restore_vectors(tx)
                raise
            self._transaction = None
            session.close()
            for kind, index in self._vectors.items():
                if index.needs_compaction:
                    self._compact(kind)

    def _restore_vectors(self, tx: _Transaction) -> None:
        """After a rollback: the FAISS entries the transaction touched go back to the database's."""
        if self.shared:  # no FAISS: the database rollback restored everything
            return
        for kind, touched in tx.touched.items():
            index = self._vectors[kind]
            if touched:
                wanted = np.asarray(sorted(touched), np.int64)
                ids, vectors = read_vectors_by_id(self.engine, kind, self.dim, wanted)
                index.apply(
                    remove=np.setdiff1d(wanted, ids), ids=ids, vectors=normalize_rows(vectors, self.dim)
                )
            index.generation = tx.generations[kind]

    def _write(self, work: Callable[[Session, writes.VectorDelta], T]) -> T:
        """Run ``work`` in one transaction, commit, then apply its FAISS delta, under the write lock.

        Inside :meth:`transaction`, ``work`` runs in the open transaction instead, and FAISS gets
        the delta at once (uncommitted; restored on rollback).
        """
        with self._write_lock:
            tx = self._current()
            if tx is not None:
                return self._write_in(tx, work)
            delta = writes.VectorDelta()
            try:
                with Session(self.engine, expire_on_commit=False) as session, session.begin():
                    if self.shared:
                        postgres.lock_entities(session)
                    result = work(session, delta)
                    generation = self._bump(session, delta)
            except SQLAlchemyError as exc:
                raise database_error(exc) from exc
            if delta and not self.shared:
                self._apply(delta, generation)
            return result

    def _bump(self, session: Session, delta: writes.VectorDelta) -> int:
        """Record a write's changes in the meta table: the vector generation that FAISS files are
        checked against (embedded), or the entity change log other processes sync from (shared)."""
        if self.shared:
            if changed := delta.changed_entities():
                postgres.log_entity_changes(session, changed)
            return 0
        return bump_generation(session) if delta else 0

    def _write_in(self, tx: _Transaction, work: Callable[[Session, writes.VectorDelta], T]) -> T:
        if tx.failed:
            raise StoreError("an earlier write of this transaction failed; it will be rolled back")
        delta = writes.VectorDelta()
        tx.session.expunge_all()
        try:
            if self.shared:
                postgres.lock_entities(tx.session)
            result = work(tx.session, delta)
            tx.session.flush()
            generation = self._bump(tx.session, delta)
            tx.session.flush()
        except BaseException as exc:
            tx.failed = True  # the session holds part of this write: only a rollback undoes it
            if isinstance(exc, SQLAlchemyError):
                raise database_error(exc) from exc
            raise
        finally:
            tx.session.expunge_all()
        if delta and not self.shared:
            tx.record(delta)
            self._apply(delta, generation, compact=False)  # a rebuild would read committed rows only
        return result

    def _apply(self, delta: writes.VectorDelta, generation: int, *, compact: bool = True) -> None:
        mentions = self._vectors["mentions"]
        vectors = np.concatenate(delta.mention_vectors) if delta.mention_vectors else None
        mentions.apply(
            remove=np.asarray(delta.mention_remove, np.int64),
            ids=np.asarray(delta.mention_ids, np.int64),
            vectors=vectors,
        )
        entities = self._vectors["entities"]
        upsert_ids = sorted(set(delta.entity_upsert) - delta.entity_remove)
        entities.apply(
            remove=np.asarray(sorted(delta.entity_remove), np.int64),
            ids=np.asarray(upsert_ids, np.int64),
            vectors=np.stack([delta.entity_upsert[i] for i in upsert_ids]) if upsert_ids else None,
        )
        for kind, index in self._vectors.items():
            index.generation = generation
            if compact and index.needs_compaction:
                self._compact(kind)

    def _compact(self, kind: str) -> None:
        """Rebuild an index heavy with tombstones; the write before it is committed, so a failure
        here must not surface as a failed write: the old index stays in use and is still correct."""
        try:
            self.rebuild_vectors([kind])
        except Exception:
            logger.warning("compacting the %s index failed; it stays as it is", kind, exc_info=True)

    # -- documents -----------------------------------------------------------------------------

    def add_document(self, doc: DocumentCreate) -> AddResult:
        """Store a document with its mentions and entity links in one transaction.

        Adding an external id again replaces the earlier version (its mentions, their
        vectors, and the counts, centroids and aliases they contributed) in the same
        transaction. Entities named by ``entity_id`` must exist; ``NewEntity`` assignments
        create entities.

        Args:
            doc (DocumentCreate): The document.

        Returns:
            AddResult: The stored document and what changed.

        Raises:
            InvalidInput: Bad offsets, vectors or assignments; nothing is written.
            NotFound: An ``entity_id`` does not exist; nothing is written.
        """

        def work(session: Session, delta: writes.VectorDelta) -> AddResult:
            document_id, replaced, created, removed = writes.add_document(session, doc, self.dim, delta)
            session.flush()
            stored = reads.document_public(reads.get_document(session, document_id=document_id))
            return AddResult(stored, replaced, created, removed)

        return self._write(work)

    def add_documents(self, docs: Sequence[DocumentCreate]) -> list[AddResult]:
        """Add several documents in one transaction: all of them are stored, or none."""
        with self.transaction():
            return [self.add_document(doc) for doc in docs]

    def get_document(
        self, document_id: int | None = None, *, external_id: str | None = None
    ) -> DocumentPublic:
        """Fetch a document with its mentions by id or external id. Raises :class:`NotFound`."""
        with self._read() as session:
            return reads.document_public(
                reads.get_document(session, document_id=document_id, external_id=external_id)
            )

    def delete_document(self, document_id: int | None = None, *, external_id: str | None = None) -> list[int]:
        """Delete a document, its mentions and their vectors; update the entities they linked to.

        Returns:
            list[int]: Entities removed because they had no mentions left.

        Raises:
            NotFound: No such document.
        """

        def work(session: Session, delta: writes.VectorDelta) -> list[int]:
            document = reads.get_document(session, document_id=document_id, external_id=external_id)
            return writes.delete_document(session, document, self.dim, delta)

        return self._write(work)

    # -- entities ------------------------------------------------------------------------------

    def upsert_entity(self, data: EntityCreate, *, entity_id: int | None = None) -> EntityPublic:
        """Create or update an entity and register its aliases (see :func:`index.writes.upsert_entity`)."""

        def work(session: Session, delta: writes.VectorDelta) -> EntityPublic:
            written = writes.upsert_entity(session, data, entity_id, self.dim, delta)[0]
            delta.entity_touched.add(written)
            return _entity_after(session, written)

        return self._write(work)

    def import_entities(self, items: Sequence[KnownEntity]) -> list[tuple[EntityPublic, bool]]:
        """Create or update knowledge-base entities by ``external_id``, in one transaction.

        Idempotent: importing the same items again changes nothing but ``updated_at``; a changed
        name, label, alias list, description or metadata replaces the old one while mentions stay
        linked (see :func:`index.writes.import_entities`).

        Returns:
            list[tuple[EntityPublic, bool]]: Per item, in order, the entity and whether it was created.

        Raises:
            InvalidInput: An item is invalid (the message names it); nothing is written.
        """

        def work(session: Session, delta: writes.VectorDelta) -> list[tuple[EntityPublic, bool]]:
            written = writes.import_entities(session, items, self.dim, delta)
            session.flush()
            session.expire_all()
            found: dict[int, EntityPublic] = {}
            ids = [entity_id for entity_id, _ in written]
            for at in range(0, len(ids), writes.CHUNK):
                found.update(reads.get_entities(session, ids[at : at + writes.CHUNK]))
            return [(found[entity_id], created) for entity_id, created in written]

        return self._write(work)

    def entity_by_external_id(self, external_id: str) -> EntityPublic:
        """The knowledge-base entity with this external id. Raises :class:`NotFound`."""
        with self._read() as session:
            entity_id = session.scalar(select(Entity.id).where(Entity.external_id == external_id))
            if entity_id is None:
                raise NotFound("entity", external_id)
            return reads.get_entity(session, entity_id)

    def add_alias(self, entity_id: int, surface: str, *, count: int = 1) -> EntityPublic:
        """Count ``count`` more uses of ``surface`` for an entity (normalized; created if new)."""

        def work(session: Session, delta: writes.VectorDelta) -> EntityPublic:
            writes.add_alias(session, entity_id, surface, count)
            delta.entity_touched.add(entity_id)
            return _entity_after(session, entity_id)

        return self._write(work)

    def get_entity(self, entity_id: int) -> EntityPublic:
        """Fetch an entity with its aliases. Raises :class:`NotFound`."""
        with self._read() as session:
            return reads.get_entity(session, entity_id)

    def get_entities(self, entity_ids: Sequence[int]) -> dict[int, EntityPublic]:
        """Fetch several entities with their aliases in one read; ids that do not exist are left out."""
        with self._read() as session:
            return reads.get_entities(session, entity_ids)

    def list_entities(
        self, *, after_id: int = 0, limit: int = 1000, labels: Sequence[str] | None = None
    ) -> list[tuple[EntityPublic, np.ndarray | None]]:
        """A page of entities in id order, each with its normalized centroid (or ``None``).

        Keyset paging: pass the last id of a page as ``after_id`` for the next; an empty page ends.

        >>> page = store.list_entities(limit=500)  # doctest: +SKIP
        >>> next_page = store.list_entities(after_id=page[-1][0].id, limit=500)  # doctest: +SKIP
        """
        with self._read() as session:
            rows = reads.list_entities(session, after_id=after_id, limit=limit, labels=labels)
        return [
            (entity, None if blob is None else normalize_rows(from_blob(blob, self.dim), self.dim)[0])
            for entity, blob in rows
        ]

    def entities_with_vectors(
        self, entity_ids: Iterable[int]
    ) -> dict[int, tuple[EntityPublic, np.ndarray | None]]:
        """Entities by id, each with its normalized centroid (or ``None``), in two queries; ids that do
        not exist are absent. For caches that refresh many entities at once (the linker's)."""
        with self._read() as session:
            rows = reads.get_entities_with_centroids(session, entity_ids)
        return {
            i: (entity, None if blob is None else normalize_rows(from_blob(blob, self.dim), self.dim)[0])
            for i, (entity, blob) in rows.items()
        }

    def nearest_entity_ids(self, vector: Any, k: int) -> list[int]:
        """Ids of the ``k`` entities whose centroids are nearest ``vector``, best first, without reading
        their rows: what candidate generation needs (``similar_entities`` returns whole entities)."""
        query = normalize_rows(vector, self.dim, what="query vector")
        if k < 1:
            raise InvalidInput("k must be >= 1", k=k)
        if self.shared:
            return [i for _, i, _ in self._sql_search("entities", query, k, None, None)]
        index = self._vectors["entities"]
        if index.ntotal == 0:
            return []
        _, ids = index.search(query, min(k, index.ntotal))
        return [int(i) for i in ids[0] if i >= 0]

    def labels(self) -> list[str]:
        """The distinct labels of stored entities and mentions, sorted."""
        with self._read() as session:
            found = set(session.scalars(select(Entity.label).distinct()))
            found.update(session.scalars(select(Mention.label).distinct()))
        return sorted(found)

    def mention_labels(self, entity_ids: Iterable[int]) -> dict[int, dict[str, int]]:
        """How many mentions of each entity carry each label (entities without mentions left out).

        >>> store.mention_labels([7])  # doctest: +SKIP
        {7: {'Politician': 5, 'Artist': 2}}
        """
        ids = sorted(set(entity_ids))
        out: dict[int, dict[str, int]] = {}
        with self._read() as session:
            for at in range(0, len(ids), 500):
                rows = session.execute(
                    select(Mention.entity_id, Mention.label, func.count())
                    .where(Mention.entity_id.in_(ids[at : at + 500]))
                    .group_by(Mention.entity_id, Mention.label)
                )
                for entity_id, label, count in rows:
                    out.setdefault(entity_id, {})[label] = int(count)
        return out

    def entity_vector(self, entity_id: int) -> np.ndarray | None:
        """The entity's normalized centroid, or ``None`` when it has none."""
        with self._read() as session:
            blob = session.scalar(select(Entity.centroid).where(Entity.id == entity_id))
            if blob is None and session.get(Entity, entity_id) is None:
                raise NotFound("entity", entity_id)
        return None if blob is None else normalize_rows(from_blob(blob, self.dim), self.dim)[0]

    def search_entities(
        self,
        query: str,
        *,
        mode: str = "prefix",
        labels: Sequence[str] | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[EntityPublic]:
        """Entities whose normalized name or alias matches ``query`` (``prefix``/``substring``/``exact``)."""
        with self._read() as session:
            return reads.search_entities(session, query, mode=mode, labels=labels, limit=limit, offset=offset)

    def search_page(
        self,
        query: str,
        *,
        mode: str = "prefix",
        labels: Sequence[str] | None = None,
        limit: int = 20,
        offset: int = 0,
        after: tuple[int, int] | None = None,
    ) -> tuple[list[EntityPublic], int]:
        """A page of :meth:`search_entities` and the number of matches over all pages, read together.

        ``after`` is the ``(mention_count, id)`` of the previous page's last entity (keyset paging).
        """
        with self._read() as session:
            page = reads.search_entities(
                session, query, mode=mode, labels=labels, limit=limit, offset=offset, after=after
            )
            return page, reads.count_entities(session, query, mode=mode, labels=labels)

    def merge_entities(self, target_id: int, source_id: int) -> EntityPublic:
        """Merge ``source_id`` into ``target_id``; mentions, aliases and vectors follow, the source goes."""

        def work(session: Session, delta: writes.VectorDelta) -> EntityPublic:
            writes.merge_entities(session, target_id, source_id, self.dim, delta)
            delta.entity_touched.update((target_id, source_id))
            return _entity_after(session, target_id)

        return self._write(work)

    def split_entity(
        self, entity_id: int, mention_ids: Sequence[int], *, name: str, label: str
    ) -> EntityPublic:
        """Move ``mention_ids`` of ``entity_id`` to a new entity called ``name``; return the new entity.

        Raises:
            InvalidInput: A mention does not belong to ``entity_id``.
            NotFound: The entity or a mention does not exist.
        """

        def work(session: Session, delta: writes.VectorDelta) -> EntityPublic:
            if session.get(Entity, entity_id) is None:
                raise NotFound("entity", entity_id)
            new_id = writes.reassign_mentions(
                session,
                list(mention_ids),
                self.dim,
                delta,
                new_entity=NewEntity(name, label),
                from_entity=entity_id,
            )[0]
            delta.entity_touched.update((entity_id, new_id))
            return _entity_after(session, new_id)

        return self._write(work)

    def link_mentions(self, mention_ids: Sequence[int], entity_id: int) -> EntityPublic:
        """Link mentions (linked elsewhere or not at all) to an existing entity."""

        def work(session: Session, delta: writes.VectorDelta) -> EntityPublic:
            _, removed = writes.reassign_mentions(
                session, list(mention_ids), self.dim, delta, entity_id=entity_id
            )
            delta.entity_touched.update([entity_id, *removed])
            return _entity_after(session, entity_id)

        return self._write(work)

    def delete_entity(self, entity_id: int) -> int:
        """Delete an entity with its mentions and aliases (documents stay); returns the mentions deleted.

        Raises:
            NotFound: No such entity.
        """
        return self._write(lambda session, delta: writes.delete_entity(session, entity_id, delta))

    # -- browsing (paged reads for the web page, issue 17) -------------------------------------

    def list_documents(
        self, *, limit: int = 20, offset: int = 0, source: str | None = None, entity_id: int | None = None
    ) -> tuple[list[browse.DocumentSummary], int]:
        """A page of documents, newest first, without their texts, and the number over all pages."""
        with self._read() as session:
            return browse.list_documents(
                session, limit=limit, offset=offset, source=source, entity_id=entity_id
            )

    def entities_page(
        self,
        *,
        sort: str = "mentions",
        labels: Sequence[str] | None = None,
        limit: int = 20,
        offset: int = 0,
        after: tuple[int, int] | None = None,
    ) -> tuple[list[EntityPublic], int]:
        """A page of all entities in ``sort`` order and their number (:func:`index.browse.entities_page`)."""
        with self._read() as session:
            return browse.entities_page(
                session, sort=sort, labels=labels, limit=limit, offset=offset, after=after
            )

    def entity_mentions(
        self, entity_id: int, *, limit: int = 20, offset: int = 0, context: int = 160
    ) -> tuple[list[browse.MentionContext], int]:
        """A page of an entity's mentions with text around each, newest first, and their number."""
        with self._read() as session:
            return browse.entity_mentions(session, entity_id, limit=limit, offset=offset, context=context)

    # -- similarity ----------------------------------------------------------------------------

    def _query_vector(self, vector: Any, entity_id: int | None) -> np.ndarray:
        if (vector is None) == (entity_id is None):
            raise InvalidInput("give exactly one of vector or entity_id")
        if vector is not None:
            return normalize_rows(vector, self.dim, what="query vector")
        found = self.entity_vector(int(entity_id))  # type: ignore[arg-type]
        if found is None:
            raise InvalidInput("the entity has no vector to search by", entity_id=entity_id)
        return found[None, :]

    def similar_entities(
        self,
        vector: Any = None,
        *,
        entity_id: int | None = None,
        k: int = 10,
        labels: Sequence[str] | None = None,
    ) -> list[EntityHit]:
        """Entities closest to ``vector``, or to the centroid of ``entity_id`` (itself excluded).

        Args:
            vector (array-like | None): Query embedding (normalized here).
            entity_id (int | None): Use this entity's centroid as the query instead.
            k (int): Number of hits. Defaults to 10.
            labels (Sequence[str] | None): Keep only entities with these labels.

        Returns:
            list[EntityHit]: Best first; ``score`` is cosine similarity.
        """
        query = self._query_vector(vector, entity_id)
        if self.shared:
            found = self._sql_search("entities", query, k, labels, entity_id, reads.ENTITY_ROW)
            return [EntityHit(score, reads.entity_from_row(i, row)) for score, i, row in found]
        index = self._vectors["entities"]

        def keep(ids: list[int]) -> dict[int, EntityPublic]:
            with self._read() as session:
                found = reads.get_entities(session, ids)
            return {i: e for i, e in found.items() if not labels or e.label in labels}

        return [
            EntityHit(score, entity)
            for score, entity in reads.search_filtered(index, query, k, keep, skip=entity_id)
        ]

    def similar_mentions(
        self,
        vector: Any = None,
        *,
        entity_id: int | None = None,
        k: int = 10,
        labels: Sequence[str] | None = None,
    ) -> list[MentionHit]:
        """Mentions closest to ``vector`` or to the centroid of ``entity_id``, with label filters."""
        query = self._query_vector(vector, entity_id)
        if self.shared:
            found = self._sql_search("mentions", query, k, labels, None, reads.MENTION_ROW)
            return [MentionHit(score, *reads.mention_from_row(row)) for score, _, row in found]
        index = self._vectors["mentions"]

        def keep(ids: list[int]) -> dict[int, Any]:
            with self._read() as session:
                return reads.mentions_with_documents(session, ids, labels)

        return [
            MentionHit(score, mention, external_id)
            for score, (mention, external_id) in reads.search_filtered(index, query, k, keep)
        ]

    def _sql_search(
        self,
        kind: str,
        query: np.ndarray,
        k: int,
        labels: Sequence[str] | None,
        skip: int | None,
        rows: postgres.RowColumns | None = None,
    ) -> list[tuple[float, int, tuple]]:
        """:func:`index.postgres.search` in a read session of its own: outside any transaction block
        (autocommit) unless the search must change settings for its query."""
        if k < 1:
            raise InvalidInput("k must be >= 1", k=k)
        ef_search, iterative = self.settings.ef_search, self._iterative_scan
        autocommit = not postgres.needs_transaction(k, ef_search, iterative)
        with self._read(autocommit=autocommit) as session:
            return postgres.search(
                session,
                kind,
                query[0],
                k,
                labels=labels,
                skip=skip,
                ef_search=ef_search,
                iterative=iterative,
                rows=rows,
            )

    # -- many processes (shared store) ---------------------------------------------------------

    def lock_entities(self) -> int:
        """Hold the store-wide entity lock until the open :meth:`transaction` ends; return the
        entity generation.

        On a shared store every write takes this lock before it writes, so a linking decision
        made under it (candidates read, then the document written) sees every earlier write of
        every process, and no other process changes entities until it commits. The embedded
        store has one owner process and serializes writes itself: there it returns 0.

        Raises:
            StoreError: No transaction is open in this thread (the lock would end at once).
        """
        if not self.shared:
            return 0
        tx = self._current()
        if tx is None:
            raise StoreError("lock_entities needs an open Store.transaction()")
        try:
            return postgres.lock_entities(tx.session)
        except SQLAlchemyError as exc:
            tx.failed = True
            raise database_error(exc) from exc

    def entity_generation(self) -> int:
        """The entity generation now (shared stores; 0 on the embedded store)."""
        if not self.shared:
            return 0
        with self._read() as session:
            return postgres.entity_generation(session)

    def entity_changes(self, since: int) -> tuple[int, set[int] | None]:
        """The entity generation now, and the entities created, changed or removed after ``since``.

        Caches of entities (the linker's) call this before acting: equal generations mean nothing
        changed anywhere. Inside a transaction it includes the transaction's own writes. ``None``
        instead of the set when the change log was pruned past ``since`` (it keeps the last
        ``index.postgres.CHANGE_LOG_RETAIN`` generations): the cache must reload every entity. On
        the embedded store (one owner) it returns ``(0, set())``.
        """
        if not self.shared:
            return 0, set()
        with self._read() as session:
            return postgres.entity_changes(session, since)

    # -- introspection -------------------------------------------------------------------------

    def stats(self) -> StoreStats:
        """Counts and FAISS configuration."""
        with self._read() as session:
            count = lambda model: session.scalar(select(func.count()).select_from(model)) or 0  # noqa: E731
            documents, mentions, entities = count(Document), count(Mention), count(Entity)
            if self.shared:
                vector_counts = {kind: len(postgres.vector_ids(session, kind)) for kind in KINDS}
        if self.shared:
            return StoreStats(
                documents=documents,
                mentions=mentions,
                entities=entities,
                entity_vectors=vector_counts["entities"],
                mention_vectors=vector_counts["mentions"],
                factory=self.settings.factory,
                effective_factories={kind: "pgvector-hnsw" for kind in KINDS},
                dim=self.dim,
            )
        return StoreStats(
            documents=documents,
            mentions=mentions,
            entities=entities,
            entity_vectors=self._vectors["entities"].ntotal,
            mention_vectors=self._vectors["mentions"].ntotal,
            factory=self.settings.factory,
            effective_factories={kind: index.effective_factory for kind, index in self._vectors.items()},
            dim=self.dim,
        )

    def faiss_ids(self, kind: str) -> np.ndarray:
        """Sorted ids held by the ``"entities"`` or ``"mentions"`` FAISS index."""
        if kind not in KINDS:
            raise InvalidInput(f"unknown vector kind {kind!r}; expected one of {KINDS}")
        if self.shared:  # what the pgvector index can return: the rows with a vector
            with self._read() as session:
                return postgres.vector_ids(session, kind)
        return self._vectors[kind].ids()

    def check(self) -> ConsistencyReport:
        """Check the database (``PRAGMA integrity_check`` on SQLite), counts, aliases, centroids, and
        FAISS against the DB (embedded store)."""
        with self._write_lock:
            return check_consistency(self.engine, None if self.shared else self._vectors, self.dim)


def database_error(exc: SQLAlchemyError) -> StoreError:
    """A failed write as a :class:`StoreError`; :class:`StoreConflict` when another process's
    concurrent write caused it (deadlock, serialization failure, a row it removed meanwhile)."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if code in ("40P01", "40001", "23503"):
        return StoreConflict("a concurrent write got in the way; nothing was written", error=str(exc))
    return StoreError("database write failed; nothing was written", error=str(exc))


def _entity_after(session: Session, entity_id: int) -> EntityPublic:
    """The entity as the write that is still open leaves it (read in its session: the result a
    caller gets is the committed state, and a failing read rolls the write back too)."""
    session.flush()
    session.expire_all()  # bulk UPDATEs bypass the identity map
    return reads.get_entity(session, entity_id)
