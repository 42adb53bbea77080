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

from api.schemas import MAX_ID, SPACES

ASSETS_URL = "/-/docs-assets"
"""Where the Swagger UI and ReDoc files are served."""

AUTH_STATUSES = ("401", "403")
BODY_STATUSES = ("400", "413", "415")
"""Errors only an operation with a request body can give: bad JSON, too large, not JSON."""


_CONTROL = r"\x00-\x1f\x7f-\x9f"
TEXT_PATTERN = f"^[^\\x00]*[^\\x00{SPACES}][^\\x00]*$"
"""Texts: a non-space character, no NUL (``api.schemas`` checks both, with messages of its own)."""
KEY_PATTERN = f"^[^{_CONTROL}{SPACES}]([^{_CONTROL}]*[^{_CONTROL}{SPACES}])?$"
"""Document ids and languages: no control character, no whitespace at either end."""
_NAME_CONTROL = r"\x00-\x08\x0e-\x1f\x7f-\x9f"  # index.records: tabs and newlines may stand in a name
NAME_PATTERN = f"^[^{_NAME_CONTROL}]*[^{_NAME_CONTROL}{SPACES}][^{_NAME_CONTROL}]*$"
"""Entity names: no control character; the server also wants a letter or digit (no portable regex)."""

STATIC_FACETS: dict[tuple[str, ...], dict[str, Any]] = {
    ("ExtractRequest", "texts", "items"): {"pattern": TEXT_PATTERN},
    ("DocumentCreate", "text"): {"pattern": TEXT_PATTERN},
    ("DocumentCreate", "id", "anyOf", "0"): {"pattern": KEY_PATTERN},
    ("DocumentCreate", "language", "anyOf", "0"): {"pattern": KEY_PATTERN},
    ("LinkRequest", "text"): {"pattern": TEXT_PATTERN},
    ("SimilarRequest", "text", "anyOf", "0"): {"pattern": TEXT_PATTERN},
    ("SimilarRequest", "vector", "anyOf", "0"): {"contains": {"not": {"const": 0}}},
    ("SplitRequest", "name", "anyOf", "0"): {"pattern": NAME_PATTERN},
    ("EntityUpdate", "name", "anyOf", "0"): {"pattern": NAME_PATTERN},
    ("MentionCreate", "end"): {"minimum": 1},  # start >= 0 and start < end
    ("KnownEntityCreate", "external_id"): {"pattern": KEY_PATTERN},
    ("KnownEntityCreate", "name"): {"pattern": NAME_PATTERN},
    ("KnownEntityCreate", "aliases", "items"): {"pattern": NAME_PATTERN},
    ("KnownEntityCreate", "description", "anyOf", "0"): {"pattern": "^[^\\x00]*$"},
}
"""Constraints the request models enforce in validators (whose messages say more than a pattern's
would) stated in the document: ``(schema, property, path inside it...) -> keywords``. The patterns
are pinned to those validators by ``tests/api/test_service_contract.py``."""

NO_NUL = "^[^\\x00]*$"
METADATA_VALUE: dict[str, Any] = {
    "description": "Any JSON value whose strings (and keys) hold no NUL character.",
    "anyOf": [
        {"type": "string", "pattern": NO_NUL},
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": {"$ref": "#/components/schemas/MetadataValue"}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {"$ref": "#/components/schemas/MetadataValue"},
        },
    ],
}
"""Document metadata, recursively (``api.schemas`` also bounds its nesting, at 32 levels)."""

SIMILAR_QUERY: dict[str, Any] = {
    "oneOf": [
        {"required": [name], "properties": {name: {"type": kind}}}
        for name, kind in (("text", "string"), ("entity_id", "integer"), ("vector", "array"))
    ],
    "allOf": [
        {
            "if": {"required": ["start"], "properties": {"start": {"type": "integer"}}},
            "then": {
                "required": ["end", "text"],
                "properties": {"end": {"type": "integer"}, "text": {"type": "string"}},
            },
        },
        {
            "if": {"required": ["end"], "properties": {"end": {"type": "integer"}}},
            "then": {"required": ["start"], "properties": {"start": {"type": "integer"}}},
        },
    ],
}
"""Exactly one of ``text``, ``entity_id``, ``vector``; ``start`` and ``end`` together, with ``text``."""


def _link(operation_id: str, parameters: dict[str, str] | None = None, body: Any = None) -> dict[str, Any]:
    link: dict[str, Any] = {"operationId": operation_id}
    if parameters:
        link["parameters"] = parameters
    if body is not None:
        link["requestBody"] = body
    return link


_FIRST_DOCUMENT = "$response.body#/documents/0"
_FIRST_MENTION = f"{_FIRST_DOCUMENT}/mentions/0"
LINKS: dict[str, dict[str, dict[str, Any]]] = {
    "documents-create_documents": {
        "ReadDocument": _link("documents-read_document", {"document_id": f"{_FIRST_DOCUMENT}/id"}),
        "DeleteDocument": _link("documents-delete_document", {"document_id": f"{_FIRST_DOCUMENT}/id"}),
        "ReadEntity": _link("entities-read_entity", {"entity_id": f"{_FIRST_MENTION}/entity_id"}),
        "SimilarEntities": _link(
            "entities-similar_entities", body={"entity_id": f"{_FIRST_MENTION}/entity_id"}
        ),
        "SplitEntity": _link(
            "entities-split_entity",
            {"entity_id": f"{_FIRST_MENTION}/entity_id"},
            {"mention_ids": [f"{_FIRST_MENTION}/id"]},
        ),
    },
    "entities-search_entities": {
        "ReadEntity": _link("entities-read_entity", {"entity_id": "$response.body#/data/0/id"}),
        "NextPage": _link(
            "entities-search_entities", {"q": "$request.query.q", "cursor": "$response.body#/next"}
        ),
    },
    "entities-read_entity": {
        "SimilarEntities": _link("entities-similar_entities", body={"entity_id": "$response.body#/id"}),
        "SplitEntity": _link(
            "entities-split_entity",
            {"entity_id": "$response.body#/id"},
            {"mention_ids": ["$response.body#/mentions/0/id"]},
        ),
        "ReadDocument": _link(
            "documents-read_document", {"document_id": "$response.body#/mentions/0/document_id"}
        ),
    },
    "entities-split_entity": {
        "ReadEntity": _link("entities-read_entity", {"entity_id": "$response.body#/id"}),
        "MergeBack": _link(
            "entities-merge_entity", {"entity_id": "$request.path.entity_id"}, {"other": "$response.body#/id"}
        ),
    },
    "entities-merge_entity": {
        "ReadEntity": _link("entities-read_entity", {"entity_id": "$response.body#/id"}),
    },
    "documents-read_document": {
        "ReadEntity": _link("entities-read_entity", {"entity_id": "$response.body#/mentions/0/entity_id"}),
        "DeleteDocument": _link("documents-delete_document", {"document_id": "$response.body#/id"}),
    },
}
"""OpenAPI links of each operation's 200 response: how a client (and schemathesis's stateful phase)
walks ingest -> read -> similar -> split -> merge back -> delete with ids the service returned."""


ENTITY_UPDATE: dict[str, Any] = {
    "anyOf": [{"required": [name], "properties": {name: {"type": "string"}}} for name in ("name", "label")]
}
"""A new name, a new label, or both."""


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


def _facet(schemas: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = schemas.get(path[0])
    for i, key in enumerate(path[1:]):
        if node is None:
            return None
        node = (
            node.get("properties", {}).get(key)
            if i == 0
            else (node[int(key)] if isinstance(node, list) else node.get(key))
        )
    return node if isinstance(node, dict) else None


def _runtime_facets(service: Any) -> dict[tuple[str, ...], dict[str, Any]]:
    """What only the open service knows: the model's labels (and label groups), ``max_k``, the vector size."""
    return {
        ("ExtractRequest", "labels", "anyOf", "0", "items"): {
            "enum": sorted(set(service.model.labels) | set(service.label_groups.values()))
        },
        ("SimilarRequest", "k"): {"maximum": service.settings.max_k},
        ("SimilarRequest", "vector", "anyOf", "0"): {
            "minItems": service.store.dim,
            "maxItems": service.store.dim,
        },
    }


def state_constraints(schemas: dict[str, Any], service: Any = None) -> None:
    """Write the validators' and the running service's constraints into the component schemas."""
    facets = dict(STATIC_FACETS)
    if service is not None:
        for path, keywords in _runtime_facets(service).items():
            facets[path] = {**facets.get(path, {}), **keywords}
    for path, keywords in facets.items():
        node = _facet(schemas, path)
        if node is not None:
            node.update(keywords)
    if "SimilarRequest" in schemas:
        schemas["SimilarRequest"].update(SIMILAR_QUERY)
    if "EntityUpdate" in schemas:
        schemas["EntityUpdate"].update(ENTITY_UPDATE)
    for name in ("DocumentCreate", "KnownEntityCreate"):
        if name in schemas:
            schemas["MetadataValue"] = METADATA_VALUE
            schemas[name]["properties"]["metadata"].update(
                {
                    "propertyNames": {"pattern": NO_NUL},
                    "additionalProperties": {"$ref": "#/components/schemas/MetadataValue"},
                }
            )


BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def integer_bounds(node: Any) -> None:
    """Give integer schemas integer bounds again (in place).

    FastAPI's OpenAPI model types bounds as floats: ``le=2**63 - 1`` came out as
    ``9.223372036854776e+18``, which is 2**63, one more than the largest id the server accepts.
    A float bound of an integer schema is an integer bound that went through a float; above
    ``MAX_ID`` it can only be ``MAX_ID`` rounded up.
    """
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in BOUNDS:
                if isinstance(node.get(key), float) and node[key].is_integer():
                    node[key] = min(int(node[key]), MAX_ID)
        for value in node.values():
            integer_bounds(value)
    elif isinstance(node, list):
        for value in node:
            integer_bounds(value)


def _not_null(parameter: dict[str, Any]) -> None:
    """``str | None = None`` documents a parameter as "string or null"; a URL cannot carry a null."""
    schema = parameter.get("schema", {})
    branches = schema.get("anyOf")
    if isinstance(branches, list):
        kept = [b for b in branches if b != {"type": "null"}]
        if len(kept) == 1 and len(kept) < len(branches):
            del schema["anyOf"]
            schema.update(kept[0])


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
        for parameter in operation.get("parameters", []):
            _not_null(parameter)
        if (links := LINKS.get(operation.get("operationId", ""))) and "200" in responses:
            responses["200"]["links"] = links
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
    state_constraints(schema.get("components", {}).get("schemas", {}), service)
    integer_bounds(schema)
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
