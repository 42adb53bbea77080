"""`spanlink kb import FILE.jsonl`: import a knowledge base, and `spanlink upgrade`: bring an old store up.

A knowledge base is a JSON-lines file, one entity per line, each line a body item of
``POST /v1/entities`` (``{"external_id", "name", "label", "aliases"?, "description"?,
"metadata"?}``) passing the same checks. The whole file is checked first (the first bad line is
the error, with its line number) and then imported in one transaction, in batches with a progress
bar; importing it again updates the entities in place (idempotent by ``external_id``). The store
is the one every other command uses (``--data-dir``/``--db``), and the entity vectors come from
the same kind of mention vector (``--vectors``) the store is written with.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli import BackendOption, ModelOption, app, fail, load_model, validation_message
from api.cli_serve import DataDirOption, DbOption, build_settings, require_store


class KbAction(str, Enum):
    """What `spanlink kb` does (one action so far; a plain command with an action argument rather than a
    command group, so that every spanlink command is one click command with its own options)."""

    IMPORT = "import"


BATCH = 256
"""Entities embedded and written per step (one transaction for the whole file all the same)."""


def read_knowledge_base(path: Path) -> list[tuple[int, Any]]:
    """Every entity of a JSON-lines file as ``(line number, KnownEntityCreate)``, checked whole.

    Raises:
        typer.Exit: The first bad line (``FILE:LINE: ...``), an id given twice, or no entity at all.
    """
    from pydantic import ValidationError

    from api.schemas import KnownEntityCreate

    if not path.is_file():
        raise fail(f"{path}: no such file")
    items: list[tuple[int, Any]] = []
    seen: dict[str, int] = {}
    try:
        with path.open("rb") as stream:
            for number, raw in enumerate(stream, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise fail(f"{path}:{number}: not UTF-8 (byte {exc.start})") from None
                if not line.strip():
                    continue
                try:
                    item = KnownEntityCreate.model_validate_json(line)
                except ValidationError as exc:
                    raise fail(f"{path}:{number}: {validation_message(exc)}") from None
                if item.external_id in seen:
                    raise fail(
                        f"{path}:{number}: external_id {item.external_id!r} is also on line "
                        f"{seen[item.external_id]}"
                    )
                seen[item.external_id] = number
                items.append((number, item))
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror or exc}") from None
    if not items:
        raise fail(f"{path}: no entities (one JSON object per line)")
    return items


def _check_labels(path: Path, items: list[tuple[int, Any]], known: set[str]) -> None:
    """The service's rule: a KB entity's type is one the model predicts or the store already holds."""
    by_fold = {label.casefold(): label for label in sorted(known)}
    for number, item in items:
        if item.label in known:
            continue
        hint = (
            f"did you mean {by_fold[item.label.casefold()]!r}?"
            if item.label.casefold() in by_fold
            else (f"known labels are {sorted(known)}")
        )
        raise fail(f"{path}:{number}: unknown label {item.label!r}; {hint}")


@app.command("kb")
def knowledge_base(
    action: Annotated[KbAction, typer.Argument(help="import: create or update entities from PATH.")],
    path: Annotated[Path, typer.Argument(help="JSON lines: one entity per line (see POST /v1/entities).")],
    data_dir: DataDirOption = None,
    db: DbOption = None,
    model: ModelOption = None,
    vectors: Annotated[
        str | None,
        typer.Option("--vectors", help="Mention vector kind of the store: surface (default), span or mix."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = None,
    backend: BackendOption = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Knowledge base: `spanlink kb import FILE.jsonl` creates or updates entities with your ids (one JSON
    object per line: external_id, name, label, aliases, description, metadata), all or none; prints
    {"entities", "created", "updated"}. Importing the file again updates them in place."""
    from tqdm.auto import tqdm

    from api.cli_linking import _embedder, _open_store
    from index import InvalidInput, KnownEntity, StoreError
    from linking.linker import Linker, LinkingError
    from linking.settings import LinkSettings

    settings = build_settings(
        data_dir=data_dir, db_url=db, model=model, vectors=vectors, device=device, backend=backend
    )
    assert action is KbAction.IMPORT  # click has checked the choice
    items = read_knowledge_base(path)
    try:
        link_settings = LinkSettings(**settings.link_settings)
    except (TypeError, ValueError) as exc:
        raise fail(f"invalid setting link_settings: {exc}") from None
    span_model = load_model(settings.model, settings.device, None, False, settings.backend)
    embedder = _embedder(settings.vectors, span_model)
    store = _open_store(settings, embedder.dim)
    try:
        _check_labels(path, items, set(span_model.labels) | set(store.labels()))
        try:
            linker = Linker(store, span_model, link_settings, embedder=embedder)
        except LinkingError as exc:
            raise fail(str(exc)) from None
        created = 0
        bar = tqdm(total=len(items), desc="kb import", unit="entity", disable=not progress, file=sys.stderr)
        try:
            with linker.transaction():
                for at in range(0, len(items), BATCH):
                    chunk = items[at : at + BATCH]
                    known = [
                        KnownEntity(
                            e.external_id, e.name, e.label, list(e.aliases), e.description, e.metadata
                        )
                        for _, e in chunk
                    ]
                    try:
                        stored = linker.import_entities(known)
                    except InvalidInput as exc:
                        where = exc.context.get("entity")
                        line = chunk[where][0] if isinstance(where, int) and where < len(chunk) else None
                        message = exc.message.split(": ", 1)[-1] if line is not None else exc.message
                        raise fail(f"{path}:{line}: {message}; nothing was imported") from None
                    created += sum(new for _, new in stored)
                    bar.update(len(chunk))
        except StoreError as exc:
            raise fail(f"{exc}; nothing was imported") from None
        finally:
            bar.close()
    finally:
        store.close()
    print(
        json.dumps({"entities": len(items), "created": created, "updated": len(items) - created}), flush=True
    )


@app.command()
def upgrade(data_dir: DataDirOption = None, db: DbOption = None) -> None:
    """Upgrade a store written by an older spanlink (schema version) in place, in one transaction per
    step; prints {"found", "version", "steps"}. Stop the service that owns the store first."""
    from api.cli_serve import _sqlite_file
    from index import StoreError
    from index.upgrade import upgrade as run_upgrade

    settings = build_settings(data_dir=data_dir, db_url=db)
    if settings.db_url is None:
        require_store(settings)
    elif (database := _sqlite_file(settings.db_url)) is not None and not database.is_file():
        raise fail(f"no store at {settings.db_url}")
    try:
        report = run_upgrade(settings.store_target())
    except StoreError as exc:
        raise fail(str(exc)) from None
    print(json.dumps({"found": report.found, "version": report.version, "steps": report.steps}), flush=True)
