"""The model-free linking core: score candidate entities for a mention group and decide.

Everything here works on names, labels and vectors only, so it is tested and tuned without a
model or a database. ``MemoryEntities`` is an in-memory entity table with the same candidate
logic as the store-backed one in ``linking.linker`` (alias-key blocking plus nearest centroids);
``link_embeddings`` runs the whole cross-document clustering over it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from linking.names import (
    form_similarity,
    name_keys,
    name_tokens,
    normalize_name,
    script_of,
    transliteration_comparable,
)
from linking.settings import LinkSettings

MAX_POSTING = 200  # alias keys shared by more entities than this are skipped when finding candidates


@dataclass
class GroupView:
    """One in-document mention group, as the linker sees it.

    Attributes:
        forms (list[str]): Surface forms of the group's mentions (repeats allowed).
        label (str): The group's type (the most frequent mention label).
        vector (np.ndarray | None): L2-normalized mean of the mention vectors.
        label_group (str): The label's group in a label hierarchy ("PER" for "Artist", `ner.labels`),
            which type agreement compares; defaults to the label itself (flat label sets).
    """

    forms: list[str]
    label: str
    vector: np.ndarray | None = None
    label_group: str = ""

    def __post_init__(self) -> None:
        self.label_group = self.label_group or self.label


@dataclass
class EntityView:
    """A candidate entity: canonical name, type (and its ``label_group``, as ``GroupView``'s), alias
    surfaces and normalized centroid."""

    id: int
    name: str
    label: str
    aliases: list[str]
    vector: np.ndarray | None = None
    mention_count: int = 0
    known: set[str] = field(default_factory=set, repr=False)  # normalize_name of name and aliases
    alias_counts: dict[str, int] = field(default_factory=dict, repr=False)  # mentions per alias, if kept
    scripts: dict[str, list[str]] | None = field(default=None, repr=False)  # forms by script (lazy)
    known_scripts: dict[str, set[str]] = field(default_factory=dict, repr=False)  # normalized -> scripts
    external_id: str | None = None  # set for knowledge-base entities (never renamed; kb_only keeps them)
    label_group: str = ""

    def __post_init__(self) -> None:
        self.label_group = self.label_group or self.label

    def forms_changed(self) -> None:
        """Drop the per-script caches after the name or aliases changed."""
        self.scripts, self.known_scripts = None, {}


@dataclass(frozen=True)
class CandidateScore:
    """Why a candidate scored what it did."""

    entity_id: int
    score: float
    name: float
    cosine: float
    same_type: bool
    shared_script: bool = True
    comparable: bool = True  # some group form and some alias are in two alphabets (or one script)


@dataclass(frozen=True)
class Decision:
    """The outcome for one group: the chosen entity (None = new entity) and the ranked candidates."""

    entity_id: int | None
    score: float
    candidates: tuple[CandidateScore, ...] = ()


def name_similarity(
    forms: Iterable[str], aliases: Iterable[str], partial: float = 0.8, known: set[str] | None = None
) -> float:
    """Best ``form_similarity`` between any group form and any alias, whatever their scripts.

    ``known`` (the aliases' ``normalize_name`` forms) short-cuts the common exact match, which
    matters for entities with hundreds of aliases. The linker scores with ``name_evidence``, which
    keeps matches within a script apart from transliterations across scripts.
    """
    forms = list(forms)
    if known is not None and any(normalize_name(form) in known for form in forms):
        return 1.0
    aliases = list(dict.fromkeys(aliases))
    best = 0.0
    for form in dict.fromkeys(forms):
        for alias in aliases:
            best = max(best, form_similarity(form, alias, partial))
            if best >= 1.0:
                return 1.0
    return best


@dataclass(frozen=True)
class NameEvidence:
    """Name similarity split by where it comes from.

    Attributes:
        same (float): Best similarity between a group form and an alias written in the same script.
        cross (float): Best similarity between forms of two different alphabets (Latin, Cyrillic,
            Greek), i.e. through transliteration; pairs of scripts whose transliteration means
            nothing (Han, Arabic, ... against Latin) contribute no name evidence at all.
        shared_script (bool): Some group form and some alias share a script.
    """

    same: float
    cross: float
    shared_script: bool
    comparable: bool = True


def name_evidence(
    forms: Iterable[str],
    entity: EntityView,
    partial: float = 0.8,
    person: bool = False,
    full_name_conflict: float = 0.0,
) -> NameEvidence:
    """``NameEvidence`` of a group's forms against an entity's name and aliases.

    With ``full_name_conflict`` > 0, full names decide over their parts: where the group and the
    entity both have a name of two or more words in a script and the best pair of those scores
    below it ("Джавед Масих" / "Ашик Масих"), a shorter form's match ("Масих" / "масих", or
    "Комісія" for "Венеціанська комісія" / "Європейська комісія") does not raise the evidence
    in that script above the full names' own similarity.
    """
    by_script = entity_scripts(entity)
    forms = list(dict.fromkeys(forms))
    form_scripts = {form: script_of(form) for form in forms}
    shared = bool(set(form_scripts.values()) & set(by_script))
    comparable = any(transliteration_comparable(a, b) for a in set(form_scripts.values()) for b in by_script)
    same_in: dict[str, float] = defaultdict(float)
    cross = 0.0
    for form, script in form_scripts.items():  # exact matches first (entities with many aliases)
        for alias_script in entity.known_scripts.get(normalize_name(form), ()):
            if alias_script == script:
                same_in[script] = 1.0
            elif transliteration_comparable(script, alias_script):
                cross = 1.0
    for form, script in form_scripts.items():
        for alias_script, aliases in by_script.items():
            if alias_script == script:
                if same_in[script] >= 1.0:
                    continue
                same_in[script] = max(
                    same_in[script], max(form_similarity(form, a, partial, person) for a in aliases)
                )
            elif transliteration_comparable(script, alias_script) and cross < 1.0:
                cross = max(cross, max(form_similarity(form, a, partial, person) for a in aliases))
    if full_name_conflict > 0:
        for script in same_in:
            full_forms = [f for f, s in form_scripts.items() if s == script and len(name_tokens(f)) > 1]
            full_aliases = [a for a in by_script.get(script, ()) if len(name_tokens(a)) > 1]
            if full_forms and full_aliases:
                full = max(form_similarity(f, a, partial, person) for f in full_forms for a in full_aliases)
                if full < full_name_conflict:
                    same_in[script] = min(same_in[script], full)
    return NameEvidence(max(same_in.values(), default=0.0), cross, shared, comparable)


def entity_scripts(entity: EntityView) -> dict[str, list[str]]:
    """The entity's name and aliases by script (cached on the view; ``known_scripts`` filled too)."""
    if entity.scripts is None:
        by_script: dict[str, list[str]] = defaultdict(list)
        known: dict[str, set[str]] = defaultdict(set)
        for form in dict.fromkeys([entity.name, *entity.aliases]):
            script = script_of(form)
            by_script[script].append(form)
            known[normalize_name(form)].add(script)
        entity.scripts, entity.known_scripts = dict(by_script), dict(known)
    return entity.scripts


def group_label(labels: Sequence[str]) -> str:
    """The most frequent label, ties broken by first occurrence."""
    counts: dict[str, int] = defaultdict(int)
    for label in labels:
        counts[label] += 1
    return max(counts, key=lambda label: (counts[label], -labels.index(label)))


def mean_vector(vectors: np.ndarray) -> np.ndarray | None:
    """L2-normalized mean of L2-normalized rows; None when there is nothing to average."""
    if vectors is None or len(vectors) == 0:
        return None
    rows = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    rows = rows[norms[:, 0] > 0] / norms[norms[:, 0] > 0]
    if len(rows) == 0:
        return None
    mean = rows.mean(0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else None


def score_candidate(group: GroupView, entity: EntityView, settings: LinkSettings) -> CandidateScore:
    """Combine name similarity, centroid cosine and type agreement into one link score.

    A name match through transliteration (another alphabet) counts only when the vectors agree
    (cosine >= ``cross_script_cosine``): transliterated strings collide by accident ("Élysée" /
    "eluosi" for 俄罗斯), and vectors are the only other witness the linker has.
    """
    cosine = 0.0
    if group.vector is not None and entity.vector is not None:
        cosine = float(np.dot(group.vector, entity.vector))
    # An inflected surname alone ("Macrona") for a full name is near the threshold; across
    # documents it counts as a surname only where the vectors agree, since several people share
    # a surname (``form_similarity(person=True)``; inside a document coreference always uses it).
    person = group.label_group == "PER" and (
        cosine >= settings.surname_cosine or settings.surname_cosine <= 0
    )
    evidence = name_evidence(
        group.forms, entity, settings.partial_for(group.label_group), person, settings.full_name_conflict
    )
    name = evidence.same
    vouched = cosine >= settings.cross_script_cosine or settings.cross_script_cosine <= 0
    if evidence.cross > name and vouched:
        name = evidence.cross
    same_type = group.label_group == entity.label_group  # an Artist and a Politician are both PER
    # A person's name is not translated: written in the same script, a name that differs
    # ("Анна Петрова" for "Ивана Петрова") contradicts a near-identical vector, which namesakes have.
    namesake = group.label_group == "PER" and evidence.shared_script
    if same_type and cosine >= settings.vector_only_cosine and not namesake:
        # Translations and cross-script acronyms ("ЕС" / "EU") share no letters; a near-identical
        # vector stands in for the name, but only between mentions of one type: a vector alone
        # is no evidence that an organisation is a person.
        name = max(name, cosine)
    return _scored(entity.id, name, cosine, same_type, settings, evidence.shared_script, evidence.comparable)


def _scored(
    entity_id: int,
    name: float,
    cosine: float,
    same_type: bool,
    settings: LinkSettings,
    shared: bool = True,
    comparable: bool = True,
) -> CandidateScore:
    score = settings.name_weight * name + settings.vector_weight * cosine + settings.type_weight * same_type
    if name < settings.min_name_similarity:
        score = -math.inf  # neither the name nor the vector vouches for this candidate
    return CandidateScore(entity_id, score, name, cosine, same_type, shared, comparable)


def _translation(
    group: GroupView, scores: list[CandidateScore], settings: LinkSettings
) -> list[CandidateScore]:
    """Let a clear nearest neighbour across scripts stand in for the name ("默克尔" / "Angela Merkel").

    A fallback, tried only when no candidate links on its name. When a group shares no script
    with a candidate, names cannot be compared (or only through a transliteration that is no
    evidence on its own); the vector can, but surface cosines of
    unrelated names are high too (0.8 and more for e5-small). What does separate them is rank:
    the right entity is the nearest one of the group's type by a margin. So the nearest same-type
    candidate gets the name similarity ``vector_only_cosine`` when its cosine reaches
    ``translation_cosine`` and beats every other same-type candidate by ``translation_margin``.
    """
    if group.vector is None or settings.translation_margin >= 1.0:
        return scores
    same_type = sorted((s for s in scores if s.same_type), key=lambda s: -s.cosine)
    if not same_type:
        return scores
    top = same_type[0]
    second = same_type[1].cosine if len(same_type) > 1 else 0.0
    # Between two alphabets a transliteration could have matched and did not, so the names more
    # likely differ than translate ("Тереза Мей" and "Theresa Villiers"): a wider margin there.
    margin = settings.alphabet_translation_margin if top.comparable else settings.translation_margin
    if (
        top.shared_script
        or top.cosine < settings.translation_cosine
        or top.cosine - second < margin
        or top.name >= settings.vector_only_cosine
    ):
        return scores
    better = _scored(
        top.entity_id, settings.vector_only_cosine, top.cosine, True, settings, False, top.comparable
    )
    return [better if s is top else s for s in scores]


def decide(group: GroupView, candidates: Sequence[EntityView], settings: LinkSettings) -> Decision:
    """Pick the best-scoring candidate at or above ``link_threshold``, else a new entity."""
    scores = [score_candidate(group, c, settings) for c in candidates]
    if not any(s.score >= settings.link_threshold for s in scores):  # a fallback, never over a name
        scores = _translation(group, scores, settings)
    scores.sort(key=lambda s: (-s.score, s.entity_id))
    if scores and scores[0].score >= settings.link_threshold:
        return Decision(scores[0].entity_id, scores[0].score, tuple(scores))
    return Decision(None, scores[0].score if scores else -math.inf, tuple(scores))


@dataclass
class MemoryEntities:
    """An in-memory entity table: alias keys, centroids and counts, updated as groups are linked.

    Mirrors what the store does on ingest (centroid = mean of normalized mention vectors, one alias
    per surface form), so tuning on it predicts the store-backed linker.
    """

    dim: int
    entities: dict[int, EntityView] = field(default_factory=dict)
    sums: dict[int, np.ndarray] = field(default_factory=dict)
    keys: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    _next_id: int = 1
    _matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    _row_ids: list[int] = field(default_factory=list)
    _row_of: dict[int, int] = field(default_factory=dict)
    _filed: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))  # keys per entity

    def __post_init__(self) -> None:
        self._matrix = np.zeros((0, self.dim), np.float32)

    def candidates(
        self, group: GroupView, settings: LinkSettings, vector_ids: Sequence[int] | None = None
    ) -> list[EntityView]:
        """Entities sharing an alias key with a group form, plus the nearest centroids.

        Args:
            group (GroupView): The group to find candidates for.
            settings (LinkSettings): Candidate counts.
            vector_ids (Sequence[int] | None): Nearest entities found elsewhere (the store's FAISS
                index); when None they are computed here by exact search.
        """
        hits: dict[int, int] = defaultdict(int)
        for key in {k for form in group.forms for k in name_keys(form)}:
            posting = self.keys.get(key, ())
            if len(posting) > MAX_POSTING:  # a key this common ("t:euro") does not discriminate
                continue
            for entity_id in posting:
                hits[entity_id] += 1
        ranked = sorted(hits, key=lambda e: (-hits[e], -self.entities[e].mention_count))
        chosen = ranked[: settings.name_candidates]
        if vector_ids is not None:
            chosen.extend(e for e in vector_ids if e not in hits and e in self.entities)
        elif group.vector is not None and settings.vector_candidates and self.entities:
            sims = self._matrix[: len(self._row_ids)] @ group.vector
            k = min(settings.vector_candidates, len(sims))
            top = np.argpartition(-sims, k - 1)[:k]
            for t in top[np.argsort(-sims[top])]:
                entity_id = self._row_ids[t]
                if entity_id > 0 and entity_id not in hits:
                    chosen.append(entity_id)
        return [self.entities[e] for e in chosen]

    def _set_row(self, entity_id: int, vector: np.ndarray | None) -> None:
        """Keep the exact-search matrix in step with the entity's centroid (rows are never reused)."""
        row = self._row_of.get(entity_id)
        if row is None:
            row = self._row_of[entity_id] = len(self._row_ids)
            self._row_ids.append(entity_id)
            if row >= len(self._matrix):
                grown = np.zeros((max(1024, 2 * len(self._matrix)), self.dim), np.float32)
                grown[: len(self._matrix)] = self._matrix
                self._matrix = grown
        self._matrix[row] = 0.0 if vector is None else vector

    def put(self, entity: EntityView) -> None:
        """Insert or replace an entity (from the store), filing its name and aliases under their keys."""
        self.remove(entity.id)
        self.entities[entity.id] = entity
        self._set_row(entity.id, entity.vector)
        self._file(entity.id, [entity.name, *entity.aliases])

    def remove(self, entity_id: int) -> None:
        """Forget an entity (merged away, or left without mentions)."""
        self.entities.pop(entity_id, None)
        self.sums.pop(entity_id, None)
        row = self._row_of.pop(entity_id, None)
        if row is not None:
            self._matrix[row] = 0.0
            self._row_ids[row] = -1
        for key in self._filed.pop(entity_id, ()):
            self.keys[key].discard(entity_id)

    def merge(self, target_id: int, source_id: int) -> None:
        """Fold entity ``source_id`` into ``target_id``: aliases, counts and centroid, as the store does."""
        source, target = self.entities[source_id], self.entities[target_id]
        for alias in source.aliases:
            target.alias_counts[alias] = target.alias_counts.get(alias, 0) + source.alias_counts.get(alias, 0)
            if alias not in target.aliases:
                target.aliases.append(alias)
                self._file(target_id, [alias])
        if target.known:
            target.known |= {normalize_name(form) for form in [source.name, *source.aliases]}
        target.forms_changed()
        total = self._sum(target) + self._sum(source)
        target.mention_count += source.mention_count
        self.sums[target_id] = total
        norm = float(np.linalg.norm(total))
        target.vector = total / norm if norm > 0 else target.vector
        self._set_row(target_id, target.vector)
        self.remove(source_id)

    def _file(self, entity_id: int, forms: Iterable[str]) -> None:
        """File the entity under the alias keys of ``forms``, remembering them so ``remove`` finds
        exactly these (keys of an original form, e.g. an acronym's, differ from its casefolded alias)."""
        for form in forms:
            for key in name_keys(form):
                self.keys[key].add(entity_id)
                self._filed[entity_id].add(key)

    def _sum(self, entity: EntityView) -> np.ndarray:
        """Sum of the entity's normalized mention vectors (estimated from the centroid if not kept)."""
        if entity.id in self.sums:
            return self.sums[entity.id]
        if entity.vector is None:
            return np.zeros(self.dim, np.float32)
        return np.asarray(entity.vector, np.float32) * max(1, entity.mention_count)

    def add(self, group: GroupView, vectors: np.ndarray | None, entity_id: int | None) -> int:
        """Record a linked group (``entity_id``) or create an entity for it (``None``)."""
        if entity_id is None:
            entity_id = self._next_id
            self._next_id += 1
            self.entities[entity_id] = EntityView(
                entity_id, group.forms[0], group.label, [], None, 0, label_group=group.label_group
            )
            self.sums[entity_id] = np.zeros(self.dim, np.float32)
        entity = self.entities[entity_id]
        for form in group.forms:
            norm = " ".join(form.casefold().split())
            entity.alias_counts[norm] = entity.alias_counts.get(norm, 0) + 1
            if norm not in entity.aliases:
                entity.aliases.append(norm)
                entity.known.add(normalize_name(form))
                entity.forms_changed()
                self._file(entity_id, [form])
        entity.mention_count += len(group.forms)
        if vectors is not None and len(vectors):
            rows = np.asarray(vectors, np.float32)
            norms = np.linalg.norm(rows, axis=1, keepdims=True)
            self.sums[entity_id] += (rows / np.where(norms > 0, norms, 1)).sum(0)
            total = float(np.linalg.norm(self.sums[entity_id]))
            entity.vector = self.sums[entity_id] / total if total > 0 else None
            self._set_row(entity_id, entity.vector)
        return entity_id


def link_embeddings(
    documents: Sequence[Sequence[tuple[GroupView, np.ndarray | None]]],
    settings: LinkSettings | None = None,
    dim: int | None = None,
    consolidate: bool = False,
) -> list[list[int]]:
    """Cluster mention groups of a stream of documents into entities, with no model or store.

    Args:
        documents: Per document, its groups with their mention vectors (rows, or None).
        settings (LinkSettings | None): Weights and thresholds. Defaults to ``LinkSettings()``.
        dim (int | None): Vector size. Defaults to the first vector's size (or 1).
        consolidate (bool): Afterwards merge entities that are one (``linking.consolidation``).

    Returns:
        list[list[int]]: Per document, the entity id of each group (ids start at 1).

    >>> g = GroupView(["Nigel Farage"], "PER")
    >>> docs = [[(g, None)], [(GroupView(["Farage'a"], "PER"), None)]]
    >>> link_embeddings(docs, LinkSettings(link_threshold=0.9))
    [[1], [1]]
    """
    settings = settings or LinkSettings()
    if dim is None:
        dim = next((len(v[0]) for doc in documents for _, v in doc if v is not None and len(v)), 1)
    table = MemoryEntities(dim)
    out = []
    for doc in documents:
        ids = []
        for group, vectors in doc:
            decision = decide(group, table.candidates(group, settings), settings)
            ids.append(table.add(group, vectors, decision.entity_id))
        out.append(ids)
    if consolidate:
        from linking.consolidation import plan_merges, resolve  # noqa: PLC0415 - it imports this module

        final = resolve(plan_merges(table, settings))
        out = [[final.get(i, i) for i in ids] for ids in out]
    return out
