"""``Service``: the model, the store and the linker behind the API and the CLI — the one adapter.

This is the only ``api`` module that imports ``linking``: its API is still settling, so a change
there should cost one edit here. The service owns

* the NER model (loaded once) and a :class:`~api.batching.MicroBatcher` that batches every NER
  call — extract requests and documents to ingest alike;
* the store (SQLite + FAISS) and the :class:`linking.Linker` over it;
* one write lock. ``Store`` serializes its own transactions, but the linker keeps an in-memory
  entity cache that it updates after each write and reads while linking, and a batch of
  documents must link in order (later documents see entities the earlier ones created). So every
  linker call — ingest, link, merge, split, delete — holds the lock; plain store reads (get,
  search, similar) do not.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import numpy as np

from api import browsing
from api.batching import BatcherClosed, MicroBatcher
from api.errors import ServiceError
from api.settings import ServiceSettings
from index import (
    DocumentPublic,
    EntityHit,
    EntityPublic,
    MentionHit,
    NotFound,
    Store,
    StoreSettings,
    StoreStats,
)
from index.browse import DocumentSummary, MentionContext


@dataclass(frozen=True)
class MentionSpec:
    """A caller-given mention (the route's schema, decoupled from ``linking.MentionIn``)."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class DocumentSpec:
    """A validated document to ingest; ``mentions=None`` runs NER."""

    id: str | None
    text: str
    metadata: dict[str, Any]
    language: str | None = None
    mentions: list[MentionSpec] | None = None


@dataclass(frozen=True)
class Ingested:
    """What ingesting one document stored."""

    id: str
    replaced: bool
    document: DocumentPublic


@dataclass(frozen=True)
class LinkedSpan:
    """One mention of ``Service.link``: its entity (None = it would found a new one) and score."""

    start: int
    end: int
    text: str
    label: str
    score: float
    group: int
    entity: EntityPublic | None
    link_score: float | None
    label_group: str = ""


def nameable(text: str) -> bool:
    """Whether a span can name an entity: it holds a letter or digit (not just "—" or a zero-width space)."""
    from index import name_problem

    return name_problem(text) is None


def _doc_name(index: int, key: str) -> str:
    return f"documents[{index}] (id {key!r})"


def kb_item(index: int, external_id: str) -> str:
    """How an error names an entity of a knowledge-base import."""
    return f"entities[{index}] (external_id {external_id!r})"


@contextlib.contextmanager
def _document_errors(index: int, key: str) -> Iterator[None]:
    """Name the batch document at fault in errors raised while linking and storing it."""
    from index import InvalidInput
    from linking.linker import LinkingError

    try:
        yield
    except InvalidInput as exc:
        detail = {"document": index, "id": key, **exc.context}
        raise ServiceError(422, f"{_doc_name(index, key)}: {exc.message}", detail) from exc
    except LinkingError as exc:
        raise ServiceError(422, f"{_doc_name(index, key)}: {exc}", {"document": index, "id": key}) from exc


@contextlib.contextmanager
def _linking_errors() -> Iterator[None]:
    from linking.linker import LinkingError

    try:
        yield
    except LinkingError as exc:
        raise ServiceError(422, str(exc)) from exc


class Service:
    """Model + store + linker with the locking the HTTP service needs.

    Args:
        settings (ServiceSettings): Limits and batching parameters.
        model (ner.SpanEngine): The NER model (torch or ONNX Runtime backend).
        store (index.Store): The open store.
        embedder (linking.embedding.Embedder): Mention vectors (its ``dim`` is the store's).

    >>> service = Service.open(ServiceSettings(model="path/to/checkpoint", vectors="span"))  # doctest: +SKIP
    >>> service.similar(text="Angela Merkel", k=5)  # doctest: +SKIP
    """

    def __init__(self, settings: ServiceSettings, model: Any, store: Store, embedder: Any) -> None:
        from linking.linker import Linker, LinkingError
        from linking.settings import LinkSettings

        self.settings, self.model, self.store, self.embedder = settings, model, store, embedder
        with _linking_errors():
            try:
                link_settings = LinkSettings(**settings.link_settings)
            except TypeError as exc:
                raise LinkingError(f"link_settings: {exc}") from None
            self.linker = Linker(store, model, link_settings, embedder=embedder)
        self.write_lock = threading.Lock()
        self._known_labels: set[str] = set(model.labels) | set(store.labels())
        # Hooks for the metrics layer: NER texts per model call, documents stored per request.
        self.on_batch: Callable[[int], None] | None = None
        self.on_ingest: Callable[[int], None] | None = None
        self.batcher = MicroBatcher(
            start=self._start_extract,
            max_wait_s=settings.batch_wait_ms / 1000,
            max_texts=settings.batch_max_texts,
            step_units=settings.step_batches,
            on_batch=lambda n: self.on_batch(n) if self.on_batch else None,
        )

    @classmethod
    def open(cls, settings: ServiceSettings, *, owner: bool = True) -> Service:
        """Load the model, build the embedder and open (or create) the store.

        Raises:
            ner.NerError: The model cannot be loaded (e.g. no default model shipped yet).
            ValueError: Bad embedder settings.
            index.StoreError: The store cannot be opened, or holds vectors of another size.
        """
        import ner
        from linking.embedding import make_embedder

        model = ner.load(settings.model, device=settings.device, backend=settings.backend)
        embedder = make_embedder(settings.vectors, model)
        store = open_store(settings, embedder.dim, owner=owner)
        try:
            return cls(settings, model, store, embedder)
        except BaseException:
            store.close()
            raise

    def close(self, *, save: bool = True) -> None:
        """Finish queued NER calls, then save the FAISS files (unless ``save`` is false) and close the store.

        Read-only users (the `similar` CLI) pass ``save=False``: they must not overwrite the files
        of a server that owns the same store.
        """
        self.batcher.close()
        with self.write_lock:
            self.store.close(save=save)

    # -- NER --------------------------------------------------------------------------------------

    def _start_extract(self, texts: list[str], embeddings: bool) -> Any:
        """Plan the batcher's extract call (``ner.ExtractJob``); its worker runs it in bounded steps,
        so a long document does not hold up the requests that arrive while it runs."""
        return self.model.start_extract(texts, embeddings=embeddings, strip_spaces=True)

    def extract(
        self,
        texts: Sequence[str],
        *,
        labels: Sequence[str] | None = None,
        min_score: float = 0.0,
        embeddings: bool = False,
    ) -> list[list[Any]]:
        """NER through the micro-batcher, then the caller's filters.

        Filtering after decoding is exact for ``min_score`` (a low-scoring span never blocks a
        higher one in greedy decoding); for ``labels`` it means "keep these types", not "decode
        only these types".
        """
        keep = self.filter_labels(labels) if labels else None
        try:
            results = self.batcher.submit(texts, embeddings=embeddings).result(
                self.settings.request_timeout_s
            )
        except FutureTimeout:
            raise ServiceError(503, "the model is busy; try again later") from None
        except BatcherClosed:
            raise ServiceError(503, "the service is shutting down") from None
        return [
            [e for e in entities if e.score >= min_score and (keep is None or e.label in keep)]
            for entities in results
        ]

    # -- documents --------------------------------------------------------------------------------

    def ingest(self, documents: Sequence[DocumentSpec], *, kb_only: bool = False) -> list[Ingested]:
        """Extract (where no mentions are given), link and store documents, in order: all or none.

        With ``kb_only`` mentions link to knowledge-base entities only; the rest are stored unlinked.

        Everything that can be checked without writing is checked first (duplicate ids and labels
        here, the rest by the request schemas), and NER runs before the first write. The writes
        of the whole batch are one store transaction (``Linker.transaction``): if any document
        fails, the store and the linker's cache are as they were, replaced documents included,
        and the error names the document.
        """
        from linking.linker import DocumentIn, MentionIn

        ids = [d.id or uuid.uuid4().hex for d in documents]
        seen: dict[str, int] = {}
        for i, key in enumerate(ids):
            if key in seen:
                raise ServiceError(
                    422,
                    f"document id {key!r} appears twice in the batch (positions {seen[key]} and {i})",
                    {"id": key},
                )
            seen[key] = i
        for i, d in enumerate(documents):
            if d.mentions is not None:
                self.check_labels([m.label for m in d.mentions], allow_new=True, where=_doc_name(i, ids[i]))
        need = [i for i, d in enumerate(documents) if d.mentions is None]
        found = self.extract([documents[i].text for i in need]) if need else []
        mentions: dict[int, list[Any]] = {
            i: [MentionIn(e.start, e.end, e.label, float(e.score)) for e in entities if nameable(e.text)]
            for i, entities in zip(need, found)
        }
        for i, d in enumerate(documents):
            if d.mentions is not None:
                mentions[i] = [MentionIn(m.start, m.end, m.label) for m in d.mentions]
        out: list[Ingested] = []
        with self.write_lock, self.linker.transaction():
            for i, (key, d) in enumerate(zip(ids, documents)):
                doc = DocumentIn(key, d.text, mentions[i], language=d.language, metadata=d.metadata)
                with _document_errors(i, key):
                    result = self.linker.ingest_one(doc, kb_only=kb_only)
                    stored = self.store.get_document(result.document_id)
                out.append(Ingested(key, result.replaced, stored))
        self._known_labels.update(m.label for d in out for m in d.document.mentions)
        if self.on_ingest is not None:
            self.on_ingest(len(out))
        return out

    @property
    def label_groups(self) -> dict[str, str]:
        """The model's label hierarchy, fine label -> group (`ner.labels`); empty for flat label sets."""
        return self.linker.label_groups

    def group_of(self, label: str) -> str:
        """A label's group (the label itself outside a hierarchy)."""
        return self.linker.group_of(label)

    def filter_labels(self, labels: Sequence[str]) -> set[str]:
        """The model's labels an extract filter keeps: a group ("PER") stands for all its fine labels.

        Raises:
            ServiceError: 422 for a name that is neither a label nor a group of the model.
        """
        from ner.labels import expand, groups

        allowed = [*self.model.labels, *(g for g in groups(self.label_groups) if g not in self.model.labels)]
        unknown = sorted(set(labels) - set(allowed))
        if unknown:
            hierarchy = f" (groups: {groups(self.label_groups)})" if self.label_groups else ""
            raise ServiceError(
                422,
                f"unknown labels {unknown}; this model predicts {list(self.model.labels)}{hierarchy}",
                {"allowed": allowed},
            )
        return expand(self.label_groups, labels)

    def _stored_labels(self, labels: Sequence[str] | None) -> Sequence[str] | None:
        """A filter on stored types with each group name widened to its fine labels."""
        from ner.labels import expand

        if not labels or not self.label_groups:
            return labels
        return sorted(set(labels) | expand(self.label_groups, labels))

    def check_labels(self, labels: Sequence[str], *, allow_new: bool, where: str) -> None:
        """Refuse labels that differ from a known one only by case ("per" for "PER"), and, unless
        ``allow_new``, labels that are neither the model's nor in the store.

        Given mentions may bring new types (gold annotations such as BSNLP's EVT or PRO); a split
        or a filter may not invent one. Known = the model's labels and those stored so far.
        """
        known = self._known_labels
        if self.store.shared and not set(labels) <= known:  # another process may have stored it since
            known = self._known_labels = known | set(self.store.labels())
        by_fold = {label.casefold(): label for label in sorted(known)}
        for label in labels:
            if label in known:
                continue
            match = by_fold.get(label.casefold())
            if match is not None:
                raise ServiceError(
                    422, f"{where}: unknown label {label!r}; did you mean {match!r}?", {"label": label}
                )
            if not allow_new:
                raise ServiceError(
                    422,
                    f"{where}: unknown label {label!r}; known labels are {sorted(known)}",
                    {"label": label, "allowed": sorted(known)},
                )

    def get_document(self, external_id: str) -> DocumentPublic:
        """The stored document. Raises ``index.NotFound``."""
        return self.store.get_document(external_id=external_id)

    def _delete_locked(self, external_id: str) -> list[int]:
        # The linker deletes, refreshes its cache and renames the entities whose name came from it.
        return self.linker.delete_document(external_id)

    def delete_document(self, external_id: str) -> list[int]:
        """Delete a document; returns the entities removed with it. Raises ``index.NotFound``."""
        with self.write_lock:
            return self._delete_locked(external_id)

    # -- linking ----------------------------------------------------------------------------------

    def link(
        self, text: str, mentions: Sequence[MentionSpec] | None = None, *, kb_only: bool = False
    ) -> list[LinkedSpan]:
        """Link a text's mentions (given, or found by NER) to stored entities (knowledge-base entities
        only with ``kb_only``); stores nothing."""
        from linking.linker import MentionIn

        if mentions is None:
            given = [MentionIn(e.start, e.end, e.label, float(e.score)) for e in self.extract([text])[0]]
        else:
            given = [MentionIn(m.start, m.end, m.label) for m in mentions]
        with self.write_lock, _linking_errors():
            result = self.linker.link(text, given, kb_only=kb_only)
        entities = self._entities({m.entity_id for m in result.mentions if m.entity_id is not None})
        return [
            LinkedSpan(
                m.start,
                m.end,
                m.text,
                m.label,
                m.score,
                m.group,
                entities.get(m.entity_id) if m.entity_id is not None else None,
                m.link_score if m.entity_id is not None else None,
                self.group_of(m.label),
            )
            for m in result.mentions
        ]

    def _entities(self, ids: set[int]) -> dict[int, EntityPublic]:
        out = {}
        for entity_id in ids:
            with contextlib.suppress(NotFound):
                out[entity_id] = self.store.get_entity(entity_id)
        return out

    # -- entities ---------------------------------------------------------------------------------

    def get_entity(self, entity_id: int) -> EntityPublic:
        """The entity. Raises ``index.NotFound``."""
        return self.store.get_entity(entity_id)

    def entity_mentions(self, entity: EntityPublic, limit: int = 10) -> list[MentionHit]:
        """Up to ``limit`` mentions of the entity (see :func:`entity_mentions`)."""
        return entity_mentions(self.store, entity, limit)

    def search_entities(
        self,
        query: str,
        *,
        labels: Sequence[str] | None,
        limit: int,
        offset: int = 0,
        after: tuple[int, int] | None = None,
    ) -> tuple[list[EntityPublic], int]:
        """A page of entities whose name or an alias starts with ``query`` (normalized), most mentioned
        first, and how many match over all pages; ``after`` is the previous page's last
        ``(mention_count, id)``."""
        labels = self._stored_labels(labels)
        return self.store.search_page(query, labels=labels, limit=limit, offset=offset, after=after)

    def similar(
        self,
        *,
        text: str | None = None,
        span: tuple[int, int] | None = None,
        entity_id: int | None = None,
        vector: Sequence[float] | None = None,
        k: int = 10,
        labels: Sequence[str] | None = None,
    ) -> list[EntityHit]:
        """Entities nearest a text (a name, or a span of it in context), an entity or a vector."""
        labels = self._stored_labels(labels)
        if k > self.settings.max_k:
            raise ServiceError(
                422, f"k must be at most {self.settings.max_k}, got {k}", {"max_k": self.settings.max_k}
            )
        if text is not None:
            start, end = span if span is not None else _trimmed(text)
            query = self.embedder.embed(text, [(start, end)])
            if not np.any(query):
                raise ServiceError(422, "the text gives no vector (no token inside the span)")
            return self.store.similar_entities(query[0], k=k, labels=labels)
        if entity_id is not None:
            self.store.get_entity(entity_id)  # 404 before "has no vector"
            return self.store.similar_entities(entity_id=entity_id, k=k, labels=labels)
        if vector is not None and len(vector) != self.store.dim:
            raise ServiceError(
                422, f"vector has {len(vector)} values; this store holds {self.store.dim}-d vectors"
            )
        query = np.asarray(vector, dtype=np.float32)
        if not np.all(np.isfinite(query)) or not np.any(query):
            raise ServiceError(422, "vector must be finite and not all zeros")
        return self.store.similar_entities(query, k=k, labels=labels)

    def merge(self, target_id: int, other_id: int) -> EntityPublic:
        """Merge ``other_id`` into ``target_id``; returns the merged entity."""
        if target_id == other_id:
            raise ServiceError(422, f"cannot merge entity {target_id} into itself")
        from index import InvalidInput

        with self.write_lock, _linking_errors():
            try:
                return self.linker.merge(target_id, other_id)
            except InvalidInput as exc:
                if "source_external_id" not in exc.context:
                    raise
                # Two knowledge-base entries: a well-formed request the entities' state refuses.
                raise ServiceError(409, exc.message, exc.context) from exc

    def consolidate(self) -> dict[int, int]:
        """Merge the entities that are one (``Linker.consolidate``); merged-away id -> surviving id."""
        with self.write_lock, _linking_errors():
            return self.linker.consolidate()

    def split(
        self, entity_id: int, mention_ids: Sequence[int], *, name: str | None, label: str | None
    ) -> EntityPublic:
        """Move mentions of ``entity_id`` to a new entity; returns the new entity.

        The new entity is named after the first moved mention unless ``name`` is given. Unknown
        mentions give ``NotFound`` (404), mentions of other entities ``InvalidInput`` (422), both
        from the store, which checks them inside the transaction.
        """
        if label is not None:
            self.check_labels([label], allow_new=False, where="label")
        with self.write_lock, _linking_errors():
            entity = self.store.get_entity(entity_id)
            if name is None:
                name = self._mention_text(entity, mention_ids[0]) or entity.name
            return self.linker.split(entity_id, list(dict.fromkeys(mention_ids)), name=name, label=label)

    def _mention_text(self, entity: EntityPublic, mention_id: int) -> str | None:
        for hit in self.entity_mentions(entity, limit=entity.mention_count):
            if hit.mention.id == mention_id:
                return hit.mention.text
        return None

    # -- knowledge base (issue 18) ------------------------------------------------------------------

    def import_entities(self, items: Sequence[Any]) -> list[tuple[EntityPublic, bool]]:
        """Create or update knowledge-base entities (``index.KnownEntity``) by external id: all or none.

        Checked before anything is written: an external id twice in the batch, and labels (the
        model's or already stored ones; a KB type the model never predicts could only ever link to
        given mentions). Then one transaction (``Linker.import_entities``); an error names the
        entity at fault as ``entities[i] (external_id 'x')``.
        """
        from index import InvalidInput

        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            where = kb_item(i, item.external_id)
            if item.external_id in seen:
                raise ServiceError(
                    422,
                    f"{where}: external_id also names entities[{seen[item.external_id]}] of this batch",
                    {"entity": i, "external_id": item.external_id},
                )
            seen[item.external_id] = i
            self.check_labels([item.label], allow_new=False, where=where)
        with self.write_lock, self.linker.transaction():
            try:
                return self.linker.import_entities(list(items))
            except InvalidInput as exc:  # the store's message names the entity
                raise ServiceError(422, exc.message, exc.context) from exc

    def entity_by_external_id(self, external_id: str) -> EntityPublic | None:
        """The knowledge-base entity with this external id, or None."""
        try:
            return self.store.entity_by_external_id(external_id)
        except NotFound:
            return None

    # -- introspection ----------------------------------------------------------------------------

    def stats(self) -> StoreStats:
        """Counts and FAISS configuration of the store."""
        return self.store.stats()

    # -- browsing and corrections (the web page, issue 17) ------------------------------------------

    def list_documents(
        self, *, limit: int, offset: int = 0, source: str | None = None, entity_id: int | None = None
    ) -> tuple[list[DocumentSummary], int]:
        """A page of documents, newest first (no full texts), and how many match over all pages."""
        return self.store.list_documents(limit=limit, offset=offset, source=source, entity_id=entity_id)

    def list_entities(
        self,
        *,
        sort: str,
        labels: Sequence[str] | None,
        limit: int,
        offset: int = 0,
        after: tuple[int, int] | None = None,
    ) -> tuple[list[EntityPublic], int]:
        """A page of all entities in ``sort`` order and their number."""
        labels = self._stored_labels(labels)
        return self.store.entities_page(sort=sort, labels=labels, limit=limit, offset=offset, after=after)

    def find_entities(
        self,
        query: str,
        *,
        labels: Sequence[str] | None,
        limit: int,
        offset: int = 0,
        after: tuple[int, int] | None = None,
    ) -> tuple[list[EntityPublic], int]:
        """Entities with a name or alias whose words start with ``query``, ignoring case, accents and
        script (``browsing.folded_matches``), most mentioned first, and how many match.

        The linker keeps every entity's name and aliases in memory (it links against them, and on a
        shared store catches up with other processes' writes first), so the search folds those instead
        of a column the store does not have; the page itself is read from the store. ``after`` is the
        previous page's last ``(mention_count, id)``.
        """
        from linking.names import normalize_name

        if self.store.shared:  # other processes may have written: catch the cache up first
            with self.write_lock:
                self.linker.sync()
        views = list(self.linker.table.entities.values())  # a snapshot: writers replace, not mutate, the dict
        rows = ((v.id, v.label, v.mention_count, [v.name, *v.aliases]) for v in views)
        found = browsing.folded_matches(query, rows, normalize_name, self._stored_labels(labels))
        total = len(found)
        if after is not None:
            found = [(c, i) for c, i in found if (-c, i) > (-after[0], after[1])]
        wanted = [entity_id for _, entity_id in found[offset : offset + limit]]
        rows = self.store.get_entities(wanted)  # one read; an entity removed meanwhile is left out
        return [rows[entity_id] for entity_id in wanted if entity_id in rows], total

    def entity_mentions_page(
        self, entity_id: int, *, limit: int, offset: int = 0, context: int = 160
    ) -> tuple[list[MentionContext], int]:
        """A page of an entity's mentions, newest first, each with its sentence around it."""
        page, total = self.store.entity_mentions(entity_id, limit=limit, offset=offset, context=context)
        trimmed = [
            MentionContext(c.mention, c.document_external_id, *browsing.sentence_context(c.before, c.after))
            for c in page
        ]
        return trimmed, total

    def update_entity(self, entity_id: int, *, name: str | None, label: str | None) -> EntityPublic:
        """Rename an entity and/or change its type; the old name stays findable as an alias."""
        from index import EntityCreate

        if label is not None:
            self.check_labels([label], allow_new=False, where="label")
        with self.write_lock:
            entity = self.store.get_entity(entity_id)
            updated = self.store.upsert_entity(
                EntityCreate(name if name is not None else entity.name, label or entity.label),
                entity_id=entity_id,
            )
            # The linker has no public "refresh one entity"; its refresh re-reads the store.
            self.linker._refresh_all([entity_id])
        return updated

    def delete_entity(self, entity_id: int) -> int:
        """Delete an entity with its mentions (the documents stay); returns how many mentions went."""
        with self.write_lock:
            removed = self.store.delete_entity(entity_id)
            self.linker._refresh_all([entity_id])  # the refresh finds it gone and drops it from the cache
        return removed

    def entity_names(self, ids: set[int]) -> dict[int, str]:
        """The names of these entities (those that still exist), for labelling highlighted mentions."""
        return {entity_id: entity.name for entity_id, entity in self.store.get_entities(sorted(ids)).items()}


def open_store(settings: ServiceSettings, dim: int | None = None, *, owner: bool = True) -> Store:
    """Open (or, given ``dim``, create) the store the settings name; FAISS files go in ``data_dir``.

    ``owner=False`` opens an embedded store without its owner lock, for commands that only read
    (a running service owns it); PostgreSQL stores have no owner.
    """
    if dim is None and settings.db_url is None and not (settings.data_dir / "spanlink.db").exists():
        raise ServiceError(
            404, f"no store in {settings.data_dir} (ingest documents first, or pass --data-dir)"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    vector_dir = settings.data_dir if settings.db_url else None
    tuned = {
        name: getattr(settings, name)
        for name in ("ef_search", "hnsw_m", "ef_construction")
        if getattr(settings, name)
    }
    store_settings = StoreSettings(**tuned) if tuned else None
    return Store.open(
        settings.store_target(),
        dim=dim,
        factory=settings.factory,
        vector_dir=vector_dir,
        owner=owner,
        settings=store_settings,
    )


def entity_mentions(store: Store, entity: EntityPublic, limit: int = 10) -> list[MentionHit]:
    """Up to ``limit`` mentions of an entity, nearest its centroid first.

    The store has no "mentions of an entity" listing yet, so this searches the mention index
    around the entity's centroid and keeps the entity's own mentions.
    """
    if entity.mention_count == 0:
        return []
    k = min(max(4 * limit, entity.mention_count + limit), 10_000)
    try:
        hits = store.similar_mentions(entity_id=entity.id, k=k)
    except (NotFound, ValueError):  # gone meanwhile, or no centroid (InvalidInput is a ValueError)
        return []
    return [hit for hit in hits if hit.mention.entity_id == entity.id][:limit]


def _trimmed(text: str) -> tuple[int, int]:
    start = len(text) - len(text.lstrip())
    return start, len(text.rstrip())
