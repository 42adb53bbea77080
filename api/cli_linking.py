"""`spanlink ingest` and `spanlink eval-linking`: the linking commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli import app, fail, load_model

LABELS = ["EVT", "LOC", "ORG", "PER", "PRO"]

VectorsOption = Annotated[
    str,
    typer.Option(
        "--vectors",
        help="Mention vector for identity: surface (e5 embedding of the mention text), "
        "span (contextual span embedding) or mix.",
    ),
]


def _embedder(kind: str, span_model: Any, cache_file: Path | None = None):  # noqa: ANN202 - an Embedder
    from linking.embedding import make_embedder
    from linking.settings import VECTOR_KINDS

    if kind not in VECTOR_KINDS:
        raise fail(f"--vectors must be one of {', '.join(VECTOR_KINDS)}, got {kind!r}")
    try:
        return make_embedder(kind, span_model, cache_file=cache_file)
    except (ValueError, ImportError) as exc:
        raise fail(str(exc)) from None


def _read_documents(files: list[Path]) -> list:
    """Text files (one document each, id = path) and JSON lines ({"text", "id", "metadata", "language"})."""
    from linking.linker import DocumentIn, MentionIn

    docs = []
    for path in files:
        try:
            raw = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"{path}: cannot read ({exc})") from None
        if path.suffix.lower() not in (".jsonl", ".ndjson"):
            docs.append(DocumentIn(str(path), raw))
            continue
        for number, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = row["text"]
                mentions = row.get("mentions")
                docs.append(
                    DocumentIn(
                        str(row.get("id") or f"{path}:{number}"),
                        text,
                        None
                        if mentions is None
                        else [MentionIn(int(m["start"]), int(m["end"]), str(m["label"])) for m in mentions],
                        language=row.get("language"),
                        metadata=row.get("metadata") or {},
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise fail(f'{path}:{number}: expected a JSON object with "text" ({exc})') from None
    return docs


ConsolidateOption = Annotated[
    bool,
    typer.Option(
        help="Afterwards merge entities that are one (online linking can split an entity early on)."
    ),
]


@app.command()
def ingest(
    files: Annotated[list[Path], typer.Argument(help="Text files (one document each) or .jsonl files.")],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Folder of the store (spanlink.db).")] = Path(
        "data"
    ),
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="NER model (default: the embedded model).")
    ] = None,
    vectors: VectorsOption = "surface",
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = None,
    consolidate: ConsolidateOption = False,
) -> None:
    """Extract, link and store documents; prints one JSON line per document."""
    from index import Store, StoreError
    from linking.linker import Linker, LinkingError

    docs = _read_documents(files)
    span_model = load_model(model, device, None, False)
    embedder = _embedder(vectors, span_model)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with Store.open(data_dir / "spanlink.db", dim=embedder.dim) as store:
            linker = Linker(store, span_model, embedder=embedder)
            for result in linker.ingest(docs, progress=True):
                print(
                    json.dumps(
                        {
                            "id": result.external_id,
                            "document_id": result.document_id,
                            "replaced": result.replaced,
                            "mentions": len(result.mentions),
                            "linked_entities": result.linked_entity_ids,
                            "new_entities": result.created_entity_ids,
                        }
                    ),
                    flush=True,
                )
            if consolidate:
                merged = linker.consolidate()
                print(
                    json.dumps({"consolidated": {str(k): v for k, v in sorted(merged.items())}}), flush=True
                )
    except (StoreError, LinkingError) as exc:
        raise fail(str(exc)) from None


@app.command("eval-linking")
def eval_linking(
    data: Annotated[Path, typer.Option("--data", help="BSNLP folder (holding <topic>/raw, <topic>/merged).")],
    topics: Annotated[str, typer.Option("--topics", help="Comma-separated topics, e.g. ec,trump.")],
    gold_mentions: Annotated[
        bool, typer.Option("--gold-mentions", help="Link the gold mention spans.")
    ] = False,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="NER model for predicted mentions (default: the embedded model)."),
    ] = None,
    vectors: VectorsOption = "surface",
    languages: Annotated[str | None, typer.Option(help="Comma-separated languages to keep.")] = None,
    limit: Annotated[int, typer.Option(min=0, help="Keep the first N documents per topic (0 = all).")] = 0,
    store_per_topic: Annotated[
        bool,
        typer.Option(help="One fresh store per topic (BSNLP cluster ids are per topic); scores pooled."),
    ] = False,
    consolidate: ConsolidateOption = True,
    surface_cache: Annotated[
        Path | None,
        typer.Option(
            help="Read/write surface vectors here (.npz), so repeated evaluations skip the encoder."
        ),
    ] = None,
    settings_json: Annotated[
        str | None,
        typer.Option("--settings", help='LinkSettings overrides as JSON, e.g. {"link_threshold": 1.1}.'),
    ] = None,
) -> None:
    """Ingest BSNLP topics into a fresh store and print B3, CEAF-e, MUC and pairwise scores as JSON."""
    from linking.bsnlp import read_bsnlp
    from linking.evaluation import evaluate_documents
    from linking.linker import Linker
    from linking.settings import LinkSettings

    try:
        settings = (
            LinkSettings(**json.loads(settings_json)) if settings_json else LinkSettings(vector_kind=vectors)
        )
    except (ValueError, TypeError) as exc:
        raise fail(f"--settings: {exc}") from None
    topic_list = [t.strip() for t in topics.split(",") if t.strip()]
    try:
        docs, alignment = read_bsnlp(data, topic_list, languages.split(",") if languages else None)
    except (OSError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    if limit:
        kept, seen = [], {}
        for d in docs:
            seen[d.topic] = seen.get(d.topic, 0) + 1
            if seen[d.topic] <= limit:
                kept.append(d)
        docs = kept
    if not docs:
        raise fail(f"no documents found for topics {topic_list} under {data}")
    if model is not None or not gold_mentions:  # predicted mentions: the named or the default model
        span_model = load_model(model, None, None, False)
    elif vectors != "surface":
        from ner.building import new_span_model

        span_model = new_span_model("e5-small", LABELS)  # base encoder: span vectors without a NER head
    else:
        span_model = None
    embedder = _embedder(vectors, span_model, surface_cache)
    try:
        import faiss

        faiss.omp_set_num_threads(1)  # one query at a time: OpenMP wake-ups cost more than they save
    except ImportError:
        pass
    report = evaluate_documents(
        docs,
        lambda store: Linker(store, span_model, settings, embedder=embedder),
        embedder.dim,
        gold_mentions=gold_mentions,
        alignment=alignment,
        progress=True,
        per_topic=store_per_topic,
        consolidate=consolidate,
    )
    for part in (embedder, getattr(embedder, "surface", None)):
        if hasattr(part, "save_cache"):
            part.save_cache()
    report["config"] = {
        "topics": topic_list,
        "vectors": vectors,
        "limit": limit,
        "settings": settings.__dict__,
    }
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
