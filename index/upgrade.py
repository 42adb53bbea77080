"""Bring a store written by an older schema version up to :data:`index.schema.SCHEMA_VERSION`, in place.

``Store.open`` never alters a store of another version (it refuses it with ``SchemaMismatch``): a
silent change could break an older spanlink still using the file. Upgrading is an explicit step
(``spanlink upgrade``), one transaction per version step on both backends (SQLite and PostgreSQL
both run ``ALTER TABLE`` inside a transaction), so a failure leaves the store as it was.

>>> upgrade("data/spanlink.db")  # doctest: +SKIP
UpgradeReport(found=1, version=2, steps=['1 -> 2: entities.external_id, ...'])
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Column, Connection, inspect, select, update
from sqlalchemy.exc import SQLAlchemyError

from index.engine import create_store_engine
from index.errors import InvalidInput, SchemaMismatch, StoreError
from index.ownership import acquire
from index.schema import META_SCHEMA_VERSION, SCHEMA_VERSION, Alias, Entity, Meta
from index.settings import StoreSettings


def _add_column(conn: Connection, column: Column) -> None:  # type: ignore[type-arg]
    """``ALTER TABLE ... ADD COLUMN`` for a column of the current models (type compiled per backend)."""
    kind = column.type.compile(dialect=conn.dialect)
    default = ""
    if column.server_default is not None:
        default = " NOT NULL DEFAULT " + ("0" if conn.dialect.name == "sqlite" else "false")
    conn.exec_driver_sql(f"ALTER TABLE {column.table.name} ADD COLUMN {column.name} {kind}{default}")


def _v1_to_v2(conn: Connection) -> str:
    """Issue 18: knowledge-base entities (external id, description, metadata, KB vector, KB aliases)."""
    added = []
    existing = {c["name"] for c in inspect(conn).get_columns("entities")}
    for attribute in (Entity.external_id, Entity.description, Entity.meta, Entity.kb_vector):
        column = attribute.property.columns[0]
        if column.name not in existing:
            _add_column(conn, column)
            added.append(f"entities.{column.name}")
    if "kb" not in {c["name"] for c in inspect(conn).get_columns("aliases")}:
        _add_column(conn, Alias.__table__.c.kb)
        added.append("aliases.kb")
    index = next(ix for ix in Entity.__table__.indexes if ix.name == "ix_entities_external_id")
    index.create(conn, checkfirst=True)
    return "1 -> 2: " + ", ".join([*added, "unique index on entities.external_id"])


STEPS: dict[int, Callable[[Connection], str]] = {1: _v1_to_v2}
"""From version (key) to the next one; each returns what it changed."""


@dataclass(frozen=True)
class UpgradeReport:
    """What :func:`upgrade` did: the version found, the version now, and each step."""

    found: int
    version: int
    steps: list[str] = field(default_factory=list)


def upgrade(target: str | os.PathLike[str]) -> UpgradeReport:
    """Upgrade the store at ``target`` (SQLite file or SQLAlchemy URL) to the current schema version.

    Nothing happens to a store that is current already. Close every process using the store first
    (an embedded store's owner keeps its own idea of the tables).

    Raises:
        InvalidInput: ``target`` holds no spanlink store.
        StoreLocked: Another process owns this embedded store (stop it first).
        SchemaMismatch: The store is newer than this spanlink, or of a version it cannot upgrade.
        StoreError: The database fails (nothing was changed).
    """
    engine, db_path = create_store_engine(target, StoreSettings())
    url = engine.url.render_as_string(hide_password=True)
    try:
        ownership = acquire(db_path) if db_path is not None and db_path.exists() else None
    except BaseException:
        engine.dispose()
        raise
    try:
        try:
            with engine.begin() as conn:
                if not inspect(conn).has_table(Meta.__tablename__):
                    raise InvalidInput("no spanlink store there", url=url)
                found_text = conn.execute(select(Meta.value).where(Meta.key == META_SCHEMA_VERSION)).scalar()
        except SQLAlchemyError as exc:  # e.g. a file that is no database at all
            raise InvalidInput("no spanlink store there", url=url, error=str(exc)) from exc
        if found_text is None or not found_text.isdigit():
            raise InvalidInput("no spanlink store there (no schema version)", url=url)
        found = version = int(found_text)
        if found > SCHEMA_VERSION or (found < SCHEMA_VERSION and found not in STEPS):
            raise SchemaMismatch(
                f"cannot upgrade schema version {found} to {SCHEMA_VERSION} with this spanlink",
                found=found,
                expected=SCHEMA_VERSION,
                url=url,
            )
        steps = []
        while version < SCHEMA_VERSION:
            with engine.begin() as conn:  # one transaction per step: all of it, or nothing
                steps.append(STEPS[version](conn))
                version += 1
                conn.execute(update(Meta).where(Meta.key == META_SCHEMA_VERSION).values(value=str(version)))
        return UpgradeReport(found, version, steps)
    except SQLAlchemyError as exc:
        raise StoreError(
            "upgrading the store failed; it was left as it was", url=url, error=str(exc)
        ) from exc
    finally:
        engine.dispose()
        if ownership is not None:
            ownership.release()
