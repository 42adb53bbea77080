"""``ef_search`` (``SPANLINK_EF_SEARCH``) reaches the store the service opens, on both backends:
the FAISS indexes' efSearch, or pgvector's ``hnsw.ef_search`` on every connection."""

import pytest
from sqlalchemy import text

from api.service import open_store
from api.settings import ServiceSettings
from tests.postgres import BACKENDS


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ef_search", [None, 400])
def test_ef_search_reaches_the_store(backend, ef_search, tmp_path, monkeypatch, request):
    monkeypatch.setenv("SPANLINK_DATA_DIR", str(tmp_path))
    if ef_search is not None:
        monkeypatch.setenv("SPANLINK_EF_SEARCH", str(ef_search))
    if backend == "postgres":
        monkeypatch.setenv("SPANLINK_DB_URL", request.getfixturevalue("pg_url"))
    settings = ServiceSettings()
    assert settings.ef_search == ef_search
    with open_store(settings, dim=8) as store:
        expected = ef_search or 96
        assert store.settings.ef_search == expected
        if backend == "postgres":
            with store.engine.connect() as conn:
                assert conn.execute(text("SHOW hnsw.ef_search")).scalar() == str(expected)
        else:
            assert all(index.ef_search == expected for index in store._vectors.values())
