"""FAISS vector indexes keyed by database ids, saved atomically with their factory string.

A :class:`VectorIndex` wraps ``faiss.IndexIDMap2`` over an inner-product index built from a
FAISS factory string (``"Flat"`` by default, ``"HNSW32"``, ``"IVF4096,Flat"``, ...). Vectors must
be L2-normalized, so inner product is cosine similarity. The database is the source of truth; a
``VectorIndex`` is a rebuildable cache of it, which is why this module knows nothing about SQL.

Every index except ``Flat`` gets tombstones instead of ``remove_ids``: HNSW cannot remove, and
an IVF index under ``IndexIDMap2`` would keep its old slot numbers while the id map shifts
(wrong ids after a removal). Removed slots are excluded from search with an ``IDSelector`` on the
inner index until the next rebuild, which the store triggers once tombstones pass
:data:`MAX_DEAD_FRACTION`.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index.errors import InvalidInput

logger = logging.getLogger(__name__)

FILE_MAGIC = b"SPLKVEC1"
FORMAT_VERSION = 1
MAX_DEAD_FRACTION = 0.2
"""Share of tombstoned slots above which :attr:`VectorIndex.needs_compaction` turns true."""
MIN_IN_PLACE_COSINE = 0.9
"""An HNSW vector replaced by one at least this similar is overwritten in place (graph kept)."""
MIN_TRAIN_POINTS_PER_LIST = 39
"""FAISS k-means warns below 39 training points per centroid; below that we fall back to Flat."""


def to_blob(vector: np.ndarray) -> bytes:
    """Serialize one vector as little-endian float32 bytes (the ``LargeBinary`` column format)."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes, dim: int) -> np.ndarray:
    """Read a vector written by :func:`to_blob`.

    Raises:
        AssertionError: The blob does not hold ``dim`` floats (a corrupt row, not caller input).
    """
    vector = np.frombuffer(blob, dtype="<f4")
    assert vector.shape == (dim,), f"stored vector has {vector.size} floats, expected {dim}"
    return vector


def normalize_rows(vectors: Any, dim: int, *, what: str = "vector") -> np.ndarray:
    """Return ``vectors`` as a C-contiguous float32 ``(n, dim)`` array with unit rows.

    Args:
        vectors (array-like): One vector or a 2-D array of them.
        dim (int): Expected vector size.
        what (str): Name used in error messages. Defaults to ``"vector"``.

    Raises:
        InvalidInput: Wrong shape, non-finite values or a zero vector.
    """
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dim:
        raise InvalidInput(f"{what} must have {dim} floats", shape=tuple(array.shape), dim=dim)
    if not np.isfinite(array).all():
        raise InvalidInput(f"{what} contains NaN or infinite values")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InvalidInput(f"{what} is all zeros and has no direction")
    return np.ascontiguousarray(array / norms, dtype=np.float32)


class ReadWriteLock:
    """Many concurrent readers or one writer; waiting writers block new readers.

    FAISS allows concurrent searches but not a search during ``add``/``remove``.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock shared for the duration of the ``with`` block."""
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock exclusively for the duration of the ``with`` block."""
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def omp_threads(threads: int) -> Iterator[None]:
    """Run FAISS with ``threads`` OpenMP threads (0: one per CPU core) inside the ``with`` block.

    The OpenMP thread count is a per-thread setting, so a bulk build on one thread does not
    change the (typically single-threaded) searches of the others; it is restored afterwards.
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads if threads > 0 else (os.cpu_count() or 1))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _inner_index(dim: int, factory: str) -> faiss.Index:
    """Build the inner inner-product index, turning FAISS parse errors into :class:`InvalidInput`."""
    try:
        return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise InvalidInput(
            "FAISS cannot build this factory string; try 'Flat', 'HNSW32' or 'IVF1024,Flat'", factory=factory
        ) from exc


class VectorIndex:
    """A FAISS ``IndexIDMap2`` (inner product, normalized vectors) whose ids are database ids.

    Thread-safe: searches share a read lock, mutations take the write lock.

    Args:
        dim (int): Vector size.
        factory (str): FAISS factory string of the inner index. Defaults to ``"Flat"``.
        ef_construction (int): HNSW build breadth (higher: better graph, slower build). Defaults to 40.
        ef_search (int): HNSW search breadth (raised to ``k`` when smaller). Defaults to 64.
        nprobe (int): IVF lists visited per query. Defaults to 16.
        build_threads (int): OpenMP threads of bulk builds (:meth:`build`); 0: one per core. Defaults to 0.

    >>> index = VectorIndex.build(4, "Flat", np.array([7]), np.eye(4, dtype="float32")[:1])
    >>> index.search(np.eye(4, dtype="float32")[:1], k=1)[1].tolist()
    [[7]]
    """

    def __init__(
        self,
        dim: int,
        factory: str = "Flat",
        *,
        ef_construction: int = 80,
        ef_search: int = 64,
        nprobe: int = 16,
        build_threads: int = 0,
    ) -> None:
        self.dim = dim
        self.build_threads = build_threads
        self.factory = factory
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.nprobe = nprobe
        self.generation = 0
        self.effective_factory = "Flat"
        self._index = self._make("Flat")
        self._dead: set[int] = set()
        self._dead_selector: Any = None
        self._id_map: np.ndarray | None = None
        self._id_map_sorted = True
        self._lock = ReadWriteLock()
        self._owner: Any = None  # the owning SWIG wrapper of a loaded index (see load())

    # -- construction --------------------------------------------------------------------------

    def _make(self, factory: str) -> faiss.IndexIDMap2:
        inner = _inner_index(self.dim, factory)
        self.effective_factory = factory
        self._configure(inner)
        return faiss.IndexIDMap2(inner)

    def _configure(self, inner: faiss.Index) -> None:
        inner = faiss.downcast_index(inner)
        if hasattr(inner, "hnsw"):
            inner.hnsw.efConstruction = self.ef_construction
            inner.hnsw.efSearch = self.ef_search
        ivf = faiss.try_extract_index_ivf(inner)
        if ivf is not None:
            ivf.nprobe = self.nprobe

    @staticmethod
    def min_train_points(factory: str, dim: int) -> int:
        """How many vectors ``factory`` needs before it can be trained (0 when it needs none)."""
        inner = _inner_index(dim, factory)
        if inner.is_trained:
            return 0
        ivf = faiss.try_extract_index_ivf(inner)
        return MIN_TRAIN_POINTS_PER_LIST * ivf.nlist if ivf is not None else 256

    @classmethod
    def build(
        cls, dim: int, factory: str, ids: np.ndarray, vectors: np.ndarray, **params: int
    ) -> VectorIndex:
        """Build an index in bulk from normalized ``vectors`` with database ``ids``.

        Bulk ``add`` lets FAISS parallelize HNSW construction (and IVF training and assignment)
        over ``build_threads`` OpenMP threads, all cores by default, which is much faster than
        adding document by document. Trainable factories (IVF, PQ) are trained
        on these vectors; with too few of them the index falls back to ``Flat`` (logged), and
        :attr:`effective_factory` says so, so that the next rebuild can try again.

        Args:
            dim (int): Vector size.
            factory (str): FAISS factory string.
            ids (np.ndarray): int64 ids, one per row.
            vectors (np.ndarray): float32 ``(n, dim)`` unit rows.
            **params (int): ``ef_construction``, ``ef_search``, ``nprobe``, ``build_threads``.
        """
        index = cls(dim, factory, **params)
        with omp_threads(index.build_threads):
            index._build(factory, ids, vectors)
        return index

    def _build(self, factory: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        need = self.min_train_points(factory, self.dim)
        if need and len(ids) < need:
            logger.warning(
                "FAISS factory %r needs %d vectors to train, the store has %d: using Flat until a rebuild",
                factory,
                need,
                len(ids),
            )
        else:
            self._index = self._make(factory)
            if need:
                self._index.train(vectors)
        self._add(ids, vectors)

    # -- mutation ------------------------------------------------------------------------------

    def _add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64)
            )
            self._id_map = None

    def _remove(self, ids: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return
        if self._uses_tombstones():
            # HNSW graphs cannot drop nodes, and IVF labels would not follow the id map: tombstones.
            id_map = self._ids_by_slot()
            slots = np.flatnonzero(np.isin(id_map, ids))
            self._dead.update(int(s) for s in slots if int(s) not in self._dead)
            self._dead_selector = None
        else:
            self._index.remove_ids(ids)
        self._id_map = None

    def _is_hnsw(self) -> bool:
        return hasattr(faiss.downcast_index(self._index.index), "hnsw")

    def _uses_tombstones(self) -> bool:
        """Whether removals are tombstones (everything but a plain Flat index, see the module doc)."""
        return not isinstance(faiss.downcast_index(self._index.index), faiss.IndexFlat)

    def _search_params(self, k: int, selector: Any = None) -> Any:
        """Per-call search parameters (efSearch / nprobe, tombstone selector), or ``None`` for Flat."""
        inner = faiss.downcast_index(self._index.index)
        if hasattr(inner, "hnsw"):
            return faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k), sel=selector)
        if faiss.try_extract_index_ivf(inner) is not None:
            return faiss.SearchParametersIVF(nprobe=self.nprobe, sel=selector)
        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def _flat_storage(self) -> np.ndarray | None:
        """Writable ``(slots, dim)`` view of the raw vectors of Flat and HNSW-Flat indexes, else None."""
        inner = faiss.downcast_index(self._index.index)
        if hasattr(inner, "hnsw"):
            inner = faiss.downcast_index(inner.storage)
        if not isinstance(inner, faiss.IndexFlat) or inner.ntotal == 0:
            return None
        return faiss.rev_swig_ptr(inner.get_xb(), inner.ntotal * self.dim).reshape(inner.ntotal, self.dim)

    def _live_slots(self, ids: np.ndarray) -> np.ndarray:
        """Slot of each id (``-1`` when absent or tombstoned)."""
        id_map = self._ids_by_slot()
        if not len(id_map):
            return np.full(len(ids), -1, np.int64)
        if self._id_map_sorted:  # the usual case: ids only ever grow (no reuse), removals keep order
            order = None
            pos = np.minimum(np.searchsorted(id_map, ids), len(id_map) - 1)
        else:  # an id re-added after a tombstone: its last slot is the live one
            order = np.argsort(id_map, kind="stable")
            pos = np.maximum(np.searchsorted(id_map[order], ids, side="right") - 1, 0)
            pos = order[pos]
        slots = np.where(id_map[pos] == ids, pos, -1)
        if self._dead:
            slots[np.isin(slots, np.fromiter(self._dead, np.int64))] = -1
        return slots

    def apply(
        self,
        *,
        remove: np.ndarray | None = None,
        ids: np.ndarray | None = None,
        vectors: np.ndarray | None = None,
    ) -> None:
        """Remove ``remove`` ids, then add (or replace) ``ids`` with ``vectors``, atomically for searchers.

        Replacing a vector of a Flat or HNSW-Flat index overwrites it in place: O(1) instead of
        Flat's O(n) ``remove_ids``, and no tombstone in HNSW. The HNSW graph keeps the old
        neighbours of that node; entity centroids move little, and a rebuild relinks them.

        Args:
            remove (np.ndarray | None): Ids to drop.
            ids (np.ndarray | None): Ids to add; any that are present already are replaced.
            vectors (np.ndarray | None): Unit float32 rows for ``ids``.
        """
        with self._lock.write():
            dropped = np.asarray(remove if remove is not None else [], dtype=np.int64)
            added = np.asarray(ids if ids is not None else [], dtype=np.int64)
            rows = np.asarray(vectors if vectors is not None else np.empty((0, self.dim)), dtype=np.float32)
            if len(added):
                storage = self._flat_storage()
                if storage is not None:
                    slots = self._live_slots(added)
                    present = slots >= 0
                    if self._is_hnsw():  # far moves would strand the node among its old neighbours
                        moved = np.einsum("ij,ij->i", storage[np.maximum(slots, 0)], rows)
                        far = present & (moved < MIN_IN_PLACE_COSINE)
                        dropped = np.union1d(dropped, added[far])
                        present &= ~far
                    storage[slots[present]] = rows[present]
                    added, rows = added[~present], rows[~present]
                else:
                    dropped = np.union1d(dropped, added)
            self._remove(dropped)
            self._add(added, rows)

    # -- queries -------------------------------------------------------------------------------

    def _ids_by_slot(self) -> np.ndarray:
        # Copied lazily: adds only invalidate it, so ingesting never pays an O(n) copy per document.
        if self._id_map is None:
            self._id_map = faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)
            self._id_map_sorted = bool(np.all(self._id_map[1:] > self._id_map[:-1]))
        return self._id_map

    @property
    def ntotal(self) -> int:
        """Number of live vectors (tombstones excluded)."""
        return self._index.ntotal - len(self._dead)

    @property
    def needs_compaction(self) -> bool:
        """Whether tombstones make up more than :data:`MAX_DEAD_FRACTION` of the slots."""
        return bool(self._dead) and len(self._dead) > MAX_DEAD_FRACTION * max(self._index.ntotal, 1)

    def ids(self) -> np.ndarray:
        """Sorted int64 array of the live ids."""
        with self._lock.read():
            id_map = self._ids_by_slot()
            if self._dead:
                keep = np.ones(len(id_map), dtype=bool)
                keep[np.fromiter(self._dead, dtype=np.int64)] = False
                id_map = id_map[keep]
            return np.sort(id_map)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` inner-product search.

        Args:
            queries (np.ndarray): float32 ``(nq, dim)`` unit rows.
            k (int): Results per query.

        Returns:
            tuple[np.ndarray, np.ndarray]: ``scores`` and ``ids``, each ``(nq, k)``; missing
            results have id ``-1``.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        with self._lock.read():
            if self._index.ntotal == 0:
                return np.full((len(queries), k), -np.inf, np.float32), np.full(
                    (len(queries), k), -1, np.int64
                )
            if not self._dead:
                return self._index.search(queries, k, params=self._search_params(k))
            # Tombstones: search the inner index, skipping dead slots, and translate slots to ids.
            inner = faiss.downcast_index(self._index.index)
            scores, slots = inner.search(queries, k, params=self._search_params(k, self._selector()))
            id_map = self._ids_by_slot()
            ids = np.where(slots >= 0, id_map[np.maximum(slots, 0)], -1)
            return scores, ids

    def _selector(self) -> Any:
        # Built lazily and cached; a race between readers only builds it twice.
        selector = self._dead_selector
        if selector is None:
            dead = faiss.IDSelectorBatch(np.fromiter(self._dead, dtype=np.int64))
            # IDSelectorNot does not own ``dead``: keep both alive together.
            selector = (faiss.IDSelectorNot(dead), dead)
            self._dead_selector = selector
        return selector[0]

    # -- persistence ---------------------------------------------------------------------------

    def header(self) -> dict[str, Any]:
        """The JSON header saved in front of the FAISS bytes."""
        return {
            "format": FORMAT_VERSION,
            "factory": self.factory,
            "effective_factory": self.effective_factory,
            "dim": self.dim,
            "generation": self.generation,
            "ntotal": self.ntotal,
            "dead": sorted(self._dead),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write header + index to ``path`` atomically: temp file, fsync, ``os.replace``, fsync dir.

        A crash at any point leaves either the old file or the new one, never a torn file.
        """
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with self._lock.read():
            header = json.dumps(self.header()).encode()
            try:
                with open(tmp, "wb") as file:
                    file.write(FILE_MAGIC + struct.pack("<Q", len(header)) + header)
                    faiss.write_index(self._index, faiss.PyCallbackIOWriter(file.write))
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(tmp, path)
            finally:
                if tmp.exists():
                    tmp.unlink()
        _fsync_dir(path.parent)

    @staticmethod
    def read_header(path: str | os.PathLike[str]) -> dict[str, Any] | None:
        """The JSON header of a saved index (factory string, generation, ...), or ``None``."""
        try:
            with open(path, "rb") as file:
                if file.read(len(FILE_MAGIC)) != FILE_MAGIC:
                    return None
                (length,) = struct.unpack("<Q", file.read(8))
                if length > Path(path).stat().st_size:
                    return None
                return json.loads(file.read(length))
        except (OSError, ValueError, struct.error):
            return None

    @classmethod
    def load(cls, path: str | os.PathLike[str], **params: int) -> VectorIndex | None:
        """Read an index saved by :meth:`save`; ``None`` when the file is missing or unreadable.

        An unreadable file is not an error: the caller rebuilds from the database.
        """
        path = Path(path)
        if not path.exists():
            return None
        try:
            with open(path, "rb") as file:
                if file.read(len(FILE_MAGIC)) != FILE_MAGIC:
                    raise ValueError("bad magic")
                (length,) = struct.unpack("<Q", file.read(8))
                if length > path.stat().st_size:
                    raise ValueError("truncated header")
                header = json.loads(file.read(length))
                index = faiss.read_index(faiss.PyCallbackIOReader(file.read))
        except (OSError, ValueError, RuntimeError, struct.error) as exc:
            logger.warning("cannot read FAISS file %s (%s): it will be rebuilt", path, exc)
            return None
        if header.get("format") != FORMAT_VERSION:
            return None
        vectors = cls(int(header["dim"]), header["factory"], **params)
        vectors.effective_factory = header["effective_factory"]
        vectors.generation = int(header["generation"])
        typed = faiss.downcast_index(index)
        if not isinstance(typed, faiss.IndexIDMap2) or typed.d != vectors.dim:
            logger.warning(
                "FAISS file %s does not hold a %d-d IndexIDMap2: it will be rebuilt", path, vectors.dim
            )
            return None
        # The downcast wrapper does not own the C++ object; keep the owning wrapper alive with it.
        vectors._owner = index
        vectors._index = typed
        vectors._configure(vectors._index.index)
        vectors._dead = set(header["dead"])
        return vectors
