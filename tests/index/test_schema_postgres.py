"""The versioned schema on PostgreSQL: a store of another version or vector size is refused, never
altered; the vectors are pgvector columns of the store's size with HNSW cosine indexes."""

import pytest
from conftest import DIM
from sqlalchemy import create_engine, text

from index import SCHEMA_VERSION, SchemaMismatch, Store

pytestmark = pytest.mark.postgres


def test_set_up_creates_sized_vector_columns_and_hnsw_indexes(pg_url):
    Store.open(pg_url, dim=DIM).close()
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        types = dict(
            conn.execute(
                text(
                    "SELECT attrelid::regclass::text, format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attname IN ('vector', 'centroid') AND attrelid IN ('mentions'::regclass, "
                    "'entities'::regclass)"
                )
            ).all()
        )
        indexes = dict(
            conn.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE indexdef LIKE '%hnsw%'")
            ).all()
        )
    engine.dispose()
    assert types == {"mentions": f"vector({DIM})", "entities": f"vector({DIM})"}
    assert set(indexes) == {"ix_mentions_vector_hnsw", "ix_entities_centroid_hnsw"}
    assert all("vector_cosine_ops" in d for d in indexes.values())


def test_another_schema_version_or_size_is_refused_and_left_alone(pg_url):
    Store.open(pg_url, dim=DIM).close()
    with pytest.raises(SchemaMismatch):
        Store.open(pg_url, dim=DIM + 1)
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE spanlink_meta SET value = '999' WHERE key = 'schema_version'"))
    with pytest.raises(SchemaMismatch) as info:
        Store.open(pg_url)
    assert info.value.context["found"] == "999" and info.value.context["expected"] == SCHEMA_VERSION
    with engine.connect() as conn:  # nothing was altered by the refused opens
        assert (
            conn.execute(text("SELECT value FROM spanlink_meta WHERE key = 'schema_version'")).scalar()
            == "999"
        )
        assert conn.execute(text("SELECT value FROM spanlink_meta WHERE key = 'dim'")).scalar() == str(DIM)
    engine.dispose()
