"""schemathesis against a real `spanlink serve`: every operation, every check, all phases.

``schemathesis run <server>/openapi.json --checks all`` (the CLI, as a user runs it) from the
repository root, so ``schemathesis.toml`` and its hooks apply: coverage (boundary values of every
parameter, undeclared methods, missing auth), fuzzing (positive and negative data) and stateful
sequences that follow the OpenAPI links (ingest -> read -> similar -> split -> merge back ->
delete). Any 5xx, an undocumented status or content type, a response off its schema, a
schema-valid request refused, a schema-violating one accepted, a wrong ``Allow`` or an ignored API
key fails the test. Bounded: a fixed seed, ``-n`` examples per operation, one worker.
``schemathesis`` is a dev dependency; without it this module is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.api.conftest import API_KEY, REPO, free_port, wait_until_serving

pytest.importorskip("schemathesis")

SEED = 1
EXAMPLES = 40
"""``-n``: examples per operation and phase (the issue's bar)."""

TIMEOUT_S = 240


@contextmanager
def serve(checkpoint: Path, data_dir: Path, api_key: str | None) -> Iterator[str]:
    """`spanlink serve` on a free port with the tiny checkpoint; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "api", "serve", "--model", str(checkpoint), "--vectors", "span"]
    command += ["--data-dir", str(data_dir), "--port", str(port)]
    if api_key is not None:
        command += ["--api-key", api_key]
    env = {**os.environ, "PYTHONPATH": str(REPO), "SPANLINK_LINK_SETTINGS": '{"vector_only_cosine": 1.0}'}
    data_dir.mkdir(parents=True)
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(process, url, log_path, timeout=90)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-5000:]


def schemathesis_run(url: str, *args: str, examples: int = EXAMPLES) -> subprocess.CompletedProcess[str]:
    """The CLI from the repository root (its ``schemathesis.toml`` loads the hooks)."""
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    command = [executable, "run", f"{url}/openapi.json", "--checks", "all", "-n", str(examples)]
    command += ["--seed", str(SEED), "--workers", "1", "--generation-database", "none", "--no-color", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S)


def _verdict(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout[-12000:]}\n{result.stderr[-3000:]}"


def test_schemathesis_all_checks_all_phases_without_a_key(tiny_checkpoint, tmp_path):
    # The service as most run it: no API key, so no operation may declare security.
    with serve(tiny_checkpoint, tmp_path / "data", api_key=None) as url:
        result = schemathesis_run(url)
    assert result.returncode == 0, _verdict(result)
    assert "Stateful" in result.stdout and "API Links" in result.stdout, _verdict(result)


def test_schemathesis_writes_with_a_key_enforce_it(tiny_checkpoint, tmp_path):
    # With a key, the writes declare it: schemathesis drops it and sends a wrong one (ignored_auth).
    with serve(tiny_checkpoint, tmp_path / "data", api_key=API_KEY) as url:
        result = schemathesis_run(
            url,
            "-H",
            f"Authorization: Bearer {API_KEY}",
            "--include-method",
            "POST",
            "--include-method",
            "DELETE",
            "--phases",
            "coverage,fuzzing",
            examples=10,
        )
    assert result.returncode == 0, _verdict(result)
