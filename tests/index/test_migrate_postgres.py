"""`spanlink migrate` SQLite -> PostgreSQL and `spanlink check`, as real CLI processes (issue 15 item 3).

The copy keeps every id and value (checked here row by row through the store API, and by the
command's own per-table checksums), keeps ids from being reused (ids of deleted rows included),
refuses a target that is not empty, and `check` exits 1 on a store whose counts disagree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DIM, clustered, make_doc

from index import EntityCreate, Store

pytestmark = pytest.mark.postgres
REPO = Path(__file__).resolve().parents[2]


def spanlink(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "api", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_migrate_copies_everything_with_its_ids_and_check_verifies(tmp_path, pg_url, rng):
    source = tmp_path / "spanlink.db"
    _, vectors, _ = clustered(rng, 6, 4)
    with Store.open(source, dim=DIM) as store:
        for d in range(6):
            names = [f"Name{d}{i}" for i in range(4)]
            store.add_document(make_doc(f"doc-{d}", names, vectors[d * 4 : (d + 1) * 4]))
        store.delete_document(external_id="doc-5")  # its entities go: their ids must not come back
        kb = store.upsert_entity(EntityCreate("Kb Entity", "ORG", aliases=["KB"], vector=np.ones(DIM)))
        store.merge_entities(1, 2)
        before = {
            "documents": [store.get_document(external_id=f"doc-{d}") for d in range(5)],
            "entities": [e for e, _ in store.list_entities(limit=1000)],
            "vectors": {e.id: v for e, v in store.list_entities(limit=1000)},
            "similar": [(h.mention.id, round(h.score, 5)) for h in store.similar_mentions(vectors[0], k=5)],
        }

    moved = spanlink("migrate", "--from", f"sqlite:///{source}", "--to", pg_url, "--no-progress")
    assert moved.returncode == 0, moved.stderr
    report = json.loads(moved.stdout)
    assert report["ok"] and report["dim"] == DIM
    assert report["tables"]["documents"]["rows"] == 5 and report["tables"]["mentions"]["rows"] == 20
    assert all(t["sha256"] == t["source_sha256"] for t in report["tables"].values())

    with Store.open(pg_url) as store:
        assert store.shared
        assert [store.get_document(external_id=f"doc-{d}") for d in range(5)] == before["documents"]
        after = store.list_entities(limit=1000)
        assert [e for e, _ in after] == before["entities"]
        for entity, vector in after:
            expected = before["vectors"][entity.id]
            assert (vector is None) == (expected is None)
            if vector is not None:
                np.testing.assert_allclose(vector, expected, atol=1e-6)
        found = [(h.mention.id, round(h.score, 5)) for h in store.similar_mentions(vectors[0], k=5)]
        assert found == before["similar"]
        new = store.upsert_entity(EntityCreate("Brand New", "PER"))
        assert new.id > kb.id  # after the highest id ever handed out, not a reused one
        assert store.check().ok
        with store.engine.connect() as conn:  # dropped for the copy, built once after it
            from sqlalchemy import text as sql

            indexes = set(
                conn.execute(sql("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%hnsw%'")).scalars()
            )
        assert indexes == {"ix_mentions_vector_hnsw", "ix_entities_centroid_hnsw"}

    again = spanlink("migrate", "--from", f"sqlite:///{source}", "--to", pg_url, "--no-progress")
    assert again.returncode == 1 and "not empty" in again.stderr

    checked = spanlink("check", "--db", pg_url)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["ok"] is True

    from sqlalchemy import create_engine, text

    engine = create_engine(pg_url)
    with engine.begin() as conn:  # a lost update, as a racing writer without locks would leave it
        conn.execute(text("UPDATE entities SET mention_count = mention_count + 1 WHERE id = 1"))
    engine.dispose()
    broken = spanlink("check", "--db", pg_url)
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["bad_mention_counts"] == [1]


def test_check_of_the_embedded_store_runs_beside_its_owner(tmp_path, rng):
    _, vectors, _ = clustered(rng, 1, 3)
    with Store.open(tmp_path / "spanlink.db", dim=DIM) as store:  # this process owns it meanwhile
        store.add_document(make_doc("d", ["Ann", "Bob", "Cid"], vectors))
        store.save_vectors()
        checked = spanlink("check", "--data-dir", str(tmp_path))
        assert checked.returncode == 0, checked.stderr
        assert json.loads(checked.stdout)["ok"] is True


def _hnsw_definitions(url: str) -> dict[str, str]:
    from sqlalchemy import create_engine
    from sqlalchemy import text as sql

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sql("SELECT indexname, indexdef FROM pg_indexes WHERE indexdef LIKE '%hnsw%'")
        ).all()
    engine.dispose()
    return dict(rows)


def test_migrate_builds_the_target_indexes_with_the_m_and_ef_construction_asked_for(tmp_path, pg_url, rng):
    source = tmp_path / "spanlink.db"
    _, vectors, _ = clustered(rng, 2, 3)
    with Store.open(source, dim=DIM) as store:
        store.add_document(make_doc("doc", ["A", "B", "C"], vectors[:3]))
    refused = spanlink("migrate", "--from", f"sqlite:///{source}", "--to", pg_url, "--hnsw-m", "1")
    assert refused.returncode != 0 and "--hnsw-m" in refused.stderr
    refused = spanlink("migrate", "--from", f"sqlite:///{source}", "--to", pg_url, "--ef-construction", "0")
    assert refused.returncode != 0 and "--ef-construction" in refused.stderr
    moved = spanlink(
        "migrate",
        *("--from", f"sqlite:///{source}", "--to", pg_url),
        *("--hnsw-m", "24", "--ef-construction", "120", "--no-progress"),
    )
    assert moved.returncode == 0, moved.stderr
    definitions = _hnsw_definitions(pg_url)
    assert set(definitions) == {"ix_mentions_vector_hnsw", "ix_entities_centroid_hnsw"}
    assert all("m='24'" in d and "ef_construction='120'" in d for d in definitions.values()), definitions


def test_index_builds_raise_maintenance_work_mem_but_never_lower_it(pg_url):
    from sqlalchemy import create_engine
    from sqlalchemy import text as sql

    from index.postgres import raise_build_memory

    engine = create_engine(pg_url)
    for configured, during_build in (("64MB", "1GB"), ("2GB", "2GB")):
        with engine.begin() as conn:
            conn.execute(sql(f"SET LOCAL maintenance_work_mem = '{configured}'"))
            raise_build_memory(conn)
            assert conn.execute(sql("SHOW maintenance_work_mem")).scalar() == during_build
    engine.dispose()
