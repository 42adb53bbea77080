"""Child process of test_store_crash.py: ingests a deterministic batch until it is killed.

Usage: ``python crash_child.py DB_PATH MODE SIGNAL_AFTER``. After ``SIGNAL_AFTER`` committed
documents it prints ``READY`` and then, by ``MODE``:

- ``in_transaction``: stops inside the next document's transaction, after its rows are
  flushed and before the commit, and waits there to be killed;
- ``running``: keeps ingesting at full speed, so the kill lands wherever the child is;
- ``saving``: saves the FAISS files in a loop, so the kill lands inside an atomic save.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from sqlalchemy import event
from sqlalchemy.orm import Session

from index import DocumentCreate, MentionCreate, NewEntity, Store

DIM = 16
BATCH = 120
NAMES = [f"Name{i}" for i in range(15)]


def document(i: int) -> tuple[DocumentCreate, list[str]]:
    """Document ``i`` of the batch and the names of its mentions (entity = name)."""
    rng = np.random.default_rng(i)
    names = [NAMES[(i * 7 + j) % len(NAMES)] for j in range(3)]
    text = " ; ".join(names)
    mentions, start = [], 0
    for name in names:
        mentions.append(MentionCreate(start, start + len(name), "PER", rng.standard_normal(DIM)))
        start += len(name) + 3
    return DocumentCreate(f"doc-{i:04d}", text, mentions, metadata={"i": i}), names


def link(store: Store, doc: DocumentCreate, names: list[str]) -> DocumentCreate:
    """Link each mention to the existing entity of its name, or found it (like the linking layer)."""
    linked = []
    for mention, name in zip(doc.mentions, names, strict=True):
        found = store.search_entities(name, mode="exact", limit=1)
        target = {"entity_id": found[0].id} if found else {"new_entity": NewEntity(name, "PER")}
        linked.append(MentionCreate(mention.start, mention.end, mention.label, mention.vector, **target))
    return DocumentCreate(doc.external_id, doc.text, linked, metadata=doc.metadata)


def ingest(store: Store, start: int = 0, stop: int = BATCH, after_commit=None) -> None:
    for i in range(start, stop):
        doc, names = document(i)
        store.add_document(link(store, doc, names))
        if after_commit is not None:
            after_commit(i + 1)


def main() -> None:
    path, mode, signal_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = Store.open(path, dim=DIM)
    done = 0

    def ready() -> None:
        print("READY", flush=True)

    if mode == "in_transaction":

        @event.listens_for(Session, "before_commit")
        def hold(session: Session) -> None:
            if done == signal_after:
                session.flush()
                ready()
                time.sleep(600)

    def after_commit(n: int) -> None:
        nonlocal done
        done = n
        if n == signal_after and mode != "in_transaction":
            ready()
            if mode == "saving":
                while True:
                    store.save_vectors()

    ingest(store, after_commit=after_commit)
    print("FINISHED", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main()
