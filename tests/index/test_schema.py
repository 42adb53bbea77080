"""Schema: version and vector size are recorded and checked; models stay portable; SQLite uses WAL."""

import pytest
from conftest import DIM
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from index import SCHEMA_VERSION, SchemaMismatch, Store
from index.schema import Base


def test_new_store_records_version_and_dim(tmp_path):
    with Store.open(tmp_path / "s.db", dim=DIM) as store, store.engine.connect() as conn:
        meta = dict(conn.execute(text("SELECT key, value FROM spanlink_meta")).all())
        assert meta["schema_version"] == str(SCHEMA_VERSION)
        assert meta["dim"] == str(DIM)
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    # Reopening without dim takes the stored one.
    with Store.open(tmp_path / "s.db") as store:
        assert store.dim == DIM


def test_new_store_without_dim_is_refused(tmp_path):
    with pytest.raises(SchemaMismatch, match="dim="):
        Store.open(tmp_path / "s.db")


def test_dim_mismatch_is_refused(tmp_path):
    Store.open(tmp_path / "s.db", dim=DIM).close()
    with pytest.raises(SchemaMismatch) as info:
        Store.open(tmp_path / "s.db", dim=DIM * 2)
    assert info.value.context["found"] == DIM
    assert info.value.context["expected"] == DIM * 2


def test_schema_version_mismatch_is_refused(tmp_path):
    store = Store.open(tmp_path / "s.db", dim=DIM)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE spanlink_meta SET value='999' WHERE key='schema_version'"))
    store.close()
    with pytest.raises(SchemaMismatch) as info:
        Store.open(tmp_path / "s.db", dim=DIM)
    assert info.value.context["found"] == "999"
    assert info.value.context["expected"] == SCHEMA_VERSION
    assert "schema version" in str(info.value)


def test_models_compile_for_postgresql():
    # PostgreSQL is the scale-out target: every table must have portable DDL.
    dialect = postgresql.dialect()
    ddl = {
        name: str(CreateTable(table).compile(dialect=dialect)) for name, table in Base.metadata.tables.items()
    }
    assert set(ddl) == {"spanlink_meta", "documents", "mentions", "entities", "aliases", "entity_changes"}
    # pgvector columns; their size is set per store when it is created (index/postgres.py)
    assert "vector" in ddl["mentions"] and "vector" in ddl["entities"]
    assert "JSON" in ddl["documents"]
