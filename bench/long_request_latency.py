"""Latency of short extracts while one long document is processed (issue 14 item 5).

Starts ``spanlink serve`` on a free local port (the embedded default model unless ``--model`` names
another; a fresh store in a temp folder), sends one ``/v1/extract`` with a ``--words``-word document
of generated multilingual news sentences, and meanwhile, from a client thread, short (~20
character) extracts one after another until the long request returns. Reports p50/p99/max latency
of the short extracts and the long request's duration, once per ``--step-batches`` value: each gets
its own server with ``SPANLINK_STEP_BATCHES`` set, so ``--step-batches 0 1`` measures before (one
lane, each request run whole) and after (short requests at once, long ones on their own lane one
model batch per step).

    python bench/long_request_latency.py --step-batches 0 1 > bench/out/long_request_latency.json
    python bench/long_request_latency.py --words 5000 --step-batches 1      # quick check

Results go to stdout as JSON, progress to stderr. The short extracts must give the same entities
every time (``short_results_stable``): interleaving must not change results.
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

PEOPLE = ["Angela Merkel", "Emmanuel Macron", "Pedro Sánchez", "Donald Tusk", "Giorgia Meloni", "Olaf Scholz"]
PLACES = ["Paris", "Berlin", "Madrid", "Warschau", "Roma", "Lyon", "Barcelona", "Kraków", "München"]
ORGS = ["Deutsche Bahn", "Renault", "Telefónica", "Orlen", "Siemens", "Europäische Union", "ONZ"]
TEMPLATES = [
    "{p} met representatives of {o} in {l} on Tuesday to discuss the budget for next year.",
    "Die {o} kündigte in {l} neue Verbindungen an, sagte {p} am Mittwoch vor Journalisten.",
    "El presidente {p} visitó {l} con representantes de {o} para hablar de inversiones.",
    "Le dirigeant {p} a rencontré les responsables de {o} à {l} lundi matin.",
    "Premier {p} spotkał się w {l} z przedstawicielami firmy {o} w sprawie nowych inwestycji.",
]
SHORT_TEXTS = ["Olaf Scholz in Rom.", "Macron visita Roma.", "Tusk spoke in Kyiv.", "Merkel traf Renault."]


def news_document(words: int, seed: int = 0) -> str:
    """Generated news-like sentences in five languages, ``words`` words or a few more."""
    rng = random.Random(seed)
    sentences, count = [], 0
    while count < words:
        template = rng.choice(TEMPLATES)
        sentence = template.format(p=rng.choice(PEOPLE), o=rng.choice(ORGS), l=rng.choice(PLACES))
        sentences.append(sentence)
        count += len(sentence.split())
    return " ".join(sentences)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _latency(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"count": 0}
    values = np.asarray(seconds) * 1000
    return {
        "count": len(seconds),
        "p50_ms": round(float(np.percentile(values, 50)), 1),
        "p99_ms": round(float(np.percentile(values, 99)), 1),
        "max_ms": round(float(values.max()), 1),
    }


def _start_server(args: argparse.Namespace, step_batches: int, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    command = [sys.executable, "-m", "api", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--data-dir", str(workdir / f"store{step_batches}")]
    if args.model:
        command += ["--model", args.model]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["SPANLINK_STEP_BATCHES"] = str(step_batches)
    env["SPANLINK_REQUEST_TIMEOUT_S"] = str(args.timeout)
    log_path = workdir / f"server{step_batches}.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(server, url, log_path, timeout=300)
    return server, url


def _extract(http: httpx.Client, text: str) -> list[list[Any]]:
    response = http.post("/v1/extract", json={"texts": [text]})
    response.raise_for_status()
    return [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in response.json()["results"]]


def measure(url: str, document: str, timeout: float, pause: float) -> dict[str, Any]:
    """One long extract and, while it runs, short extracts back to back from another thread."""
    with httpx.Client(base_url=url, timeout=timeout) as http:
        expected = {text: _extract(http, text) for text in SHORT_TEXTS}  # warm-up and the reference
    long_done = threading.Event()
    long_result: dict[str, Any] = {}

    def run_long() -> None:
        with httpx.Client(base_url=url, timeout=timeout) as http:
            begin = time.monotonic()
            try:
                long_result["entities"] = len(_extract(http, document)[0])
            except httpx.HTTPError as exc:
                long_result["error"] = repr(exc)
            long_result["seconds"] = round(time.monotonic() - begin, 2)
            long_done.set()

    long_thread = threading.Thread(target=run_long)
    sent = time.monotonic()
    long_thread.start()
    time.sleep(0.5)  # let the long request reach the service first
    samples, sent_at, stable, i = [], [], True, 0
    with httpx.Client(base_url=url, timeout=timeout) as http:
        while not long_done.is_set():
            text = SHORT_TEXTS[i % len(SHORT_TEXTS)]
            begin = time.monotonic()
            got = _extract(http, text)
            samples.append(time.monotonic() - begin)
            sent_at.append(begin - sent)
            stable &= got == expected[text]
            i += 1
            time.sleep(pause)
    long_thread.join()
    worst = sorted(zip(samples, sent_at), reverse=True)[:3]
    return {
        "short": _latency(samples),
        "short_worst": [{"ms": round(s * 1000, 1), "sent_after_s": round(t, 1)} for s, t in worst],
        "short_results_stable": stable,
        "long": long_result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="NER model folder or hub id (default: the embedded default model).")
    parser.add_argument("--words", type=int, default=50_000, help="Words in the long document.")
    parser.add_argument(
        "--step-batches",
        type=int,
        nargs="+",
        default=[0, 1],
        help="Server settings to compare; 0 runs each request whole (the behaviour before).",
    )
    parser.add_argument("--pause", type=float, default=0.05, help="Seconds between short extracts.")
    parser.add_argument("--timeout", type=float, default=900.0, help="HTTP and service timeout, seconds.")
    parser.add_argument("--workdir", type=Path, help="Folder for stores and server logs (default: temp).")
    args = parser.parse_args()
    if not 1 <= args.words <= 150_000:
        parser.error("--words must be within 1..150000 (the service takes at most 1,000,000 characters)")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spanlink-long-"))
    workdir.mkdir(parents=True, exist_ok=True)
    document = news_document(args.words)
    runs = {}
    for step_batches in args.step_batches:
        server, url = _start_server(args, step_batches, workdir)
        try:
            print(f"step_batches={step_batches}: {args.words} words, {len(document)} chars", file=sys.stderr)
            runs[f"step_batches={step_batches}"] = result = measure(url, document, args.timeout, args.pause)
            print(f"  {json.dumps(result)}", file=sys.stderr)
        finally:
            server.terminate()
            server.wait(60)
    report = {
        "dataset": "long_request_latency",
        "primary_metric": "short.p99_ms",
        "model": args.model or "default",
        "words": args.words,
        "chars": len(document),
        "runs": runs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
