"""The service on PostgreSQL + pgvector: the end-to-end suite against `spanlink serve --db postgresql+psycopg://...
--workers 2` (two uvicorn worker processes sharing one store, requests spread over both by the
kernel), and the batch all-or-nothing tests in process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import API_KEY, REPO, free_port, wait_until_serving
from tests.api.test_service_batch import (  # noqa: F401 - collected again here, on PostgreSQL
    test_a_write_that_fails_mid_batch_rolls_back_the_earlier_documents,
    test_the_reported_case_leaves_the_replaced_document_alone,
)
from tests.api.test_service_e2e import (  # noqa: F401 - collected again here, on PostgreSQL
    test_bad_input_gets_its_4xx,
    test_batch_is_all_or_nothing,
    test_concurrent_ingest_and_queries_stay_consistent,
    test_ingest_get_and_generated_ids,
    test_link_finds_known_entity_and_stores_nothing,
    test_merge_split_and_delete,
    test_reingest_replaces,
    test_similar_by_text_entity_and_vector,
)
from tests.postgres import create_database, drop_database

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_database(pg_server) -> Iterator[str]:
    url = create_database(pg_server)
    yield url
    drop_database(pg_server, url)


@pytest.fixture(scope="module")
def http(tiny_checkpoint, pg_database, tmp_path_factory) -> Iterator[httpx.Client]:
    folder = tmp_path_factory.mktemp("pg-serve")
    port = free_port()
    command = [sys.executable, "-m", "api", "serve", "--model", str(tiny_checkpoint), "--vectors", "span"]
    command += ["--db", pg_database, "--port", str(port), "--api-key", API_KEY, "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "SPANLINK_DATA_DIR": str(folder)}
    env["SPANLINK_LINK_SETTINGS"] = '{"vector_only_cosine": 1.0}'  # as the SQLite live server
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(process, url, folder / "server.log", timeout=180)
    time.sleep(3)  # the second worker loads its model too
    with httpx.Client(base_url=url, timeout=120) as client:
        yield client
    process.terminate()
    try:
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    from index import Store

    with Store.open(pg_database) as store:  # what the two workers left is consistent
        report = store.check()
        assert report.ok, report


@pytest.fixture
def client(make_client, pg_url):
    """An in-process client on a fresh PostgreSQL database."""
    return make_client(db_url=pg_url)


def test_the_cli_commands_take_the_postgres_url(tiny_checkpoint, pg_url, tmp_path):
    """ingest, entity, similar and check with --db postgresql+psycopg://... (no data folder needed)."""
    import json

    def spanlink(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO), "SPANLINK_DATA_DIR": str(tmp_path / "nowhere")}
        return subprocess.run(
            [sys.executable, "-m", "api", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    text = "Angela Merkel met Emmanuel Macron."
    record = {"id": "d1", "text": text, "mentions": [{"start": 0, "end": 13, "label": "PER"}]}
    (tmp_path / "docs.jsonl").write_text(json.dumps(record) + "\n")
    model = ["--model", str(tiny_checkpoint), "--vectors", "span"]
    ingested = spanlink("ingest", str(tmp_path / "docs.jsonl"), "--db", pg_url, *model)
    assert ingested.returncode == 0, ingested.stderr
    shown = spanlink("entity", "1", "--db", pg_url)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["name"] == "Angela Merkel"
    similar = spanlink("similar", "Angela Merkel", "--db", pg_url, *model)
    assert similar.returncode == 0, similar.stderr
    assert json.loads(similar.stdout.splitlines()[0])["entity"]["id"] == 1
    checked = spanlink("check", "--db", pg_url)
    assert checked.returncode == 0 and json.loads(checked.stdout)["ok"] is True
