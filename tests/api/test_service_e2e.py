"""End to end against a real `spanlink serve` process (uvicorn on 127.0.0.1) and a real store.

One server serves the whole module (starting one costs seconds); tests use their own document
ids and entity names, so they do not depend on each other's data.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api.conftest import API_KEY, AUTH


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as client:
        yield client


def _ingest(http, *documents, expect=200):
    response = http.post("/v1/documents", json={"documents": list(documents)}, headers=AUTH)
    assert response.status_code == expect, response.text
    return response.json()


def _doc(doc_id, text, *spans):
    """A document with given mentions: (surface, label) pairs located in the text."""
    mentions = []
    for surface, label in spans:
        start = text.index(surface)
        mentions.append({"start": start, "end": start + len(surface), "label": label})
    return {"id": doc_id, "text": text, "mentions": mentions}


def _counts(http):
    return http.get("/health").json()["counts"]


def test_ingest_get_and_generated_ids(http):
    body = _ingest(
        http,
        _doc(
            "e2e/ingest-1",
            "Zephyrine Okonkwo opened the Lisbon office.",
            ("Zephyrine Okonkwo", "PER"),
            ("Lisbon", "LOC"),
        ),
        {"text": "Angela Merkel visited Paris.", "metadata": {"source": "test", "n": 1}},  # NER, no id
    )
    first, second = body["documents"]
    assert first["id"] == "e2e/ingest-1" and first["replaced"] is False
    assert [(m["text"], m["label"]) for m in first["mentions"]] == [
        ("Zephyrine Okonkwo", "PER"),
        ("Lisbon", "LOC"),
    ]
    assert all(isinstance(m["id"], int) and isinstance(m["entity_id"], int) for m in first["mentions"])
    assert second["id"] and second["replaced"] is False

    stored = http.get("/v1/documents/e2e/ingest-1").json()  # ids may hold slashes
    assert stored["id"] == "e2e/ingest-1"
    assert stored["text"] == "Zephyrine Okonkwo opened the Lisbon office."
    assert stored["mentions"] == first["mentions"]
    generated = http.get(f"/v1/documents/{second['id']}").json()
    assert generated["metadata"] == {"source": "test", "n": 1}

    entity = http.get(f"/v1/entities/{first['mentions'][0]['entity_id']}").json()
    assert entity["name"] == "Zephyrine Okonkwo" and entity["label"] == "PER"
    assert entity["mentions"][0]["document_id"] == "e2e/ingest-1"
    found = http.get("/v1/entities", params={"q": "zephyrine"}).json()
    assert found["count"] == 1 and found["data"][0]["id"] == entity["id"]


def test_reingest_replaces(http):
    _ingest(
        http,
        _doc(
            "e2e/re",
            "Quillon Vasquez met Ottoline Brandt.",
            ("Quillon Vasquez", "PER"),
            ("Ottoline Brandt", "PER"),
        ),
    )
    before = _counts(http)
    body = _ingest(http, _doc("e2e/re", "Quillon Vasquez left.", ("Quillon Vasquez", "PER")))
    assert body["documents"][0]["replaced"] is True
    stored = http.get("/v1/documents/e2e/re").json()
    assert stored["text"] == "Quillon Vasquez left." and len(stored["mentions"]) == 1
    after = _counts(http)
    assert after["documents"] == before["documents"]
    assert after["mentions"] == before["mentions"] - 1
    assert http.get("/v1/entities", params={"q": "ottoline"}).json()["count"] == 0  # its only mention went


def test_link_finds_known_entity_and_stores_nothing(http):
    body = _ingest(http, _doc("e2e/link", "Ignatius Pemberton spoke in Oslo.", ("Ignatius Pemberton", "PER")))
    entity_id = body["documents"][0]["mentions"][0]["entity_id"]
    before = _counts(http)
    response = http.post(
        "/v1/link",
        json={"text": "Ignatius Pemberton arrived.", "mentions": [{"start": 0, "end": 18, "label": "PER"}]},
    )
    assert response.status_code == 200, response.text
    (mention,) = response.json()["mentions"]
    assert mention["entity"]["id"] == entity_id and mention["link_score"] > 0
    unknown = http.post(
        "/v1/link",
        json={"text": "Xanthippe Roux-Delacroix", "mentions": [{"start": 0, "end": 24, "label": "ORG"}]},
    ).json()
    assert unknown["mentions"][0]["entity"] is None and unknown["mentions"][0]["link_score"] is None
    assert http.post("/v1/link", json={"text": "Angela Merkel visited Paris."}).status_code == 200  # NER
    assert _counts(http) == before


def test_similar_by_text_entity_and_vector(http):
    body = _ingest(
        http,
        _doc(
            "e2e/sim",
            "Bartholomew Quince and Cordelia Fitch sailed to Reykjavik.",
            ("Bartholomew Quince", "PER"),
            ("Cordelia Fitch", "PER"),
            ("Reykjavik", "LOC"),
        ),
    )
    ids = [m["entity_id"] for m in body["documents"][0]["mentions"]]
    by_text = http.post("/v1/entities/similar", json={"text": "Bartholomew Quince", "k": 5}).json()
    assert 1 <= by_text["count"] <= 5 and by_text["count"] == len(by_text["data"])
    scores = [hit["score"] for hit in by_text["data"]]
    assert scores == sorted(scores, reverse=True)
    in_context = http.post(
        "/v1/entities/similar",
        json={"text": "We met Cordelia Fitch today.", "start": 7, "end": 21, "k": 3, "labels": ["PER"]},
    ).json()
    assert all(hit["entity"]["label"] == "PER" for hit in in_context["data"])
    by_entity = http.post("/v1/entities/similar", json={"entity_id": ids[0], "k": 1000}).json()
    assert ids[0] not in [hit["entity"]["id"] for hit in by_entity["data"]]  # itself excluded
    by_vector = http.post(
        "/v1/entities/similar", json={"vector": [0.1] * 32, "k": 2, "labels": ["LOC"]}
    ).json()
    assert all(hit["entity"]["label"] == "LOC" for hit in by_vector["data"])


def test_merge_split_and_delete(http):
    a = _ingest(http, _doc("e2e/m1", "Perpetua Lindqvist signed.", ("Perpetua Lindqvist", "PER")))
    b = _ingest(http, _doc("e2e/m2", "Desmond Achterberg declined.", ("Desmond Achterberg", "PER")))
    a_id = a["documents"][0]["mentions"][0]["entity_id"]
    b_mention = b["documents"][0]["mentions"][0]
    assert b_mention["entity_id"] != a_id

    merged = http.post(f"/v1/entities/{a_id}/merge", json={"other": b_mention["entity_id"]}, headers=AUTH)
    assert merged.status_code == 200, merged.text
    assert merged.json()["mention_count"] == 2
    assert {x["alias"] for x in merged.json()["aliases"]} >= {"perpetua lindqvist", "desmond achterberg"}
    assert http.get(f"/v1/entities/{b_mention['entity_id']}").status_code == 404
    assert http.get("/v1/documents/e2e/m2").json()["mentions"][0]["entity_id"] == a_id

    split = http.post(f"/v1/entities/{a_id}/split", json={"mention_ids": [b_mention["id"]]}, headers=AUTH)
    assert split.status_code == 200, split.text
    new = split.json()
    assert new["name"] == "Desmond Achterberg" and new["mention_count"] == 1 and new["id"] != a_id
    assert http.get(f"/v1/entities/{a_id}").json()["mention_count"] == 1
    assert http.get("/v1/documents/e2e/m2").json()["mentions"][0]["entity_id"] == new["id"]

    deleted = http.delete("/v1/documents/e2e/m2", headers=AUTH)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": "e2e/m2", "removed_entity_ids": [new["id"]]}
    assert http.get("/v1/documents/e2e/m2").status_code == 404
    assert http.get(f"/v1/entities/{new['id']}").status_code == 404
    assert http.delete("/v1/documents/e2e/m2", headers=AUTH).status_code == 404


def test_batch_is_all_or_nothing(http):
    good = _doc("e2e/batch-good", "Florentyna Moss wrote.", ("Florentyna Moss", "PER"))
    bad = {
        "id": "e2e/batch-bad",
        "text": "Overlap here",
        "mentions": [{"start": 0, "end": 7, "label": "PER"}, {"start": 3, "end": 12, "label": "PER"}],
    }
    response = http.post("/v1/documents", json={"documents": [good, bad]}, headers=AUTH)
    assert response.status_code == 422
    assert "e2e/batch-bad" in response.json()["error"]["message"]
    assert "overlap" in response.json()["error"]["message"]
    assert http.get("/v1/documents/e2e/batch-good").status_code == 404
    duplicate = http.post("/v1/documents", json={"documents": [good, good]}, headers=AUTH)
    assert duplicate.status_code == 422 and "twice" in duplicate.json()["error"]["message"]
    assert http.get("/v1/documents/e2e/batch-good").status_code == 404


def _span(start, end, label="PER"):
    return {"start": start, "end": end, "label": label}


BAD_REQUESTS = [
    # (method, path, json body or raw bytes, expected status) — one row per kind of mistake
    ("POST", "/v1/extract", {"texts": [""]}, 422),  # empty text
    ("POST", "/v1/extract", {"texts": ["   "]}, 422),  # whitespace only
    ("POST", "/v1/extract", {"texts": []}, 422),  # nothing to do
    ("POST", "/v1/extract", {"texts": "Paris"}, 422),  # wrong type: string for a list
    ("POST", "/v1/extract", {"texts": [1, 2]}, 422),  # wrong item type
    ("POST", "/v1/extract", {"texts": ["x"], "min_score": 2}, 422),  # out of range
    ("POST", "/v1/extract", {"texts": ["x"], "labels": ["FOO"]}, 422),  # unknown label
    ("POST", "/v1/extract", {"texts": ["x"], "bogus": 1}, 422),  # unknown field
    ("POST", "/v1/extract", {"texts": ["x"] * 65}, 413),  # too many texts
    ("POST", "/v1/extract", {"texts": ["a" * 1_000_001]}, 413),  # text over the limit
    ("POST", "/v1/extract", b'{"texts": ["x"', 400),  # invalid JSON
    ("POST", "/v1/extract", b"\xff\xfe", 400),  # not even UTF-8
    ("POST", "/v1/documents", {"documents": [{"text": "x" * 10_000_000}]}, 413),  # 10 MB text
    ("POST", "/v1/documents", {"documents": [{"text": ""}]}, 422),
    ("POST", "/v1/documents", {"documents": []}, 422),
    (
        "POST",
        "/v1/documents",
        {"documents": [{"text": "abc", "mentions": [_span(2, 9)]}]},
        422,
    ),  # past the end
    ("POST", "/v1/documents", {"documents": [{"text": "abc", "mentions": [_span(2, 2)]}]}, 422),  # empty span
    ("POST", "/v1/documents", {"documents": [{"text": "abc", "mentions": [_span(-1, 2)]}]}, 422),  # negative
    ("POST", "/v1/documents", {"documents": [{"text": "abcd", "mentions": [_span(0, 3), _span(2, 4)]}]}, 422),
    (
        "POST",
        "/v1/documents",
        {"documents": [{"text": "abc", "mentions": [{"start": "0", "end": 2, "label": "X"}]}]},
        422,
    ),
    (
        "POST",
        "/v1/documents",
        {"documents": [{"text": "abc", "metadata": [1]}]},
        422,
    ),  # metadata not an object
    ("POST", "/v1/documents", {"documents": [{"text": "abc", "id": 5}]}, 422),  # id must be a string
    ("POST", "/v1/link", {"text": "abc", "mentions": [_span(0, 4)]}, 422),
    ("POST", "/v1/link", {"mentions": []}, 422),
    ("POST", "/v1/entities/similar", {"k": 5}, 422),  # no query
    ("POST", "/v1/entities/similar", {"text": "a", "entity_id": 1}, 422),  # two queries
    ("POST", "/v1/entities/similar", {"text": "a", "k": 1001}, 422),  # k over max_k
    ("POST", "/v1/entities/similar", {"text": "a", "k": 0}, 422),
    ("POST", "/v1/entities/similar", {"vector": [0.1] * 31}, 422),  # wrong size
    ("POST", "/v1/entities/similar", {"vector": [0.0] * 32}, 422),  # zero vector
    ("POST", "/v1/entities/similar", {"entity_id": 999_999}, 404),
    ("GET", "/v1/documents/no-such-document", None, 404),
    ("DELETE", "/v1/documents/no-such-document", None, 404),
    ("GET", "/v1/entities/999999", None, 404),
    ("GET", "/v1/entities/abc", None, 404),  # entity ids are numbers: no such route
    ("GET", "/v1/entities/99999999999999999999999", None, 422),  # beyond 64 bits
    ("GET", "/v1/entities?sort=size", None, 422),  # unknown sort order
    ("GET", "/v1/entities?q=a&sort=name", None, 422),  # search results have their own order
    ("POST", "/v1/entities/999999/merge", {"other": 1}, 404),
    ("POST", "/v1/entities/999999/split", {"mention_ids": [1]}, 404),
    ("GET", "/v1/nothing-here", None, 404),
    ("PUT", "/v1/extract", {"texts": ["x"]}, 405),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), BAD_REQUESTS)
def test_bad_input_gets_its_4xx(http, method, path, body, status):
    if isinstance(body, bytes):
        response = http.request(
            method, path, content=body, headers={**AUTH, "content-type": "application/json"}
        )
    else:
        response = http.request(method, path, json=body, headers=AUTH)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["message"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/documents", {"documents": [{"text": "Some text."}]}),
        ("DELETE", "/v1/documents/anything", None),
        ("POST", "/v1/entities/1/merge", {"other": 2}),
        ("POST", "/v1/entities/1/split", {"mention_ids": [1]}),
    ],
)
def test_write_endpoints_need_the_key(http, method, path, body):
    missing = http.request(method, path, json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = http.request(method, path, json=body, headers={"Authorization": "Bearer wrong-key-123456"})
    assert wrong.status_code == 403
    assert http.request(method, path, json=body, headers={"X-API-Key": "nope"}).status_code == 403
    assert json.loads(wrong.text)["error"]["status"] == 403


def test_reads_need_no_key(http):
    assert http.post("/v1/extract", json={"texts": ["Paris"]}).status_code == 200
    assert http.get("/v1/entities", params={"q": "a"}).status_code == 200


def test_concurrent_ingest_and_queries_stay_consistent(http):
    before = _counts(http)

    def work(i):
        doc = _doc(
            f"e2e/conc-{i}", f"Client{i} Hargreave met Orla{i} in Tromso.", (f"Client{i} Hargreave", "PER")
        )
        posted = http.post(
            "/v1/documents",
            json={"documents": [doc, {"id": f"e2e/conc-ner-{i}", "text": f"Angela Merkel {i}"}]},
            headers=AUTH,
        )
        similar = http.post("/v1/entities/similar", json={"text": f"Client{i} Hargreave", "k": 3})
        extracted = http.post("/v1/extract", json={"texts": [f"Paris {i}", "Berlin"]})
        return posted.status_code, similar.status_code, extracted.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(work, range(16)))
    assert all(s == (200, 200, 200) for s in statuses), statuses
    for i in range(16):
        assert http.get(f"/v1/documents/e2e/conc-{i}").status_code == 200
        assert http.get(f"/v1/documents/e2e/conc-ner-{i}").status_code == 200
    assert _counts(http)["documents"] == before["documents"] + 32


def test_introspection_and_metrics(http):
    versions = http.get("/-/versions").json()
    assert versions["model"]["labels"] == ["LOC", "MISC", "ORG", "PER"]
    assert versions["model"]["hidden_size"] == 32 and versions["index"]["dim"] == 32
    assert versions["index"]["factory"] == "Flat"
    settings = http.get("/-/settings").json()["settings"]
    assert settings["api_key"] == "set" and API_KEY not in http.get("/-/settings").text
    text = http.get("/metrics").text
    assert 'spanlink_http_requests_total{method="POST",route="/v1/documents",status="200"}' in text
    assert "spanlink_documents " in text and "spanlink_ner_batch_texts_count" in text
    assert http.get("/openapi.json").json()["paths"]["/v1/documents"]["post"]["operationId"] == (
        "documents-create_documents"
    )
    assert http.get("/docs").status_code == 200
