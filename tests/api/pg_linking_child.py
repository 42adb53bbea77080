"""Child process of the PostgreSQL multi-process tests: ingest a share of the BSNLP documents.

``python -m tests.api.pg_linking_child URL ROOT TOPICS WORKER WORKERS`` ingests the documents
``WORKER::WORKERS`` (interleaved with the other workers' shares) with their gold mentions into the
shared store at URL, one transaction each, and prints each document's id once it is stored (an
acknowledgement the crash test relies on).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

DIM = 16


class SurfaceHashEmbedder:
    """One fixed random unit vector per normalized surface (no model: the processes are the point)."""

    dim = DIM

    def embed(self, text, spans):  # noqa: ANN001, ANN201
        rows = []
        for start, end in spans:
            seed = int(hashlib.sha1(text[start:end].casefold().encode()).hexdigest()[:8], 16)
            vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
            rows.append(vector / np.linalg.norm(vector))
        return np.array(rows, dtype=np.float32).reshape(len(spans), DIM)


def link_settings():  # noqa: ANN201 - linking.LinkSettings
    from linking.settings import LinkSettings

    return LinkSettings(vector_weight=0.0, link_threshold=0.9)  # hash vectors mean nothing: names decide


def documents(root: Path, topics: list[str]):  # noqa: ANN201
    from linking.bsnlp import read_bsnlp
    from linking.linker import DocumentIn, MentionIn

    docs, _ = read_bsnlp(root, topics)
    return [
        DocumentIn(
            d.external_id,
            d.text,
            [MentionIn(m.start, m.end, m.label) for m in d.mentions],
            language=d.language,
            metadata={"topic": d.topic},
        )
        for d in docs
    ]


def main() -> None:
    from index import Store
    from linking.linker import Linker

    url, root, topics, worker, workers = sys.argv[1:6]
    mine = documents(Path(root), topics.split(","))[int(worker) :: int(workers)]
    with Store.open(url, dim=DIM) as store:
        linker = Linker(store, settings=link_settings(), embedder=SurfaceHashEmbedder())
        for document in mine:
            linker.ingest_one(document)
            print(document.external_id, flush=True)


if __name__ == "__main__":
    main()
