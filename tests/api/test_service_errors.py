"""The one error shape, pinned: every failure is ``{"error": {"status", "message", "detail"?}}``."""

from __future__ import annotations

import pytest

from api.errors import ServiceError, error_body
from tests.api.conftest import AUTH


def test_error_body_shape():
    assert error_body(404, "entity 3 not found") == {
        "error": {"status": 404, "message": "entity 3 not found"}
    }
    assert error_body(422, "bad", {"field": "k"}) == {
        "error": {"status": 422, "message": "bad", "detail": {"field": "k"}}
    }


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "expected"),
    [
        # a store NotFound, mapped by the handler
        (
            "GET",
            "/v1/entities/42",
            {},
            {"status": 404, "message": "entity 42 not found", "detail": {"kind": "entity", "id": 42}},
        ),
        # a route the app does not have (Starlette's 404)
        ("GET", "/nope", {}, {"status": 404, "message": "Not Found"}),
        # the API key missing
        (
            "POST",
            "/v1/documents",
            {"json": {"documents": [{"text": "x"}]}},
            {
                "status": 401,
                "message": "this endpoint needs the API key: "
                "send `Authorization: Bearer KEY` or `X-API-Key: KEY`",
            },
        ),
        # a limit from the settings
        (
            "POST",
            "/v1/extract",
            {"json": {"texts": ["x"] * 65}},
            {
                "status": 413,
                "message": "too many texts: 65 in one request, at most 64 (send several requests, "
                "or raise SPANLINK_MAX_ITEMS)",
                "detail": {"limit": 64, "count": 65},
            },
        ),
    ],
)
def test_error_shape_is_pinned(client, method, path, kwargs, expected):
    response = client.request(method, path, **kwargs)
    assert response.status_code == expected["status"]
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": expected}


def test_validation_errors_share_the_shape_and_name_the_document(client):
    body = {
        "documents": [
            {"id": "ok", "text": "fine"},
            {"id": "broken", "text": "abc", "mentions": [{"start": 0}]},
        ]
    }
    response = client.post("/v1/documents", json=body, headers=AUTH)
    assert response.status_code == 422
    error = response.json()["error"]
    assert set(error) == {"status", "message", "detail"}
    assert error["message"].startswith("invalid documents.1.mentions.0.end (id 'broken'): Field required")
    assert error["detail"][0] == {
        "type": "missing",
        "loc": ["body", "documents", 1, "mentions", 0, "end"],
        "msg": "Field required",
    }


def test_invalid_json_is_400(client):
    response = client.post("/v1/extract", content=b"{", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "the request body is not valid JSON"


def test_unexpected_exception_is_a_500_in_the_shape(client, monkeypatch):
    service = client.app.state.service

    def boom(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "get_document", boom)
    response = client.get("/v1/documents/x")
    assert response.status_code == 500
    assert response.json() == {"error": {"status": 500, "message": "internal error; see the server log"}}
    assert "secret" not in response.text


def test_service_error_carries_headers():
    error = ServiceError(401, "key", headers={"WWW-Authenticate": "Bearer"})
    assert (error.status, error.message, error.detail, error.headers) == (
        401,
        "key",
        None,
        {"WWW-Authenticate": "Bearer"},
    )
