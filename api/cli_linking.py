"""`spanlink ingest` and `spanlink eval-linking`: the linking commands."""

from __future__ import annotations

import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli import app, fail, load_model, validation_message
from api.cli_serve import DataDirOption, DbOption, build_settings

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
    except (OSError, KeyError, zipfile.BadZipFile) as exc:  # an unreadable --surface-cache
        raise fail(f"cannot read the vector cache {cache_file}: {exc}") from None


JSONL_SUFFIXES = (".jsonl", ".ndjson")


def _read_utf8(path: Path) -> str:
    """A file's text; unreadable files and invalid UTF-8 are one line naming the file (and line)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise fail(f"{path}:{line}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def _records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, record)`` for each document of a file, ``where`` being ``file`` or ``file:line``.

    A text file is one document with its path as id; a JSON-lines file holds one request body per
    line (an absent id becomes ``file:line``, so ingesting the file again replaces, not duplicates).
    """
    text = _read_utf8(path)
    if path.suffix.lower() not in JSONL_SUFFIXES:
        yield str(path), {"id": str(path), "text": text}
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise fail(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise fail(f'{where}: expected a JSON object with "text", got {type(record).__name__}')
        if record.get("id") is None:
            record["id"] = where
        yield where, record


def _validated(where: str, record: dict[str, Any], settings: Any) -> Any:  # noqa: ANN401
    """The record as the HTTP API would accept it: ``api.schemas.DocumentCreate`` and the same limits."""
    from pydantic import ValidationError

    from api.errors import ServiceError
    from api.routes.limits import check_mentions, check_texts
    from api.schemas import DocumentCreate

    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise fail(f"{where}: not valid text (a lone surrogate, {exc.object[exc.start]!r})") from None
    try:
        document = DocumentCreate.model_validate(record)
        check_texts([document.text], "document", settings, [document.id])
        if document.mentions is not None:
            check_mentions(len(document.mentions), f"document {document.id!r}", settings)
    except ValidationError as exc:
        raise fail(f"{where}: {validation_message(exc)}") from None
    except ServiceError as exc:
        raise fail(f"{where}: {exc.message}") from None
    return document


def _read_documents(files: list[Path], settings: Any) -> list:  # noqa: ANN401 - ServiceSettings
    """Every document of every file, checked whole before anything is written (one rule with the API).

    The same id twice is refused as the API refuses it within a batch: the later document would
    silently replace the earlier one.
    """
    from linking.linker import DocumentIn, MentionIn

    docs, seen = [], {}
    for path in files:
        for where, record in _records(path):
            document = _validated(where, record, settings)
            if document.id in seen:
                raise fail(f"{where}: document id {document.id!r} also names {seen[document.id]}")
            seen[document.id] = where
            mentions = (
                None
                if document.mentions is None
                else [MentionIn(m.start, m.end, m.label) for m in document.mentions]
            )
            meta = document.metadata
            docs.append(DocumentIn(document.id, document.text, mentions, document.language, meta))
    if not docs:
        raise fail("no documents in the given files")
    return docs


def _with_mentions(docs: list, span_model: Any) -> list:  # noqa: ANN401 - a ner.SpanModel
    """Run NER where no mentions were given, as the service does: spaces trimmed from spans, and
    spans that cannot name an entity ("." or a dash alone) left out rather than failing the document."""
    from api.service import nameable
    from linking.linker import DocumentIn, MentionIn

    need = [i for i, d in enumerate(docs) if d.mentions is None]
    if not need:
        return docs
    found = span_model.extract([docs[i].text for i in need], strip_spaces=True)
    out = list(docs)
    for i, entities in zip(need, found):
        d = docs[i]
        mentions = [MentionIn(e.start, e.end, e.label, float(e.score)) for e in entities if nameable(e.text)]
        out[i] = DocumentIn(d.external_id, d.text, mentions, d.language, d.metadata)
    return out


ConsolidateOption = Annotated[
    bool,
    typer.Option(
        help="Afterwards merge entities that are one (online linking can split an entity early on)."
    ),
]

# Documents per NER call in `ingest`: keeps batches full and the progress bar moving.
_INGEST_CHUNK = 16


def _result_line(result: Any) -> str:  # noqa: ANN401 - a linking.IngestResult
    return json.dumps(
        {
            "id": result.external_id,
            "document_id": result.document_id,
            "replaced": result.replaced,
            "mentions": len(result.mentions),
            "linked_entities": result.linked_entity_ids,
            "new_entities": result.created_entity_ids,
        },
        ensure_ascii=False,
    )


@app.command()
def ingest(
    files: Annotated[list[Path], typer.Argument(help="Text files (one document each) or .jsonl files.")],
    data_dir: DataDirOption = None,
    db: DbOption = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="NER model (default: the embedded model).")
    ] = None,
    vectors: Annotated[
        str | None,
        typer.Option(
            "--vectors",
            help="Mention vector for identity: surface (e5 embedding of the mention text, the default), "
            "span (contextual span embedding) or mix. A store keeps the kind it was written with.",
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = None,
    consolidate: ConsolidateOption = False,
) -> None:
    """Extract, link and store documents in the service's store; prints one JSON line per document.

    JSON lines are request bodies of ``POST /v1/documents`` ({"text", "id", "metadata", "language",
    "mentions"}) and pass the same checks; every file is checked before anything is written. Each
    document is then stored in its own transaction, in order.
    """
    from index import StoreError
    from linking.linker import Linker, LinkingError
    from linking.settings import LinkSettings

    settings = build_settings(data_dir=data_dir, db_url=db, model=model, vectors=vectors, device=device)
    docs = _read_documents(files, settings)
    span_model = load_model(settings.model, settings.device, None, False)
    embedder = _embedder(settings.vectors, span_model)
    try:
        link_settings = LinkSettings(**settings.link_settings)
    except (TypeError, ValueError) as exc:
        raise fail(f"invalid setting link_settings: {exc}") from None
    store = _open_store(settings, embedder.dim)
    try:
        linker = Linker(store, span_model, link_settings, embedder=embedder)
        _ingest_all(linker, docs, span_model)
        if consolidate:
            try:
                merged = linker.consolidate()
            except (StoreError, LinkingError) as exc:
                raise fail(f"consolidate: {exc} (every document was stored)") from None
            print(json.dumps({"consolidated": {str(k): v for k, v in sorted(merged.items())}}), flush=True)
    except LinkingError as exc:  # Linker() itself: the store holds vectors of another kind
        raise fail(str(exc)) from None
    finally:
        store.close()


def _ingest_all(linker: Any, docs: list, span_model: Any) -> None:  # noqa: ANN401
    """Store documents in order, one transaction each, printing a line per stored document.

    A failure names the document and how many were stored before it: those stay (each was a
    complete transaction), and running the command again replaces them rather than duplicating.
    """
    from tqdm.auto import tqdm

    from index import StoreError
    from linking.linker import LinkingError

    stored = 0
    with tqdm(total=len(docs), desc="ingest", unit="doc", file=sys.stderr) as bar:
        for at in range(0, len(docs), _INGEST_CHUNK):
            for document in _with_mentions(docs[at : at + _INGEST_CHUNK], span_model):
                try:
                    result = linker.ingest_one(document)
                except (StoreError, LinkingError) as exc:
                    raise fail(
                        f"document {document.external_id!r}: {exc} ({stored} documents before it were stored)"
                    ) from None
                print(_result_line(result), flush=True)
                stored += 1
                bar.update(1)


def _open_store(settings: Any, dim: int):  # noqa: ANN202, ANN401 - an index.Store from ServiceSettings
    """Open or create the store the service would use (``--data-dir``/``--db``, factory, vector folder)."""
    from api.service import open_store
    from index import StoreError

    try:
        return open_store(settings, dim)
    except StoreError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot open the store {settings.store_target()}: {exc.strerror or exc}") from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a finite number")


def _link_settings(cls: Any, vectors: str, settings_json: str | None) -> Any:  # noqa: ANN401
    """``LinkSettings`` from --vectors and the --settings overrides, each error naming its option.

    --settings used to replace --vectors silently (the embedder followed --vectors, the settings did
    not); now --vectors fills ``vector_kind`` unless --settings names it too, and then they must agree.
    """
    from linking.settings import VECTOR_KINDS

    if vectors not in VECTOR_KINDS:
        raise fail(f"--vectors must be one of {', '.join(VECTOR_KINDS)}, got {vectors!r}")
    try:
        overrides = json.loads(settings_json, parse_constant=_reject_constant) if settings_json else {}
    except ValueError as exc:
        raise fail(f"--settings: {exc}") from None
    if not isinstance(overrides, dict):
        raise fail(f"--settings takes a JSON object, got {type(overrides).__name__}")
    if overrides.setdefault("vector_kind", vectors) != vectors:
        raise fail(f"--settings vector_kind {overrides['vector_kind']!r} contradicts --vectors {vectors!r}")
    try:
        return cls(**overrides)
    except (ValueError, TypeError) as exc:
        raise fail(f"--settings: {exc}") from None


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

    settings = _link_settings(LinkSettings, vectors, settings_json)
    if surface_cache is not None and surface_cache.exists() and not surface_cache.is_file():
        raise fail(f"--surface-cache {surface_cache} is not a file")
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
            try:
                part.save_cache()
            except OSError as exc:
                raise fail(f"cannot write the vector cache {surface_cache}: {exc.strerror or exc}") from None
    report["config"] = {
        "topics": topic_list,
        "vectors": vectors,
        "limit": limit,
        "settings": settings.__dict__,
    }
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
