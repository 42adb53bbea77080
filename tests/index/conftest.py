"""Fixtures for the index tests: small real stores in tmp_path and seeded clustered vectors."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest
import sqlalchemy

from index import DocumentCreate, MentionCreate, NewEntity, Store

DIM = 16


def pytest_report_header() -> list[str]:
    return [
        f"index: SQLite {sqlite3.sqlite_version}, FAISS {faiss.__version__}, "
        f"SQLAlchemy {sqlalchemy.__version__}"
    ]


def unit(vector: np.ndarray) -> np.ndarray:
    """Normalize one vector (what the store does to every stored vector)."""
    return vector / np.linalg.norm(vector)


def clustered(
    rng: np.random.Generator, n_clusters: int, per_cluster: int, dim: int = DIM, noise: float = 0.15
):
    """Seeded gaussian clusters: ``(centers, vectors, cluster_of_each_vector)``."""
    centers = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_clusters), per_cluster)
    vectors = centers[labels] + noise * rng.standard_normal((len(labels), dim)).astype(np.float32)
    return centers, vectors.astype(np.float32), labels


def make_doc(
    external_id: str, names: list[str], vectors: np.ndarray, *, label: str = "PER", entity_ids=None
) -> DocumentCreate:
    """A document whose text is the names joined by ' and ', one mention per name.

    Each mention founds (or, when ``entity_ids`` is given, links to) the entity named after it.
    """
    text = " and ".join(names) + "."
    mentions, start = [], 0
    for i, name in enumerate(names):
        target = (
            {"entity_id": entity_ids[i]} if entity_ids is not None else {"new_entity": NewEntity(name, label)}
        )
        mentions.append(MentionCreate(start, start + len(name), label, vectors[i], score=0.9, **target))
        start += len(name) + len(" and ")
    return DocumentCreate(external_id, text, mentions, language="en", metadata={"source": "test"})


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def backend() -> str:
    """The store backend of a test: SQLite unless a test module overrides this fixture with
    ``params=tests.postgres.BACKENDS`` to run on PostgreSQL as well."""
    return "sqlite"


@pytest.fixture
def store_factory(tmp_path: Path, backend: str, request) -> Iterator[Callable[..., Store]]:
    """Open stores (default: ``store.db``, DIM, Flat) under tmp_path, or as fresh PostgreSQL
    databases (one per name) when ``backend`` is ``postgres``; closes them at teardown."""
    from tests.postgres import create_database, drop_database

    opened: list[Store] = []
    databases: dict[str, str] = {}
    admin = request.getfixturevalue("pg_server") if backend == "postgres" else None

    def open_store(name: str = "store.db", **kwargs) -> Store:
        kwargs.setdefault("dim", DIM)
        if admin is None:
            target = tmp_path / name
        else:
            target = databases.get(name) or databases.setdefault(name, create_database(admin))
        store = Store.open(target, **kwargs)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()
    for url in databases.values():
        drop_database(admin, url)  # type: ignore[arg-type]


@pytest.fixture
def store(store_factory) -> Store:
    return store_factory()


def assert_consistent(store: Store) -> None:
    """The store's own consistency check passes (integrity, counts, FAISS ids == DB ids)."""
    report = store.check()
    assert report.ok, report
