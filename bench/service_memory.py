"""Resident memory of a running `spanlink serve` per NER backend (issue 20's memory figure).

Starts one real service per configuration on 127.0.0.1 (its own empty store), sends a few extract
and ingest requests so the model, the store and the batcher have all done real work, then reads
the server process's VmRSS (now) and VmHWM (peak) from /proc. Memory is not timing-sensitive, so
a busy machine changes these figures little.

    .venv/bin/python bench/service_memory.py                           # torch fp32 and onnx fp32
    .venv/bin/python bench/service_memory.py --config int8=onnx:/path/to/export-int8
    # the same export served from an environment without torch (bash scripts/setup --onnx-serve DIR):
    .venv/bin/python bench/service_memory.py --config int8=onnx:EXPORT --config bare=onnx:EXPORT \
        --python bare=DIR/bin/python

Each row also says how long the server took to answer /health (start-up: imports, model, store)
and whether libtorch was mapped into the server process at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.serving import wait_until_serving  # noqa: E402

TEXTS = [
    "Angela Merkel met Emmanuel Macron in Paris on Tuesday.",
    "Olaf Scholz sprach in Berlin mit Vertretern der Europäischen Union.",
    "Президент Владимир Путин прибыл в Анкару.",
    "El presidente Pedro Sánchez viajó a Bruselas.",
]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def torch_mapped(pid: int) -> bool:
    """Whether the process has libtorch loaded (torch was imported, by anything)."""
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def measure(name: str, backend: str, model: str | None, workdir: Path, python: str) -> dict[str, object]:
    port = free_port()
    command = [python, "-m", "api", "serve", "--port", str(port), "--data-dir", str(workdir / name)]
    command += ["--backend", backend] + (["--model", model] if model else [])
    log = (workdir / f"{name}.log").open("wb")
    server = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    try:
        wait_until_serving(server, url, workdir / f"{name}.log", timeout=600)
        startup = time.perf_counter() - started
        for _ in range(3):
            httpx.post(f"{url}/v1/extract", json={"texts": TEXTS}, timeout=300).raise_for_status()
        documents = [{"id": f"d{i}", "text": text} for i, text in enumerate(TEXTS)]
        httpx.post(f"{url}/v1/documents", json={"documents": documents}, timeout=300).raise_for_status()
        memory = proc_memory(server.pid)
        torch_loaded = torch_mapped(server.pid)
    finally:
        server.terminate()
        server.wait(60)
        log.close()
    row = {"config": name, "backend": backend, "model": model or "default", "python": python}
    return {**row, **memory, "startup_s": round(startup, 2), "torch_loaded": torch_loaded}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        help="NAME=BACKEND[:MODEL] (repeatable); default: torch=torch and onnx-fp32=onnx (default model)",
    )
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        help="NAME=PYTHON: run config NAME's server with this interpreter (another environment)",
    )
    parser.add_argument("--out", type=Path, default=None, help="Write the rows as JSON here too.")
    args = parser.parse_args()
    configs = args.config or ["torch=torch", "onnx-fp32=onnx"]
    pythons = dict(spec.split("=", 1) for spec in args.python)
    rows = []
    with tempfile.TemporaryDirectory(prefix="spanlink-mem-") as tmp:
        for spec in configs:
            name, _, rest = spec.partition("=")
            backend, _, model = rest.partition(":")
            python = pythons.get(name, sys.executable)
            rows.append(measure(name, backend, model or None, Path(tmp), python))
            print(json.dumps(rows[-1]), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
