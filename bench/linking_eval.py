"""Tune and measure linking on BSNLP with gold mentions, fast: in memory, vectors cached on disk.

The linker's decisions depend only on names, labels and vectors, so this runs the model-free
core (``linking.link_embeddings`` over ``MemoryEntities``, the same candidate and scoring logic
as ``Linker`` with a Flat FAISS index) instead of a SQLite store, and caches the surface
vectors of every mention string in ``bench/out/``. A grid over settings is scored on the tuning
topics; the best setting (by B3 F1) is then scored once on the report topics. The store-backed
figure comes from ``spanlink eval-linking`` (see ``linking/README.md``).

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python bench/linking_eval.py \\
        --tune asia_bibi,ec,trump --report brexit,other --vectors surface

Metrics are prefixed with the dataset name; ``primary_metric`` is ``bsnlp_b3_f1``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from linking.bsnlp import GoldDocument, read_bsnlp  # noqa: E402
from linking.core import GroupView, group_label, link_embeddings, mean_vector  # noqa: E402
from linking.coref import MentionSpan, group_mentions  # noqa: E402
from linking.evaluation import score_assignments  # noqa: E402
from linking.settings import LinkSettings  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "el" / "bsnlp"
CACHE = ROOT / "bench" / "out" / "linking_surface_vectors.pkl"
GRID = {
    "vector_weight": [0.0, 0.25, 0.5, 1.0],
    "link_threshold_margin": [-0.05, 0.0, 0.05, 0.1],  # added to 0.9 + 0.8 * vector_weight
    "vector_only_cosine": [0.93, 0.95, 0.97, 1.0],
}


def surface_vectors(docs: list[GoldDocument]) -> dict[str, np.ndarray]:
    """Surface vector of every mention string, computed once and cached."""
    cache: dict[str, np.ndarray] = pickle.loads(CACHE.read_bytes()) if CACHE.exists() else {}
    strings = {" ".join(d.text[m.start : m.end].split()) for d in docs for m in d.mentions}
    missing = sorted(strings - cache.keys())
    if missing:
        from linking.embedding import SurfaceEmbedder

        embedder = SurfaceEmbedder()
        embedder.embed_strings(missing)
        cache.update(embedder.cache)
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_bytes(pickle.dumps(cache))
    return cache


def run(
    docs: list[GoldDocument],
    settings: LinkSettings,
    vectors: dict[str, np.ndarray] | None,
    per_document: dict[str, np.ndarray] | None = None,
    consolidate: bool = False,
) -> dict:
    """Link ``docs`` in memory and score; vectors by mention string, or per document (rows aligned
    with ``doc.mentions``, e.g. contextual span vectors)."""
    started = time.perf_counter()
    stream, grouping = [], []
    for doc in docs:
        spans = [MentionSpan(m.start, m.end, m.label, doc.text[m.start : m.end]) for m in doc.mentions]
        forms = [" ".join(s.text.split()) for s in spans]
        groups = group_mentions(doc.text, spans, settings)
        rows = np.stack([vectors[f] for f in forms]) if vectors is not None and forms else None
        if per_document is not None and forms:
            rows = np.asarray(per_document[doc.external_id], dtype=np.float32)
        items = []
        for g in groups:
            member_rows = rows[g] if rows is not None else None
            view = GroupView(
                [forms[i] for i in g],
                group_label([spans[i].label for i in g]),
                mean_vector(member_rows) if member_rows is not None else None,
            )
            items.append((view, member_rows))
        stream.append(items)
        grouping.append(groups)
    entity_ids = link_embeddings(stream, settings, dim=384, consolidate=consolidate)
    keys, responses, languages, topics, local, surfaces = [], [], [], [], [], []
    for doc, groups, ids in zip(docs, grouping, entity_ids):
        for g, entity in zip(groups, ids):
            for i in g:
                m = doc.mentions[i]
                keys.append(m.cluster)
                responses.append(entity)
                languages.append(doc.language)
                topics.append(doc.topic)
                local.append(m.topic_local)
                surfaces.append(" ".join(doc.text[m.start : m.end].split()))
    report = score_assignments(keys, responses, languages, topics, local)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["_mentions"] = list(zip(keys, responses, languages, topics, surfaces))
    return report


def errors(mentions: list[tuple], limit: int) -> dict:
    """The gold clusters that lose most B3 recall (split) and the entities that lose most B3
    precision (wrong merges), topic-scoped (a merge across topics is not counted), each with its
    pieces and their most frequent surfaces: what error analysis reads."""
    from collections import Counter, defaultdict

    key_members: dict = defaultdict(list)
    resp_members: dict = defaultdict(list)
    for key, response, lang, topic, surface in mentions:
        key_members[(topic, key)].append(((topic, response), lang, surface))
        resp_members[(topic, response)].append(((topic, key), lang, surface))

    def pieces(members: list) -> tuple[float, list]:
        by = defaultdict(list)
        for other, lang, surface in members:
            by[other].append(f"{lang}:{surface}")
        n = len(members)
        loss = sum(len(v) * (1 - len(v) / n) for v in by.values())
        shown = [
            {"id": str(k[1]), "n": len(v), "forms": Counter(v).most_common(6)}
            for k, v in sorted(by.items(), key=lambda kv: -len(kv[1]))[:6]
        ]
        return loss, shown

    split = sorted(((*pieces(v), k) for k, v in key_members.items()), key=lambda t: -t[0])[:limit]
    merged = sorted(((*pieces(v), k) for k, v in resp_members.items()), key=lambda t: -t[0])[:limit]
    return {
        "split": [{"gold": f"{k[0]}:{k[1]}", "loss": round(loss, 1), "pieces": p} for loss, p, k in split],
        "merged": [
            {"entity": f"{k[0]}:{k[1]}", "loss": round(loss, 1), "pieces": p} for loss, p, k in merged
        ],
    }


def coref_only(docs: list[GoldDocument], settings: LinkSettings) -> dict:
    """In-document coreference alone: each document's groups against its gold clusters, B3 per language
    (keys and responses are scoped to the document, so no cross-document decision counts)."""
    from linking.metrics import b_cubed

    by_lang: dict[str, tuple[list, list]] = {}
    for doc in docs:
        spans = [MentionSpan(m.start, m.end, m.label, doc.text[m.start : m.end]) for m in doc.mentions]
        keys, responses = by_lang.setdefault(doc.language, ([], []))
        for g, members in enumerate(group_mentions(doc.text, spans, settings)):
            for i in members:
                keys.append((doc.external_id, doc.mentions[i].cluster))
                responses.append((doc.external_id, g))
    out = {lang: b_cubed(k, r).as_dict() for lang, (k, r) in sorted(by_lang.items())}
    everything = [x for k, _ in by_lang.values() for x in k], [x for _, r in by_lang.values() for x in r]
    out["all"] = b_cubed(*everything).as_dict()
    return out


def grid_settings(vector_kind: str) -> list[LinkSettings]:
    out = []
    for weight, margin, gate in itertools.product(*GRID.values()):
        if vector_kind == "none" and (weight or gate < 1.0):
            continue
        out.append(
            LinkSettings(
                vector_weight=weight,
                link_threshold=round(0.9 + 0.8 * weight + margin, 4),
                vector_only_cosine=gate,
            )
        )
    return out


def summary(report: dict) -> dict:
    return {
        "b3": report["overall"]["b3"],
        "ceafe_f1": report["overall"]["ceafe"]["f1"],
        "muc_f1": report["overall"]["muc"]["f1"],
        "pairwise_f1": report["overall"]["pairwise"]["f1"],
        "cross_b3_f1": report["cross_language"]["b3"]["f1"],
        "cross_b3": report["cross_language"]["b3"],
        "per_language_b3_f1": {lang: r["b3"]["f1"] for lang, r in report["per_language"].items()},
        **{
            f"{view}_b3_f1": report[view]["b3"]["f1"]
            for view in ("topic_scoped", "global_ids")
            if view in report
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tune", default="asia_bibi,ec,trump")
    parser.add_argument("--report", default="brexit,other")
    parser.add_argument("--vectors", choices=("surface", "none"), default="surface")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "linking_eval.json")
    parser.add_argument(
        "--coref-only",
        action="store_true",
        help="score in-document grouping alone, per language (all topics)",
    )
    parser.add_argument(
        "--settings",
        default=None,
        help='JSON LinkSettings overrides: score these only, no grid ("{}" = defaults)',
    )
    parser.add_argument("--consolidate", action="store_true", help="consolidate entities after linking")
    parser.add_argument(
        "--errors",
        type=int,
        default=0,
        help="with --settings: write the N worst split gold clusters and merged entities of the tuning "
        "topics to bench/out/linking_errors.json (error analysis)",
    )
    args = parser.parse_args()
    tune_docs, _ = read_bsnlp(args.data, args.tune.split(","))
    report_docs, _ = read_bsnlp(args.data, args.report.split(","))
    if args.coref_only:
        print(
            json.dumps(
                coref_only(tune_docs + report_docs, LinkSettings(**json.loads(args.settings or "{}"))),
                indent=1,
            )
        )
        return
    if args.settings is not None:
        vectors = surface_vectors(tune_docs + report_docs) if args.vectors == "surface" else None
        chosen = LinkSettings(**json.loads(args.settings))
        out = {}
        for name, docs in (("tune", tune_docs), ("report", report_docs)):
            result = run(docs, chosen, vectors, consolidate=args.consolidate)
            out[name] = summary(result)
            if name == "tune" and args.errors:
                path = args.out.with_name("linking_errors.json")
                path.write_text(
                    json.dumps(errors(result["_mentions"], args.errors), indent=1, ensure_ascii=False)
                )
        print(json.dumps(out, indent=1))
        return
    vectors = surface_vectors(tune_docs + report_docs) if args.vectors == "surface" else None
    trials = []
    for settings in grid_settings(args.vectors):
        result = run(tune_docs, settings, vectors)
        trials.append({"settings": settings.__dict__, **summary(result)})
        print(json.dumps(trials[-1]), file=sys.stderr, flush=True)
    best = max(trials, key=lambda t: t["b3"]["f1"])
    chosen = LinkSettings(**best["settings"])
    final = run(report_docs, chosen, vectors)
    everything = run(tune_docs + report_docs, chosen, vectors)
    final.pop("_mentions"), everything.pop("_mentions")
    out = {
        "primary_metric": "bsnlp_b3_f1",
        "bsnlp_b3_f1": final["overall"]["b3"]["f1"],
        "tune_topics": args.tune,
        "report_topics": args.report,
        "vectors": args.vectors,
        "chosen_settings": best["settings"],
        "tune_best": best,
        "report": final,
        "all_topics": everything,
        "trials": trials,
    }
    args.out.write_text(json.dumps(out, indent=1))
    print(
        json.dumps({"tune_best": best, "report": summary(final), "all_topics": summary(everything)}, indent=1)
    )


if __name__ == "__main__":
    main()
