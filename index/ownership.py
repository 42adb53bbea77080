"""One owner per embedded store: an exclusive lock file with the owner's pid beside the database.

The embedded store keeps its FAISS indexes in the memory of the process that opened it and its
linker caches entities, so two writer processes on one SQLite file silently found duplicate
entities and each miss the other's vectors. The first process to open a store for writing takes
``<database>.lock``; a second one is refused with :class:`StoreLocked`, which names the holder.

The lock is a ``flock`` on the open file, so the kernel drops it when the owner exits in any way,
SIGKILL included: a lock file left by a dead process is simply taken over (its pid is only
information). Inside one process, opening the same store again shares the lock (reference
counted), so a service and a CLI command in one test process do not lock each other out.
"""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from index.errors import StoreError


class StoreLocked(StoreError):
    """Another process owns this embedded store (``holder`` is its pid, when it could be read)."""


@dataclass
class _Held:
    fd: int
    count: int


_held: dict[Path, _Held] = {}
_guard = threading.Lock()


def lock_path(database: Path) -> Path:
    """The lock file of an SQLite database file: ``spanlink.db`` -> ``spanlink.db.lock``."""
    return database.with_name(database.name + ".lock")


def _holder(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@dataclass
class StoreOwnership:
    """A taken lock; :meth:`release` gives it back (also done by the kernel when the process ends)."""

    path: Path
    released: bool = False

    def release(self) -> None:
        """Drop this process's claim; the file is unlocked when the last claim goes."""
        with _guard:
            if self.released:
                return
            self.released = True
            held = _held.get(self.path)
            if held is None:
                return
            held.count -= 1
            if held.count == 0:
                del _held[self.path]
                try:  # empty it first, so a reader never sees our pid on a lock we no longer hold
                    os.ftruncate(held.fd, 0)
                finally:
                    os.close(held.fd)  # closing the descriptor releases the flock


def acquire(database: Path) -> StoreOwnership:
    """Take the owner lock of an SQLite store, or raise :class:`StoreLocked` naming the holder.

    Args:
        database (Path): The SQLite file (it need not exist yet).

    Raises:
        StoreLocked: Another live process holds it.
    """
    path = lock_path(database.resolve())
    with _guard:
        held = _held.get(path)
        if held is not None:
            held.count += 1
            return StoreOwnership(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _holder(path)
            who = f"process {holder}" if holder is not None else "another process"
            raise StoreLocked(
                f"the store {database} is in use by {who}; the embedded store (SQLite + FAISS) has "
                "one owner process. Stop that process, or move to the PostgreSQL store "
                "(--db postgresql+psycopg://..., see `spanlink migrate`) to run several",
                holder=holder,
                lock_file=str(path),
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        _held[path] = _Held(fd, 1)
        return StoreOwnership(path)


def _after_fork_in_child() -> None:
    # A forked child inherits the descriptors but must not believe it owns the store: the flock
    # belongs to the open file description shared with the parent, which keeps owning it.
    _held.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
