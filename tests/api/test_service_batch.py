"""A batch of documents is all or nothing (issue 14, item 1), tested through the HTTP API.

Either every document of a ``POST /v1/documents`` batch is stored (new and replaced ones) or the
store — documents, mentions, entities, aliases, both FAISS indexes — and the linker's entity cache
are exactly as they were, and the error names the document at fault.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import AUTH
from tests.index.snapshots import snapshot


def service_of(client):
    return client.app.state.service


def cache_of(linker) -> dict[int, tuple]:
    """The linker's entity cache as comparable values."""
    return {
        i: (
            v.name,
            v.label,
            sorted(v.aliases),
            v.mention_count,
            None if v.vector is None else v.vector.round(5).tolist(),
        )
        for i, v in linker.table.entities.items()
    }


def state(client) -> tuple[dict, dict]:
    service = service_of(client)
    return snapshot(service.store), cache_of(service.linker)


def post(client, documents):
    return client.post("/v1/documents", json={"documents": documents}, headers=AUTH)


def test_the_reported_case_leaves_the_replaced_document_alone(client):
    """The issue's reproduction: a bad second document used to leave the first one replaced."""
    assert (
        post(client, [{"id": "hw-x", "text": "Olaf Scholz met Emmanuel Macron in Berlin."}]).status_code
        == 200
    )
    before = state(client)
    bad = {
        "id": "hw-y",
        "text": "Angela Merkel in Paris",
        "mentions": [{"start": 13, "end": 14, "label": "PER"}],
    }
    response = post(client, [{"id": "hw-x", "text": "Giorgia Meloni visited Rome."}, bad])
    assert response.status_code == 422
    error = response.json()["error"]
    assert "hw-y" in error["message"] and "(13, 14)" in error["message"]
    assert state(client) == before
    assert client.get("/v1/documents/hw-x").json()["text"] == "Olaf Scholz met Emmanuel Macron in Berlin."


@pytest.mark.parametrize("failure", ["store refuses", "crash"])
def test_a_write_that_fails_mid_batch_rolls_back_the_earlier_documents(client, monkeypatch, failure):
    from index import InvalidInput

    mentions = [{"start": 0, "end": 11, "label": "PER"}]
    assert (
        post(client, [{"id": "keep", "text": "Olaf Scholz spoke.", "mentions": mentions}]).status_code == 200
    )
    before = state(client)
    linker = service_of(client).linker
    real = linker.ingest_one
    calls = []

    def flaky(document, **options):
        calls.append(document.external_id)
        if len(calls) == 3:  # after two documents were written in this batch
            raise (
                InvalidInput("injected refusal", mention=0)
                if failure == "store refuses"
                else RuntimeError("boom")
            )
        return real(document, **options)

    monkeypatch.setattr(linker, "ingest_one", flaky)
    batch = [
        {
            "id": "new-1",
            "text": "Angela Merkel spoke.",
            "mentions": [{"start": 0, "end": 13, "label": "PER"}],
        },
        {
            "id": "keep",
            "text": "Emmanuel Macron spoke.",
            "mentions": [{"start": 0, "end": 15, "label": "PER"}],
        },
        {"id": "new-2", "text": "Olaf Scholz again.", "mentions": mentions},
    ]
    response = post(client, batch)
    assert calls == ["new-1", "keep", "new-2"]
    if failure == "store refuses":
        assert response.status_code == 422
        assert "documents[2] (id 'new-2')" in response.json()["error"]["message"]
    else:
        assert response.status_code == 500
    assert state(client) == before
    assert service_of(client).store.check().ok
    monkeypatch.setattr(linker, "ingest_one", real)
    assert post(client, batch).status_code == 200  # the same batch goes through afterwards
    assert client.get("/v1/documents/keep").json()["text"] == "Emmanuel Macron spoke."


TEXTS = [
    ("Angela Merkel met Olaf Scholz.", [(0, 13), (18, 29)]),
    ("Olaf Scholz visited Paris.", [(0, 11), (20, 25)]),
    ("Paris and Berlin.", [(0, 5), (10, 16)]),
]


@st.composite
def batches(draw):
    size = draw(st.integers(1, 4))
    ids = draw(
        st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=size, max_size=size, unique=True)
    )
    documents = []
    for key in ids:
        text, spans = draw(st.sampled_from(TEXTS))
        labels = draw(
            st.lists(st.sampled_from(["PER", "LOC", "ORG"]), min_size=len(spans), max_size=len(spans))
        )
        mentions = [{"start": s, "end": e, "label": label} for (s, e), label in zip(spans, labels)]
        documents.append({"id": key, "text": text, "mentions": mentions})
    fail_at = draw(st.one_of(st.none(), st.integers(0, size - 1)))
    return documents, fail_at


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=batches())
def test_any_batch_is_stored_whole_or_leaves_everything_as_it_was(client, batch):
    """Property: a batch whose ``fail_at``-th document the store refuses leaves no trace at all."""
    from index import InvalidInput
    from linking.linker import Linker

    documents, fail_at = batch
    service = service_of(client)
    real = service.linker.ingest_one
    calls = []

    def refuse_one(document, **options):
        calls.append(document.external_id)
        if len(calls) - 1 == fail_at:
            raise InvalidInput("injected refusal")
        return real(document, **options)

    before = state(client)
    service.linker.ingest_one = refuse_one
    try:
        response = post(client, documents)
    finally:
        del service.linker.ingest_one
    if fail_at is not None:
        assert response.status_code == 422
        assert f"documents[{fail_at}]" in response.json()["error"]["message"]
        assert state(client) == before
    else:
        assert response.status_code == 200, response.text
        for document in documents:
            stored = client.get(f"/v1/documents/{document['id']}").json()
            assert stored["text"] == document["text"]
            assert [(m["start"], m["end"], m["label"]) for m in stored["mentions"]] == [
                (m["start"], m["end"], m["label"]) for m in document["mentions"]
            ]
    assert service.store.check().ok
    assert cache_of(service.linker) == cache_of(Linker(service.store, embedder=service.embedder))
