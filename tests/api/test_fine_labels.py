"""The service with a label hierarchy (a tiny `fine` model): group fields, filters by group, --model fine."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.api.conftest import API_KEY, ingest_spans
from tests.conftest import TINY_FINE_GROUPS
from tests.ner.sentences import SENTENCES

GROUP_OF = dict(TINY_FINE_GROUPS)
NAME = "Arnold Schwarzenegger"
runner = CliRunner()


@pytest.fixture
def fine_client(tiny_fine_checkpoint, tmp_path):
    from fastapi.testclient import TestClient

    import ner
    from api.main import create_app
    from api.service import Service, open_store
    from api.settings import ServiceSettings
    from linking.embedding import SpanEmbedder

    model = ner.load(tiny_fine_checkpoint)
    settings = ServiceSettings(vectors="span", data_dir=tmp_path / "fine", api_key=API_KEY)
    embedder = SpanEmbedder(model)
    service = Service(settings, model, open_store(settings, embedder.dim), embedder)
    with TestClient(create_app(settings, service=service), raise_server_exceptions=False) as client:
        yield client


def extract(client, **body):
    response = client.post("/v1/extract", json={"texts": SENTENCES[:6], **body})
    assert response.status_code == 200, response.text
    return [r["entities"] for r in response.json()["results"]]


def test_extract_reports_groups_and_filters_by_them(fine_client):
    everything = extract(fine_client)
    flat = [e for row in everything for e in row]
    assert {e["label"] for e in flat} >= {"Artist", "Politician"}
    assert all(e["group"] == GROUP_OF[e["label"]] for e in flat)
    people = extract(fine_client, labels=["PER"])
    assert people == [[e for e in row if e["group"] == "PER"] for row in everything]
    assert {e["label"] for row in people for e in row} == {"Artist", "Politician"}
    assert extract(fine_client, labels=["Artist"]) == [
        [e for e in row if e["label"] == "Artist"] for row in everything
    ]


def test_unknown_filter_names_the_groups(fine_client):
    response = fine_client.post("/v1/extract", json={"texts": ["x"], "labels": ["Person"]})
    assert response.status_code == 422
    error = response.json()["error"]
    assert (
        "unknown labels ['Person']" in error["message"]
        and "groups: ['PER', 'GRP', 'LOC']" in error["message"]
    )
    assert {"PER", "GRP", "LOC", "Artist"} <= set(error["detail"]["allowed"])


def test_stored_mentions_and_entities_carry_groups(fine_client):
    first = ingest_spans(fine_client, "a", f"{NAME} starred in the film.", [(NAME, "Artist")])
    assert [(m["label"], m["group"]) for m in first["mentions"]] == [("Artist", "PER")]
    ingest_spans(fine_client, "b", "Los Angeles Lakers won.", [("Los Angeles Lakers", "SportsGRP")])
    entity_id = first["mentions"][0]["entity_id"]
    entity = fine_client.get(f"/v1/entities/{entity_id}").json()
    assert (entity["label"], entity["group"]) == ("Artist", "PER")
    assert [(m["label"], m["group"]) for m in entity["mentions"]] == [("Artist", "PER")]
    document = fine_client.get("/v1/documents/a").json()
    assert document["mentions"][0]["group"] == "PER"
    # A group name filters stored entities too: PER means every person type.
    listed = fine_client.get("/v1/entities", params={"label": "PER"}).json()["data"]
    assert [e["id"] for e in listed] == [entity_id]
    assert [e["group"] for e in fine_client.get("/v1/entities", params={"label": "GRP"}).json()["data"]] == [
        "GRP"
    ]
    similar = fine_client.post("/v1/entities/similar", json={"text": NAME, "labels": ["PER"]}).json()["data"]
    assert [h["entity"]["id"] for h in similar] == [entity_id]
    linked = fine_client.post(
        "/v1/link",
        json={
            "text": f"Governor {NAME} spoke.",
            "mentions": [{"start": 9, "end": 30, "label": "Politician"}],
        },
    ).json()["mentions"]
    assert (linked[0]["label"], linked[0]["label_group"]) == ("Politician", "PER")
    # An exact name of the same group links (1.0 name + 0.1 type bonus + the cosine term >= 1.1).
    assert (linked[0]["entity"]["id"], linked[0]["entity"]["group"]) == (entity_id, "PER")
    page = fine_client.get("/entities", params={"label": "PER"}).text  # the web page filters by group too
    assert NAME in page and '<option value="PER" selected>' in page and "Los Angeles Lakers" not in page
    info = fine_client.get("/-/versions").json()["model"]
    assert info["label_groups"] == GROUP_OF


def test_flat_models_group_is_the_label(client):
    response = client.post("/v1/extract", json={"texts": SENTENCES[:4]})
    entities = [e for r in response.json()["results"] for e in r["entities"]]
    assert entities and all(e["group"] == e["label"] for e in entities)
    stored = ingest_spans(client, "a", f"{NAME} met the press.", [(NAME, "PER")])
    assert stored["mentions"][0]["group"] == "PER"
    assert client.get("/-/versions").json()["model"]["label_groups"] == {}
    refused = client.post("/v1/extract", json={"texts": ["x"], "labels": ["Artist"]})
    assert refused.status_code == 422 and "groups" not in refused.json()["error"]["message"]


def test_model_fine_is_a_clear_error_while_absent(tmp_path, monkeypatch):
    from api.cli import app

    monkeypatch.setenv("SPANLINK_FINE_MODEL", str(tmp_path / "none"))
    (tmp_path / "doc.txt").write_text("Angela Merkel", encoding="utf-8")
    for command in (
        ["extract", "--model", "fine", "Angela Merkel"],
        ["serve", "--model", "fine", "--data-dir", str(tmp_path / "d"), "--port", "1"],
        ["ingest", "--model", "fine", "--data-dir", str(tmp_path / "d"), str(tmp_path / "doc.txt")],
        ["export", "--model", "fine", "--out", str(tmp_path / "onnx")],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code != 0, command
        assert "the fine model is not in this install" in result.output, (command, result.output)
        assert "Traceback" not in result.output


def test_model_fine_on_the_command_line(tiny_fine_checkpoint, monkeypatch):
    import json

    from api.cli import app

    monkeypatch.setenv("SPANLINK_FINE_MODEL", str(tiny_fine_checkpoint))
    result = runner.invoke(app, ["extract", "--model", "fine", *SENTENCES[:3]])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    entities = [e for row in rows for e in row["entities"]]
    assert entities and all(e["group"] == GROUP_OF[e["label"]] for e in entities)
    people = runner.invoke(app, ["extract", "--model", "fine", "--label", "PER", *SENTENCES[:3]])
    assert people.exit_code == 0, people.output
    kept = [
        e for line in people.stdout.splitlines() if line.startswith("{") for e in json.loads(line)["entities"]
    ]
    assert kept == [e for e in entities if e["group"] == "PER"] and kept
    refused = runner.invoke(app, ["extract", "--model", "fine", "--label", "Person", "x"])
    assert refused.exit_code != 0 and "unknown labels ['Person']" in refused.output


def test_serve_model_fine(tiny_fine_checkpoint, monkeypatch, tmp_path):
    import json

    from api.cli import app

    monkeypatch.setenv("SPANLINK_FINE_MODEL", str(tiny_fine_checkpoint))
    common = ["serve", "--model", "fine", "--vectors", "span", "--data-dir", str(tmp_path)]
    result = runner.invoke(app, [*common, "--get", "/-/versions"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"]["label_groups"] == GROUP_OF
