"""Scale benchmark of the index store: insert rate, memory, query latency, recall, rebuild time.

Synthetic data with ground truth: seeded gaussian clusters on the unit sphere, one entity per
cluster, documents of ``--mentions-per-doc`` mentions drawn from random clusters and linked to
their cluster's entity (so every document also updates entity counts, aliases and centroids).
Queries are fresh points from the same clusters, so recall@10 compares each approximate index
with exact (Flat) search on neighbours that mean something.

    python bench/index_scale.py --n 1000000 --dim 384 --workdir /tmp/spanlink-bench-1m --keep \
        > bench/out/index_scale_1m.json

Data design (measured at 1M, the defaults): cluster centers are random unit vectors, mentions
are ``center + noise`` with noise of norm 0.85, normalized. Two mentions of one entity have
cosine ~0.58; the best mention of any *other* entity scores ~0.22 against a query (the
maximum over a million near-orthogonal points). So a query's true top-10 is always 10 of its
own cluster's ~20 mentions (Poisson, fewer than 10 in ~0.5% of clusters), ranked by real
though small differences: the median gap between the 10th and 11th true score is 0.002,
three orders of magnitude above float error, and exact ties are rare (the tie-aware recall
below differs from the strict one by < 0.001). What the data does *not* have is structure
between entities: centers are isotropic in all 384 dimensions, unlike real embeddings (types,
topics, languages give them a low intrinsic dimension). That is the worst case for every
approximate index: a graph walk has no gradient to follow between unrelated clusters, and
k-means lists cut each cluster apart (IVF1024 at 1M needs nprobe 128 for recall 0.88). It is
kept on purpose (the benchmark should not flatter the index); it is why HNSW32 recall at
efConstruction 40 falls from 0.997 at 100k to 0.78 at 1M (efConstruction 80: 0.98). See index/README.md.

Recall@10 is reported two ways: ``strict`` (set overlap with the Flat top-10, the target's
measure) and ``tie_aware`` (a returned id counts when its exact score reaches the 10th
reference score within 1e-5, as faiss ``contrib/evaluation.check_ref_knn_with_draws`` allows).

Builds use every core (``--threads``), timed single queries one OpenMP thread (``--query-threads``).
After the sweeps the store saves, ingests ``--crash-docs`` more documents, "dies" without saving
its FAISS files and is reopened: ``recover_open_s`` is the time until it serves again (a stale
mention index is repaired in place, the entity index rebuilt).

``--factories`` adds mention-index builds of other factory strings (each timed, then swept over
``--ef-search`` for HNSW or ``--nprobe`` for IVF). ``--reuse-db`` skips the ingest when the
workdir already holds a database from a ``--keep`` run.

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


def recall_strict(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the reference top-k ids that ``approx`` returned (set overlap / k)."""
    k = exact.shape[1]
    return float(
        np.mean([len(set(a.tolist()) & set(e.tolist())) / k for a, e in zip(approx, exact, strict=True)])
    )


def recall_tie_aware(
    approx: np.ndarray, approx_true_scores: np.ndarray, ref_scores: np.ndarray, atol: float = 1e-5
) -> float:
    """Recall@k where a returned id counts if its exact score reaches the k-th reference score.

    Like faiss ``contrib/evaluation.check_ref_knn_with_draws``: when several vectors tie with the
    k-th reference neighbour (within ``atol``), any of them is a correct answer.

    Args:
        approx (np.ndarray): ``(nq, k)`` ids returned by the index under test (``-1``: none).
        approx_true_scores (np.ndarray): ``(nq, k)`` exact inner products of those ids with the query.
        ref_scores (np.ndarray): ``(nq, k)`` exact top-k scores, best first.
        atol (float): Float tolerance of a tie. Defaults to 1e-5.
    """
    k = ref_scores.shape[1]
    hits = []
    for ids, scores, kth in zip(approx, approx_true_scores, ref_scores[:, k - 1], strict=True):
        good = (ids >= 0) & (scores >= kth - atol)
        hits.append(min(len(np.unique(ids[good])), k) / k)
    return float(np.mean(hits))


def exact_scores(found: np.ndarray, queries: np.ndarray, ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Exact inner products of each query with the vectors of its returned ids (sorted ``ids``)."""
    rows = np.clip(np.searchsorted(ids, found), 0, len(ids) - 1)
    return np.einsum("qd,qkd->qk", queries, vectors[rows])


def sweep(
    index: VectorIndex,
    queries: np.ndarray,
    exact: tuple[np.ndarray, np.ndarray],
    data: tuple[np.ndarray, np.ndarray],
    k: int,
    ef_search: list[int],
    nprobe: list[int],
) -> dict[str, dict[str, float]]:
    """Single-query latency and both recalls for each efSearch (HNSW) or nprobe (IVF) value."""
    ref_scores, ref_ids = exact
    inner = faiss.downcast_index(index._index.index)
    if hasattr(inner, "hnsw"):
        name, values = "ef_search", ef_search
    elif faiss.try_extract_index_ivf(inner) is not None:
        name, values = "nprobe", nprobe
    else:
        name, values = "exact", [0]
    saved = index.ef_search, index.nprobe
    out = {}
    for value in values:
        index.ef_search, index.nprobe = (value, saved[1]) if name == "ef_search" else (saved[0], value)
        latency, found = single_query_latency(index, queries, k)
        per_query = np.array(
            [len(set(a.tolist()) & set(e.tolist())) for a, e in zip(found, ref_ids, strict=True)]
        )
        row = {
            **latency,
            "queries_none_found": float(np.mean(per_query == 0)),  # never reached the cluster
            "queries_all_found": float(np.mean(per_query == k)),
            "recall_at_10_strict": recall_strict(found, ref_ids),
            "recall_at_10_tie_aware": recall_tie_aware(
                found, exact_scores(found, queries, *data), ref_scores
            ),
        }
        out[f"{name}={value}"] = row
        shown = json.dumps({a: round(b, 4) for a, b in row.items()})
        log(f"  {index.effective_factory} {name}={value}: {shown}")
    index.ef_search, index.nprobe = saved
    return out


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
    parser.add_argument(
        "--factory",
        default="HNSW32",
        help="factory the store is reopened (rebuilt) with: the end-to-end rebuild time",
    )
    parser.add_argument(
        "--factories",
        default="HNSW32_SQ8;IVF1024,Flat",
        help="';'-separated further factories built from the read vectors and swept (may be empty)",
    )
    parser.add_argument(
        "--ef-construction", type=int, default=80, help="HNSW efConstruction (80 at 1M, see README)"
    )
    parser.add_argument(
        "--ef-search", default="32,64,128,256,512", help="comma-separated efSearch values to measure"
    )
    parser.add_argument("--nprobe", default="8,16,32,64", help="comma-separated IVF nprobe values to measure")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="FAISS OpenMP threads for builds"
    )
    parser.add_argument(
        "--query-threads",
        type=int,
        default=1,
        help="FAISS OpenMP threads while timing single queries (1: no OpenMP wake-up cost per query)",
    )
    parser.add_argument(
        "--crash-docs",
        type=int,
        default=100,
        help="documents written after the last FAISS save before a simulated crash (0 = skip)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of all synthetic data")
    parser.add_argument("--workdir", default=None, help="folder for the store (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the store files afterwards")
    parser.add_argument(
        "--reuse-db", action="store_true", help="skip the ingest when --workdir holds a kept database"
    )
    args = parser.parse_args()
    ef_search = [int(x) for x in args.ef_search.split(",") if x]
    nprobe = [int(x) for x in args.nprobe.split(",") if x]
    params = {"ef_construction": args.ef_construction, "build_threads": args.threads}

    faiss.omp_set_num_threads(args.threads)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="spanlink-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "bench.db"
    data = Clusters(max(1, args.n // args.cluster_size), args.dim, args.noise, args.seed)
    results: dict[str, Any] = {}
    prefix = f"{DATASET}_"

    if args.reuse_db and db.exists():
        log(f"reusing {db} (no ingest)")
        results["ingest"] = {"reused": str(db)}
    else:
        for stale in workdir.glob("bench.db*"):
            stale.unlink()
        log(f"ingesting {args.n} mentions into {db} (Flat)")
        store = Store.open(db, dim=args.dim, factory="Flat")
        results["ingest"] = ingest(store, data, args.n, args.mentions_per_doc, args.seed)
        results["ingest"]["peak_rss_mb"] = peak_rss_mb()
        t0 = time.perf_counter()
        store.close()
        results["ingest"]["save_flat_s"] = time.perf_counter() - t0
        log(f"ingest: {results['ingest']}")
    results["db_size_mb"] = (
        sum(p.stat().st_size for p in workdir.glob("bench.db*") if "faiss" not in p.name) / 2**20
    )

    # Rebuild from the database, end to end, as Store.open does when the files are stale.
    settings = StoreSettings(factory=args.factory, **params)
    t0, c0 = time.perf_counter(), time.process_time()
    store = Store.open(db, settings=settings)
    results["rebuild_open_s"] = time.perf_counter() - t0
    results["rebuild_open_cpu_s"] = time.process_time() - c0  # CPU seconds of all threads
    stats = store.stats()
    results["rebuild_open"] = {
        "factory": args.factory,
        "effective": {kind: index.effective_factory for kind, index in store._vectors.items()},
        "vectors": stats.mention_vectors + stats.entity_vectors,
        "threads": args.threads,
    }
    log(f"rebuild of both indexes as {args.factory} on open: {results['rebuild_open_s']:.1f}s")

    # The parts of a mention-index rebuild: reading vectors from SQLite, and building FAISS.
    t0 = time.perf_counter()
    ids, vectors = read_vectors(store.engine, "mentions", args.dim)
    results["read_vectors_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    flat = VectorIndex.build(args.dim, "Flat", ids, vectors)
    results["build_s"] = {"Flat": time.perf_counter() - t0}
    read_s, flat_s = results["read_vectors_s"], results["build_s"]["Flat"]
    log(f"read {len(ids)} vectors in {read_s:.1f}s; Flat built in {flat_s:.1f}s")

    rng = np.random.default_rng(args.seed + 2)
    _, queries = data.sample(rng, args.queries)
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    t0 = time.perf_counter()
    exact = flat.search(queries, args.k)  # batched exact search = ground truth (scores, ids)
    results["ground_truth_s"] = time.perf_counter() - t0
    faiss.omp_set_num_threads(args.query_threads)
    results["flat_single_query"], _ = single_query_latency(flat, queries[: args.flat_queries], args.k)
    log(f"flat single query: {results['flat_single_query']}")
    del flat

    results["sweeps"] = {}
    if args.factory != "Flat":  # Flat was timed above
        log(f"sweeping the store's {args.factory} mention index")
        results["sweeps"][args.factory] = sweep(
            store._vectors["mentions"], queries, exact, (ids, vectors), args.k, ef_search, nprobe
        )
    for factory in [f for f in args.factories.split(";") if f and f != args.factory]:
        faiss.omp_set_num_threads(args.threads)
        log(f"building the mention index as {factory} ({args.threads} threads)")
        t0, c0 = time.perf_counter(), time.process_time()
        index = VectorIndex.build(args.dim, factory, ids, vectors, **params)
        results["build_s"][factory] = time.perf_counter() - t0
        results.setdefault("build_cpu_s", {})[factory] = time.process_time() - c0  # all threads
        log(f"{factory} built in {results['build_s'][factory]:.1f}s")
        faiss.omp_set_num_threads(args.query_threads)
        results["sweeps"][factory] = sweep(index, queries, exact, (ids, vectors), args.k, ef_search, nprobe)
        del index
    results["rss_after_sweeps_mb"] = rss_mb()
    del vectors

    times = []
    for query in queries[:200]:
        t0 = time.perf_counter()
        store.similar_mentions(query, k=args.k)
        times.append(time.perf_counter() - t0)
    results["store_similar_mentions"] = {
        "factory": args.factory,
        "ef_search": store.settings.ef_search,
        "nprobe": store.settings.nprobe,
        **percentiles_ms(times),
    }
    results["peak_rss_mb"] = peak_rss_mb()

    # Crash recovery: save, write a batch that never reaches the FAISS files, die, reopen. The
    # batch replaces the first documents (new mention ids, old ones deleted) and adds entities.
    if args.crash_docs:
        store.save_vectors()
        batch = args.crash_docs * args.mentions_per_doc
        ingest(store, data, batch, args.mentions_per_doc, args.seed + 7)
        store.close(save=False)
        faiss.omp_set_num_threads(args.threads)
        t0 = time.perf_counter()
        store = Store.open(db, settings=settings)
        results["recover_open_s"] = time.perf_counter() - t0
        results["recover_checks"] = {c.kind: f"loaded={c.loaded}: {c.reason}" for c in store.open_checks}
        results["recover_consistent"] = store.check().ok
        log(f"reopen after a crash that lost {batch} mention writes: {results['recover_open_s']:.1f}s")
    store.close(save=False)

    good = [
        (row["p99_ms"], f"{factory} {setting}")
        for factory, rows in results["sweeps"].items()
        for setting, row in rows.items()
        if row["recall_at_10_strict"] >= 0.95
    ]
    best = min(good) if good else None
    metrics = {
        f"{prefix}insert_mentions_per_s": results["ingest"].get("mentions_per_s"),
        f"{prefix}insert_documents_per_s": results["ingest"].get("documents_per_s"),
        f"{prefix}flat_p50_ms": results["flat_single_query"]["p50_ms"],
        f"{prefix}flat_p99_ms": results["flat_single_query"]["p99_ms"],
        f"{prefix}p99_ms_at_recall95": best[0] if best else None,
        f"{prefix}setting_at_recall95": best[1] if best else None,
        f"{prefix}rebuild_s": results["rebuild_open_s"],
        f"{prefix}recover_after_crash_s": results.get("recover_open_s"),
        f"{prefix}peak_rss_mb": results["peak_rss_mb"],
    }
    output = {
        "primary_metric": f"{prefix}p99_ms_at_recall95",
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
