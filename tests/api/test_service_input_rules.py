"""Input the service used to accept or crash on (issue 14, items 2 and 6): one rule, every endpoint.

Each case is refused with a 422 that says why, and nothing is written.
"""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import AUTH

SURROGATE = "\ud800 Merkel"


def raw_post(client, path, payload, headers=None):
    """POST JSON as the escaped bytes a client sends (``"\\ud800"`` stays an escape on the wire)."""
    body = json.dumps(payload)  # ensure_ascii: lone surrogates become \\ud800 escapes
    return client.post(path, content=body, headers={"content-type": "application/json", **(headers or {})})


def store_counts(client):
    return client.get("/health").json()["counts"]


SURROGATE_REQUESTS = [
    ("/v1/extract", {"texts": [SURROGATE]}),
    ("/v1/documents", {"documents": [{"text": SURROGATE}]}),
    ("/v1/documents", {"documents": [{"id": "\udc80", "text": "Angela Merkel"}]}),
    ("/v1/documents", {"documents": [{"text": "Angela Merkel", "metadata": {"source": "\ud800"}}]}),
    ("/v1/documents", {"documents": [{"text": "Angela Merkel", "metadata": {"\ud800": 1}}]}),
    ("/v1/link", {"text": SURROGATE}),
    ("/v1/entities/similar", {"text": SURROGATE}),
]


@pytest.mark.parametrize(("path", "payload"), SURROGATE_REQUESTS)
def test_lone_surrogates_get_422_on_every_text_field(client, path, payload):
    before = store_counts(client)
    response = raw_post(client, path, payload, AUTH)
    assert response.status_code == 422, response.text
    assert "not valid Unicode" in response.json()["error"]["message"]
    assert store_counts(client) == before


def test_split_names_and_labels_follow_the_rules(client):
    doc = {
        "id": "d",
        "text": "Angela Merkel and Olaf Scholz",
        "mentions": [{"start": 0, "end": 13, "label": "PER"}, {"start": 18, "end": 29, "label": "PER"}],
    }
    stored = client.post("/v1/documents", json={"documents": [doc]}, headers=AUTH).json()["documents"][0]
    mention = stored["mentions"][1]
    entity = mention["entity_id"]
    before = client.get(f"/v1/entities/{entity}").json()
    for body, needle in [
        ({"mention_ids": [mention["id"]], "name": "angela\x00 merkel"}, "NUL"),
        ({"mention_ids": [mention["id"]], "name": "olaf\x07scholz"}, "control character"),
        ({"mention_ids": [mention["id"]], "name": "\u200b"}, "no letter or digit"),
        ({"mention_ids": [mention["id"]], "label": "FOO"}, "unknown label 'FOO'"),
        ({"mention_ids": [mention["id"]], "label": "per"}, "did you mean 'PER'"),
    ]:
        response = client.post(f"/v1/entities/{entity}/split", json=body, headers=AUTH)
        assert response.status_code == 422, (body, response.text)
        assert needle in response.json()["error"]["message"], response.text
    assert client.get(f"/v1/entities/{entity}").json() == before
    ok = client.post(
        f"/v1/entities/{entity}/split", json={"mention_ids": [mention["id"]], "label": "ORG"}, headers=AUTH
    )
    assert ok.status_code == 200 and ok.json()["label"] == "ORG"


@pytest.mark.parametrize(
    ("document", "needle"),
    [
        ({"id": "   ", "text": "Angela Merkel"}, "whitespace"),
        ({"id": " padded ", "text": "Angela Merkel"}, "whitespace"),
        ({"id": "tab\there", "text": "Angela Merkel"}, "control"),
        ({"text": "Angela\x00 Merkel"}, "NUL"),
        ({"text": "A\u200bB", "mentions": [{"start": 1, "end": 2, "label": "PER"}]}, "no letter or digit"),
        ({"text": "A\u00adB", "mentions": [{"start": 1, "end": 2, "label": "PER"}]}, "no letter or digit"),
        (
            {"text": "Merkel — Macron", "mentions": [{"start": 7, "end": 8, "label": "PER"}]},
            "no letter or digit",
        ),
        ({"text": "Merkel in Paris", "mentions": [{"start": 6, "end": 10, "label": "LOC"}]}, "give (7, 9)"),
        (
            {"text": "Merkel\x01Paris", "mentions": [{"start": 0, "end": 12, "label": "LOC"}]},
            "control character",
        ),
        ({"text": "Merkel", "mentions": [{"start": 0, "end": 6, "label": "per"}]}, "did you mean 'PER'"),
        ({"text": "Merkel", "mentions": [{"start": 0, "end": 6, "label": "P\x00R"}]}, "label"),
        ({"text": "Merkel", "metadata": {"n": [1, {"deep": float("inf")}]}}, "finite"),
        ({"text": "Merkel", "metadata": {"n": float("nan")}}, "finite"),
    ],
)
def test_documents_that_would_store_junk_are_refused(client, document, needle):
    before = store_counts(client)
    response = raw_post(client, "/v1/documents", {"documents": [document]}, AUTH)
    assert response.status_code == 422, response.text
    assert needle in response.json()["error"]["message"], response.text
    assert store_counts(client) == before


def test_a_huge_exponent_is_refused_not_stored_as_null(client):
    body = '{"documents": [{"id": "m", "text": "Angela Merkel", "metadata": {"big": 1e400}}]}'
    response = client.post(
        "/v1/documents", content=body, headers={"content-type": "application/json", **AUTH}
    )
    assert response.status_code == 422 and "finite" in response.json()["error"]["message"]
    assert client.get("/v1/documents/m").status_code == 404


def test_deep_metadata_is_refused(client):
    deep: dict = {}
    inner = deep
    for _ in range(40):
        inner["x"] = {}
        inner = inner["x"]
    response = client.post(
        "/v1/documents", json={"documents": [{"text": "Merkel", "metadata": deep}]}, headers=AUTH
    )
    assert response.status_code == 422 and "nests deeper" in response.json()["error"]["message"]


def test_new_labels_of_given_mentions_are_kept(client):
    """Gold annotations may bring their own types (BSNLP's EVT): allowed, and then known to split."""
    doc = {"id": "e", "text": "Brexit talks", "mentions": [{"start": 0, "end": 6, "label": "EVT"}]}
    stored = client.post("/v1/documents", json={"documents": [doc]}, headers=AUTH)
    assert stored.status_code == 200
    clash = {"id": "f", "text": "Brexit talks", "mentions": [{"start": 0, "end": 6, "label": "evt"}]}
    response = client.post("/v1/documents", json={"documents": [clash]}, headers=AUTH)
    assert response.status_code == 422 and "did you mean 'EVT'" in response.json()["error"]["message"]


def test_ner_refuses_text_it_cannot_encode(_tiny_model):
    from ner import InputError

    with pytest.raises(InputError, match="not valid Unicode"):
        _tiny_model.extract(SURROGATE)
    with pytest.raises(InputError, match=r"texts\[1\]"):
        _tiny_model.extract(["fine", SURROGATE])
    with pytest.raises(InputError, match="not valid Unicode"):
        _tiny_model.embed_spans(SURROGATE, [(7, 13)])
