"""A store of schema version 1 (before the knowledge-base columns), for the upgrade tests of the
store and of the `spanlink upgrade` command."""

from __future__ import annotations

from sqlalchemy import create_engine, text


def make_version_1(url: str) -> None:
    """Strip a fresh store down to what schema version 1 had (no KB columns)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_entities_external_id"))
        for column in ("external_id", "description", "metadata", "kb_vector"):
            conn.execute(text(f"ALTER TABLE entities DROP COLUMN {column}"))
        conn.execute(text("ALTER TABLE aliases DROP COLUMN kb"))
        conn.execute(text("UPDATE spanlink_meta SET value = '1' WHERE key = 'schema_version'"))
    engine.dispose()
