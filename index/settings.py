"""Tunables of a store: one list, each with a default and help text.

``StoreSettings`` is the single place the store reads its knobs from; the CLI and the HTTP
service can render :func:`describe_settings` as help, and a test checks that every field is
documented in ``index/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def _setting(default: object, help_text: str) -> object:
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class StoreSettings:
    """Configuration of :class:`index.store.Store`; constructor arguments are the config."""

    factory: str | None = _setting(  # type: ignore[assignment]
        None,
        "FAISS index factory string for both vector indexes, e.g. Flat, HNSW32, IVF4096,Flat. "
        "None keeps the one saved with the existing indexes (Flat for a new store).",
    )
    ef_construction: int = _setting(  # type: ignore[assignment]
        40,
        "HNSW efConstruction of the indexes a store builds (FAISS HNSW, pgvector): graph quality versus "
        "build time; 200 for a million vectors and more.",
    )
    hnsw_m: int = _setting(  # type: ignore[assignment]
        16,
        "pgvector HNSW m (links per node), used when the indexes are built (a new store, spanlink "
        "migrate); 32 for a million vectors and more, with ef_construction 200. FAISS takes M from factory.",
    )
    ef_search: int = _setting(96, "HNSW efSearch: recall versus query time (raised to k when smaller).")  # type: ignore[assignment]
    nprobe: int = _setting(16, "IVF lists visited per query: recall versus query time.")  # type: ignore[assignment]
    build_threads: int = _setting(  # type: ignore[assignment]
        0, "FAISS OpenMP threads for bulk builds (rebuilds, training); 0 means one per CPU core."
    )
    sqlite_synchronous: str = _setting(  # type: ignore[assignment]
        "NORMAL",
        "SQLite PRAGMA synchronous. NORMAL in WAL mode survives process crashes; FULL also power loss.",
    )
    busy_timeout_ms: int = _setting(10000, "How long SQLite waits for a lock held by another connection.")  # type: ignore[assignment]

    def __post_init__(self) -> None:
        from index.errors import InvalidInput

        if self.sqlite_synchronous.upper() not in SYNCHRONOUS_MODES:
            raise InvalidInput(
                f"sqlite_synchronous must be one of {SYNCHRONOUS_MODES}", value=self.sqlite_synchronous
            )
        for name in ("ef_construction", "ef_search", "nprobe"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be >= 1", value=getattr(self, name))
        if not 2 <= self.hnsw_m <= 100:  # pgvector's bounds
            raise InvalidInput("hnsw_m must be between 2 and 100", value=self.hnsw_m)
        if self.build_threads < 0:
            raise InvalidInput("build_threads must be >= 0 (0: one per CPU core)", value=self.build_threads)

    def vector_params(self) -> dict[str, int]:
        """Keyword arguments for :class:`index.vectors.VectorIndex`."""
        return {
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "nprobe": self.nprobe,
            "build_threads": self.build_threads,
        }


def describe_settings() -> list[tuple[str, object, str]]:
    """``(name, default, help)`` for every setting, in declaration order."""
    return [(f.name, f.default, f.metadata["help"]) for f in fields(StoreSettings)]
