"""Dependencies shared by the routers: settings, the service, write access, and lookups that 404.

Lookups live here so no handler repeats "fetch it or answer 404"; the store's ``NotFound`` is
turned into the one error shape by :mod:`api.errors`.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ServiceError
from api.schemas import MAX_ID
from api.service import Service
from api.settings import ServiceSettings, get_settings
from index import EntityPublic

SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]


def get_service(request: Request) -> Service:
    """The service opened by the app's lifespan."""
    service = getattr(request.app.state, "service", None)
    if service is None:  # only outside the lifespan, e.g. a TestClient used without `with`
        raise ServiceError(503, "the service is not started")
    return service


ServiceDep = Annotated[Service, Depends(get_service)]

_bearer = HTTPBearer(auto_error=False, description="The API key as a bearer token.")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key.")


def require_write_access(
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> None:
    """Refuse writes without the configured API key: 401 when none is sent, 403 when it is wrong.

    Without a configured key every write is allowed (a local, single-user service).
    """
    if settings.api_key is None:
        return
    given = bearer.credentials if bearer is not None else header
    if not given:
        raise ServiceError(
            401,
            "this endpoint needs the API key: send `Authorization: Bearer KEY` or `X-API-Key: KEY`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Constant-time comparison, so response timing does not reveal how much of a guess was right.
    if not hmac.compare_digest(given.encode(), settings.api_key.get_secret_value().encode()):
        raise ServiceError(403, "the API key is not valid")


WriteAccess = Depends(require_write_access)

JSON_MEDIA_TYPE = "application/json"


def require_json(request: Request) -> None:
    """Refuse a body sent under another media type (415) instead of failing to validate it (422).

    FastAPI parses a body as JSON only when it is declared JSON (or not declared at all); any other
    ``Content-Type`` hands the raw bytes to validation, whose "Input should be a valid dictionary"
    hides the real mistake. ``application/*+json`` types are JSON too.
    """
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media = declared.split(";", 1)[0].strip().lower()
    if media == JSON_MEDIA_TYPE or (media.startswith("application/") and media.endswith("+json")):
        return
    raise ServiceError(
        415,
        f"the request body must be JSON: send it with `Content-Type: {JSON_MEDIA_TYPE}` (got {media!r})",
        {"expected": JSON_MEDIA_TYPE, "got": media},
    )


JsonBody = Depends(require_json)


def strict_query(request: Request) -> None:
    """Refuse query parameters the operation does not take, and one-value ones given several times.

    FastAPI ignores an unknown parameter (``?lable=PER`` answered unfiltered, as if all was well)
    and keeps the last of repeated ones (``?q=a&q=b``). Request bodies already refuse unknown
    fields; this holds query strings to the same rule. What each operation takes, and which
    parameters take several values (``label``), is read from the app's own OpenAPI document, so
    the rule and the document cannot disagree.
    """
    names = [name for name, _ in request.query_params.multi_items()]
    if not names:
        return
    from api.metrics import route_template

    operation = request.app.openapi()["paths"].get(route_template(request.scope), {})
    parameters = [
        p for p in operation.get(request.method.lower(), {}).get("parameters", []) if p.get("in") == "query"
    ]
    known = {p["name"] for p in parameters}
    lists = {p["name"] for p in parameters if p.get("schema", {}).get("type") == "array"}
    for name in dict.fromkeys(names):
        if name not in known:
            takes = ", ".join(sorted(known)) or "none"
            raise ServiceError(
                422,
                f"unknown query parameter {name!r}; this operation takes: {takes}",
                {"parameter": name, "allowed": sorted(known)},
            )
        if name not in lists and names.count(name) > 1:
            raise ServiceError(
                422,
                f"query parameter {name!r} is given {names.count(name)} times; it takes one value",
                {"parameter": name},
            )


EntityIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Entity id.")]


def existing_entity(entity_id: EntityIdPath, service: ServiceDep) -> EntityPublic:
    """The entity named in the path, or a 404."""
    return service.get_entity(entity_id)


EntityDep = Annotated[EntityPublic, Depends(existing_entity)]
