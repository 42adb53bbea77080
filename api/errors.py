"""One error shape for the whole API: ``{"error": {"status", "message", "detail"?}}``.

Every failure — our own :class:`ServiceError`, FastAPI's request validation, Starlette's 404/405
for unknown routes, domain errors from ``index``/``linking``/``ner`` — goes through one of the
handlers below and comes out in that shape, so clients parse one thing (pinned by
``tests/api/test_service_errors.py``). Unexpected exceptions still produce the shape, with a 500
and no internals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("spanlink.api")


class ServiceError(Exception):
    """A failure with an HTTP status: raised anywhere in the service, rendered by one handler.

    Args:
        status (int): HTTP status code.
        message (str): What went wrong and, where possible, how to fix it.
        detail (Any): Structured context (the offending field, the allowed values). Defaults to None.
        headers (dict[str, str] | None): Extra response headers (``WWW-Authenticate``). Defaults to None.
    """

    def __init__(self, status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail
        self.headers = headers


def error_body(status: int, message: str, detail: Any = None) -> dict[str, Any]:
    """The JSON body of every error response."""
    error: dict[str, Any] = {"status": status, "message": message}
    if detail is not None:
        error["detail"] = jsonable_encoder(detail)
    return {"error": error}


def error_response(error: ServiceError) -> JSONResponse:
    """Render a :class:`ServiceError`."""
    return JSONResponse(
        error_body(error.status, error.message, error.detail), status_code=error.status, headers=error.headers
    )


def from_domain(exc: Exception) -> ServiceError | None:
    """Map an error of a lower layer to a :class:`ServiceError`, or None when it is not ours to map.

    ``NotFound`` -> 404; ``InvalidInput`` / ``ner.InputError`` -> 422 (the caller's input reached
    the store or model and was refused there); a closed or failing store -> 503. Linking errors
    are mapped by the adapter, ``api/service.py``, the one module that imports ``linking``.
    """
    from index import InvalidInput, NotFound, StoreClosed, StoreError

    if isinstance(exc, NotFound):
        return ServiceError(404, f"{exc.kind} {exc.key!r} not found", {"kind": exc.kind, "id": exc.key})
    if isinstance(exc, InvalidInput):
        return ServiceError(422, exc.message, exc.context or None)
    if isinstance(exc, StoreClosed | StoreError):
        return ServiceError(503, f"the store is unavailable: {exc.message}")
    from ner import InputError

    if isinstance(exc, InputError):
        return ServiceError(422, str(exc))
    return None


def _validation_message(errors: list[dict[str, Any]], body: Any) -> tuple[int, str]:
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "the request body is not valid JSON"
    first = errors[0] if errors else {}
    loc = list(first.get("loc", ()))
    # The body as a whole: say what is wrong with it, not "invalid request: Field required".
    if loc == ["body"] and first.get("type") == "missing":
        return 422, "the request body is missing: send a JSON object"
    if loc == ["body"] and first.get("type") in ("model_attributes_type", "model_type", "dict_type"):
        return 422, f"the request body must be a JSON object, not {_json_kind(body)}"
    where = ".".join(str(part) for part in loc if part != "body") or "request"
    # Name a batch document by its id too, so the caller finds it without counting.
    if loc[:2] == ["body", "documents"] and len(loc) > 2 and isinstance(loc[2], int):
        try:
            key = body["documents"][loc[2]].get("id")
        except (TypeError, KeyError, IndexError, AttributeError):
            key = None
        if isinstance(key, str):
            where += f" (id {key!r})"
    message = str(first.get("msg", "invalid input")).removeprefix("Value error, ")
    if first.get("type") == "string_pattern_mismatch":  # say the rule, not the regex
        message = pattern_messages().get((first.get("ctx") or {}).get("pattern"), message)
    if first.get("type") == "string_unicode":  # pydantic's own words for a lone surrogate
        message = "text is not valid Unicode (a lone surrogate such as \\ud800)"
    return 422, f"invalid {where}: {message}"


def pattern_messages() -> dict[str, str]:
    """What each pattern of ``api.schemas`` asks for, in words (a regex of Unicode classes helps nobody)."""
    from api.schemas import CURSOR_PATTERN, LABEL_PATTERN, NON_BLANK

    return {
        NON_BLANK: "must hold a character that is not whitespace",
        CURSOR_PATTERN: "must be the `next` value of a previous page",
        LABEL_PATTERN: "a label has no control characters and no whitespace at either end",
    }


def _json_kind(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), "that")


BODY_PARSE_ERROR = "There was an error parsing the body"
"""FastAPI's detail when reading a JSON body fails for another reason than bad JSON syntax."""


def body_parse_message(exc: BaseException) -> str:
    """Say why a body could not be read: FastAPI's own message names no cause.

    ``json.loads`` decodes bytes before parsing them, so invalid UTF-8 surfaces as a
    ``UnicodeDecodeError`` (chained as the cause), not as a JSON syntax error.
    """
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return f"the request body is not valid UTF-8 (byte {cause.start}: {cause.reason}); JSON must be UTF-8"
    return "the request body could not be read as JSON"


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the one error shape."""

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        status, message = _validation_message(errors, exc.body)
        detail = [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in errors]
        return JSONResponse(error_body(status, message, detail), status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 400 and message == BODY_PARSE_ERROR:
            message = body_parse_message(exc)
        headers = exc.headers
        allowed = getattr(request.app.state, "allowed_methods", None)
        if exc.status_code == 405 and allowed is not None and (methods := allowed(request.url.path)):
            # Every route of the path, not only the first one Starlette matched.
            headers = {**(headers or {}), "Allow": ", ".join(methods)}
            message = f"{request.method} is not allowed here; this path answers {', '.join(methods)}"
        return JSONResponse(
            error_body(exc.status_code, message), status_code=exc.status_code, headers=headers
        )

    async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
        mapped = from_domain(exc)
        if mapped is None:  # pragma: no cover - only registered for mapped classes
            return await _unexpected(request, exc)
        return error_response(mapped)

    # Registered per class so they are handled inside the app (the catch-all below runs in
    # Starlette's outermost middleware, which logs and re-raises after answering).
    from index import StoreError
    from ner import InputError

    for domain in (StoreError, InputError):
        app.add_exception_handler(domain, _domain_error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        mapped = from_domain(exc)
        if mapped is not None:
            return error_response(mapped)
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, "internal error; see the server log"), status_code=500)
