"""Browse endpoints on a shared PostgreSQL store: what one service process writes, another one's
list, search and mentions show at once (the folded search catches its linker cache up first)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.conftest import AUTH
from tests.postgres import create_database, drop_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_services(_tiny_model, pg_server, tmp_path) -> Iterator[tuple]:
    """Two in-process apps, each with its own Service and Store, over one fresh PostgreSQL database."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.service import Service, open_store
    from api.settings import ServiceSettings
    from linking.embedding import SpanEmbedder

    url = create_database(pg_server)
    clients = []
    for i in range(2):
        settings = ServiceSettings(
            vectors="span", data_dir=tmp_path / f"data{i}", db_url=url, api_key=AUTH["Authorization"][7:]
        )
        embedder = SpanEmbedder(_tiny_model)
        service = Service(settings, _tiny_model, open_store(settings, embedder.dim), embedder)
        client = TestClient(create_app(settings, service=service), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
    yield tuple(clients)
    for client in clients:
        client.__exit__(None, None, None)
    drop_database(pg_server, url)


def test_one_process_sees_what_another_wrote(two_services):
    writer, reader = two_services
    text = "Путин прибыл в Берлин."
    body = {"documents": [{"id": "ru", "text": text, "metadata": {"source": "tass"},
                           "mentions": [{"start": 0, "end": 5, "label": "PER"}]}]}  # fmt: skip
    assert writer.post("/v1/documents", json=body, headers=AUTH).status_code == 200
    putin = writer.get("/v1/documents/ru").json()["mentions"][0]["entity_id"]
    found = reader.get("/v1/entities", params={"q": "putin"}).json()
    assert [e["id"] for e in found["data"]] == [putin]
    assert reader.get("/v1/documents", params={"source": "tass"}).json()["count"] == 1
    mentions = reader.get(f"/v1/entities/{putin}/mentions").json()
    assert mentions["data"][0]["after"] == " прибыл в Берлин."
    assert (
        writer.patch(f"/v1/entities/{putin}", json={"name": "Vladimir Putin"}, headers=AUTH).status_code
        == 200
    )
    assert [e["name"] for e in reader.get("/v1/entities", params={"q": "vladimir"}).json()["data"]] == [
        "Vladimir Putin"
    ]
    assert reader.get(f"/entities/{putin}").status_code == 200
    assert writer.delete(f"/v1/entities/{putin}", headers=AUTH).json() == {"id": putin, "removed_mentions": 1}
    assert reader.get("/v1/entities", params={"q": "putin"}).json() == {"data": [], "count": 0, "next": None}
