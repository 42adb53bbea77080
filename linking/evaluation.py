"""Evaluate linking on BSNLP: ingest topics into a fresh store and score against gold cluster ids.

Scores (``linking.metrics``) are reported overall, per language, and on the mentions of gold
clusters that occur in several languages (the cross-lingual part). With predicted mentions only
the mentions whose span equals a gold span are scored, and mention detection P/R/F1 (exact span
and type) is reported beside them.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index import Store
from linking.bsnlp import AlignmentStats, GoldDocument
from linking.linker import DocumentIn, IngestResult, Linker, MentionIn
from linking.metrics import PRF, clustering_scores


def score_assignments(
    keys: Sequence[str],
    responses: Sequence[Hashable],
    languages: Sequence[str],
    topics: Sequence[str] | None = None,
    topic_local: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """Overall, per-language and cross-language clustering scores for aligned mention labels.

    With several BSNLP topics in one store, ``overall`` counts a merge across topics as an error
    whenever a topic uses its own numeric ids (``ec:1`` and ``ORG-European-Commission`` are the same
    commission). Two views correct for that: ``topic_scoped`` scores each topic's mentions against
    its own ids (clusters are cut at topic borders, in key and response alike), and ``global_ids``
    scores, pooled across topics, only the mentions whose gold id is a named one defined for all topics.
    """
    out: dict[str, Any] = {"overall": clustering_scores(keys, responses)}
    if topics is not None and len(set(topics)) > 1:
        out["topic_scoped"] = clustering_scores(list(zip(topics, keys)), list(zip(topics, responses)))
    if topic_local is not None and any(topic_local):
        named = [i for i, local in enumerate(topic_local) if not local]
        out["global_ids"] = clustering_scores([keys[i] for i in named], [responses[i] for i in named])
        out["global_ids"]["counts"]["share_of_mentions"] = round(len(named) / max(1, len(keys)), 4)
    by_lang: dict[str, list[int]] = defaultdict(list)
    for i, lang in enumerate(languages):
        by_lang[lang].append(i)
    out["per_language"] = {
        lang: clustering_scores([keys[i] for i in idx], [responses[i] for i in idx])
        for lang, idx in sorted(by_lang.items())
    }
    langs_of: dict[str, set[str]] = defaultdict(set)
    for key, lang in zip(keys, languages):
        langs_of[key].add(lang)
    cross = [i for i, key in enumerate(keys) if len(langs_of[key]) > 1]
    out["cross_language"] = clustering_scores([keys[i] for i in cross], [responses[i] for i in cross])
    out["cross_language"]["counts"]["share_of_mentions"] = round(len(cross) / max(1, len(keys)), 4)
    return out


def evaluate_documents(
    docs: Sequence[GoldDocument],
    make_linker: Callable[[Store], Linker],
    dim: int,
    *,
    gold_mentions: bool = True,
    alignment: AlignmentStats | None = None,
    progress: bool = False,
    store_dir: str | Path | None = None,
    per_topic: bool = False,
    consolidate: bool = True,
) -> dict[str, Any]:
    """Ingest ``docs`` into a fresh store (a temporary folder unless given) and score the linking.

    Args:
        docs (Sequence[GoldDocument]): Documents with gold mentions and cluster ids.
        make_linker (Callable[[Store], Linker]): Builds the linker over the fresh store.
        dim (int): Vector size of the store.
        gold_mentions (bool): Give the gold spans (True) or let the NER model find mentions.
        alignment (AlignmentStats | None): CSV alignment counts to report. Defaults to None.
        progress (bool): Progress bar. Defaults to False.
        store_dir (str | Path | None): Where to create the store. Defaults to a temporary folder.
        per_topic (bool): One fresh store per topic (BSNLP cluster ids are defined per topic;
            numeric ones even collide), scores pooled over all mentions. Defaults to False.
        consolidate (bool): Merge entities that are one after ingesting (``Linker.consolidate``).
            Defaults to True.

    Returns:
        dict: JSON-ready scores, counts and throughput.
    """
    parts: dict[str, list[GoldDocument]] = defaultdict(list)
    for doc in docs:
        parts[doc.topic if per_topic else ""].append(doc)
    ordered: list[GoldDocument] = []
    results: list[IngestResult] = []
    seconds, consolidation_seconds, entities = 0.0, 0.0, 0
    merged: dict[tuple[int, int], int] = {}  # (part, merged-away id) -> surviving id
    part_of: list[int] = []
    for number, part in enumerate(parts.values()):
        ingested = _ingest(part, make_linker, dim, gold_mentions, progress, store_dir, consolidate)
        ordered += part
        results += ingested.results
        part_of += [number] * len(part)
        seconds += ingested.seconds
        consolidation_seconds += ingested.consolidation_seconds
        entities += ingested.entities
        merged.update({(number, old): new for old, new in ingested.merged.items()})
    keys, responses, languages, topics, topic_local = [], [], [], [], []
    gold_total = predicted_total = exact = 0
    for doc, result, number in zip(ordered, results, part_of):
        found = _spans(result)
        gold_total += len(doc.mentions)
        predicted_total += len(found)
        for m in doc.mentions:
            hit = found.get((m.start, m.end))
            if hit is None:
                continue
            label, entity_id = hit
            entity_id = merged.get((number, entity_id), entity_id)
            exact += label == m.label
            keys.append(m.cluster)
            responses.append(f"{doc.topic if per_topic else ''}:{entity_id}")
            languages.append(doc.language)
            topics.append(doc.topic)
            topic_local.append(m.topic_local)
    report: dict[str, Any] = score_assignments(keys, responses, languages, topics, topic_local)
    report["mentions"] = {
        "gold": gold_total,
        "predicted": predicted_total,
        "scored": len(keys),
        "gold_mentions_given": gold_mentions,
    }
    if not gold_mentions:

        def prf(hits: int) -> dict[str, float]:
            return PRF.of(
                hits / predicted_total if predicted_total else 0.0, hits / gold_total if gold_total else 0.0
            ).as_dict()

        report["mention_detection"] = prf(exact)
        # The model's label set may differ from the gold one (MISC vs BSNLP's EVT/PRO): span-only too.
        report["mention_detection_span_only"] = prf(len(keys))
    report["ingest"] = {
        "documents": len(docs),
        "seconds": round(seconds, 2),
        "documents_per_second": round(len(docs) / seconds, 2) if seconds else None,
        "entities": entities,
        "store_per_topic": per_topic,
        "consolidation_seconds": round(consolidation_seconds, 2),
        "entities_merged": len(merged),
    }
    if alignment is not None:
        report["alignment"] = alignment.as_dict()
    return report


@dataclass
class _Ingested:
    results: list[IngestResult]
    seconds: float
    consolidation_seconds: float
    entities: int
    merged: dict[int, int]


def _ingest(
    docs: Sequence[GoldDocument],
    make_linker: Callable[[Store], Linker],
    dim: int,
    gold_mentions: bool,
    progress: bool,
    store_dir: str | Path | None,
    consolidate: bool,
) -> _Ingested:
    """Ingest into a fresh store (then consolidate its entities, if asked)."""
    with tempfile.TemporaryDirectory(prefix="spanlink-eval-") as tmp:
        folder = Path(store_dir or tmp) / f"store-{time.time_ns()}"
        folder.mkdir(parents=True)
        with Store.open(folder / "spanlink.db", dim=dim) as store:
            linker = make_linker(store)
            inputs = [
                DocumentIn(
                    d.external_id,
                    d.text,
                    [MentionIn(m.start, m.end, m.label) for m in d.mentions] if gold_mentions else None,
                    language=d.language,
                    metadata={"topic": d.topic},
                )
                for d in docs
            ]
            started = time.perf_counter()
            results = linker.ingest(inputs, progress=progress)
            seconds = time.perf_counter() - started
            merged = linker.consolidate() if consolidate else {}
            consolidation = time.perf_counter() - started - seconds
            return _Ingested(results, seconds, consolidation, store.stats().entities, merged)


def _spans(result: IngestResult) -> dict[tuple[int, int], tuple[str, int]]:
    return {(m.start, m.end): (m.label, m.entity_id) for m in result.mentions if m.entity_id is not None}
