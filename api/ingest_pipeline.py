"""The ingest pipeline: read -> model stage (NER + mention vectors) -> one serial writer (linking + store).

One pipeline, two executors. The stages are plain objects; an executor decides where the model stage
runs: in this process (:func:`run_local`), or on a Ray actor pool (``api.ingest_ray``). Either way
the executor yields :class:`Prepared` documents *in input order* to the :class:`Writer` in the
driver, which links and stores them one transaction each.

Why linking stays serial: online linking is order-dependent (a document links to the entities that
earlier documents created), so parallel linkers would give a different, run-dependent partition
even with the shared store's entity lock. All the model work (NER and the mention vectors) runs in
the model stage; what is left for the writer is candidate lookup and the database write. With the
input order kept, the result equals a sequential ``spanlink ingest`` up to float rounding of NER
batches; the store's write rate, not the model, then bounds the throughput (README, "Bulk ingest").

Resuming: a document whose id and text (``documents.content_hash``) are already stored is skipped,
by the model stage (so a rerun does no model work for it) and again by the writer (the authority);
a job killed mid-way and run again finishes the rest without storing anything twice.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from api.ingest_sources import Parsed, Source, content_key, parse_file, read_local

SKIPPED, FAILED, READY = "skipped", "failed", "ready"


@dataclass
class Prepared:
    """A document after the model stage: mentions found (or given) and their vectors, or why not.

    ``vectors`` has one row per mention, mentions sorted by (start, end) as the linker sorts them.
    ``read_seconds`` and ``model_seconds`` are this document's share of its batch's time.
    """

    where: str
    status: str
    document: Any = None  # linking.linker.DocumentIn with mentions
    vectors: np.ndarray | None = None
    error: str | None = None
    read_seconds: float = 0.0
    model_seconds: float = 0.0

    @property
    def external_id(self) -> str | None:
        return None if self.document is None else self.document.external_id


class ModelStage:
    """NER where a document has no mentions (as the service does it: spaces trimmed, spans that cannot
    name an entity left out), then the mention vectors the linker would compute. One per actor.

    Args:
        model (ner.SpanEngine): The NER model (torch or ONNX Runtime backend).
        embedder (linking.embedding.Embedder): Mention vectors (the store's kind).
        stored (Collection[bytes]): Keys of documents already stored (``document_key``): skipped here.
    """

    def __init__(self, model: Any, embedder: Any, stored: Any = frozenset()) -> None:  # noqa: ANN401
        self.model, self.embedder, self.stored = model, embedder, stored

    def __call__(self, items: Sequence[Parsed], read_seconds: Sequence[float] = ()) -> list[Prepared]:
        started = time.perf_counter()
        out = [self._triage(item) for item in items]
        ready = [p for p in out if p.status == READY]
        self._find_mentions([p for p in ready if p.document.mentions is None])
        self._embed([p for p in out if p.status == READY])
        share = (time.perf_counter() - started) / max(1, len(items))
        for p, seconds in zip(out, list(read_seconds) or [0.0] * len(out)):
            p.model_seconds, p.read_seconds = share, seconds
        return out

    def _triage(self, item: Parsed) -> Prepared:
        if item.document is None:
            return Prepared(item.where, FAILED, error=item.error)
        if item.key in self.stored:
            return Prepared(item.where, SKIPPED, item.document)
        return Prepared(item.where, READY, item.document)

    def _find_mentions(self, need: list[Prepared]) -> None:
        """One model call for the batch; if it fails, one call per document, so that the document at
        fault is the only one that fails (its reason in the report)."""
        if not need:
            return
        try:
            found = self.model.extract([p.document.text for p in need], strip_spaces=True)
        except Exception:  # noqa: BLE001 - isolate the document at fault below
            found = None
        for i, p in enumerate(need):
            try:
                entities = (
                    found[i] if found is not None else self.model.extract(p.document.text, strip_spaces=True)
                )
            except Exception as exc:  # noqa: BLE001 - a bad document must not stop the job
                p.status, p.error = FAILED, f"NER failed: {type(exc).__name__}: {exc}"
                continue
            p.document = _with_entities(p.document, entities)

    def _embed(self, ready: list[Prepared]) -> None:
        _prime(self.embedder, ready)
        for p in ready:
            doc = p.document
            mentions = sorted(doc.mentions, key=lambda m: (m.start, m.end))
            p.document = type(doc)(doc.external_id, doc.text, mentions, doc.language, doc.metadata)
            try:
                p.vectors = np.asarray(
                    self.embedder.embed(doc.text, [(m.start, m.end) for m in mentions]), np.float32
                )
            except Exception as exc:  # noqa: BLE001 - spans out of range, a tokenizer error, ...
                p.status, p.error = FAILED, f"mention vectors failed: {type(exc).__name__}: {exc}"


def _with_entities(document: Any, entities: Any) -> Any:  # noqa: ANN401 - DocumentIn, list[Entity]
    from api.service import nameable
    from linking.linker import DocumentIn, MentionIn

    mentions = [MentionIn(e.start, e.end, e.label, float(e.score)) for e in entities if nameable(e.text)]
    return DocumentIn(document.external_id, document.text, mentions, document.language, document.metadata)


def _prime(embedder: Any, ready: list[Prepared]) -> None:  # noqa: ANN401
    """Surface vectors are cached by string: embed every mention string of the batch in one go."""
    surface = getattr(embedder, "surface", embedder)
    if not hasattr(surface, "embed_strings"):
        return
    strings = [
        " ".join(p.document.text[m.start : m.end].split())
        for p in ready
        for m in p.document.mentions
        if 0 <= m.start < m.end <= len(p.document.text)
    ]
    with contextlib.suppress(Exception):  # a failure shows again, per document, in _embed
        surface.embed_strings(strings)


class PrecomputedEmbedder:
    """The writer's embedder: hands the linker the vectors the model stage computed for the document
    being written (the linker asks for them in the order the stage sorted the mentions)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._spans: list[tuple[int, int]] = []
        self._vectors = np.zeros((0, dim), np.float32)

    def expect(self, document: Any, vectors: np.ndarray) -> None:  # noqa: ANN401
        self._spans = [(m.start, m.end) for m in document.mentions]
        self._vectors = vectors.reshape(len(self._spans), self.dim)

    def embed(self, text: str, spans: Sequence[tuple[int, int]]) -> np.ndarray:  # noqa: ARG002
        if list(spans) != self._spans:
            raise RuntimeError("the linker asked for vectors of other spans than the model stage embedded")
        return self._vectors


@dataclass
class Report:
    """What a run did; ``as_dict`` is the final JSON report."""

    documents: int = 0
    replaced: int = 0
    mentions: int = 0
    entities_created: int = 0
    skipped: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    read_seconds: float = 0.0
    model_seconds: float = 0.0
    write_seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    executor: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.started
        seen = self.documents + self.skipped + len(self.failed)

        def rate(count: int, seconds: float) -> float | None:
            return round(count / seconds, 2) if seconds > 0 else None

        return {
            "documents": self.documents,
            "replaced": self.replaced,
            "mentions": self.mentions,
            "entities_created": self.entities_created,
            "skipped": self.skipped,
            "failed": len(self.failed),
            "failures": self.failed,
            "wall_seconds": round(wall, 2),
            "documents_per_second": rate(seen, wall),
            # Busy seconds per stage, summed over its workers: docs/s of ONE worker of that stage.
            "stages": {
                "read": {
                    "seconds": round(self.read_seconds, 2),
                    "documents_per_second": rate(seen, self.read_seconds),
                },
                "model": {
                    "seconds": round(self.model_seconds, 2),
                    "documents_per_second": rate(seen, self.model_seconds),
                },
                "write": {
                    "seconds": round(self.write_seconds, 2),
                    "documents_per_second": rate(self.documents, self.write_seconds),
                },
            },
            "executor": self.executor,
        }


class Writer:
    """Links and stores prepared documents one transaction each, in the order they come (the driver).

    Args:
        linker (linking.Linker): Over the store, with a :class:`PrecomputedEmbedder`.
        skip_stored (bool): Skip a document whose id and text are stored already (resuming); else
            store it again (the same id replaces the stored version).
        keep_going (bool): Report a document that fails and go on; else raise :class:`WriteFailed`.
        on_stored (Callable | None): Called with each ``linking.IngestResult``.
        kb_only (bool): Link to knowledge-base entities only, found none (``Linker.ingest_one``).
    """

    def __init__(
        self,
        linker: Any,  # noqa: ANN401
        *,
        skip_stored: bool,
        keep_going: bool,
        on_stored: Callable[[Any], None] | None = None,
        kb_only: bool = False,
    ) -> None:
        self.linker, self.skip_stored, self.keep_going = linker, skip_stored, keep_going
        self.kb_only = kb_only
        self.on_stored = on_stored
        self.report = Report()

    def write(self, prepared: Prepared) -> None:
        report = self.report
        report.read_seconds += prepared.read_seconds
        report.model_seconds += prepared.model_seconds
        if prepared.status == FAILED:
            if not self.keep_going:
                raise WriteFailed(prepared, RuntimeError(prepared.error or "failed"), report.documents)
            self._failed(prepared, prepared.error or "failed")
            return
        document = prepared.document
        if prepared.status == SKIPPED or (self.skip_stored and self._stored(document)):
            report.skipped += 1
            return
        started = time.perf_counter()
        try:
            self.linker.embedder.expect(document, prepared.vectors)
            result = self.linker.ingest_one(document, kb_only=self.kb_only)
        except Exception as exc:
            from index import InvalidInput, NotFound
            from index.errors import StoreConflict
            from linking.linker import LinkingError

            # A document the store or the linker refuses is reported; anything else (a database that
            # went away, a bug) stops the job, and running it again resumes.
            if (
                not isinstance(exc, InvalidInput | LinkingError | StoreConflict | NotFound)
                or not self.keep_going
            ):
                raise WriteFailed(prepared, exc, report.documents) from exc
            self._failed(prepared, str(exc))
            return
        finally:
            report.write_seconds += time.perf_counter() - started
        report.documents += 1
        report.replaced += result.replaced
        report.mentions += len(result.mentions)
        report.entities_created += len(result.created_entity_ids)
        if self.on_stored is not None:
            self.on_stored(result)

    def _stored(self, document: Any) -> bool:  # noqa: ANN401
        """Whether the store holds this id with this text (the authority; the model stage's set is a
        snapshot taken at the start)."""
        stored = stored_hash(self.linker.store, document.external_id)
        return stored is not None and content_key(document.external_id, stored) == _key(document)

    def _failed(self, prepared: Prepared, reason: str) -> None:
        self.report.failed.append(
            {"id": prepared.external_id or "", "where": prepared.where, "reason": reason}
        )


def _key(document: Any) -> bytes:  # noqa: ANN401
    from api.ingest_sources import document_key

    return document_key(document.external_id, document.text)


class WriteFailed(RuntimeError):
    """Storing a document failed in strict mode; carries it and how many were stored before it."""

    def __init__(self, prepared: Prepared, error: BaseException, stored_before: int) -> None:
        super().__init__(str(error))
        self.prepared, self.error, self.stored_before = prepared, error, stored_before


def stored_hash(store: Any, external_id: str) -> str | None:  # noqa: ANN401 - an index.Store
    """The content hash stored under an external id, or None (one indexed read)."""
    from sqlalchemy import select

    from index.schema import Document

    with store.engine.connect() as conn:
        return conn.execute(select(Document.content_hash).where(Document.external_id == external_id)).scalar()


def stored_keys(store: Any) -> frozenset[bytes]:  # noqa: ANN401 - an index.Store
    """Keys (``document_key``) of every stored document, for the model stage to skip them: one
    streamed scan of two columns (16 bytes a document kept: 160 MB for 10 M documents)."""
    from sqlalchemy import select

    from index.schema import Document

    keys = set()
    with store.engine.connect() as conn:
        rows = conn.execution_options(yield_per=10_000).execute(
            select(Document.external_id, Document.content_hash)
        )
        for external_id, content_hash in rows:
            keys.add(content_key(external_id, content_hash))
    return frozenset(keys)


def read_sources(sources: Iterable[Source], settings: Any) -> Iterator[tuple[Parsed, float]]:  # noqa: ANN401
    """Every document of local files, with its share of the time its file took to read and parse."""
    for source in sources:
        started = time.perf_counter()
        try:
            data = read_local(source)
        except OSError as exc:
            yield (
                Parsed(source.name, error=f"cannot read: {exc.strerror or exc}"),
                time.perf_counter() - started,
            )
            continue
        parsed = list(parse_file(source.name, data, settings))
        share = (time.perf_counter() - started) / max(1, len(parsed))
        for item in parsed:
            yield item, share


def run_local(
    items: Iterable[tuple[Parsed, float]], stage: ModelStage, batch_docs: int
) -> Iterator[Prepared]:
    """The in-process executor: the model stage over batches of ``batch_docs`` documents, in order."""
    batch: list[tuple[Parsed, float]] = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_docs:
            yield from stage([p for p, _ in batch], [s for _, s in batch])
            batch = []
    if batch:
        yield from stage([p for p, _ in batch], [s for _, s in batch])
