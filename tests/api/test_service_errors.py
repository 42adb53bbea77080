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


BODY_ROUTES = [
    ("/v1/extract", {"texts": ["Ada Lovelace"]}),
    ("/v1/documents", {"documents": [{"text": "Ada Lovelace"}]}),
    ("/v1/link", {"text": "Ada Lovelace"}),
    ("/v1/entities/similar", {"text": "Ada Lovelace"}),
    ("/v1/entities/1/merge", {"other": 2}),
    ("/v1/entities/1/split", {"mention_ids": [1]}),
]


@pytest.mark.parametrize(("path", "body"), BODY_ROUTES)
@pytest.mark.parametrize(
    "media", ["text/plain", "application/x-www-form-urlencoded", "text/plain; charset=utf-8"]
)
def test_json_under_another_media_type_is_415_naming_json(client, path, body, media):
    # Was 422 "Input should be a valid dictionary": the body was fine, its declared type was not.
    import json

    response = client.post(path, content=json.dumps(body), headers={**AUTH, "content-type": media})
    assert response.status_code == 415
    error = response.json()["error"]
    assert "Content-Type: application/json" in error["message"]
    assert error["detail"] == {"expected": "application/json", "got": media.split(";")[0]}


def test_json_suffix_media_types_are_json(client):
    response = client.post(
        "/v1/extract", content=b'{"texts": ["Ada"]}', headers={"content-type": "application/vnd.api+json"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(("path", "body"), BODY_ROUTES)
def test_invalid_utf8_is_400_saying_so(client, path, body):
    # Was 400 "There was an error parsing the body", which names no cause.
    raw = b'{"texts": ["caf\xe9"]}'  # Latin-1, not UTF-8
    response = client.post(path, content=raw, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith("the request body is not valid UTF-8 (byte 15")
    assert "parsing the body" not in message


def test_link_413_names_the_field_as_sent(make_client):
    # Was "text[0] has 11 characters": `text` is one string, not a list.
    response = make_client(max_text_chars=10).post("/v1/link", json={"text": "Ada Lovelace"})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["message"].startswith("text has 12 characters, at most 10")
    assert error["detail"] == {"limit": 10}


def test_too_many_mentions_names_the_document(make_client):
    body = {
        "documents": [
            {
                "id": "d1",
                "text": "Ada and Bob",
                "mentions": [{"start": 0, "end": 3, "label": "PER"}, {"start": 8, "end": 11, "label": "PER"}],
            }
        ]
    }
    response = make_client(max_mentions=1).post("/v1/documents", json=body, headers=AUTH)
    assert response.status_code == 413
    assert response.json()["error"]["message"] == "documents[0] (id 'd1') has 2 mentions, at most 1"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the request body is missing: send a JSON object"),
        (b"[1, 2]", "the request body must be a JSON object, not an array"),
        (b'"texts"', "the request body must be a JSON object, not a string"),
    ],
)
def test_body_that_is_not_an_object_is_named(client, content, message):
    response = client.post("/v1/extract", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["message"] == message


def test_405_allow_lists_every_method_of_the_path(client):
    # Was `Allow: GET` for /v1/documents/{id}: only the first matching route's methods.
    response = client.options("/v1/documents/some/doc")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET"
    assert response.json()["error"]["message"] == (
        "OPTIONS is not allowed here; this path answers DELETE, GET"
    )


def test_undeclared_method_on_similar_is_405_not_422(client):
    # GET /v1/entities/similar matched GET /v1/entities/{entity_id} and failed as "similar is not an int".
    response = client.get("/v1/entities/similar")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_entity_path_that_is_not_a_number_is_404(client):
    assert client.get("/v1/entities/abc").status_code == 404
    assert client.post("/v1/entities/abc/merge", json={"other": 1}, headers=AUTH).status_code == 404


def test_similar_text_has_the_same_length_limit_as_every_text(make_client):
    # /v1/entities/similar embedded a text of any length: the one text field without the 413.
    response = make_client(max_text_chars=10).post("/v1/entities/similar", json={"text": "Ada Lovelace"})
    assert response.status_code == 413
    assert response.json()["error"]["message"].startswith("text has 12 characters, at most 10")


def test_a_one_value_query_parameter_given_twice_is_422(client):
    # FastAPI silently took the last `q`; a list parameter (`label`) still takes several.
    response = client.get("/v1/entities?q=ada&q=bob")
    assert response.status_code == 422
    assert response.json()["error"] == {
        "status": 422,
        "message": "query parameter 'q' is given 2 times; it takes one value",
        "detail": {"parameter": "q"},
    }
    assert client.get("/v1/entities?q=ada&label=PER&label=LOC").status_code == 200


def test_an_unknown_query_parameter_is_422_naming_what_the_operation_takes(client):
    # `?lable=PER` (a typo) was ignored: the answer looked fine and was unfiltered.
    response = client.get("/v1/entities?q=ada&lable=PER")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"].startswith("unknown query parameter 'lable'; this operation takes: ")
    assert {"q", "label", "limit"} <= set(error["detail"]["allowed"])
    assert client.post("/v1/extract?verbose=1", json={"texts": ["Ada"]}).json()["error"]["message"] == (
        "unknown query parameter 'verbose'; this operation takes: none"
    )
