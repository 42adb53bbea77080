"""`spanlink serve`, `spanlink similar` and `spanlink entity`: the service and its CLI neighbours.

All three read the same settings as the HTTP service (:class:`api.settings.ServiceSettings`:
options here, then ``SPANLINK_*`` variables, then defaults), so `similar` and `entity` see the
store that `serve` writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli import app, fail

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Store folder (spanlink.db + FAISS files). Default: the per-user data folder."
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", help="NER model folder or hub id (default: the embedded model)."),
]
DbOption = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL instead of DATA_DIR/spanlink.db.")]
VectorsOption = Annotated[
    str | None, typer.Option("--vectors", help="Mention vectors: span, surface (default) or mix.")
]
DeviceOption = Annotated[str | None, typer.Option(help="cpu, cuda, ...")]


def build_settings(**options: Any):  # noqa: ANN201 - ServiceSettings, imported lazily
    """Settings from the options that were given (None = not given: environment or default)."""
    from pydantic import ValidationError

    from api.settings import ServiceSettings

    given = {name: value for name, value in options.items() if value is not None}
    try:
        return ServiceSettings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise fail(f"invalid setting {where}: {str(first['msg']).removeprefix('Value error, ')}") from None


def open_service(settings: Any):  # noqa: ANN201, ANN001 - api.service.Service
    """`Service.open` with CLI-style errors (a missing default model is one line, not a traceback)."""
    import ner
    from api.service import Service
    from index import StoreError

    try:
        return Service.open(settings)
    except (ner.NerError, StoreError, ValueError, ImportError) as exc:
        raise fail(str(exc)) from None


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
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs) on the embedded defaults."""
    settings = build_settings(
        data_dir=data_dir, model=model, db_url=db, vectors=vectors, device=device, api_key=api_key
    )
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
) -> None:
    """Entities most similar to TEXT; one JSON line {"score", "entity"} per hit, best first."""
    from api.convert import entity_public
    from api.errors import ServiceError
    from index import StoreError

    if not text.strip():
        raise fail("TEXT is empty")
    if (start is None) != (end is None):
        raise fail("give both --start and --end, or neither")
    if start is not None and end is not None and not start < end <= len(text):
        raise fail(f"--start/--end must satisfy 0 <= start < end <= {len(text)} (the text length)")
    settings = build_settings(data_dir=data_dir, model=model, db_url=db, vectors=vectors, device=device)
    service = open_service(settings)
    try:
        span = (start, end) if start is not None and end is not None else None
        hits = service.similar(text=text, span=span, k=k, labels=label or None)
    except ServiceError as exc:
        raise fail(exc.message) from None
    except StoreError as exc:
        raise fail(str(exc)) from None
    finally:
        service.close(save=False)
    for hit in hits:
        _print_json({"score": float(hit.score), "entity": entity_public(hit.entity).model_dump(mode="json")})


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
    try:
        store = open_store(settings)  # no model needed: the store knows its vector size
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
