"""`wait_until_serving`: the one start-up wait of the benches that run a real `spanlink serve`.

Benches exit with the server log's tail instead of failing a test (that is `tests/api/conftest.py`'s
twin of this loop).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_until_serving(server: subprocess.Popen, url: str, log: Path, timeout: float) -> float:
    """Seconds until ``url``/health answered 200; exits (killing the server) if it dies or times out."""
    started = time.monotonic()
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() - started > timeout:
            server.kill()
            raise SystemExit(f"server did not start; see {log}:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
