"""pgvector HNSW over ``halfvec`` (16-bit) against ``vector`` (32-bit), on the 1M-mention store that
``bench/store_similarity.py --phase load`` built (an experiment for issue 15's latency target).

The store keeps ``vector(384)`` columns; this builds a second HNSW index on the expression
``vector::halfvec(384)`` (m 32, ef_construction 80, as the measured ``vector`` index) and times
the bare kNN query of each (ids only, one psycopg connection, no store API) on the same 500 fresh
queries as ``store_similarity.py``: client-side p50/p99, pgvector's own time (``EXPLAIN ANALYZE``)
and recall@10 against exact search. ``--drop`` removes the extra index at the end (it would
otherwise share ``shared_buffers`` with the store's own).

    python bench/store_similarity.py --n 1000000 --workdir /tmp/spanlink-sim-1m --phase load
    python bench/pgvector_halfvec.py --workdir /tmp/spanlink-sim-1m --ef-search 100,200,400 --drop
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import store_similarity as sim  # noqa: E402 - the bench beside this one

INDEX = "ix_mentions_halfvec_bench"
QUERIES = {
    "vector": "SELECT id FROM mentions ORDER BY vector <=> %s LIMIT 10",
    "halfvec": "SELECT id FROM mentions "
    "ORDER BY vector::halfvec({dim}) <=> %s::vector::halfvec({dim}) LIMIT 10",
}


def build(conn: Any, dim: int, m: int) -> dict[str, Any]:
    conn.execute("SET maintenance_work_mem = '4GB'")
    conn.execute("SET max_parallel_maintenance_workers = 1")
    started, before = time.perf_counter(), os.getloadavg()
    conn.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON mentions USING hnsw ((vector::halfvec({dim})) "
        f"halfvec_cosine_ops) WITH (m = {m}, ef_construction = 80)"
    )
    return {
        "build_s": time.perf_counter() - started,
        "index_bytes": conn.execute(f"SELECT pg_relation_size('{INDEX}')").fetchone()[0],
        "loadavg_before_after": [before, os.getloadavg()],
    }


def measure(conn: Any, sql: str, queries: np.ndarray, exact: np.ndarray) -> dict[str, Any]:
    plan = str(conn.execute("EXPLAIN " + sql, (queries[0],)).fetchall())
    if "Index Scan" not in plan:
        raise SystemExit(f"no HNSW index serves {sql!r}: {plan}")
    client, found = sim.timed_queries(
        lambda q: [row[0] for row in conn.execute(sql, (q,)).fetchall()], queries
    )
    server = []
    for i, query in enumerate(queries):
        analysed = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, (query,)).fetchone()[0]
        if i >= 20:
            server.append(analysed[0]["Execution Time"] / 1000)
    return {
        "client": client,
        "server": sim.percentiles_ms(server),
        "recall": sim.recall(found, exact),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--n", type=int, default=1_000_000, help="as the load phase")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--mentions-per-entity", type=int, default=20)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--ef-search", default="100,200,400")
    parser.add_argument("--m", type=int, default=32, help="HNSW m of the halfvec index")
    parser.add_argument("--shared-buffers", default="5GB")
    parser.add_argument("--drop", action="store_true", help="drop the halfvec index at the end")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import psycopg
    from pgvector.psycopg import register_vector
    from sqlalchemy.engine import make_url

    url = json.loads((args.workdir / "state.json").read_text())["pg_url"]
    sim.start_postgres(args.workdir / "postgres", args.shared_buffers)
    parts = make_url(url)
    conn = psycopg.connect(
        dbname=parts.database, user=parts.username, host=parts.query["host"], autocommit=True
    )
    register_vector(conn)
    result: dict[str, Any] = {"build": build(conn, args.dim, args.m)}
    sim.log(f"halfvec index: {result['build']}")
    # The same corpus and queries as store_similarity.py (its defaults for topics, spread, noise).
    data = sim.Mixture(args.n // args.mentions_per_entity, args.dim, 1000, 1.0, 0.6, args.seed)
    _, queries = data.mentions(np.random.default_rng(args.seed + 99), args.queries)
    exact = sim.exact_top(url, "mentions", args.dim, queries, 10)
    sim.prewarm(url)
    result["loadavg_before_queries"] = os.getloadavg()
    for ef in (int(x) for x in args.ef_search.split(",")):
        conn.execute(f"SET hnsw.ef_search = {ef}")
        for name, sql in QUERIES.items():
            row = result[f"{name} ef_search {ef}"] = measure(conn, sql.format(dim=args.dim), queries, exact)
            sim.log(
                f"{name} efSearch {ef}: p50 {row['client']['p50_ms']:.2f} p99 {row['client']['p99_ms']:.2f} "
                f"ms (server p99 {row['server']['p99_ms']:.2f}), recall {row['recall']:.3f}"
            )
    result["loadavg_after_queries"] = os.getloadavg()
    if args.drop:
        conn.execute(f"DROP INDEX IF EXISTS {INDEX}")
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
