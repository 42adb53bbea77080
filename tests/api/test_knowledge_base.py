"""Knowledge-base entities over HTTP (``POST /v1/entities``, ``?external_id=``, ``kb_only``), the web
entity page, and the CLI (``spanlink kb import``, ``spanlink ingest --kb-only``, ``spanlink upgrade``).

The model is the tiny random checkpoint, whose span vectors carry no identity: the link settings
let names decide (``vector_weight`` 0), so what is tested is the KB plumbing and the name rules
against KB aliases in four scripts (``tests/linking/kb_fixture.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from tests.api.conftest import AUTH, ingest_spans
from tests.index.schema_v1 import make_version_1
from tests.linking.kb_fixture import knowledge_base, real
from tests.postgres import BACKENDS

NAMES_DECIDE = {"vector_weight": 0.0, "link_threshold": 0.9, "vector_only_cosine": 1.0}


def body_of(items) -> dict:  # noqa: ANN001 - index.KnownEntity items
    return {
        "entities": [
            {
                "external_id": e.external_id,
                "name": e.name,
                "label": e.label,
                "aliases": e.aliases,
                "description": e.description,
                "metadata": e.metadata,
            }
            for e in items
        ]
    }


@pytest.fixture(params=BACKENDS)
def kb_client(request, make_client):
    db = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    return make_client(link_settings=NAMES_DECIDE, **({"db_url": db} if db else {}))


def entity_count(client) -> int:
    return client.get("/v1/entities?limit=1").json()["count"]


def test_import_is_idempotent_and_mentions_link_to_kb_entities(kb_client):
    client = kb_client
    response = client.post("/v1/entities", json=body_of(real()), headers=AUTH)
    assert response.status_code == 200, response.text
    first = response.json()
    assert first["count"] == 25 and first["created"] == 25
    ids = {item["entity"]["external_id"]: item["entity"]["id"] for item in first["data"]}
    merkel = next(item["entity"] for item in first["data"] if item["entity"]["external_id"] == "Q567")
    assert merkel["description"] and merkel["metadata"]["source"] == "wikidata"
    assert {"ангела меркель", "默克尔", "أنجيلا ميركل"} <= {a["alias"] for a in merkel["aliases"] if a["kb"]}

    stored = ingest_spans(
        client,
        "pl-1",
        "Macron rozmawiał z Putinem w Moskwie, a Merkel milczała w Berlinie.",
        [("Macron", "PER"), ("Putinem", "PER"), ("Moskwie", "LOC"), ("Merkel", "PER"), ("Berlinie", "LOC")],
    )
    assert [m["entity_id"] for m in stored["mentions"]] == [
        ids["Q3052772"], ids["Q7747"], ids["Q649"], ids["Q567"], ids["Q64"]
    ]  # fmt: skip
    zh = ingest_spans(client, "zh-1", "普京在莫斯科。", [("普京", "PER"), ("莫斯科", "LOC")])
    assert [m["entity_id"] for m in zh["mentions"]] == [ids["Q7747"], ids["Q649"]]

    again = client.post("/v1/entities", json=body_of(real()), headers=AUTH).json()
    assert again["created"] == 0 and [i["entity"]["id"] for i in again["data"]] == list(ids.values())
    putin = client.get(f"/v1/entities/{ids['Q7747']}").json()
    assert (
        putin["mention_count"] == 2 and putin["name"] == "Vladimir Putin" and putin["external_id"] == "Q7747"
    )

    # Re-import with another name and alias list: same entity, mentions kept, new name.
    changed = {"external_id": "Q7747", "name": "Władimir Putin", "label": "PER", "aliases": ["Путин"]}
    updated = client.post("/v1/entities", json={"entities": [changed]}, headers=AUTH).json()["data"][0]
    assert not updated["created"] and updated["entity"]["id"] == ids["Q7747"]
    assert updated["entity"]["name"] == "Władimir Putin" and updated["entity"]["mention_count"] == 2
    assert updated["entity"]["description"] is None  # the KB said nothing this time

    found = client.get("/v1/entities", params={"external_id": "Q649"}).json()
    assert (
        found["count"] == 1 and found["data"][0]["id"] == ids["Q649"] and found["data"][0]["group"] == "LOC"
    )
    assert client.get("/v1/entities", params={"external_id": "Q0"}).json() == {
        "data": [],
        "count": 0,
        "next": None,
    }
    # external_id is in every entity response: lists, search, similarity, link.
    listed = client.get("/v1/entities", params={"q": "moscow"}).json()["data"]
    assert listed[0]["external_id"] == "Q649"
    link = client.post(
        "/v1/link", json={"text": "Moskwa", "mentions": [{"start": 0, "end": 6, "label": "LOC"}]}
    )
    assert link.json()["mentions"][0]["entity"]["external_id"] == "Q649"


def test_kb_only_links_only_to_the_kb_and_founds_nothing(make_client):
    client = make_client(link_settings=NAMES_DECIDE)
    assert client.post("/v1/entities", json=body_of(real()), headers=AUTH).status_code == 200
    moscow = client.get("/v1/entities", params={"external_id": "Q649"}).json()["data"][0]["id"]
    ingest_spans(client, "pl-0", "Jan Kowalski mówi.", [("Jan Kowalski", "PER")])  # outside the KB
    before = entity_count(client)
    text = "Jan Kowalski był w Moskwie."
    mentions = [{"start": 0, "end": 12, "label": "PER"}, {"start": 19, "end": 26, "label": "LOC"}]
    link = client.post("/v1/link", json={"text": text, "mentions": mentions, "kb_only": True}).json()
    assert [m["entity"] and m["entity"]["id"] for m in link["mentions"]] == [None, moscow]
    stored = client.post(
        "/v1/documents",
        json={"documents": [{"id": "pl-2", "text": text, "mentions": mentions}], "kb_only": True},
        headers=AUTH,
    )
    assert stored.status_code == 200, stored.text
    assert [m["entity_id"] for m in stored.json()["documents"][0]["mentions"]] == [None, moscow]
    assert entity_count(client) == before
    plain = client.post("/v1/link", json={"text": text, "mentions": mentions}).json()
    assert plain["mentions"][0]["entity"] is not None  # without kb_only the earlier Kowalski is found


@pytest.mark.parametrize(
    ("entities", "status", "message"),
    [
        # the same external id twice in one batch
        (
            [
                {"external_id": "Q1", "name": "Paris", "label": "LOC"},
                {"external_id": "Q1", "name": "Rome", "label": "LOC"},
            ],  # noqa: E501
            422,
            "entities[2] (external_id 'Q1'): external_id also names entities[1]",
        ),
        # no name
        ([{"external_id": "Q1", "label": "LOC"}], 422, "entities.1.name: Field required"),
        # a label in another case, and an unknown one
        ([{"external_id": "Q1", "name": "Paris", "label": "loc"}], 422, "did you mean 'LOC'"),
        ([{"external_id": "Q1", "name": "Paris", "label": "CITY"}], 422, "unknown label 'CITY'"),
        # an alias nobody can see, a blank id
        ([{"external_id": "Q1", "name": "Paris", "label": "LOC", "aliases": ["—"]}], 422, "has no letter"),
        ([{"external_id": " ", "name": "Paris", "label": "LOC"}], 422, "entities.1.external_id"),
        ([], 422, "entities: List should have at least 1 item"),
    ],
)
def test_bad_input_gets_a_4xx_and_writes_nothing(client, entities, status, message):
    good = {"external_id": "Q90", "name": "Paris", "label": "LOC"}
    body = {"entities": [good, *entities]} if entities else {"entities": []}
    response = client.post("/v1/entities", json=body, headers=AUTH)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert entity_count(client) == 0  # not even the good one


def test_two_kb_entities_are_not_merged(client):
    items = [
        {"external_id": "Q90", "name": "Paris", "label": "LOC"},
        {"external_id": "Q830149", "name": "Paris", "label": "LOC", "description": "Paris, Texas"},
    ]
    imported = client.post("/v1/entities", json={"entities": items}, headers=AUTH).json()["data"]
    first, second = (item["entity"]["id"] for item in imported)
    response = client.post(f"/v1/entities/{first}/merge", json={"other": second}, headers=AUTH)
    assert response.status_code == 409 and "knowledge base" in response.json()["error"]["message"]
    assert entity_count(client) == 2


def test_import_needs_the_api_key(client):
    body = {"entities": [{"external_id": "Q90", "name": "Paris", "label": "LOC"}]}
    assert client.post("/v1/entities", json=body).status_code == 401


def test_entity_page_shows_the_external_id_and_description(client):
    item = {"external_id": "Q90", "name": "Paris", "label": "LOC", "description": "Capital of <France>"}
    entity = client.post("/v1/entities", json={"entities": [item]}, headers=AUTH).json()["data"][0]["entity"]
    page = client.get(f"/entities/{entity['id']}").text
    assert "Q90" in page and "Capital of &lt;France&gt;" in page


# -- CLI -------------------------------------------------------------------------------------------

runner = CliRunner()


def invoke(args: list[str]):  # noqa: ANN201 - click's Result
    return runner.invoke(app, args, env={"COLUMNS": "400"})


def write_kb(path: Path, items) -> Path:  # noqa: ANN001
    path.write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in body_of(items)["entities"]) + "\n")
    return path


def test_cli_kb_import_then_ingest_kb_only(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("SPANLINK_LINK_SETTINGS", json.dumps(NAMES_DECIDE))
    data = tmp_path / "data"
    common = ["--data-dir", str(data), "--model", str(tiny_checkpoint), "--vectors", "span"]
    kb = write_kb(tmp_path / "kb.jsonl", knowledge_base())
    result = invoke(["kb", "import", str(kb), *common, "--no-progress"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"entities": 265, "created": 265, "updated": 0}
    again = invoke(["kb", "import", str(kb), *common, "--no-progress"])
    assert json.loads(again.stdout) == {"entities": 265, "created": 0, "updated": 265}

    docs = tmp_path / "docs.jsonl"
    text = "Ивана Петрова видели в Варшаве с Яном Ковальским."
    spans = [("Ивана Петрова", "PER"), ("Варшаве", "LOC"), ("Яном Ковальским", "PER")]
    mentions = [{"start": text.index(s), "end": text.index(s) + len(s), "label": label} for s, label in spans]
    docs.write_text(json.dumps({"id": "ru-1", "text": text, "mentions": mentions}, ensure_ascii=False) + "\n")
    ingest = invoke(["ingest", str(docs), *common, "--kb-only"])
    assert ingest.exit_code == 0, ingest.stderr
    line = json.loads(ingest.stdout.strip().splitlines()[0])
    assert line["new_entities"] == [] and len(line["linked_entities"]) == 2

    from index import Store

    with Store.open(data / "spanlink.db") as store:
        petrov = store.entity_by_external_id("X-ivan-petrov")
        warsaw = store.entity_by_external_id("Q270")
        document = store.get_document(external_id="ru-1")
        assert [m.entity_id for m in document.mentions] == [petrov.id, warsaw.id, None]
        assert store.stats().entities == 265 and store.check().ok


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        (['{"external_id": "Q1", "name": "Paris", "label": "LOC"}', "{not json"], "kb.jsonl:2: "),
        (['{"external_id": "Q1", "label": "LOC"}'], "kb.jsonl:1: name: Field required"),
        (
            [
                '{"external_id": "Q1", "name": "Paris", "label": "LOC"}',
                "",
                '{"external_id": "Q1", "name": "Rome", "label": "LOC"}',
            ],  # noqa: E501
            "kb.jsonl:3: external_id 'Q1' is also on line 1",
        ),
        (
            ['{"external_id": "Q1", "name": "Paris", "label": "per"}'],
            "kb.jsonl:1: unknown label 'per'; did you mean 'PER'?",
        ),  # noqa: E501
        ([], "no entities"),
    ],
)
def test_cli_kb_import_errors_name_the_line_and_write_nothing(tmp_path, tiny_checkpoint, lines, error):
    kb = tmp_path / "kb.jsonl"
    kb.write_text("\n".join(lines) + "\n")
    data = tmp_path / "data"
    result = invoke(
        [
            "kb",
            "import",
            str(kb),
            "--data-dir",
            str(data),
            "--model",
            str(tiny_checkpoint),
            "--vectors",
            "span",
        ]
    )  # noqa: E501
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and error in result.stderr, result.stderr
    if (data / "spanlink.db").exists():
        from index import Store

        with Store.open(data / "spanlink.db") as store:
            assert store.stats().entities == 0


def test_upgrade_brings_a_version_1_store_up_and_open_refuses_it_before(tmp_path):
    import numpy as np

    from index import DocumentCreate, MentionCreate, NewEntity, SchemaMismatch, Store

    path = tmp_path / "data" / "spanlink.db"
    path.parent.mkdir()
    with Store.open(path, dim=4) as store:
        mention = MentionCreate(0, 5, "LOC", np.ones(4), new_entity=NewEntity("Paris", "LOC"))
        store.add_document(DocumentCreate("d1", "Paris.", [mention]))
    make_version_1(f"sqlite:///{path}")  # what a version-1 store looks like: none of the KB columns
    with pytest.raises(SchemaMismatch, match="spanlink upgrade"):
        Store.open(path)
    result = invoke(["upgrade", "--data-dir", str(path.parent)])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["found"] == 1 and report["version"] == 2 and "aliases.kb" in report["steps"][0]
    with Store.open(path) as store:
        entity = store.get_entity(1)
        assert entity.name == "Paris" and entity.external_id is None and store.check().ok
    again = invoke(["upgrade", "--data-dir", str(path.parent)])
    assert json.loads(again.stdout) == {"found": 2, "version": 2, "steps": []}
