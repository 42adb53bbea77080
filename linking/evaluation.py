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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from index import Store
from linking.bsnlp import AlignmentStats, GoldDocument
from linking.linker import DocumentIn, IngestResult, Linker, MentionIn
from linking.metrics import PRF, clustering_scores


def score_assignments(
    keys: Sequence[str], responses: Sequence[int], languages: Sequence[str]
) -> dict[str, Any]:
    """Overall, per-language and cross-language clustering scores for aligned mention labels."""
    out: dict[str, Any] = {"overall": clustering_scores(keys, responses)}
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

    Returns:
        dict: JSON-ready scores, counts and throughput.
    """
    with tempfile.TemporaryDirectory(prefix="spanlink-eval-") as tmp:
        folder = Path(store_dir or tmp)
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
            stats = store.stats()
    keys, responses, languages = [], [], []
    gold_total = predicted_total = exact = 0
    for doc, result in zip(docs, results):
        found = _spans(result)
        gold_total += len(doc.mentions)
        predicted_total += len(found)
        for m in doc.mentions:
            hit = found.get((m.start, m.end))
            if hit is None:
                continue
            label, entity_id = hit
            exact += label == m.label
            keys.append(m.cluster)
            responses.append(entity_id)
            languages.append(doc.language)
    report: dict[str, Any] = score_assignments(keys, responses, languages)
    report["mentions"] = {
        "gold": gold_total,
        "predicted": predicted_total,
        "scored": len(keys),
        "gold_mentions_given": gold_mentions,
    }
    if not gold_mentions:
        report["mention_detection"] = PRF.of(
            exact / predicted_total if predicted_total else 0.0, exact / gold_total if gold_total else 0.0
        ).as_dict()
    report["ingest"] = {
        "documents": len(docs),
        "seconds": round(seconds, 2),
        "documents_per_second": round(len(docs) / seconds, 2) if seconds else None,
        "entities": stats.entities,
    }
    if alignment is not None:
        report["alignment"] = alignment.as_dict()
    return report


def _spans(result: IngestResult) -> dict[tuple[int, int], tuple[str, int]]:
    return {(m.start, m.end): (m.label, m.entity_id) for m in result.mentions if m.entity_id is not None}
