"""``Linker``: text -> mentions -> in-document groups -> entities, stored one document per transaction.

The store is the source of truth for entities (centroids, aliases and counts are updated by
``Store.add_document``, ``merge_entities`` and ``split_entity``). The linker keeps a read cache of
entity names, aliases and centroids keyed by alias keys (``linking.names.name_keys``) so that
candidates are found without a database scan; it refreshes the entities each write touches. On the
embedded store it is the only writer (call ``reload()`` after writes made elsewhere); on a shared
(PostgreSQL) store it syncs from the store's entity change log before every decision and decides
under the store-wide entity lock, so processes linking at once never found the same entity twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from index import (
    DocumentCreate,
    EntityCreate,
    EntityPublic,
    KnownEntity,
    MentionCreate,
    MentionPublic,
    NewEntity,
    NotFound,
    Store,
    normalize_surface,
)
from linking.consolidation import plan_merges, resolve
from linking.core import Decision, EntityView, GroupView, MemoryEntities, decide, group_label, mean_vector
from linking.coref import MentionSpan, group_mentions
from linking.embedding import Embedder, SpanEmbedder
from linking.knowledge import knowledge_vectors
from linking.naming import display_form, representative_alias
from linking.settings import LinkSettings

logger = logging.getLogger(__name__)


class LinkingError(ValueError):
    """Bad input to the linker (no model for NER, mentions out of range, ...)."""


@dataclass(frozen=True)
class MentionIn:
    """A caller-given mention: character span and type (NER is skipped for the document)."""

    start: int
    end: int
    label: str
    score: float = 1.0


@dataclass(frozen=True)
class DocumentIn:
    """A document to ingest.

    Args:
        external_id (str): The caller's key; ingesting it again replaces the earlier version.
        text (str): The text.
        mentions (list[MentionIn] | None): Known mentions; None runs the NER model. Defaults to None.
        language (str | None): Language code if known. Defaults to None.
        metadata (dict[str, Any]): JSON-serializable metadata. Defaults to empty.
    """

    external_id: str
    text: str
    mentions: list[MentionIn] | None = None
    language: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LinkedMention:
    """A mention with its in-document group and the entity it links to (None = a new entity)."""

    start: int
    end: int
    text: str
    label: str
    score: float
    group: int
    entity_id: int | None
    link_score: float


@dataclass(frozen=True)
class LinkResult:
    """``Linker.link`` output: the mentions and, per group, the decision with its ranked candidates."""

    mentions: list[LinkedMention]
    decisions: list[Decision]


@dataclass(frozen=True)
class IngestResult:
    """What ingesting one document did.

    Attributes:
        external_id (str): The document's key.
        document_id (int): Its database id.
        replaced (bool): An earlier version was replaced.
        mentions (list[index.MentionPublic]): The stored mentions (ids, spans, entity ids) in text order.
        linked_entity_ids (list[int]): Existing entities that got mentions.
        created_entity_ids (list[int]): Entities created (NIL clusters).
        removed_entity_ids (list[int]): Entities removed because the replaced version held their
            last mentions.
    """

    external_id: str
    document_id: int
    replaced: bool
    mentions: list[MentionPublic]
    linked_entity_ids: list[int]
    created_entity_ids: list[int]
    removed_entity_ids: list[int]


def _view(entity: EntityPublic, vector: np.ndarray | None, label_group: str = "") -> EntityView:
    return EntityView(
        entity.id,
        entity.name,
        entity.label,
        [a.norm for a in entity.aliases],
        vector,
        entity.mention_count,
        alias_counts={a.norm: a.count for a in entity.aliases},
        external_id=entity.external_id,
        label_group=label_group,
    )


def canonical_form(forms: Sequence[str]) -> str:
    """The name a new entity gets: the most frequent form, longer forms first among equals."""
    counts: dict[str, int] = {}
    for form in forms:
        counts[form] = counts.get(form, 0) + 1
    return max(counts, key=lambda f: (len(f.split()), counts[f], len(f)))


class Linker:
    """Links mentions to the entities of a store, and ingests documents into it.

    Args:
        store (index.Store): The store; its ``dim`` must equal the embedder's.
        model (ner.SpanEngine | None): NER model for documents without given mentions; also the
            default embedder (span vectors). Defaults to None (mentions must then be given).
        settings (LinkSettings | None): Thresholds and weights. Defaults to ``LinkSettings()``.
        embedder (Embedder | None): Mention vectors. Defaults to ``SpanEmbedder(model)``.
        label_groups (Mapping[str, str] | None): Label hierarchy (fine label -> group, `ner.labels`):
            types agree when their groups do, so an "Artist" and a "Politician" mention of one name
            are one person, while a "PER" and a "GRP" mention disagree as a PER and an ORG do with
            flat labels. Defaults to the model's (``model.config.label_groups``; none for flat label
            sets, where each label is its own group).

    Raises:
        LinkingError: Neither a model nor an embedder, or vector sizes that differ.

    >>> linker = Linker(store, model)  # doctest: +SKIP
    >>> results = linker.ingest([DocumentIn("d1", "Nigel Farage ...")])  # doctest: +SKIP
    """

    def __init__(
        self,
        store: Store,
        model: Any = None,
        settings: LinkSettings | None = None,
        embedder: Embedder | None = None,
        label_groups: Mapping[str, str] | None = None,
    ) -> None:
        if embedder is None:
            if model is None:
                raise LinkingError("Linker needs a NER model or an embedder, e.g. Linker(store, ner.load())")
            embedder = SpanEmbedder(model)
        if embedder.dim != store.dim:
            raise LinkingError(
                f"the embedder gives {embedder.dim}-d vectors but the store holds {store.dim}-d"
            )
        self.store, self.model, self.embedder = store, model, embedder
        if label_groups is None:
            label_groups = getattr(getattr(model, "config", None), "label_groups", None)
        self.label_groups: dict[str, str] = dict(label_groups or {})
        self.settings = settings or LinkSettings()
        self.table = MemoryEntities(store.dim)
        self._touched: set[int] | None = None  # entity ids cached during an open transaction
        self._cased: dict[str, str] = {}  # normalized surface -> a surface as written (display names)
        self.reload()

    # -- entity cache --------------------------------------------------------------------------

    def reload(self) -> None:
        """Rebuild the entity cache from the store (after writes that bypassed this linker)."""
        self._generation = self.store.entity_generation()  # first: a change while paging is seen later
        self.table = MemoryEntities(self.store.dim)
        after = 0
        while page := self.store.list_entities(after_id=after, limit=1000):
            for entity, vector in page:
                self.table.put(_view(entity, vector, self.group_of(entity.label)))
                self._cased.setdefault(normalize_surface(entity.name), entity.name)
            after = page[-1][0].id

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything the linker writes inside the block is one store transaction (all or nothing).

        On failure the store rolls back, and so does the entity cache: every entity the block
        refreshed or dropped is read again from the store as it now is.

        >>> with linker.transaction():  # doctest: +SKIP
        ...     for document in batch:
        ...         linker.ingest_one(document)
        """
        if self._touched is not None:  # nested: the outer block decides
            yield
            return
        self._touched = set()
        generation = self._generation
        try:
            with self.store.transaction():
                yield
        except BaseException:
            touched, self._touched = self._touched, None
            self._generation = generation  # what the block synced from its own writes is gone
            self._refresh_all(touched)
            raise
        finally:
            self._touched = None

    def _forget(self, entity_id: int) -> None:
        if self._touched is not None:
            self._touched.add(entity_id)
        self.table.remove(entity_id)

    def _refresh(self, entity_id: int) -> None:
        if self._touched is not None:
            self._touched.add(entity_id)
        try:
            entity = self.store.get_entity(entity_id)
        except NotFound:
            self._forget(entity_id)
            raise
        self.table.put(_view(entity, self.store.entity_vector(entity_id), self.group_of(entity.label)))

    def _refresh_all(self, entity_ids: Iterable[int]) -> None:
        """Read the entities again from the store (two queries for all); drop those that are gone."""
        ids = set(entity_ids)
        if self._touched is not None:
            self._touched.update(ids)
        found = self.store.entities_with_vectors(ids)
        for entity_id in ids:
            if entity_id in found:
                entity, vector = found[entity_id]
                self.table.put(_view(entity, vector, self.group_of(entity.label)))
            else:
                self.table.remove(entity_id)

    def sync(self) -> None:
        """Reload the entities that other processes created, changed or removed since the cache last
        looked (shared stores; a no-op on the embedded store, whose only writer is this process).

        Runs before every linking decision, so no decision acts on stale entities: the store logs
        every entity write under a generation number (``Store.entity_changes``). A cache older
        than what the log still holds (it is pruned to its last generations) reloads every entity.
        """
        if not self.store.shared:
            return
        generation, changed = self.store.entity_changes(self._generation)
        if changed is None:  # the log was pruned past this cache: start again from the store
            self.reload()
        elif generation != self._generation:
            self._refresh_all(changed)
            self._generation = generation

    # -- linking -------------------------------------------------------------------------------

    def _mentions(
        self, text: str, mentions: Sequence[MentionIn] | None
    ) -> tuple[list[MentionIn], np.ndarray]:
        if mentions is None:
            if self.model is None:
                raise LinkingError(
                    "no mentions given and no NER model: pass mentions or Linker(store, model)"
                )
            found = self.model.extract(text, strip_spaces=True)
            mentions = [MentionIn(e.start, e.end, e.label, float(e.score)) for e in found]
        for m in mentions:
            if not 0 <= m.start < m.end <= len(text):
                raise LinkingError(
                    f"mention ({m.start}, {m.end}) is outside the text of length {len(text)} or empty"
                )
        mentions = sorted(mentions, key=lambda m: (m.start, m.end))
        vectors = self.embedder.embed(text, [(m.start, m.end) for m in mentions])
        return list(mentions), vectors

    def group_of(self, label: str) -> str:
        """A label's group in the label hierarchy (the label itself when it has none)."""
        return self.label_groups.get(label, label)

    @staticmethod
    def _group_type(spans: Sequence[MentionSpan]) -> tuple[str, str]:
        """A mention group's label and label group: the most frequent group, and the most frequent
        label within it (with flat label sets simply the most frequent label)."""
        kind = group_label([s.kind for s in spans])
        return group_label([s.label for s in spans if s.kind == kind]), kind

    def _decide(
        self,
        text: str,
        mentions: list[MentionIn],
        vectors: np.ndarray,
        *,
        lock: bool = False,
        kb_only: bool = False,
    ) -> tuple[list[list[int]], list[GroupView], list[Decision]]:
        if lock:  # shared store: no other process changes entities until this transaction commits
            self.store.lock_entities()
        self.sync()
        spans = [
            MentionSpan(m.start, m.end, m.label, text[m.start : m.end], self.group_of(m.label))
            for m in mentions
        ]
        groups = group_mentions(text, spans, self.settings)
        views, decisions = [], []
        for members in groups:
            label, label_group = self._group_type([spans[i] for i in members])
            view = GroupView(
                [" ".join(spans[i].text.split()) for i in members],
                label,
                mean_vector(vectors[members]) if len(vectors) else None,
                label_group,
            )
            vector_ids = None
            if view.vector is not None and self.settings.vector_candidates:
                vector_ids = self.store.nearest_entity_ids(view.vector, self.settings.vector_candidates)
            views.append(view)
            candidates = self.table.candidates(view, self.settings, vector_ids)
            if kb_only:  # knowledge-base entities only; the rest go unlinked (issue 18)
                candidates = [c for c in candidates if c.external_id is not None]
            decisions.append(decide(view, candidates, self.settings))
        return groups, views, decisions

    def link(
        self, text: str, mentions: Sequence[MentionIn] | None = None, *, kb_only: bool = False
    ) -> LinkResult:
        """Link the mentions of a text to known entities without storing anything.

        Args:
            text (str): The text.
            mentions (Sequence[MentionIn] | None): Known mentions; None runs the NER model.
            kb_only (bool): Only knowledge-base entities (with an external id) are candidates.
                Defaults to False.

        Returns:
            LinkResult: Each mention with its group and entity (None where it would found a new one).
        """
        found, vectors = self._mentions(text, mentions)
        groups, _, decisions = self._decide(text, found, vectors, kb_only=kb_only)
        out: list[LinkedMention | None] = [None] * len(found)
        for g, (members, decision) in enumerate(zip(groups, decisions)):
            for i in members:
                m = found[i]
                out[i] = LinkedMention(
                    m.start,
                    m.end,
                    text[m.start : m.end],
                    m.label,
                    m.score,
                    g,
                    decision.entity_id,
                    decision.score,
                )
        return LinkResult([m for m in out if m is not None], decisions)

    def ingest_one(self, document: DocumentIn, *, kb_only: bool = False) -> IngestResult:
        """Link and store one document in one transaction (see ``ingest``).

        With ``kb_only`` only knowledge-base entities are candidates, and a group that links to
        none is stored unlinked (``entity_id`` None): nothing new is founded.
        """
        if self.store.shared and self._touched is None:  # the entity lock lasts until the commit
            with self.transaction():
                return self.ingest_one(document, kb_only=kb_only)
        found, vectors = self._mentions(document.text, document.mentions)
        groups, views, decisions = self._decide(document.text, found, vectors, lock=True, kb_only=kb_only)
        try:
            previous = self.store.get_document(external_id=document.external_id)
            touched = {m.entity_id for m in previous.mentions if m.entity_id is not None}
        except NotFound:
            touched = set()
        creates: list[MentionCreate | None] = [None] * len(found)
        for g, (members, view, decision) in enumerate(zip(groups, views, decisions)):
            target: dict[str, Any] = {}  # kb_only and no KB entity fits: stored unlinked
            if decision.entity_id is not None:
                target = {"entity_id": decision.entity_id}
            elif not kb_only:
                target = {"new_entity": NewEntity(canonical_form(view.forms), view.label, key=str(g))}
            for i in members:
                m = found[i]
                creates[i] = MentionCreate(m.start, m.end, m.label, vectors[i], score=m.score, **target)
        result = self.store.add_document(
            DocumentCreate(
                document.external_id,
                document.text,
                [c for c in creates if c is not None],
                language=document.language,
                metadata=dict(document.metadata),
            )
        )
        for view in views:
            for form in view.forms:
                self._cased[normalize_surface(form)] = form
        mention_entities = [m.entity_id for m in result.document.mentions]
        for entity_id in result.removed_entity_ids:
            self._forget(entity_id)
        changed = (touched | set(mention_entities)) - set(result.removed_entity_ids) - {None}
        self._refresh_all(changed)
        self._rename(changed)
        self._relabel(changed)
        linked = sorted({d.entity_id for d in decisions if d.entity_id is not None})
        return IngestResult(
            document.external_id,
            result.document.id,
            result.replaced,
            list(result.document.mentions),
            linked,
            list(result.created_entity_ids),
            list(result.removed_entity_ids),
        )

    def _relabel(self, entity_ids: Iterable[int]) -> None:
        """With a label hierarchy, type each entity by its mentions: the most frequent fine label of
        its group (the group stays; a tie keeps the current label). Knowledge-base entities keep
        theirs. Flat label sets: nothing to do (an entity keeps the type it was founded with)."""
        if not self.label_groups:
            return
        ids = [
            entity_id
            for entity_id in sorted(set(entity_ids))
            if entity_id in self.table.entities and self.table.entities[entity_id].external_id is None
        ]
        counts = self.store.mention_labels(ids) if ids else {}
        for entity_id in ids:
            cached = self.table.entities[entity_id]
            within = {
                label: n
                for label, n in counts.get(entity_id, {}).items()
                if self.group_of(label) == cached.label_group
            }
            if not within or within.get(cached.label, 0) == max(within.values()):
                continue
            label = min(within, key=lambda name: (-within[name], name))
            self.store.upsert_entity(EntityCreate(cached.name, label), entity_id=entity_id)
            self._refresh(entity_id)

    def _rename(self, entity_ids: Iterable[int]) -> None:
        """Give each entity its most representative name (``linking.naming``) after its mentions changed."""
        if not self.settings.rename_entities:
            return
        for entity_id in sorted(set(entity_ids)):
            cached = self.table.entities.get(entity_id)
            if cached is None or cached.external_id is not None:  # the knowledge base names its own
                continue
            best = representative_alias(cached.alias_counts)
            if best is None or best == normalize_surface(cached.name):
                continue
            self.store.upsert_entity(
                EntityCreate(display_form(best, self._cased), cached.label), entity_id=entity_id
            )
            self._refresh(entity_id)

    def ingest(
        self,
        documents: Iterable[DocumentIn],
        *,
        progress: bool = False,
        batch_size: int = 16,
        kb_only: bool = False,
    ) -> list[IngestResult]:
        """Ingest documents: NER (batched over documents without mentions), linking, one transaction each.

        Args:
            documents (Iterable[DocumentIn]): The documents, in order; later ones link to earlier ones.
            progress (bool): Show a tqdm bar over documents. Defaults to False.
            batch_size (int): Documents per NER batch. Defaults to 16.
            kb_only (bool): Link to knowledge-base entities only and found nothing (``ingest_one``).
                Defaults to False.

        Returns:
            list[IngestResult]: One per document, in order.
        """
        from tqdm.auto import tqdm

        docs = list(documents)
        results: list[IngestResult] = []
        bar = tqdm(total=len(docs), desc="ingest", unit="doc", disable=not progress)
        for at in range(0, len(docs), batch_size):
            batch = docs[at : at + batch_size]
            need = [d for d in batch if d.mentions is None]
            if need:
                if self.model is None:
                    raise LinkingError("documents without mentions need a NER model: Linker(store, model)")
                found = self.model.extract([d.text for d in need], strip_spaces=True)
                filled = {
                    id(d): [MentionIn(e.start, e.end, e.label, float(e.score)) for e in ents]
                    for d, ents in zip(need, found)
                }
                batch = [
                    DocumentIn(d.external_id, d.text, filled[id(d)], d.language, d.metadata)
                    if id(d) in filled
                    else d
                    for d in batch
                ]
            for document in batch:
                results.append(self.ingest_one(document, kb_only=kb_only))
                bar.update(1)
        bar.close()
        return results

    # -- knowledge base (issue 18) ---------------------------------------------------------------

    def import_entities(self, items: Sequence[KnownEntity]) -> list[tuple[EntityPublic, bool]]:
        """Create or update knowledge-base entities by ``external_id`` in one store transaction.

        Items without a vector get one from the embedder (``linking.knowledge``: name, aliases and
        description), so they are candidates by vector as well as by name before any mention links
        to them. Re-importing an entity updates it in place; its mentions stay linked.

        Returns:
            list[tuple[EntityPublic, bool]]: Per item, the stored entity and whether it was created.

        Raises:
            index.InvalidInput: An item is invalid (named in the message); nothing is written.
        """
        if self.store.shared and self._touched is None:  # write under the entity lock
            with self.transaction():
                return self.import_entities(items)
        missing = [i for i, item in enumerate(items) if item.vector is None]
        vectors = knowledge_vectors(
            self.embedder, [(items[i].name, items[i].aliases, items[i].description) for i in missing]
        )
        filled = list(items)
        for i, vector in zip(missing, vectors, strict=True):
            filled[i] = dataclasses.replace(items[i], vector=vector)
        self.store.lock_entities()
        self.sync()
        results = self.store.import_entities(filled)
        for item in items:
            for form in [item.name, *item.aliases]:
                self._cased.setdefault(normalize_surface(form), " ".join(form.split()))
        self._refresh_all(entity.id for entity, _ in results)
        return results

    # -- curation ------------------------------------------------------------------------------

    def merge(self, target_id: int, source_id: int) -> EntityPublic:
        """Merge entity ``source_id`` into ``target_id`` (mentions, aliases and vectors follow)."""
        if target_id == source_id:
            raise LinkingError(f"cannot merge entity {target_id} into itself")
        self.store.merge_entities(target_id, source_id)
        self._forget(source_id)
        self._refresh_all([target_id])
        self._rename([target_id])
        self._relabel([target_id])
        return self.store.get_entity(target_id)

    def delete_document(self, external_id: str) -> list[int]:
        """Delete a stored document; the entities it touched lose its mentions and are renamed if their
        name came from it. Returns the ids of the entities removed because it held their last mentions.

        Raises:
            index.NotFound: No such document.
        """
        if self.store.shared and self._touched is None:  # rename under the entity lock, then commit
            with self.transaction():
                return self.delete_document(external_id)
        self.store.lock_entities()
        self.sync()
        document = self.store.get_document(external_id=external_id)
        touched = {m.entity_id for m in document.mentions if m.entity_id is not None}
        removed = self.store.delete_document(document.id)
        for entity_id in removed:
            self._forget(entity_id)
        self._refresh_all(touched - set(removed))
        self._rename(touched - set(removed))
        self._relabel(touched - set(removed))
        return removed

    def consolidate(self) -> dict[int, int]:
        """Merge the entities that are one (``linking.consolidation``); run it after bulk ingests.

        Returns:
            dict[int, int]: Each merged-away entity id and the id it now lives on.
        """
        if self.store.shared and self._touched is None:  # plan and merge under the entity lock
            with self.transaction():
                return self.consolidate()
        self.store.lock_entities()
        self.sync()
        plan = plan_merges(self.table, self.settings)
        done = []
        for step in plan:  # in order: each target still exists when its step comes
            source, target = self.table.entities.get(step.source), self.table.entities.get(step.target)
            if source is not None and target is not None and source.external_id and target.external_id:
                # Two knowledge-base entries are two entities by the caller's word (the store refuses).
                logger.info("kept KB entities %d and %d apart (%.3f)", step.source, step.target, step.score)
                continue
            self.merge(step.target, step.source)
            done.append(step)
            logger.info("merged entity %d into %d (score %.3f)", step.source, step.target, step.score)
        return resolve(done)

    def split(
        self, entity_id: int, mention_ids: Sequence[int], *, name: str | None = None, label: str | None = None
    ) -> EntityPublic:
        """Move ``mention_ids`` of ``entity_id`` to a new entity; returns the new entity.

        Args:
            entity_id (int): The entity to split.
            mention_ids (Sequence[int]): Its mentions that form the new entity.
            name (str | None): The new entity's name. Defaults to the first moved mention's text.
            label (str | None): Its type. Defaults to the old entity's.
        """
        if not mention_ids:
            raise LinkingError("split needs at least one mention id")
        old = self.store.get_entity(entity_id)
        if name is None:
            name = self._mention_text(entity_id, mention_ids[0])
        new = self.store.split_entity(entity_id, list(mention_ids), name=name, label=label or old.label)
        self._refresh_all([entity_id, new.id])
        self._rename([entity_id])  # the new entity keeps the name it was given
        return new

    def _mention_text(self, entity_id: int, mention_id: int) -> str:
        for hit in self.store.similar_mentions(entity_id=entity_id, k=10_000):
            if hit.mention.id == mention_id:
                return hit.mention.text
        raise LinkingError(f"mention {mention_id} is not a mention of entity {entity_id}; pass name=")
