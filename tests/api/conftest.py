"""Fixtures for the HTTP service: an in-process app per test, and one real uvicorn server per module.

The model is the session's tiny random checkpoint (``tiny_checkpoint``, hidden size 32, labels
LOC/MISC/ORG/PER); every app gets its own store under ``tmp_path``, never a shared one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ingest_spans(client, doc_id: str, text: str, spans: list[tuple[str, str]], **extra) -> dict:
    """Ingest one document whose mentions are the given (name, label) pairs, found left to right."""
    mentions, at = [], 0
    for name, label in spans:
        start = text.index(name, at)
        mentions.append({"start": start, "end": start + len(name), "label": label})
        at = start + len(name)
    body = {"documents": [{"id": doc_id, "text": text, "mentions": mentions, **extra}]}
    response = client.post("/v1/documents", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()["documents"][0]


def wait_until_serving(process: subprocess.Popen, url: str, log: Path, timeout: float = 120) -> None:
    """Return once ``url``/health answers 200; fail the test with the server log's tail if the
    process exits first or ``timeout`` seconds pass (one loop for every test that starts a server)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@pytest.fixture
def service_settings(tiny_checkpoint, tmp_path):
    from api.settings import ServiceSettings

    return ServiceSettings(
        model=str(tiny_checkpoint), vectors="span", data_dir=tmp_path / "data", api_key=API_KEY
    )


@pytest.fixture
def make_client(_tiny_model, tmp_path):
    """Build TestClients over fresh stores; the session's model is shared (the service only reads it)."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.service import Service, open_store
    from api.settings import ServiceSettings
    from linking.embedding import SpanEmbedder

    clients = []

    def make(**overrides) -> TestClient:
        values = {"vectors": "span", "data_dir": tmp_path / f"data{len(clients)}", "api_key": API_KEY}
        settings = ServiceSettings(**{**values, **overrides})
        embedder = SpanEmbedder(_tiny_model)
        service = Service(settings, _tiny_model, open_store(settings, embedder.dim), embedder)
        client = TestClient(create_app(settings, service=service), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    """An in-process client with the API key configured."""
    return make_client()


@pytest.fixture(scope="module")
def live_server(tiny_checkpoint, tmp_path_factory) -> Iterator[str]:
    """`spanlink serve` in a subprocess on a free port; yields its base URL, stops it with SIGTERM."""
    data_dir = tmp_path_factory.mktemp("live")
    port = free_port()
    command = [sys.executable, "-m", "api", "serve", "--model", str(tiny_checkpoint), "--vectors", "span"]
    command += ["--data-dir", str(data_dir), "--port", str(port), "--api-key", API_KEY]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # The tiny random model's span vectors carry no identity (all names look alike to it), so the
    # vector-only link gate is switched off: these tests exercise the name rules and the plumbing.
    env["SPANLINK_LINK_SETTINGS"] = '{"vector_only_cosine": 1.0}'
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(process, url, data_dir / "server.log", timeout=90)
    yield url
    process.terminate()
    try:
        # uvicorn shuts down gracefully, then re-raises SIGTERM: -15 is a clean stop here.
        assert process.wait(30) in (0, -15)
        assert "Application shutdown complete" in (data_dir / "server.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    from index import Store

    with Store.open(data_dir / "spanlink.db") as store:  # what the server left is consistent
        report = store.check()
        assert report.ok, report
