"""One owner per embedded store, with real `spanlink serve` processes (issue 15 item 0).

A second service on the same data dir must exit non-zero naming the owner and pointing to the
PostgreSQL store; `--workers N` on the embedded store is refused; read-only commands still work
beside the owner; after the owner is SIGKILLed its stale lock is taken over.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.api.conftest import API_KEY, AUTH, REPO, free_port, wait_until_serving


def _command(checkpoint: Path, data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "api", *args, "--model", str(checkpoint), "--data-dir", str(data_dir)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "SPANLINK_VECTORS": "span", "SPANLINK_API_KEY": API_KEY}


def start_server(checkpoint: Path, data_dir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`spanlink serve` on a free port; returns the process and its URL once /health answers."""
    port = free_port()
    command = _command(checkpoint, data_dir, "serve", "--port", str(port))
    process = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(process, url, log)
    return process, url


def test_a_second_service_on_one_data_dir_is_refused(tiny_checkpoint, tmp_path):
    data_dir = tmp_path / "data"
    first, url = start_server(tiny_checkpoint, data_dir, tmp_path / "first.log")
    try:
        text = "Angela Merkel met Emmanuel Macron in Paris."
        body = {
            "documents": [{"id": "d1", "text": text, "mentions": [{"start": 0, "end": 13, "label": "PER"}]}]
        }
        response = httpx.post(f"{url}/v1/documents", json=body, headers=AUTH, timeout=60)
        assert response.status_code in (200, 201), response.text
        entity_id = response.json()["documents"][0]["mentions"][0]["entity_id"]

        second = subprocess.run(
            _command(tiny_checkpoint, data_dir, "serve", "--port", str(free_port())),
            cwd=REPO,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode != 0
        assert f"in use by process {first.pid}" in second.stderr
        assert "PostgreSQL" in second.stderr

        # Commands that only read may run beside the owner (and write no FAISS file).
        shown = subprocess.run(
            [sys.executable, "-m", "api", "entity", str(entity_id), "--data-dir", str(data_dir)],
            cwd=REPO,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["name"] == "Angela Merkel"

        # A crash leaves the lock file behind, but not the lock: the next service takes over.
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        assert (data_dir / "spanlink.db.lock").read_text().strip() == str(first.pid)
        third, third_url = start_server(tiny_checkpoint, data_dir, tmp_path / "third.log")
        try:
            found = httpx.get(f"{third_url}/v1/entities/{entity_id}", timeout=30)
            assert found.status_code == 200 and found.json()["name"] == "Angela Merkel"
            assert (data_dir / "spanlink.db.lock").read_text().strip() == str(third.pid)
        finally:
            third.terminate()
            third.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(30)


def test_workers_on_the_embedded_store_are_refused(tiny_checkpoint, tmp_path):
    result = subprocess.run(
        _command(tiny_checkpoint, tmp_path / "data", "serve", "--workers", "2"),
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "--workers 2 needs the PostgreSQL store" in result.stderr
    assert "spanlink migrate" in result.stderr
