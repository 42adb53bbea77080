"""In-process checks of the app: settings overrides, extract options, micro-batching, OpenAPI, CLI."""

from __future__ import annotations

import json
import threading
import time

import pytest
from typer.testing import CliRunner

from api.batching import BatcherClosed, MicroBatcher
from api.settings import ServiceSettings, get_settings
from tests.api.conftest import AUTH

runner = CliRunner()


# -- settings ------------------------------------------------------------------------------------


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SPANLINK_MAX_K", "7")
    monkeypatch.setenv("SPANLINK_DATA_DIR", str(tmp_path))
    settings = ServiceSettings()
    assert settings.max_k == 7 and settings.data_dir == tmp_path
    assert settings.store_target() == str(tmp_path / "spanlink.db")
    get_settings.cache_clear()
    try:
        assert get_settings() is get_settings()  # built once
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("key", ["changethis", "short", "SECRET"])
def test_placeholder_api_keys_are_refused(key):
    with pytest.raises(ValueError, match="placeholder"):
        ServiceSettings(api_key=key)


def test_bad_vector_kind_is_refused():
    with pytest.raises(ValueError, match="vectors must be one of"):
        ServiceSettings(vectors="sparse")


def test_limits_follow_the_settings(make_client):
    client = make_client(max_text_chars=10, max_items=2, max_k=3)
    too_long = client.post("/v1/extract", json={"texts": ["x" * 11]})
    assert too_long.status_code == 413 and "at most 10" in too_long.json()["error"]["message"]
    assert client.post("/v1/extract", json={"texts": ["a", "b", "c"]}).status_code == 413
    named = client.post("/v1/documents", json={"documents": [{"id": "big", "text": "y" * 11}]}, headers=AUTH)
    assert named.status_code == 413 and "'big'" in named.json()["error"]["message"]
    assert client.post("/v1/entities/similar", json={"text": "a", "k": 4}).status_code == 422
    assert client.post("/v1/entities/similar", json={"text": "a", "k": 3}).status_code == 200


def test_settings_dependency_can_be_overridden(client):
    # Override after startup: the routes read settings per request through get_settings.
    client.app.dependency_overrides[get_settings] = lambda: ServiceSettings(max_items=1, vectors="span")
    assert client.post("/v1/extract", json={"texts": ["a", "b"]}).status_code == 413
    assert (
        client.post("/v1/documents", json={"documents": [{"text": "no key needed now"}]}).status_code == 200
    )


def test_without_an_api_key_writes_are_open(make_client):
    client = make_client(api_key=None)
    assert client.post("/v1/documents", json={"documents": [{"text": "Open door."}]}).status_code == 200


# -- endpoints -----------------------------------------------------------------------------------


def test_extract_options(client):
    # Every request sends the same texts: batches then compute the same floats, so entity lists of
    # different requests compare exactly (a random tiny model's scores sit close to ties).
    text = "Angela Merkel met Emmanuel Macron in Paris and Berlin."
    texts = [text, "Nothing."]
    plain = client.post("/v1/extract", json={"texts": texts}).json()["results"]
    assert len(plain) == 2
    entities = plain[0]["entities"]
    assert entities, "the tiny model must find something here for the filters below to bite"
    for e in entities:
        assert text[e["start"] : e["end"]] == e["text"] and "embedding" not in e
    with_vectors = client.post("/v1/extract", json={"texts": texts, "embeddings": True}).json()["results"]
    assert all(len(e["embedding"]) == 32 for e in with_vectors[0]["entities"])
    median = sorted(e["score"] for e in entities)[len(entities) // 2]
    high = client.post("/v1/extract", json={"texts": texts, "min_score": median}).json()["results"][0]
    assert high["entities"] == [e for e in entities if e["score"] >= median]
    label = entities[0]["label"]
    only = client.post("/v1/extract", json={"texts": texts, "labels": [label]}).json()["results"][0]
    assert only["entities"] == [e for e in entities if e["label"] == label]
    unknown = client.post("/v1/extract", json={"texts": [text], "labels": ["FOO"]})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["detail"] == {"allowed": ["LOC", "MISC", "ORG", "PER"]}


def test_documents_with_ner_link_and_replace(client):
    first = client.post(
        "/v1/documents", json={"documents": [{"id": "d", "text": "Angela Merkel in Paris."}]}, headers=AUTH
    )
    assert first.status_code == 200
    second = client.post(
        "/v1/documents", json={"documents": [{"id": "d", "text": "Merkel again."}]}, headers=AUTH
    )
    assert second.json()["documents"][0]["replaced"] is True
    assert client.get("/v1/documents/d").json()["text"] == "Merkel again."
    assert client.get("/health").json()["counts"]["documents"] == 1


def test_openapi_has_tagged_operation_ids(client):
    spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            tag = operation["tags"][0]
            assert operation["operationId"].startswith(f"{tag}-"), (path, operation["operationId"])
    assert set(spec["paths"]) >= {
        "/v1/extract",
        "/v1/documents",
        "/v1/documents/{document_id}",
        "/v1/link",
        "/v1/entities",
        "/v1/entities/similar",
        "/v1/entities/{entity_id}",
        "/v1/entities/{entity_id}/merge",
        "/v1/entities/{entity_id}/split",
        "/v1/entities/consolidate",
        "/health",
        "/metrics",
        "/-/versions",
    }


# -- micro-batching ------------------------------------------------------------------------------


def test_concurrent_requests_share_model_calls():
    calls = []

    def fn(texts, embeddings):
        calls.append(list(texts))
        time.sleep(0.01)
        return [[f"{t}:{embeddings}"] for t in texts]

    batcher = MicroBatcher(fn, max_wait_s=0.05, max_texts=64)
    results = {}

    def ask(i):
        results[i] = batcher.submit([f"a{i}", f"b{i}"]).result(5)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert results == {i: [[f"a{i}:False"], [f"b{i}:False"]] for i in range(8)}
    assert len(calls) < 8  # requests were merged
    assert sorted(t for call in calls for t in call) == sorted(f"{p}{i}" for i in range(8) for p in "ab")


def test_embeddings_flag_splits_the_batch_and_failures_stay_local():
    def fn(texts, embeddings):
        if "bad" in texts:
            raise ValueError("bad text")
        return [[embeddings] for _ in texts]

    batcher = MicroBatcher(fn, max_wait_s=0.05)
    good, bad, vec = batcher.submit(["x"]), batcher.submit(["bad"]), batcher.submit(["y"], embeddings=True)
    assert good.result(5) == [[False]] and vec.result(5) == [[True]]
    with pytest.raises(ValueError, match="bad text"):
        bad.result(5)
    assert batcher.submit([]).result(1) == []
    batcher.close()
    with pytest.raises(BatcherClosed):
        batcher.submit(["late"])


# -- CLI -----------------------------------------------------------------------------------------


def test_cli_serve_get_similar_and_entity(tiny_checkpoint, tmp_path):
    from api.cli import app

    common = ["--model", str(tiny_checkpoint), "--vectors", "span", "--data-dir", str(tmp_path)]
    health = runner.invoke(app, ["serve", *common, "--get", "/health"])
    assert health.exit_code == 0, health.output
    assert json.loads(health.stdout)["counts"] == {"documents": 0, "mentions": 0, "entities": 0}
    missing = runner.invoke(app, ["serve", *common, "--get", "/v1/entities/1"])
    assert missing.exit_code == 1 and json.loads(missing.stdout)["error"]["status"] == 404

    from api.service import Service

    service = Service.open(ServiceSettings(model=str(tiny_checkpoint), vectors="span", data_dir=tmp_path))
    from api.service import DocumentSpec, MentionSpec

    service.ingest([DocumentSpec("c1", "Odalys Fenwick spoke.", {}, mentions=[MentionSpec(0, 14, "PER")])])
    service.close()

    similar = runner.invoke(app, ["similar", "Odalys Fenwick", "-k", "3", *common])
    assert similar.exit_code == 0, similar.output
    hits = [json.loads(line) for line in similar.stdout.splitlines()]
    assert hits[0]["entity"]["name"] == "Odalys Fenwick"
    entity = runner.invoke(app, ["entity", str(hits[0]["entity"]["id"]), "--data-dir", str(tmp_path)])
    assert entity.exit_code == 0, entity.output
    detail = json.loads(entity.stdout)
    assert detail["mention_count"] == 1 and detail["mentions"][0]["document_id"] == "c1"
    assert runner.invoke(app, ["entity", "999", "--data-dir", str(tmp_path)]).exit_code == 1
    assert "no store" in runner.invoke(app, ["entity", "1", "--data-dir", str(tmp_path / "empty")]).output


def test_cli_serve_without_default_model_is_one_line(tmp_path, monkeypatch):
    from api.cli import app

    monkeypatch.setenv("SPANLINK_DEFAULT_MODEL", str(tmp_path / "no-model"))
    result = runner.invoke(app, ["serve", "--data-dir", str(tmp_path), "--get", "/health"])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "Traceback" not in result.output


def test_consolidate_merges_entities_that_online_linking_split(make_client):
    # Names only (the tiny model's vectors mean nothing): "EU" cannot link to "Unia Europejska" by
    # itself; "Unia Europejska (EU)" then teaches the first entity the alias, and consolidation merges.
    client = make_client(
        link_settings={"vector_weight": 0.0, "link_threshold": 0.9, "vector_only_cosine": 1.0}
    )
    docs = [
        ("d1", "Unia Europejska obraduje.", [(0, 15)]),
        ("d2", "EU votes.", [(0, 2)]),
        ("d3", "Unia Europejska (EU) znowu.", [(0, 15), (17, 19)]),
    ]
    body = {
        "documents": [
            {"id": i, "text": t, "mentions": [{"start": a, "end": b, "label": "ORG"} for a, b in spans]}
            for i, t, spans in docs
        ]
    }
    ingested = client.post("/v1/documents", json=body, headers=AUTH)
    assert ingested.status_code == 200, ingested.text
    union, eu = (d["mentions"][0]["entity_id"] for d in ingested.json()["documents"][:2])
    assert union != eu
    assert client.post("/v1/entities/consolidate").status_code == 401  # a write needs the key
    merged = client.post("/v1/entities/consolidate", headers=AUTH)
    assert merged.status_code == 200, merged.text
    assert merged.json() == {"merged": [{"id": eu, "into": union}]}
    assert client.get("/v1/documents/d2").json()["mentions"][0]["entity_id"] == union
    assert client.get(f"/v1/entities/{eu}").status_code == 404


def test_the_loaded_service_is_frozen_out_of_the_collector(make_client):
    """Full collections would walk the model's objects during requests (tens of ms, bench/gc_pause.py)."""
    import gc

    before = gc.get_freeze_count()
    client = make_client()
    assert gc.get_freeze_count() > before
    assert client.get("/health").status_code == 200
