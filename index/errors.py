"""Domain exceptions of the store.

Callers (the linking layer, the HTTP service) map these to their own responses: every
exception carries the context needed to say what went wrong without parsing the message,
e.g. ``NotFound.kind``/``NotFound.key`` becomes a 404 body. Low-level errors (SQLAlchemy,
FAISS) are wrapped with ``raise ... from`` so the original traceback is kept.
"""

from __future__ import annotations

from typing import Any


class StoreError(Exception):
    """Base class of every error the store raises on purpose.

    Args:
        message (str): What went wrong and, where possible, how to fix it.
        **context (Any): Structured details (ids, paths, values) kept on ``self.context``.
    """

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = context

    def __str__(self) -> str:
        if not self.context:
            return self.message
        details = ", ".join(f"{key}={value!r}" for key, value in self.context.items())
        return f"{self.message} ({details})"


class NotFound(StoreError):
    """A document, entity or mention that the caller named does not exist.

    Args:
        kind (str): ``"document"``, ``"entity"`` or ``"mention"``.
        key (Any): The id or external id that was looked up.
    """

    def __init__(self, kind: str, key: Any) -> None:
        super().__init__(f"{kind} not found", kind=kind, key=key)
        self.kind = kind
        self.key = key


class InvalidInput(StoreError, ValueError):
    """Caller input that the store refuses: bad offsets, wrong vector size, empty names.

    Subclasses ``ValueError`` too, so generic validation handlers also catch it.
    """


class SchemaMismatch(StoreError):
    """The database was written by another schema version, or for another vector size.

    Args:
        message (str): What differs and what to do about it.
        **context (Any): ``found``/``expected`` values and the database URL.
    """


class StoreConflict(StoreError):
    """A write lost a race with another process's write (shared store); retrying it can succeed."""


class StoreClosed(StoreError):
    """The store was used after ``close()``."""

    def __init__(self) -> None:
        super().__init__("the store is closed; open it again with Store.open(...)")
