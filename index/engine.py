"""Where database connections come from: the one engine factory of the store.

Only ``index/`` talks to SQLite directly. SQLite files get WAL journaling (readers never block
the writer and a killed process leaves a consistent database), foreign keys on, the configured
``synchronous`` level and a busy timeout, on every new connection of the pool.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

from index.settings import StoreSettings


def create_store_engine(
    target: str | os.PathLike[str], settings: StoreSettings
) -> tuple[Engine, Path | None]:
    """Create the engine for a path or SQLAlchemy URL.

    Args:
        target (str | PathLike): SQLite file path, or an SQLAlchemy URL (contains ``://``).
        settings (StoreSettings): Supplies the SQLite pragmas.

    Returns:
        tuple[Engine, Path | None]: The engine and, for a SQLite file, its resolved path.
    """
    target_str = os.fspath(target)
    if "://" in target_str:
        engine = create_engine(target_str)
        is_file = engine.url.get_backend_name() == "sqlite" and engine.url.database not in (
            None,
            "",
            ":memory:",
        )
        db_path = Path(engine.url.database).resolve() if is_file else None  # type: ignore[arg-type]
    else:
        db_path = Path(target_str).resolve()
        db_path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{db_path}")
    if engine.url.get_backend_name() == "sqlite":
        pragmas = (
            "PRAGMA journal_mode=WAL",
            f"PRAGMA synchronous={settings.sqlite_synchronous.upper()}",
            "PRAGMA foreign_keys=ON",
            f"PRAGMA busy_timeout={int(settings.busy_timeout_ms)}",
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            for pragma in pragmas:
                cursor.execute(pragma)
            cursor.close()

    elif engine.url.get_backend_name() == "postgresql":
        searches = (
            f"SET hnsw.ef_search = {int(settings.ef_search)}",
            # pgvector 0.8+: a filtered search goes on scanning until k rows pass the filter; the
            # store re-sorts the few rows relaxed_order may leave out of order.
            "SET hnsw.iterative_scan = relaxed_order",
        )

        @event.listens_for(engine, "connect")
        def _pg_vector_type(dbapi_connection: Any, _record: Any) -> None:
            register_pgvector(dbapi_connection)
            with dbapi_connection.cursor() as cursor:
                for statement in searches:
                    cursor.execute(statement)
            dbapi_connection.commit()

    return engine, db_path


def register_pgvector(dbapi_connection: Any) -> None:
    """Let psycopg bind numpy arrays as pgvector ``vector`` values (binary, not text).

    Before ``CREATE EXTENSION vector`` ran there is no type to register; :func:`index.postgres.prepare`
    creates it and then disposes the pool, so every later connection registers it.
    """
    try:
        from pgvector.psycopg import register_vector
    except ImportError as exc:
        raise ImportError(
            "the PostgreSQL store needs the postgres extra: pip install 'spanlink[postgres]'"
        ) from exc
    import psycopg

    try:
        register_vector(dbapi_connection)
    except psycopg.ProgrammingError:  # no vector type yet
        pass
    finally:
        dbapi_connection.rollback()  # end the implicit transaction of the type lookup
