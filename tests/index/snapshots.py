"""``snapshot(store)``: everything a store holds, as plain values, to assert "nothing changed".

Rows of every table (ids, texts, counts, vector blobs, metadata) and what FAISS answers for a few
fixed probe vectors (every id with its score; equal scores in id order, since FAISS orders ties
by storage slot and a restored vector may sit in another slot), so a leftover row or a FAISS entry that moved
shows up as a difference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import text

from index import Store

TABLES = ("documents", "mentions", "entities", "aliases", "spanlink_meta")


def snapshot(store: Store) -> dict[str, Any]:
    """The store's content; two snapshots are equal iff the store did not change."""
    out: dict[str, Any] = {}
    with store.engine.connect() as conn:
        for table in TABLES:
            out[table] = [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]
    probes = np.random.default_rng(7).standard_normal((3, store.dim)).astype(np.float32)
    stats = store.stats()
    for probe in probes:
        out.setdefault("faiss_entities", []).append(
            sorted(
                (
                    (hit.entity.id, round(hit.score, 5))
                    for hit in store.similar_entities(probe, k=stats.entities + 1)
                ),
                key=lambda pair: (-pair[1], pair[0]),
            )
        )
        out.setdefault("faiss_mentions", []).append(
            sorted(
                (
                    (hit.mention.id, round(hit.score, 5))
                    for hit in store.similar_mentions(probe, k=stats.mentions + 1)
                ),
                key=lambda pair: (-pair[1], pair[0]),
            )
        )
    out["faiss_ids"] = {kind: store.faiss_ids(kind).tolist() for kind in ("entities", "mentions")}
    return out
