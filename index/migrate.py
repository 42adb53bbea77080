"""Copy a whole store to another database, ids kept, and prove the copy equal (``spanlink migrate``).

The usual move is from the embedded store (SQLite) to the shared one (PostgreSQL + pgvector), but
any direction works: rows are read through the same SQLAlchemy models on both sides. The source is
read in one transaction (a consistent snapshot even while its owner keeps writing), the target
must be empty (a half-merged store would be worse than none), and every id is kept, so entity ids
held by callers stay valid. Afterwards the target's id sequences continue after the source's
highest id ever handed out (``sqlite_sequence``), so ids are still never reused.

Verification reads both sides again: row counts and a SHA-256 per table over every column of
every row in id order, with values in one canonical form (timestamps in UTC, JSON with sorted
keys, vectors as float32 bytes), so a lossy copy of any value is caught.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from index import postgres
from index.engine import create_store_engine
from index.errors import InvalidInput, StoreError
from index.schema import META_DIM, META_SCHEMA_VERSION, SCHEMA_VERSION, Alias, Document, Entity, Mention, Meta
from index.settings import StoreSettings

TABLES: tuple[Table, ...] = (
    Document.__table__,  # type: ignore[assignment]
    Entity.__table__,  # type: ignore[assignment]
    Mention.__table__,  # type: ignore[assignment]
    Alias.__table__,  # type: ignore[assignment]
)
"""What a migration copies, parents first (foreign keys). The meta table is the target's own, the
entity change log starts empty (no process has a cache of the new store yet)."""

CHUNK_ROWS = 2000


@dataclass(frozen=True)
class TableCheck:
    """One table after a migration: row counts and checksums on both sides."""

    table: str
    source_rows: int
    target_rows: int
    source_sha256: str
    target_sha256: str

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.source_sha256 == self.target_sha256


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`migrate` copied and how the copy was verified."""

    dim: int
    tables: list[TableCheck]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dim": self.dim,
            "tables": {
                c.table: {
                    "rows": c.target_rows,
                    "source_rows": c.source_rows,
                    "sha256": c.target_sha256,
                    "source_sha256": c.source_sha256,
                    "ok": c.ok,
                }
                for c in self.tables
            },
        }


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


def table_checksum(conn: Connection, table: Table) -> tuple[int, str]:
    """Rows and SHA-256 of a table, over every column, rows in primary-key order."""
    digest = hashlib.sha256()
    rows = 0
    order = list(table.primary_key.columns)
    result = conn.execution_options(yield_per=CHUNK_ROWS).execute(select(table).order_by(*order))
    for row in result:
        digest.update(json.dumps([_canonical(v) for v in row], sort_keys=True, default=str).encode())
        digest.update(b"\n")
        rows += 1
    return rows, digest.hexdigest()


def _source_meta(conn: Connection, url: str) -> int:
    from sqlalchemy import inspect

    try:
        if not inspect(conn).has_table(Meta.__tablename__):
            raise InvalidInput("the source holds no spanlink store", url=url)
        meta = {key: value for key, value in conn.execute(select(Meta.key, Meta.value))}
    except SQLAlchemyError as exc:  # not a database at all
        raise InvalidInput("the source holds no spanlink store", url=url, error=str(exc)) from exc
    if not meta:
        raise InvalidInput("the source holds no spanlink store", url=url)
    if meta.get(META_SCHEMA_VERSION) != str(SCHEMA_VERSION):
        raise StoreError(
            "the source was written by another spanlink schema version; upgrade it first "
            "(`spanlink upgrade`) or copy it with that version",
            found=meta.get(META_SCHEMA_VERSION),
            expected=SCHEMA_VERSION,
            url=url,
        )
    return int(meta[META_DIM])


def _highest_ids(conn: Connection) -> dict[str, int]:
    """The highest id each table ever handed out (SQLite AUTOINCREMENT remembers deleted ones)."""
    out = {table.name: conn.execute(select(func.max(table.c.id))).scalar() or 0 for table in TABLES}
    if conn.engine.url.get_backend_name() == "sqlite":
        for name, seq in conn.execute(text("SELECT name, seq FROM sqlite_sequence")):
            if name in out:
                out[name] = max(out[name], int(seq))
    elif conn.engine.url.get_backend_name() == "postgresql":
        for table in TABLES:
            last = conn.execute(
                text(f"SELECT last_value, is_called FROM {_sequence(conn, table.name)}")
            ).one()
            out[table.name] = max(out[table.name], int(last[0]) if last[1] else 0)
    return out


def _sequence(conn: Connection, table: str) -> str:
    return conn.execute(select(func.pg_get_serial_sequence(table, "id"))).scalar_one()


def _continue_ids(conn: Connection, highest: dict[str, int]) -> None:
    """Make the target hand out ids after ``highest`` (never one the source already used)."""
    backend = conn.engine.url.get_backend_name()
    for name, last in highest.items():
        if last <= 0:
            continue
        if backend == "postgresql":
            conn.execute(select(func.setval(_sequence(conn, name), last, True)))
        elif backend == "sqlite":
            conn.execute(text("DELETE FROM sqlite_sequence WHERE name = :n"), {"n": name})
            conn.execute(
                text("INSERT INTO sqlite_sequence (name, seq) VALUES (:n, :s)"), {"n": name, "s": last}
            )


def _chunks(conn: Connection, table: Table) -> Iterator[list[dict[str, Any]]]:
    result = conn.execution_options(yield_per=CHUNK_ROWS).execute(select(table).order_by(table.c.id))
    for part in result.mappings().partitions(CHUNK_ROWS):
        yield [dict(row) for row in part]


def _count(conn: Connection, table: Table) -> int:
    return conn.execute(select(func.count()).select_from(table)).scalar() or 0


def open_engine(target: str | os.PathLike[str]) -> Engine:
    return create_store_engine(target, StoreSettings())[0]


def migrate(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    progress: Callable[[int, int], None] | None = None,
    settings: StoreSettings | None = None,
) -> MigrationReport:
    """Copy the store at ``source`` into the empty database ``target`` and verify the copy.

    Args:
        source (str | PathLike): SQLite file or SQLAlchemy URL of the store to copy.
        target (str | PathLike): SQLite file or URL of an empty database (created as a store here).
        progress (Callable[[int, int], None] | None): Called with (rows copied now, rows in all).
        settings (StoreSettings | None): The target's settings; on PostgreSQL ``hnsw_m`` and
            ``ef_construction`` shape the HNSW indexes built after the copy.

    Returns:
        MigrationReport: Counts and checksums of both sides, table by table (``ok`` when equal).

    Raises:
        InvalidInput: The target already holds documents, entities, mentions or aliases.
        StoreError: The source is no store of this schema version, or a database fails.
    """
    from index.store import Store

    source_engine = open_engine(source)
    source_url = source_engine.url.render_as_string(hide_password=True)
    try:
        try:
            src = source_engine.connect()
        except SQLAlchemyError as exc:  # e.g. a file that is no SQLite database
            raise InvalidInput("the source holds no spanlink store", url=source_url, error=str(exc)) from exc
        with src:
            src.begin()  # one snapshot for the copy
            dim = _source_meta(src, source_url)
            with Store.open(target, dim=dim, settings=settings) as store:
                target_engine = store.engine
                with target_engine.connect() as dst:
                    counts = {t.name: _count(dst, t) for t in TABLES}
                if any(counts.values()):
                    raise InvalidInput(
                        "the target is not empty; migrate into a new database",
                        rows=counts,
                        url=target_engine.url.render_as_string(hide_password=True),
                    )
                totals = {t.name: _count(src, t) for t in TABLES}
                with target_engine.begin() as dst:
                    if store.shared:  # one HNSW build after the copy, not an insert per row
                        postgres.drop_vector_indexes(dst)
                    for table in TABLES:
                        for rows in _chunks(src, table):
                            dst.execute(insert(table), rows)
                            if progress is not None:
                                progress(len(rows), sum(totals.values()))
                    _continue_ids(dst, _highest_ids(src))
                    if store.shared:
                        postgres.create_vector_indexes(
                            dst, store.settings.ef_construction, store.settings.hnsw_m
                        )
                checks = []
                with target_engine.connect() as dst:
                    for table in TABLES:
                        source_rows, source_sum = table_checksum(src, table)
                        target_rows, target_sum = table_checksum(dst, table)
                        checks.append(
                            TableCheck(table.name, source_rows, target_rows, source_sum, target_sum)
                        )
                if not store.shared:  # the FAISS files of an embedded target: built from the copy
                    store.rebuild_vectors()
    finally:
        source_engine.dispose()
    return MigrationReport(dim, checks)
