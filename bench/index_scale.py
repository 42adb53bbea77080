"""Scale benchmark of the index store: insert rate, memory, query latency, recall, rebuild time.

Synthetic data with ground truth: seeded gaussian clusters on the unit sphere, one entity per
cluster, documents of ``--mentions-per-doc`` mentions drawn from random clusters and linked to
their cluster's entity (so every document also updates entity counts, aliases and centroids).
Queries are fresh points from the same clusters, so recall@10 compares HNSW with exact (Flat)
search on neighbours that mean something.

    python bench/index_scale.py --n 1000000 --dim 384 > bench/out/index_scale.json

Results go to stdout as JSON (progress to stderr). Metrics are prefixed with the dataset name;
``primary_metric`` names the one to watch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index import DocumentCreate, MentionCreate, NewEntity, Store, StoreSettings  # noqa: E402
from index.sync import read_vectors  # noqa: E402
from index.vectors import VectorIndex  # noqa: E402

DATASET = "synthetic_clusters"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Current resident set size."""
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    array = np.asarray(seconds) * 1000
    return {
        "p50_ms": float(np.percentile(array, 50)),
        "p99_ms": float(np.percentile(array, 99)),
        "mean_ms": float(array.mean()),
    }


class Clusters:
    """Seeded gaussian clusters: unit centers plus isotropic noise of norm about ``noise``."""

    def __init__(self, n_clusters: int, dim: int, noise: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        centers = rng.standard_normal((n_clusters, dim)).astype(np.float32)
        self.centers = centers / np.linalg.norm(centers, axis=1, keepdims=True)
        self.sigma = noise / np.sqrt(dim)
        self.dim = dim

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        clusters = rng.integers(0, len(self.centers), n)
        noise = rng.standard_normal((n, self.dim)).astype(np.float32) * self.sigma
        return clusters, self.centers[clusters] + noise


def ingest(store: Store, data: Clusters, n: int, per_doc: int, seed: int) -> dict[str, Any]:
    """Add ``n`` mentions in documents of ``per_doc``, one transaction per document."""
    rng = np.random.default_rng(seed + 1)
    entity_of: dict[int, int] = {}
    n_docs = n // per_doc
    started = time.perf_counter()
    for d in range(n_docs):
        clusters, vectors = data.sample(rng, per_doc)
        names = [f"E{c}" for c in clusters]
        text = " ".join(names)
        mentions, start = [], 0
        for c, name, vector in zip(clusters.tolist(), names, vectors, strict=True):
            target = {"entity_id": entity_of[c]} if c in entity_of else {"new_entity": NewEntity(name, "PER")}
            mentions.append(MentionCreate(start, start + len(name), "PER", vector, **target))
            start += len(name) + 1
        result = store.add_document(DocumentCreate(f"doc{d}", text, mentions))
        for c, mention in zip(clusters.tolist(), result.document.mentions, strict=True):
            entity_of.setdefault(c, mention.entity_id)
        if (d + 1) % max(1, n_docs // 20) == 0:
            rate = (d + 1) * per_doc / (time.perf_counter() - started)
            log(f"ingested {d + 1}/{n_docs} documents ({rate:.0f} mentions/s, rss {rss_mb():.0f} MB)")
    elapsed = time.perf_counter() - started
    return {
        "documents": n_docs,
        "mentions": n_docs * per_doc,
        "entities": len(entity_of),
        "seconds": elapsed,
        "documents_per_s": n_docs / elapsed,
        "mentions_per_s": n_docs * per_doc / elapsed,
    }


def single_query_latency(
    index: VectorIndex, queries: np.ndarray, k: int
) -> tuple[dict[str, float], np.ndarray]:
    """Search queries one at a time (as the service does); return latency percentiles and ids."""
    times, found = [], []
    for query in queries:
        t0 = time.perf_counter()
        _, ids = index.search(query[None, :], k)
        times.append(time.perf_counter() - t0)
        found.append(ids[0])
    return percentiles_ms(times), np.stack(found)


def recall_at(approx: np.ndarray, exact: np.ndarray) -> float:
    k = exact.shape[1]
    return float(
        np.mean([len(set(a.tolist()) & set(e.tolist())) / k for a, e in zip(approx, exact, strict=True)])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="mention vectors to ingest")
    parser.add_argument("--dim", type=int, default=384, help="vector size")
    parser.add_argument(
        "--mentions-per-doc", type=int, default=10, help="mentions per document (transaction)"
    )
    parser.add_argument("--cluster-size", type=int, default=20, help="mean mentions per cluster (entity)")
    parser.add_argument(
        "--noise", type=float, default=0.85, help="norm of the noise around unit cluster centers"
    )
    parser.add_argument("--queries", type=int, default=1000, help="queries for latency and recall")
    parser.add_argument(
        "--flat-queries", type=int, default=200, help="single queries timed on the Flat index"
    )
    parser.add_argument("--k", type=int, default=10, help="neighbours per query (recall@k)")
    parser.add_argument("--hnsw", default="HNSW32", help="HNSW factory string")
    parser.add_argument("--ef-construction", type=int, default=40, help="HNSW efConstruction")
    parser.add_argument(
        "--ef-search", default="32,64,96,128", help="comma-separated efSearch values to measure"
    )
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="FAISS OpenMP threads for builds"
    )
    parser.add_argument(
        "--query-threads",
        type=int,
        default=1,
        help="FAISS OpenMP threads while timing single queries (1: no OpenMP wake-up cost per query)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of all synthetic data")
    parser.add_argument("--workdir", default=None, help="folder for the store (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the store files afterwards")
    args = parser.parse_args()

    faiss.omp_set_num_threads(args.threads)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="spanlink-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "bench.db"
    for stale in workdir.glob("bench.db*"):
        stale.unlink()
    data = Clusters(max(1, args.n // args.cluster_size), args.dim, args.noise, args.seed)
    results: dict[str, Any] = {}
    prefix = f"{DATASET}_"

    log(f"ingesting {args.n} mentions into {db} (Flat)")
    store = Store.open(db, dim=args.dim, factory="Flat")
    results["ingest"] = ingest(store, data, args.n, args.mentions_per_doc, args.seed)
    results["ingest"]["peak_rss_mb"] = peak_rss_mb()
    t0 = time.perf_counter()
    store.close()
    results["ingest"]["save_flat_s"] = time.perf_counter() - t0
    results["db_size_mb"] = (
        sum(p.stat().st_size for p in workdir.glob("bench.db*") if "faiss" not in p.name) / 2**20
    )
    log(f"ingest: {results['ingest']}")

    # Rebuild from the database, end to end, as Store.open does when the files are stale.
    settings = StoreSettings(factory=args.hnsw, ef_construction=args.ef_construction)
    t0 = time.perf_counter()
    store = Store.open(db, settings=settings)
    results["rebuild_hnsw_open_s"] = time.perf_counter() - t0
    log(f"rebuild of both indexes as {args.hnsw} on open: {results['rebuild_hnsw_open_s']:.1f}s")
    stats = store.stats()
    results["rebuild_hnsw_vectors"] = stats.mention_vectors + stats.entity_vectors

    # The parts of a mention-index rebuild: reading vectors from SQLite, and building FAISS.
    t0 = time.perf_counter()
    ids, vectors = read_vectors(store.engine, "mentions", args.dim)
    results["read_vectors_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    flat = VectorIndex.build(args.dim, "Flat", ids, vectors)
    results["build_flat_s"] = time.perf_counter() - t0
    read_s, flat_s = results["read_vectors_s"], results["build_flat_s"]
    log(f"read {len(ids)} vectors in {read_s:.1f}s; Flat built in {flat_s:.1f}s")
    del vectors

    rng = np.random.default_rng(args.seed + 2)
    _, queries = data.sample(rng, args.queries)
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    t0 = time.perf_counter()
    _, exact = flat.search(queries, args.k)  # batched exact search = ground truth
    results["ground_truth_s"] = time.perf_counter() - t0
    faiss.omp_set_num_threads(args.query_threads)
    results["flat_single_query"], flat_found = single_query_latency(
        flat, queries[: args.flat_queries], args.k
    )
    log(f"flat single query: {results['flat_single_query']}")
    del flat

    hnsw = store._vectors["mentions"]  # the index the store rebuilt; measured without SQL overhead
    results["hnsw"] = {}
    for ef in [int(x) for x in args.ef_search.split(",")]:
        hnsw.ef_search = ef
        latency, found = single_query_latency(hnsw, queries, args.k)
        results["hnsw"][f"ef{ef}"] = {**latency, "recall_at_10": recall_at(found, exact)}
        log(f"HNSW efSearch={ef}: {results['hnsw'][f'ef{ef}']}")
    hnsw.ef_search = store.settings.ef_search
    times = []
    for query in queries[:200]:
        t0 = time.perf_counter()
        store.similar_mentions(query, k=args.k)
        times.append(time.perf_counter() - t0)
    results["store_similar_mentions_hnsw"] = {"ef_search": store.settings.ef_search, **percentiles_ms(times)}
    results["peak_rss_mb"] = peak_rss_mb()
    store.close(save=False)

    good = [(v["p99_ms"], k) for k, v in results["hnsw"].items() if v["recall_at_10"] >= 0.95]
    best = min(good) if good else None
    metrics = {
        f"{prefix}insert_mentions_per_s": results["ingest"]["mentions_per_s"],
        f"{prefix}insert_documents_per_s": results["ingest"]["documents_per_s"],
        f"{prefix}flat_p50_ms": results["flat_single_query"]["p50_ms"],
        f"{prefix}flat_p99_ms": results["flat_single_query"]["p99_ms"],
        f"{prefix}hnsw_p99_ms_at_recall95": best[0] if best else None,
        f"{prefix}hnsw_setting_at_recall95": best[1] if best else None,
        f"{prefix}rebuild_s": results["rebuild_hnsw_open_s"],
        f"{prefix}peak_rss_mb": results["peak_rss_mb"],
    }
    output = {
        "primary_metric": f"{prefix}hnsw_p99_ms_at_recall95",
        "metrics": metrics,
        "details": results,
        "config": {
            **vars(args),
            "faiss": faiss.__version__,
            "numpy": np.__version__,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "workdir": str(workdir),
        },
    }
    print(json.dumps(output, indent=2))
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
