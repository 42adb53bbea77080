"""Load benchmark of the HTTP service: concurrent clients mixing ingest and similarity queries.

Starts ``spanlink serve`` itself on a free local port over a fresh store (the tiny random
checkpoint that the tests use unless ``--model`` names another), runs ``--clients`` client
threads for ``--duration`` seconds (each also capped at ``--max-requests``), then checks that
every document the server acknowledged can be read back — over HTTP while it runs, and from the
store files after a graceful stop (plus the store's consistency check).

    python bench/api_load.py --clients 4 --duration 15 > bench/out/api_load_tiny.json

Each client loops: with probability ``--ingest-ratio`` it POSTs ``--docs-per-request`` new
documents (half with given mentions, half through NER), otherwise it asks ``/v1/entities/similar``
for a name. Latency is per HTTP request as the client sees it. Results go to stdout as JSON
(progress to stderr); metrics are prefixed with the dataset name and ``primary_metric`` names the
one to watch. ``errors`` must be 0 and ``missing_documents`` must be 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.serving import wait_until_serving  # noqa: E402

API_KEY = "bench-key-0123456789"
FIRST = [
    "Ada",
    "Boris",
    "Chiara",
    "Dmitri",
    "Elif",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kasia",
    "Luca",
]
LAST = ["Novak", "Okafor", "Petrov", "Quispe", "Rossi", "Schmidt", "Tanaka", "Ulloa", "Varga", "Weiss"]
PLACES = ["Paris", "Berlin", "Warsaw", "Lagos", "Lima", "Kyoto", "Oslo", "Porto", "Riga", "Tunis"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tiny_model(folder: Path) -> Path:
    from ner.random_checkpoint import CheckpointSpec, build_checkpoint
    from tests.ner.sentences import EXTRA_TEXTS, SENTENCES

    labels = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
    return build_checkpoint(
        folder, SENTENCES + EXTRA_TEXTS, CheckpointSpec("wordpiece", labels, model_max_length=256)
    )


def _document(rng: random.Random, doc_id: str, given: bool) -> dict[str, Any]:
    person, place = f"{rng.choice(FIRST)} {rng.choice(LAST)}", rng.choice(PLACES)
    text = f"{person} arrived in {place} on Monday. Later {person.split()[1]} met the press."
    doc: dict[str, Any] = {"id": doc_id, "text": text, "metadata": {"bench": True}}
    if given:
        at = text.index(place)
        doc["mentions"] = [
            {"start": 0, "end": len(person), "label": "PER"},
            {"start": at, "end": at + len(place), "label": "LOC"},
        ]
    return doc


class Client(threading.Thread):
    """One simulated user: its own connection, seeded choices, a deadline and a request cap."""

    def __init__(self, number: int, url: str, args: argparse.Namespace, deadline: float) -> None:
        super().__init__(name=f"client-{number}")
        self.number, self.url, self.args, self.deadline = number, url, args, deadline
        self.rng = random.Random(args.seed + number)
        self.samples: list[tuple[str, float, int]] = []  # (operation, seconds, status)
        self.acknowledged: list[str] = []
        self.failures: list[str] = []

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        with httpx.Client(base_url=self.url, timeout=120, headers=headers) as http:
            sent = 0
            while time.monotonic() < self.deadline and len(self.samples) < self.args.max_requests:
                if self.rng.random() < self.args.ingest_ratio:
                    docs = []
                    for _ in range(self.args.docs_per_request):
                        docs.append(_document(self.rng, f"load-{self.number}-{sent}", given=sent % 2 == 0))
                        sent += 1
                    op, call = "ingest", lambda d=docs: http.post("/v1/documents", json={"documents": d})
                else:
                    name = f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"
                    docs = []
                    op, call = (
                        "similar",
                        lambda n=name: http.post("/v1/entities/similar", json={"text": n, "k": 10}),
                    )
                started = time.perf_counter()
                try:
                    response = call()
                    status = response.status_code
                except httpx.HTTPError as exc:
                    status, response = 0, None
                    self.failures.append(f"{op}: {exc!r}")
                self.samples.append((op, time.perf_counter() - started, status))
                if status == 200 and op == "ingest":
                    self.acknowledged += [d["id"] for d in response.json()["documents"]]
                elif status != 200 and response is not None:
                    self.failures.append(f"{op}: {status} {response.text[:200]}")


def _latency(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    values = np.asarray(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="NER model folder (default: a tiny random checkpoint built here).")
    parser.add_argument("--vectors", default="span", help="Mention vectors of the server (span/surface/mix).")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration", type=float, default=15.0, help="Seconds of load.")
    parser.add_argument("--max-requests", type=int, default=2000, help="Most requests per client.")
    parser.add_argument("--ingest-ratio", type=float, default=0.5)
    parser.add_argument("--docs-per-request", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", type=Path, help="Folder for the store and server log (default: a temp dir)."
    )
    args = parser.parse_args()
    if not 1 <= args.clients <= 64 or not 0 < args.duration <= 600:
        parser.error("--clients must be within 1..64 and --duration within (0, 600] seconds")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spanlink-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    model = args.model or str(_tiny_model(workdir / "model"))
    dataset = "api_load_tiny" if args.model is None else "api_load"
    data_dir, port = workdir / "store", _free_port()
    command = [sys.executable, "-m", "api", "serve", "--model", model, "--vectors", args.vectors]
    command += ["--data-dir", str(data_dir), "--port", str(port), "--api-key", API_KEY]
    log_path = workdir / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        took = wait_until_serving(server, url, log_path, timeout=120)
        print(
            f"server up in {took:.1f}s; {args.clients} clients for {args.duration}s",
            file=sys.stderr,
        )

        begin = time.monotonic()
        clients = [Client(i, url, args, begin + args.duration) for i in range(args.clients)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        elapsed = time.monotonic() - begin

        acknowledged = [doc_id for client in clients for doc_id in client.acknowledged]
        with httpx.Client(base_url=url, timeout=60) as http:
            missing_live = [d for d in acknowledged if http.get(f"/v1/documents/{d}").status_code != 200]
            batch_metrics = [
                line for line in http.get("/metrics").text.splitlines() if "ner_batch_texts_" in line
            ]
    finally:
        server.terminate()
        server.wait(60)

    from index import NotFound, Store

    missing_stored = []
    with Store.open(data_dir / "spanlink.db") as store:
        for doc_id in acknowledged:
            try:
                store.get_document(external_id=doc_id)
            except NotFound:
                missing_stored.append(doc_id)
        consistent = store.check().ok
        stats = store.stats()

    samples = [s for client in clients for s in client.samples]
    errors = [f for client in clients for f in client.failures]
    p = dataset + "_"
    report: dict[str, Any] = {
        "dataset": dataset,
        "primary_metric": p + "requests_per_s",
        p + "requests": len(samples),
        p + "requests_per_s": round(len(samples) / elapsed, 2),
        p + "documents_per_s": round(len(acknowledged) / elapsed, 2),
        p + "errors": len(errors),
        p + "acknowledged_documents": len(acknowledged),
        p + "missing_documents": len(set(missing_live) | set(missing_stored)),
        p + "store_consistent": consistent,
        p + "all": _latency([s for _, s, _ in samples]),
        p + "ingest": {
            "count": sum(op == "ingest" for op, _, _ in samples),
            **_latency([s for op, s, _ in samples if op == "ingest"]),
        },
        p + "similar": {
            "count": sum(op == "similar" for op, _, _ in samples),
            **_latency([s for op, s, _ in samples if op == "similar"]),
        },
        "ner_batches": {
            line.split()[0]: float(line.split()[1])
            for line in batch_metrics
            if line.split()[0].endswith(("_count", "_sum"))
        },
        "store": {"documents": stats.documents, "mentions": stats.mentions, "entities": stats.entities},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "elapsed_s": round(elapsed, 2),
        },
        "first_errors": errors[:5],
    }
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    if errors or report[p + "missing_documents"] or not consistent:
        sys.exit(1)


if __name__ == "__main__":
    main()
