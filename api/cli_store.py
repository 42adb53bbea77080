"""`spanlink check` and `spanlink migrate`: the store's consistency check and moving a store.

`check` opens the store the other commands use (``--data-dir``/``--db``) without taking the
embedded store's owner lock, so it runs beside a service, and exits 1 when anything disagrees.
`migrate` copies a whole store into an empty database with its ids (usually SQLite to PostgreSQL,
to run several service processes on it) and verifies the copy by counts and per-table checksums.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from api.cli import app, fail
from api.cli_serve import DataDirOption, DbOption, build_settings, require_store


@app.command()
def check(data_dir: DataDirOption = None, db: DbOption = None) -> None:
    """Check the store: database integrity, mention counts, aliases and centroids against the mentions,
    and the FAISS indexes against the database (embedded store). One JSON object; exit 1 if not ok."""
    from api.service import open_store
    from index import StoreError

    settings = build_settings(data_dir=data_dir, db_url=db)
    require_store(settings)
    try:
        store = open_store(settings, owner=False)
    except StoreError as exc:
        raise fail(str(exc)) from None
    try:
        report = store.check()
    finally:
        store.close(save=False)
    payload = {
        "ok": report.ok,
        "integrity": report.integrity,
        "mentions_without_document": report.mentions_without_document,
        "bad_mention_counts": report.bad_mention_counts,
        "bad_aliases": report.bad_aliases,
        "bad_centroids": report.bad_centroids,
        "faiss_mismatch": report.faiss_mismatch,
    }
    sys.stdout.write(json.dumps(payload) + "\n")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def migrate(
    source: Annotated[
        str, typer.Option("--from", help="The store to copy: sqlite:///path/spanlink.db, a file, or a URL.")
    ],
    target: Annotated[
        str,
        typer.Option("--to", help="An empty database: postgresql+psycopg://user@host/db (or sqlite:///...)."),
    ],
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    hnsw_m: Annotated[
        int,
        typer.Option(
            min=2,
            max=100,
            help="pgvector HNSW m of a PostgreSQL target's indexes: 32 for a million vectors and more.",
        ),
    ] = 16,
    ef_construction: Annotated[
        int,
        typer.Option(
            min=1,
            help="HNSW efConstruction of a PostgreSQL target's indexes: 200 for a million vectors and more.",
        ),
    ] = 40,
) -> None:
    """Copy a whole store (documents, mentions, entities, aliases, vectors; ids kept) into an empty
    database and verify it by row counts and per-table SHA-256 checksums. One JSON report; exit 1 if
    the copy differs."""
    from pathlib import Path

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    from tqdm.auto import tqdm

    from api.cli_serve import _sqlite_file
    from index import StoreError, StoreSettings
    from index.migrate import migrate as copy_store

    for option, url in (("--from", source), ("--to", target)):
        if "://" not in url:
            continue
        try:
            make_url(url).get_dialect()
        except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
            raise fail(f"{option} {url!r} is not a usable SQLAlchemy URL ({exc})") from None
    source_file = _sqlite_file(source) if "://" in source else Path(source)
    if source_file is not None and not source_file.is_file():
        raise fail(f"--from: no store at {source}")
    bars: list[tqdm] = []  # made at the first copied rows: an early error stays one line

    def advance(rows: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc="migrate", unit="row", total=total, disable=not progress, file=sys.stderr))
        bars[0].update(rows)

    try:
        report = copy_store(
            source,
            target,
            progress=advance,
            settings=StoreSettings(hnsw_m=hnsw_m, ef_construction=ef_construction),
        )
    except StoreError as exc:
        raise fail(str(exc)) from None
    finally:
        for bar in bars:
            bar.close()
    sys.stdout.write(json.dumps(report.as_dict()) + "\n")
    if not report.ok:
        raise typer.Exit(1)
