"""What the API promises beyond its error shape: search counts and cursor paging, the schema's truth."""

from __future__ import annotations

from tests.api.conftest import AUTH


def _ingest(client, doc_id: str, text: str, names: list[str]) -> None:
    mentions = []
    for name in names:
        start = text.index(name)
        mentions.append({"start": start, "end": start + len(name), "label": "PER"})
    body = {"documents": [{"id": doc_id, "text": text, "mentions": mentions}]}
    assert client.post("/v1/documents", json=body, headers=AUTH).status_code == 200


def _search(client, **params):
    response = client.get("/v1/entities", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_search_count_is_the_number_of_matches_not_the_page_size(client):
    # Was `count: 2` for `q=a&limit=2` while 3 entities matched.
    _ingest(
        client,
        "d1",
        "Ada Lovelace met Alan Turing and Anna Freud.",
        ["Ada Lovelace", "Alan Turing", "Anna Freud"],
    )
    page = _search(client, q="a", limit=2)
    assert len(page["data"]) == 2 and page["count"] == 3
    assert page["next"] is not None


def test_cursor_pages_through_every_match_once_even_when_entities_are_added(client):
    _ingest(
        client,
        "d1",
        "Ada Lovelace met Alan Turing and Anna Freud.",
        ["Ada Lovelace", "Alan Turing", "Anna Freud"],
    )
    first = _search(client, q="a", limit=2)
    # A new, more mentioned match sorts before the first page: an offset would now repeat an entity.
    _ingest(client, "d2", "Arthur Dent. Arthur Dent!", ["Arthur Dent"])
    _ingest(client, "d3", "Arthur Dent again.", ["Arthur Dent"])
    second = _search(client, q="a", limit=2, cursor=first["next"])
    assert second["count"] == 4 and second["next"] is None
    seen = [e["name"] for e in first["data"] + second["data"]]
    assert sorted(seen) == ["Ada Lovelace", "Alan Turing", "Anna Freud"]
    assert _search(client, q="a", limit=2, offset=2)["data"][0]["name"] in seen[:2]  # what an offset does


def test_the_last_full_page_has_no_next(client):
    _ingest(client, "d1", "Ada Lovelace met Alan Turing.", ["Ada Lovelace", "Alan Turing"])
    page = _search(client, q="a", limit=2)
    assert len(page["data"]) == 2 and page["count"] == 2 and page["next"] is None


def test_offset_still_pages_and_combines_with_a_cursor(client):
    _ingest(
        client,
        "d1",
        "Ada Lovelace met Alan Turing and Anna Freud.",
        ["Ada Lovelace", "Alan Turing", "Anna Freud"],
    )
    everything = [e["id"] for e in _search(client, q="a", limit=10)["data"]]
    assert [e["id"] for e in _search(client, q="a", limit=1, offset=1)["data"]] == everything[1:2]
    first = _search(client, q="a", limit=1)
    assert [
        e["id"] for e in _search(client, q="a", limit=1, offset=1, cursor=first["next"])["data"]
    ] == everything[2:3]


def test_any_cursor_the_schema_allows_is_a_position(client):
    _ingest(client, "d1", "Ada Lovelace.", ["Ada Lovelace"])
    past_the_end = _search(client, q="a", cursor="0.9999999999999999999")
    assert past_the_end["data"] == [] and past_the_end["count"] == 1
    assert client.get("/v1/entities", params={"q": "a", "cursor": "x"}).status_code == 422


def test_blank_search_is_refused_by_the_schema_pattern(client):
    for q in (" ", "\x85", "\u3000\t"):
        response = client.get("/v1/entities", params={"q": q})
        assert response.status_code == 422
        assert response.json()["error"]["message"].startswith("invalid query.q: String should match pattern")
