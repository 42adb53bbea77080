"""`spanlink serve`, `spanlink similar` and `spanlink entity`: the service and its CLI neighbours.

These and `spanlink ingest` read the same settings as the HTTP service
(:class:`api.settings.ServiceSettings`: options here, then ``SPANLINK_*`` variables, then
defaults), so every command sees the store that `serve` and `ingest` write. The read-only
commands (`similar`, `entity`) never create a store: opening one creates whatever is missing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli import BackendOption, app, check_device, fail
from api.settings import default_data_dir

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Store folder (spanlink.db + FAISS files), the same for every command "
        f"(default: {default_data_dir()}, or $SPANLINK_DATA_DIR).",
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="NER model folder, hub id, or embedded model: default (default), fine."
    ),
]
DbOption = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL instead of DATA_DIR/spanlink.db.")]
VectorsOption = Annotated[
    str | None, typer.Option("--vectors", help="Mention vectors: span, surface (default) or mix.")
]
DeviceOption = Annotated[str | None, typer.Option(help="cpu, cuda, ...")]


def build_settings(**options: Any):  # noqa: ANN201 - ServiceSettings, imported lazily
    """Settings from the options that were given (None = not given: environment or default).

    The device and the store folder are checked here, before any model loads, so a typo costs no
    wait and prints one line instead of a traceback from deep inside torch or pathlib.
    """
    from pydantic import ValidationError

    from api.settings import ServiceSettings

    given = {name: value for name, value in options.items() if value is not None}
    try:
        settings = ServiceSettings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise fail(f"invalid setting {where}: {str(first['msg']).removeprefix('Value error, ')}") from None
    check_device(settings.device)
    check_store_folder(settings)
    if settings.db_url is not None:
        check_db_url(settings.db_url)
    return settings


def check_db_url(db_url: str) -> None:
    """A --db URL must parse and name a database driver that is installed (else SQLAlchemy raises deep
    inside the store)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(db_url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise fail(f"--db {db_url!r} is not a usable SQLAlchemy URL ({exc})") from None


def check_store_folder(settings: Any) -> None:  # noqa: ANN401 - ServiceSettings
    """The store folder must be a folder (or not exist yet), and its database a file."""
    folder = settings.data_dir
    if folder.exists() and not folder.is_dir():
        raise fail(f"--data-dir {folder} is not a folder")
    existing = next((parent for parent in folder.absolute().parents if parent.exists()), None)
    if not folder.exists() and existing is not None and not existing.is_dir():
        raise fail(f"--data-dir {folder} cannot be created: {existing} is not a folder")
    database = folder / "spanlink.db"
    if settings.db_url is None and database.exists() and not database.is_file():
        raise fail(f"{database} is not a file")


def _sqlite_file(db_url: str) -> Path | None:
    """The file an SQLite URL names, or None (another database, an in-memory one, or no valid URL)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(db_url)
    except ArgumentError:
        return None
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def require_store(settings: Any) -> None:  # noqa: ANN401 - ServiceSettings
    """Fail unless the store exists: read-only commands must not create an empty one and print nothing.

    A non-SQLite ``--db`` URL cannot be checked without connecting; opening it is left to the store.
    """
    if settings.db_url is None:
        if not (settings.data_dir / "spanlink.db").is_file():
            raise fail(f"no store in {settings.data_dir} (ingest documents first, or pass --data-dir)")
        return
    database = _sqlite_file(settings.db_url)
    if database is not None and not database.is_file():
        raise fail(f"no store at {settings.db_url} (ingest documents first, or pass --db)")
    if settings.db_url.startswith("postgresql"):
        return  # vectors live in the database: no folder to check
    if not settings.data_dir.is_dir():
        raise fail(f"no store in {settings.data_dir}: the vector files of {settings.db_url} live there")


def open_service(settings: Any, *, owner: bool = True):  # noqa: ANN201, ANN001 - api.service.Service
    """`Service.open` with CLI-style errors (a missing default model is one line, not a traceback).

    ``owner=False`` for read-only commands: they may run beside the service that owns an embedded store.
    """
    import ner
    from api.service import Service
    from index import StoreError

    try:
        return Service.open(settings, owner=owner)
    except (ner.NerError, StoreError, ValueError, ImportError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot open the store {settings.store_target()}: {exc.strerror or exc}") from None


def _print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str))
    sys.stdout.write("\n")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    data_dir: DataDirOption = None,
    model: ModelOption = None,
    db: DbOption = None,
    vectors: VectorsOption = None,
    device: DeviceOption = None,
    backend: BackendOption = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="SPANLINK_API_KEY",
            help="Protect write endpoints with this key.",
            show_envvar=True,
        ),
    ] = None,
    get: Annotated[
        str | None,
        typer.Option(
            "--get", help="Run one GET request in-process, print the response and exit (no server)."
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes (uvicorn). More than one needs the PostgreSQL store (--db postgresql+psycopg://...).",
        ),
    ] = 1,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs) on the embedded defaults."""
    settings = build_settings(
        data_dir=data_dir,
        model=model,
        db_url=db,
        vectors=vectors,
        device=device,
        backend=backend,
        api_key=api_key,
    )
    if get is None:
        check_listen(host, port)
    if workers > 1:
        _serve_workers(settings, host, port, workers)
        return
    service = open_service(settings)
    from api.main import create_app

    application = create_app(settings, service=service)
    if get is not None:
        try:
            from fastapi.testclient import TestClient
        except ImportError as exc:  # httpx is what TestClient needs
            service.close()
            raise fail(f"--get needs httpx ({exc}); pip install httpx") from None
        with TestClient(application) as client:
            response = client.get(get)
        try:
            _print_json(response.json())
        except ValueError:
            sys.stdout.write(response.text + ("" if response.text.endswith("\n") else "\n"))
        if response.status_code >= 400:
            raise typer.Exit(1)
        return
    import uvicorn

    typer.echo(
        f"spanlink: serving {settings.store_target()} on http://{host}:{port} (docs at /docs)", err=True
    )
    uvicorn.run(application, host=host, port=port, log_level="info")


def check_listen(host: str, port: int) -> None:
    """Fail in one line, before the model loads, when the address cannot be listened on.

    uvicorn finds out only after startup and reports it as several log lines; a trial bind (with
    SO_REUSEADDR, as uvicorn binds) catches a port in use and an unknown host up front.
    """
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise fail(f"--host {host!r}: {getattr(exc, 'strerror', None) or exc}") from None
    with socket.socket(family, kind, proto) as trial:
        trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            trial.bind(address)
        except OSError as exc:
            raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _serve_workers(settings: Any, host: str, port: int, workers: int) -> None:  # noqa: ANN401
    """``--workers N``: N uvicorn worker processes, each with its own service, on one shared store.

    Only the PostgreSQL store can be shared: the embedded store's FAISS indexes and linker cache
    live in one process, so N workers on it would found duplicate entities and miss each other's
    vectors. The workers build their settings from the environment, so the options go there.
    """
    import os

    from sqlalchemy.engine import make_url

    if settings.db_url is None or make_url(settings.db_url).get_backend_name() != "postgresql":
        raise fail(
            f"--workers {workers} needs the PostgreSQL store: the embedded store ({settings.store_target()}) "
            "has one owner process. Move it with `spanlink migrate --from sqlite:///.../spanlink.db "
            "--to postgresql+psycopg://...` and serve with --db postgresql+psycopg://..."
        )
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        elif isinstance(value, dict):
            value = json.dumps(value)
        os.environ[f"SPANLINK_{name.upper()}"] = str(value)
    import uvicorn

    typer.echo(
        f"spanlink: serving {make_url(settings.db_url).render_as_string(hide_password=True)} on "
        f"http://{host}:{port} with {workers} workers (docs at /docs)",
        err=True,
    )
    uvicorn.run("api.main:create_app", factory=True, host=host, port=port, workers=workers, log_level="info")


@app.command()
def similar(
    text: Annotated[str, typer.Argument(help="A name (or a text with --start/--end) to find entities like.")],
    k: Annotated[int, typer.Option("-k", min=1, help="Number of hits.")] = 10,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="Keep only this type (repeatable).")
    ] = None,
    start: Annotated[int | None, typer.Option(min=0, help="Mention start in TEXT (with --end).")] = None,
    end: Annotated[int | None, typer.Option(min=1, help="Mention end in TEXT.")] = None,
    data_dir: DataDirOption = None,
    model: ModelOption = None,
    db: DbOption = None,
    vectors: VectorsOption = None,
    device: DeviceOption = None,
    backend: BackendOption = None,
) -> None:
    """Entities most similar to TEXT; one JSON line {"score", "entity"} per hit, best first.

    The query is checked by the HTTP API's own request model, so TEXT, the span and the labels
    follow one rule whichever way they come in.
    """
    from pydantic import ValidationError

    from api.cli import check_text, validation_message
    from api.convert import entity_public
    from api.errors import ServiceError
    from api.schemas import SimilarRequest
    from index import StoreError

    check_text(text, "TEXT")
    try:
        body = {"text": text, "start": start, "end": end, "k": k, "labels": label}
        query = SimilarRequest.model_validate(body)
    except ValidationError as exc:
        raise fail(validation_message(exc)) from None
    settings = build_settings(
        data_dir=data_dir, model=model, db_url=db, vectors=vectors, device=device, backend=backend
    )
    require_store(settings)
    service = open_service(settings, owner=False)
    try:
        span = (query.start, query.end) if query.start is not None and query.end is not None else None
        hits = service.similar(text=query.text, span=span, k=query.k, labels=query.labels or None)
    except ServiceError as exc:
        raise fail(exc.message) from None
    except StoreError as exc:
        raise fail(str(exc)) from None
    finally:
        service.close(save=False)
    for hit in hits:
        entity = entity_public(hit.entity, service.label_groups)
        _print_json({"score": float(hit.score), "entity": entity.model_dump(mode="json")})


@app.command()
def entity(
    entity_id: Annotated[int, typer.Argument(min=1, help="Entity id.")],
    mentions: Annotated[int, typer.Option(min=0, help="Sample mentions to show.")] = 10,
    data_dir: DataDirOption = None,
    db: DbOption = None,
) -> None:
    """One entity as JSON: name, type, aliases, mention count and sample mentions with document ids."""
    from api.convert import entity_detail
    from api.errors import ServiceError
    from api.service import entity_mentions, open_store
    from index import NotFound, StoreError

    settings = build_settings(data_dir=data_dir, db_url=db)
    require_store(settings)
    try:
        store = open_store(settings, owner=False)  # no model needed: the store knows its vector size
    except ServiceError as exc:
        raise fail(exc.message) from None
    except StoreError as exc:
        raise fail(str(exc)) from None
    try:
        found = store.get_entity(entity_id)
        detail = entity_detail(found, entity_mentions(store, found, mentions) if mentions else [])
    except NotFound:
        raise fail(f"entity {entity_id} not found") from None
    finally:
        store.close(save=False)  # read-only: leave the FAISS files to the store's owner
    _print_json(detail.model_dump(mode="json"))
