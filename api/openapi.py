"""The OpenAPI document as this running service behaves, and the pages that show it offline.

FastAPI derives the document from the code alone; some of what the service enforces is only known
once it runs: whether an API key is configured (then, and only then, writes declare security and
401/403), the labels the loaded model predicts, the largest ``k``, the vector size. :func:`tailor`
writes those in, so that a client (or schemathesis) generating requests from the document sends
what the server accepts. ``/docs`` (Swagger UI) and ``/redoc`` load their scripts from the
``fastapi-offline`` package, served here, never from a CDN.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.routing import compile_path

ASSETS_URL = "/-/docs-assets"
"""Where the Swagger UI and ReDoc files are served."""

AUTH_STATUSES = ("401", "403")
BODY_STATUSES = ("400", "413", "415")
"""Errors only an operation with a request body can give: bad JSON, too large, not JSON."""


def assets_dir() -> str:
    """The folder of Swagger UI and ReDoc files shipped by the ``fastapi-offline`` package."""
    return str(resources.files("fastapi_offline") / "static")


def install_docs(app: FastAPI) -> None:
    """``/docs`` and ``/redoc`` with their assets served by the app itself (no CDN)."""
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    oauth2_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )


def _operations(schema: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield path, method, operation


def tailor(schema: dict[str, Any], *, api_key: bool, service: Any = None) -> dict[str, Any]:
    """Make the generated document state what this service enforces (in place; returns it).

    Args:
        schema (dict): FastAPI's document.
        api_key (bool): Whether writes need a key. Without one they declare no security and no 401/403.
        service (api.service.Service | None): The open service, for its model's labels, ``max_k`` and
            vector size. Defaults to None (the document before the lifespan: those stay open).
    """
    for _path, _method, operation in _operations(schema):
        responses = operation["responses"]
        if not api_key:
            operation.pop("security", None)
        if "security" not in operation:
            for status in AUTH_STATUSES:
                responses.pop(status, None)
        if "requestBody" not in operation:
            for status in BODY_STATUSES:
                responses.pop(status, None)
    if not api_key:
        schema.get("components", {}).pop("securitySchemes", None)
    return schema


def tailored_openapi(app: FastAPI, api_key: Callable[[], bool]) -> Callable[[], dict[str, Any]]:
    """A replacement for ``app.openapi`` that tailors the document; cached once the service is open."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        service = getattr(app.state, "service", None)
        schema = tailor(generate(), api_key=api_key(), service=service)
        # FastAPI caches its own document on the app; recompute until the service (labels, sizes) is known.
        app.openapi_schema = schema if service is not None else None
        return schema

    return openapi


class AllowedMethods:
    """The methods each path answers, across every route that matches it (for ``Allow`` on a 405).

    Starlette reports only the methods of the *first* route matching a path, so ``/v1/documents/x``
    (GET and DELETE are two routes) got ``Allow: GET``.
    """

    def __init__(self, routes: Iterable[tuple[str, Iterable[str]]]) -> None:
        self._table: list[tuple[re.Pattern[str], frozenset[str]]] = [
            (compile_path(path)[0], frozenset(methods)) for path, methods in routes
        ]

    @classmethod
    def of_routers(cls, routers: Iterable[tuple[str, Any]]) -> AllowedMethods:
        """From ``(prefix, APIRouter)`` pairs, as they are included in the app."""
        return cls(
            (prefix + route.path, route.methods or ())
            for prefix, router in routers
            for route in router.routes
            if isinstance(route, APIRoute)
        )

    def __call__(self, path: str) -> list[str]:
        """The methods ``path`` answers, sorted; empty for an unknown path."""
        return sorted({m for pattern, methods in self._table if pattern.match(path) for m in methods})
