"""The FastAPI app: routers, error handlers, metrics, and the lifespan that owns the service.

>>> from api.main import create_app
>>> from api.settings import ServiceSettings
>>> app = create_app(ServiceSettings(model="path/to/checkpoint", vectors="span"))  # doctest: +SKIP
>>> # uvicorn.run(app) — or `spanlink serve`
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from api.deps import strict_query
from api.errors import install_error_handlers
from api.metrics import install_metrics
from api.openapi import AllowedMethods, install_docs, tailored_openapi
from api.routes import documents, entities, extract, link, meta
from api.routes.pages import install_pages
from api.schemas import ErrorPublic
from api.service import Service
from api.settings import ServiceSettings, get_settings

logger = logging.getLogger("spanlink.api")

API_PREFIX = "/v1"

ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorPublic, "description": text}
    for status, text in (
        (400, "Malformed request body (not JSON)."),
        (401, "API key missing (only when the service has one)."),
        (403, "API key wrong (only when the service has one)."),
        (404, "Unknown id."),
        (413, "Too many items or too long a text."),
        (415, "The body is not sent as `application/json`."),
        (422, "Invalid input; the message names the field."),
        (503, "Model busy or store unavailable."),
    )
}


def operation_id(route: APIRoute) -> str:
    """``tag-name`` operation ids (``documents-create_documents``): stable names for generated clients."""
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


RESOURCES = (extract, documents, link, entities)
"""The route modules under ``/v1``."""


def api_router() -> APIRouter:
    """The versioned API: one tagged router per resource."""
    router = APIRouter(prefix=API_PREFIX, responses=ERROR_RESPONSES, dependencies=[Depends(strict_query)])
    for module in RESOURCES:
        router.include_router(module.router)
    return router


def _settings(app: FastAPI) -> ServiceSettings:
    return app.dependency_overrides.get(get_settings, get_settings)()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model and open the store once, before the first request; close them at shutdown.

    Settings come through the same dependency the routes use, so an override set by a test (or by
    :func:`create_app`) applies here too. A service opened beforehand (``spanlink serve`` opens it
    first so that a missing model is one error line, not a traceback) is used as is.
    """
    settings = _settings(app)
    service: Service | None = getattr(app.state, "service", None)
    if service is None:
        service = await run_in_threadpool(Service.open, settings)
        app.state.service = service
    metrics = app.state.metrics
    service.on_batch = metrics.batch_texts.observe
    service.on_ingest = metrics.ingested.inc
    # What was loaded lives as long as the service: move it out of the collector's generations, so
    # that full collections stop walking it (they made the tail of similarity queries, see index/README).
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        app.state.service = None
        await run_in_threadpool(service.close)


def create_app(settings: ServiceSettings | None = None, service: Service | None = None) -> FastAPI:
    """Build the app.

    Args:
        settings (ServiceSettings | None): Overrides :func:`api.settings.get_settings` for this app.
            Defaults to the environment.
        service (Service | None): An already opened service (closed by the app at shutdown).
            Defaults to opening one in the lifespan.

    Returns:
        FastAPI: The app, OpenAPI at ``/openapi.json``, Swagger UI at ``/docs``, ReDoc at ``/redoc``.
    """
    app = FastAPI(
        title="spanlink",
        summary="Multilingual entity extraction, linking and vector search.",
        version="1",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None,  # served offline by install_docs
        redoc_url=None,
    )
    if settings is not None:
        app.dependency_overrides[get_settings] = lambda: settings
    app.state.service = service
    install_error_handlers(app)
    install_metrics(app)
    app.include_router(api_router())
    app.include_router(meta.router)
    install_docs(app)
    install_pages(app)  # the web page at / (issue 17)
    app.openapi = tailored_openapi(app, lambda: _settings(app).api_key is not None)  # type: ignore[method-assign]
    app.state.allowed_methods = AllowedMethods.of_routers(
        [*((API_PREFIX, m.router) for m in RESOURCES), ("", meta.router)]
    )
    return app
