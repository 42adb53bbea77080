"""SQLAlchemy 2.x models: documents, mentions, entities, aliases, and the store's metadata.

The models are portable across SQLAlchemy backends (SQLite by default, PostgreSQL for scale):
vectors are :class:`VectorColumn` columns, little-endian float32 bytes in Python on every backend
(a ``BLOB`` in SQLite, a pgvector ``vector`` in PostgreSQL, converted in that one type), and user
metadata is the generic ``JSON`` type.

The schema version is recorded in ``spanlink_meta`` and checked on open
(:func:`check_or_init_meta`); bump :data:`SCHEMA_VERSION` with every incompatible change.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.types import TypeDecorator, UserDefinedType

from index.errors import SchemaMismatch

SCHEMA_VERSION = 2
"""Version of the table layout below; stored in ``spanlink_meta`` under ``schema_version``.

2 (issue 18, knowledge bases): ``entities.external_id`` (unique when set), ``description``,
``metadata``, ``kb_vector``, and ``aliases.kb``. ``index.upgrade`` (``spanlink upgrade``) brings a
version-1 store up to it in place."""


def utcnow() -> datetime:
    """Timezone-aware current time in UTC (the default of every timestamp column)."""
    return datetime.now(timezone.utc)


class _PgVector(UserDefinedType[Any]):
    """pgvector's ``vector`` without a size: the size is set per store when it is created
    (:mod:`index.postgres`), since one schema serves every vector size."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "vector"


def _pg_bind(value: Any) -> Any:
    if value is None:
        return None
    import numpy as np

    if isinstance(value, bytes | bytearray | memoryview):
        return np.frombuffer(value, dtype="<f4")
    return np.asarray(value, dtype=np.float32)  # psycopg binds it with pgvector's registered dumper


def _pg_result(value: Any) -> bytes | None:
    """pgvector values (``pgvector.Vector``, list[float], text or ndarray) -> float32 bytes."""
    if value is None:
        return None
    import numpy as np

    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    elif isinstance(value, str):
        value = np.array(value.strip("[]").split(","), dtype=np.float32)
    return np.asarray(value, dtype="<f4").tobytes()


class VectorColumn(TypeDecorator[bytes]):
    """A float32 vector as little-endian bytes in Python, on every backend.

    SQLite stores the bytes as a ``BLOB`` with no conversion at all (the processors below are
    ``None`` there, so the embedded store pays nothing). PostgreSQL stores a pgvector ``vector``,
    searchable by its HNSW index; the conversion both ways happens here and nowhere else.
    """

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_PgVector())
        return dialect.type_descriptor(LargeBinary())

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return _pg_bind
        return LargeBinary().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name == "postgresql":
            return _pg_result
        return LargeBinary().result_processor(dialect, coltype)


class Base(DeclarativeBase):
    """Declarative base of every spanlink table."""


# Ids are never reused (SQLite AUTOINCREMENT; PostgreSQL sequences never reuse either): FAISS,
# caches and callers hold ids, and a deleted entity's id must not come back as another entity.
_NO_ID_REUSE = {"sqlite_autoincrement": True}


class Meta(Base):
    """Key/value facts about the store itself: schema version, vector size, vector generation."""

    __tablename__ = "spanlink_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Document(Base):
    """One ingested text. ``external_id`` is the caller's key; re-adding it replaces the row."""

    __tablename__ = "documents"
    __table_args__ = _NO_ID_REUSE

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(512), unique=True)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(32), default=None)
    # "metadata" is reserved on declarative classes, hence the attribute name ``meta``.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    mentions: Mapped[list[Mention]] = relationship(
        back_populates="document",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Mention.start",
    )


class Entity(Base):
    """A real-world entity that mentions link to.

    ``centroid`` is the (unnormalized) mean of the L2-normalized vectors of its mentions, kept
    unnormalized so that adding mentions and merging entities are exact weighted means; FAISS
    receives the normalized centroid. An entity created without mentions may carry a vector
    given by the caller (e.g. from a knowledge base) with ``mention_count == 0``.
    """

    __tablename__ = "entities"
    __table_args__ = _NO_ID_REUSE

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(1024))
    name_norm: Mapped[str] = mapped_column(String(1024), index=True)
    label: Mapped[str] = mapped_column(String(64), index=True)
    mention_count: Mapped[int] = mapped_column(Integer, default=0)
    centroid: Mapped[bytes | None] = mapped_column(VectorColumn, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    # Knowledge-base entities (issue 18): the caller's id (unique when set; NULLs never collide on
    # SQLite or PostgreSQL), a description, metadata, and the vector made from the name, aliases and
    # description. A KB entity keeps its name, stays when its last mention goes (its centroid falls
    # back to ``kb_vector``) and keeps the aliases the KB gave (``Alias.kb``).
    external_id: Mapped[str | None] = mapped_column(String(512), default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON(none_as_null=True), default=None)
    kb_vector: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)

    aliases: Mapped[list[Alias]] = relationship(
        back_populates="entity",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Alias.count.desc()",
    )


class Mention(Base):
    """One entity mention: character span in its document, label, score, entity, vector."""

    __tablename__ = "mentions"
    __table_args__ = _NO_ID_REUSE

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    # start/end are SQL keywords on some backends; the column names avoid quoting surprises.
    start: Mapped[int] = mapped_column("start_char", Integer)
    end: Mapped[int] = mapped_column("end_char", Integer)
    text: Mapped[str] = mapped_column(String(1024))
    label: Mapped[str] = mapped_column(String(64), index=True)
    score: Mapped[float] = mapped_column(Float)
    entity_id: Mapped[int | None] = mapped_column(
        ForeignKey("entities.id", ondelete="SET NULL"), index=True, default=None
    )
    vector: Mapped[bytes] = mapped_column(VectorColumn)

    document: Mapped[Document] = relationship(back_populates="mentions")


class Alias(Base):
    """A normalized surface form of an entity and how many mentions used it."""

    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("entity_id", "norm", name="uq_alias_entity_norm"), _NO_ID_REUSE)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"), index=True)
    norm: Mapped[str] = mapped_column(String(1024))
    count: Mapped[int] = mapped_column(Integer, default=0)
    kb: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Given by the knowledge base: kept at count 0 (mention-made aliases go when their count does)."""

    entity: Mapped[Entity] = relationship(back_populates="aliases")


Index("ix_aliases_norm", Alias.norm)
Index("ix_entities_external_id", Entity.external_id, unique=True)


class EntityChange(Base):
    """One entity changed (created, updated, merged away, deleted) by the write of ``generation``.

    Written on shared stores only (PostgreSQL, several processes): every entity write bumps the
    ``entity_generation`` meta row and logs the entities it touched under the new value, so a
    process that cached generation ``g`` reloads exactly the entities changed after ``g``
    (:meth:`index.Store.entity_changes`). The meta row is bumped under its row lock, so the
    generations are in commit order and no change is ever skipped.
    """

    __tablename__ = "entity_changes"

    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity_id: Mapped[int] = mapped_column(Integer, primary_key=True)


META_SCHEMA_VERSION = "schema_version"
META_DIM = "dim"
META_GENERATION = "vector_generation"
"""Bumped in every transaction that changes vectors; the FAISS sidecar records the value it saw."""
META_ENTITY_GENERATION = "entity_generation"
"""Shared stores: bumped by every transaction that changes entities (see :class:`EntityChange`)."""


def read_meta(session: Session) -> dict[str, str]:
    """Return every ``spanlink_meta`` row as a dict."""
    return {row.key: row.value for row in session.scalars(select(Meta))}


def check_or_init_meta(session: Session, *, dim: int | None, url: str) -> int:
    """Record the schema version and vector size of a new store, or check them on an old one.

    Args:
        session (Session): Open session inside a transaction.
        dim (int | None): Requested vector size; ``None`` accepts the stored one.
        url (str): Database URL, for error messages.

    Returns:
        int: The vector size of the store.

    Raises:
        SchemaMismatch: The stored schema version or vector size differs from the requested one,
            or a new store is opened without ``dim``.
    """
    meta = read_meta(session)
    if not meta:
        if dim is None:
            raise SchemaMismatch("a new store needs the vector size: Store.open(path, dim=384)", url=url)
        session.add_all(
            [
                Meta(key=META_SCHEMA_VERSION, value=str(SCHEMA_VERSION)),
                Meta(key=META_DIM, value=str(dim)),
                Meta(key=META_GENERATION, value="0"),
                Meta(key=META_ENTITY_GENERATION, value="0"),
            ]
        )
        return dim
    found = meta.get(META_SCHEMA_VERSION)
    if found != str(SCHEMA_VERSION):
        older = found is not None and found.isdigit() and int(found) < SCHEMA_VERSION
        raise SchemaMismatch(
            f"the database was written by an older spanlink schema version ({found}, this is "
            f"{SCHEMA_VERSION}); upgrade it in place with `spanlink upgrade` (index.upgrade), nothing "
            "else changes it"
            if older
            else f"the database was written by another spanlink schema version ({found}, this is "
            f"{SCHEMA_VERSION}); open it with that version of spanlink or use a new file",
            found=found,
            expected=SCHEMA_VERSION,
            url=url,
        )
    if META_ENTITY_GENERATION not in meta:  # a store from before the entity change log
        session.add(Meta(key=META_ENTITY_GENERATION, value="0"))
    stored_dim = int(meta[META_DIM])
    if dim is not None and dim != stored_dim:
        raise SchemaMismatch(
            f"the store holds {stored_dim}-d vectors; open it with dim={stored_dim} or use a new file",
            found=stored_dim,
            expected=dim,
            url=url,
        )
    return stored_dim
