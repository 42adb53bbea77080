"""Clustering metrics for entity linking: B-cubed, CEAF-e, MUC and pairwise precision/recall/F1.

Both clusterings are given as one label per mention (``key[i]`` is mention i's gold cluster,
``response[i]`` the system's entity), so the two always cover the same mentions; callers that
score predicted mentions first keep only those matching a gold mention. Definitions follow
Bagga & Baldwin (1998) for B-cubed, Vilain et al. (1995) for MUC and Luo (2005) for CEAF-e
(entity similarity phi4 = 2|K∩R| / (|K| + |R|), optimal one-to-one alignment).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

METRICS = ("b3", "ceafe", "muc", "pairwise")


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 of one metric."""

    precision: float
    recall: float
    f1: float

    @classmethod
    def of(cls, precision: float, recall: float) -> PRF:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        return cls(precision, recall, f1)

    def as_dict(self) -> dict[str, float]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


def _clusters(labels: Sequence[Hashable]) -> dict[Hashable, set[int]]:
    out: dict[Hashable, set[int]] = defaultdict(set)
    for i, label in enumerate(labels):
        out[label].add(i)
    return out


def _check(key: Sequence[Hashable], response: Sequence[Hashable]) -> None:
    if len(key) != len(response):
        raise ValueError(f"key and response must label the same mentions: {len(key)} != {len(response)}")


def b_cubed(key: Sequence[Hashable], response: Sequence[Hashable]) -> PRF:
    """Per-mention precision |K(m)∩R(m)|/|R(m)| and recall |K(m)∩R(m)|/|K(m)|, averaged."""
    _check(key, response)
    if not key:
        return PRF(0.0, 0.0, 0.0)
    joint = Counter(zip(key, response))
    key_sizes, resp_sizes = Counter(key), Counter(response)
    precision = sum(n * n / resp_sizes[r] for (_, r), n in joint.items()) / len(key)
    recall = sum(n * n / key_sizes[k] for (k, _), n in joint.items()) / len(key)
    return PRF.of(precision, recall)


def muc(key: Sequence[Hashable], response: Sequence[Hashable]) -> PRF:
    """Links: recall = sum(|K| - |parts of K in R|) / sum(|K| - 1); precision swaps the roles."""
    _check(key, response)

    def links(gold: Sequence[Hashable], other: Sequence[Hashable]) -> float:
        parts: dict[Hashable, set[Hashable]] = defaultdict(set)
        for g, o in zip(gold, other):
            parts[g].add(o)
        sizes = Counter(gold)
        denominator = sum(size - 1 for size in sizes.values())
        numerator = sum(sizes[g] - len(parts[g]) for g in sizes)
        return numerator / denominator if denominator else 0.0

    return PRF.of(links(response, key), links(key, response))


def pairwise(key: Sequence[Hashable], response: Sequence[Hashable]) -> PRF:
    """Mention pairs put together: precision over the system's pairs, recall over the gold pairs."""
    _check(key, response)
    pairs = lambda counts: sum(n * (n - 1) // 2 for n in counts.values())  # noqa: E731
    both = pairs(Counter(zip(key, response)))
    gold, system = pairs(Counter(key)), pairs(Counter(response))
    return PRF.of(both / system if system else 0.0, both / gold if gold else 0.0)


def max_assignment(weights: np.ndarray) -> float:
    """Largest total weight of a one-to-one row/column assignment (Hungarian algorithm, O(n^2 m)).

    The e-maxx formulation with potentials, its inner loop vectorized over columns; a local
    implementation keeps SciPy out of the dependencies.
    """
    if weights.size == 0:
        return 0.0
    matrix = weights if weights.shape[0] <= weights.shape[1] else weights.T
    n, m = matrix.shape
    cost = matrix.max() - matrix  # minimize cost = maximize weight
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=np.int64)  # p[j]: row (1-based) assigned to column j; 0 = free
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            masked = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(masked)) + 1
            delta = masked[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    return float(sum(matrix[p[j] - 1, j - 1] for j in range(1, m + 1) if p[j]))


def ceaf_e(key: Sequence[Hashable], response: Sequence[Hashable]) -> PRF:
    """Entity-level CEAF with phi4 and the best one-to-one alignment of gold and system entities.

    The alignment is solved per connected component of the overlap graph (clusters that share
    no mention never align usefully), which keeps the assignment matrices small.
    """
    _check(key, response)
    if not key:
        return PRF(0.0, 0.0, 0.0)
    joint = Counter(zip(key, response))
    key_sizes, resp_sizes = Counter(key), Counter(response)
    # Union-find over gold and system clusters joined by shared mentions.
    parent: dict[tuple[str, Hashable], tuple[str, Hashable]] = {}

    def find(x: tuple[str, Hashable]) -> tuple[str, Hashable]:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for k, r in joint:
        a, b = find(("k", k)), find(("r", r))
        if a != b:
            parent[a] = b
    components: dict[tuple[str, Hashable], tuple[list[Hashable], list[Hashable]]] = defaultdict(
        lambda: ([], [])
    )
    for k in key_sizes:
        components[find(("k", k))][0].append(k)
    for r in resp_sizes:
        components[find(("r", r))][1].append(r)
    total = 0.0
    for keys, resps in components.values():
        sim = np.zeros((len(keys), len(resps)))
        for i, k in enumerate(keys):
            for j, r in enumerate(resps):
                n = joint.get((k, r), 0)
                if n:
                    sim[i, j] = 2 * n / (key_sizes[k] + resp_sizes[r])
        total += max_assignment(sim)
    return PRF.of(total / len(resp_sizes), total / len(key_sizes))


def clustering_scores(key: Sequence[Hashable], response: Sequence[Hashable]) -> dict[str, dict[str, float]]:
    """All four metrics as JSON-ready dicts, plus the mention and cluster counts."""
    out: dict[str, dict[str, float]] = {
        "b3": b_cubed(key, response).as_dict(),
        "ceafe": ceaf_e(key, response).as_dict(),
        "muc": muc(key, response).as_dict(),
        "pairwise": pairwise(key, response).as_dict(),
    }
    out["counts"] = {
        "mentions": len(key),
        "gold_clusters": len(set(key)),
        "system_clusters": len(set(response)),
    }
    return out
