"""``ef_search`` (``SPANLINK_EF_SEARCH``) reaches the store the service opens, on both backends:
the FAISS indexes' efSearch, or pgvector's ``hnsw.ef_search`` on every connection; ``hnsw_m``
(``SPANLINK_HNSW_M``) shapes a new PostgreSQL store's indexes."""

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


@pytest.mark.postgres
def test_hnsw_m_and_ef_construction_reach_a_new_postgres_stores_indexes(tmp_path, monkeypatch, pg_url):
    monkeypatch.setenv("SPANLINK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SPANLINK_DB_URL", pg_url)
    monkeypatch.setenv("SPANLINK_HNSW_M", "24")
    monkeypatch.setenv("SPANLINK_EF_CONSTRUCTION", "120")
    settings = ServiceSettings()
    with open_store(settings, dim=8) as store:
        assert store.settings.hnsw_m == 24 and store.settings.ef_construction == 120
        with store.engine.connect() as conn:
            definitions = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexdef LIKE '%hnsw%'")
            ).scalars()
            assert sorted("m='24'" in d and "ef_construction='120'" in d for d in definitions) == [True, True]


def test_hnsw_m_outside_pgvectors_bounds_is_refused(monkeypatch):
    from pydantic import ValidationError

    monkeypatch.setenv("SPANLINK_HNSW_M", "1")
    with pytest.raises(ValidationError, match="hnsw_m"):
        ServiceSettings()
