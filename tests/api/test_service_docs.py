"""api/README.md documents every module, route module and setting of the service."""

import re
from pathlib import Path

import pytest

from api.settings import describe_settings

README = Path(__file__).resolve().parents[2] / "api" / "README.md"


def test_every_module_is_listed():
    text = README.read_text()
    folder = README.parent
    modules = sorted(
        str(p.relative_to(folder))
        for p in [*folder.glob("*.py"), *folder.glob("routes/*.py")]
        if p.name not in ("__init__.py", "__main__.py")
    )
    assert [m for m in modules if f"`{m}`" not in text] == []


def test_every_setting_is_documented():
    text = README.read_text()
    assert [name for name, _, _ in describe_settings() if f"| `{name}` |" not in text] == []


READ_ONLY_POSTS = {"/v1/extract", "/v1/link", "/v1/entities/similar"}
"""POSTs that store nothing (a body, not a write); every other POST, PATCH, PUT or DELETE writes."""


def _is_write(method: str, path: str) -> bool:
    return method in ("post", "patch", "put", "delete") and not (method == "post" and path in READ_ONLY_POSTS)


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


@pytest.mark.parametrize(("page", "assets"), [("/docs", 2), ("/redoc", 1)])
def test_docs_pages_load_their_assets_from_the_service(client, page, assets):
    # Swagger UI and ReDoc came from a CDN: blank pages offline.
    html = client.get(page).text
    assert "http://" not in html and "https://" not in html and "cdn" not in html.lower()
    urls = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert len(urls) == assets
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200 and len(response.content) > 100_000, url


def test_descriptions_hold_no_implementation_notes(client):
    schema = client.get("/openapi.json").json()
    notes = re.compile(r"\bdef\b|threadpool|event loop|FastAPI|write lock|micro-batch", re.IGNORECASE)
    found = {
        f"{method.upper()} {path}": operation["description"]
        for method, path, operation in _operations(schema)
        if notes.search(operation.get("description", ""))
    }
    assert found == {}


def test_with_a_key_only_writes_declare_security_and_401_403(client):
    schema = client.get("/openapi.json").json()
    for method, path, operation in _operations(schema):
        write = _is_write(method, path)
        assert ("security" in operation) is write, (method, path)
        assert ({"401", "403"} <= set(operation["responses"])) is write, (method, path)
        assert not ({"401", "403"} & set(operation["responses"])) or write, (method, path)
    assert set(schema["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}


def test_without_a_key_nothing_declares_security(make_client):
    # Writes declared a key that the server did not ask for (and then answered 200 to any key).
    schema = make_client(api_key=None).get("/openapi.json").json()
    for method, path, operation in _operations(schema):
        assert "security" not in operation, (method, path)
        assert not {"401", "403"} & set(operation["responses"]), (method, path)
    assert "securitySchemes" not in schema["components"]


def test_only_operations_with_a_body_declare_body_errors(client):
    schema = client.get("/openapi.json").json()
    for method, path, operation in _operations(schema):
        declared = {"400", "415"} <= set(operation["responses"])
        assert declared is ("requestBody" in operation), (method, path)
