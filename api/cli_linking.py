"""`spanlink ingest` and `spanlink eval-linking`: the linking commands."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli import BackendOption, ModelOption, app, fail, finite, load_model
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


ConsolidateOption = Annotated[
    bool,
    typer.Option(
        help="Afterwards merge entities that are one (online linking can split an entity early on)."
    ),
]


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
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Text files (one document each), .jsonl/.ndjson files, folders (recursively) and globs; "
            "with --ray also URIs that Ray Data reads (s3://bucket/prefix/, gs://..., file://...).",
            show_default=False,
        ),
    ],
    data_dir: DataDirOption = None,
    db: DbOption = None,
    model: ModelOption = None,
    vectors: Annotated[
        str | None,
        typer.Option(
            "--vectors",
            help="Mention vector for identity: surface (e5 embedding of the mention text, the default), "
            "span (contextual span embedding) or mix. A store keeps the kind it was written with.",
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = None,
    backend: BackendOption = None,
    consolidate: ConsolidateOption = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="auto|ray://HOST:10001",
            help="Run NER on a Ray cluster (pip install 'spanlink[ray]'): auto = RAY_ADDRESS or a new local "
            "cluster; implies --bulk.",
        ),
    ] = None,
    actors: Annotated[int, typer.Option(min=1, help="--ray: model actors (each loads the model once).")] = 1,
    cpus_per_actor: Annotated[
        float, typer.Option(min=0.0, callback=finite, help="--ray: CPUs each actor reserves.")
    ] = 1.0,
    gpus_per_actor: Annotated[
        float, typer.Option(min=0.0, callback=finite, help="--ray: GPUs each actor reserves.")
    ] = 0.0,
    batch_docs: Annotated[
        int, typer.Option(min=1, help="Documents per model-stage batch (the model packs them by tokens).")
    ] = 32,
    bulk: Annotated[
        bool,
        typer.Option(
            "--bulk",
            help="Resumable bulk run: skip documents stored with the same id and text, report bad documents "
            "and go on, end with a JSON report line.",
        ),
    ] = False,
    kb_only: Annotated[
        bool,
        typer.Option(
            "--kb-only",
            help="Link only to knowledge-base entities (spanlink kb import); other mentions are stored "
            "unlinked and no entity is created.",
        ),
    ] = False,
) -> None:
    """Extract, link and store documents in the service's store; prints one JSON line per document.

    JSON lines are request bodies of ``POST /v1/documents`` ({"text", "id", "metadata", "language",
    "mentions"}) and pass the same checks. By default every file is checked before anything is written
    and the first bad document stops the command; with --bulk (or --ray) bad documents are reported
    and skipped, documents already stored with the same id and text are skipped (rerunning a killed
    job finishes it), and a last line {"report": ...} sums the run up. Each document is stored in
    its own transaction, in input order.
    """
    from api.ingest_pipeline import stored_keys
    from api.ingest_sources import SourceError, expand, is_uri

    bulk = bulk or ray is not None
    settings = build_settings(
        data_dir=data_dir, db_url=db, model=model, vectors=vectors, device=device, backend=backend
    )
    try:
        sources = expand(paths)
    except SourceError as exc:
        raise fail(str(exc)) from None
    remote = [s.name for s in sources if is_uri(s.name)]
    if remote and ray is None:
        raise fail(f"{remote[0]}: URIs are read by Ray Data; add --ray")
    if ray is not None:
        _require_ray()
    items = None if bulk else _read_strict(sources, settings)
    total = len(items) if items is not None else _count(sources)
    span_model = load_model(settings.model, settings.device, None, False, settings.backend)
    embedder = _embedder(settings.vectors, span_model)
    dim = embedder.dim
    if ray is not None:  # the actors load their own; the driver needed it for checks and the vector size
        span_model = embedder = None
    store = _open_store(settings, dim)
    try:
        linker = _writer_linker(store, settings, dim)
        stored = stored_keys(store) if bulk else frozenset()
        if ray is not None:
            stream = _ray_stream(
                ray, sources, settings, stored, dim, actors, cpus_per_actor, gpus_per_actor, batch_docs
            )
        else:
            from api.ingest_pipeline import ModelStage, read_sources, run_local

            local = read_sources(sources, settings) if items is None else ((item, 0.0) for item in items)
            stream = run_local(local, ModelStage(span_model, embedder, stored), batch_docs)
        report = _write_all(linker, stream, total, bulk, kb_only)
        if ray is not None:
            report.executor = {
                "kind": "ray",
                "address": ray,
                "actors": actors,
                "cpus_per_actor": cpus_per_actor,
                "gpus_per_actor": gpus_per_actor,
                "batch_docs": batch_docs,
            }
        else:
            report.executor = {"kind": "in-process", "batch_docs": batch_docs}
        if consolidate:
            _consolidate(linker)
        if bulk:
            print(json.dumps({"report": report.as_dict()}, ensure_ascii=False), flush=True)
    finally:
        store.close()


def _read_strict(sources: list, settings: Any) -> list:  # noqa: ANN401 - ServiceSettings
    """Every document of every file, checked whole before anything is written (one rule with the API);
    the first bad one is the command's error. The same id twice is refused as the API refuses it within
    a batch: the later document would silently replace the earlier one."""
    from api.ingest_pipeline import read_sources

    items, seen = [], {}
    for item, _ in read_sources(sources, settings):
        if item.document is None:
            raise fail(f"{item.where}: {item.error}")
        external_id = item.document.external_id
        if external_id in seen:
            raise fail(f"{item.where}: document id {external_id!r} also names {seen[external_id]}")
        seen[external_id] = item.where
        items.append(item)
    if not items:
        raise fail("no documents in the given files")
    return items


def _count(sources: list) -> int | None:
    """Documents in local files, for the progress bar's ETA (None when a URI is among them)."""
    from api.ingest_sources import count_documents, is_uri, read_local

    total = 0
    for source in sources:
        if is_uri(source.name):
            return None
        try:
            total += count_documents(source.name, read_local(source))
        except OSError:
            total += 1  # reported as one failed document
    return total


def _writer_linker(store: Any, settings: Any, dim: int) -> Any:  # noqa: ANN401
    """The driver's linker: no model of its own, vectors from the model stage."""
    from api.ingest_pipeline import PrecomputedEmbedder
    from linking.linker import Linker, LinkingError
    from linking.settings import LinkSettings

    try:
        link_settings = LinkSettings(**settings.link_settings)
    except (TypeError, ValueError) as exc:
        raise fail(f"invalid setting link_settings: {exc}") from None
    try:
        return Linker(store, None, link_settings, embedder=PrecomputedEmbedder(dim))
    except LinkingError as exc:  # the store holds vectors of another kind
        raise fail(str(exc)) from None


def _require_ray() -> None:
    """Fail before any model loads when Ray Data is not installed."""
    try:
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise fail(f"--ray needs Ray Data: pip install 'spanlink[ray]' ({exc})") from None


def _ray_stream(
    address: str,
    sources: list,
    settings: Any,
    stored: frozenset,
    dim: int,
    actors: int,  # noqa: ANN401
    cpus: float,
    gpus: float,
    batch_docs: int,
):  # noqa: ANN202 - Iterator[Prepared]
    """The Ray executor's stream; Ray is shut down after it when this command started it."""
    try:
        from api.ingest_ray import RayUnavailable, connect, run_ray

        started = connect(address)
    except ImportError as exc:
        raise fail(f"--ray needs Ray Data: pip install 'spanlink[ray]' ({exc})") from None
    except RayUnavailable as exc:
        raise fail(str(exc)) from None
    import ray

    try:
        yield from run_ray(
            sources,
            settings,
            stored=stored,
            dim=dim,
            actors=actors,
            cpus_per_actor=cpus,
            gpus_per_actor=gpus,
            batch_docs=batch_docs,
        )
    except ray.exceptions.RayError as exc:
        first = str(exc).strip().splitlines()
        raise fail(f"the Ray job failed: {first[0] if first else type(exc).__name__}") from None
    finally:
        if started:
            ray.shutdown()


def _write_all(linker: Any, stream: Any, total: int | None, bulk: bool, kb_only: bool = False) -> Any:  # noqa: ANN401
    """The serial writer over the executor's stream, with a progress bar (documents/s, ETA)."""
    from tqdm.auto import tqdm

    from api.ingest_pipeline import WriteFailed, Writer

    def stored(result: Any) -> None:  # noqa: ANN401
        print(_result_line(result), flush=True)

    writer = Writer(linker, skip_stored=bulk, keep_going=bulk, on_stored=stored, kb_only=kb_only)
    with tqdm(total=total, desc="ingest", unit="doc", file=sys.stderr) as bar:
        for prepared in stream:
            try:
                writer.write(prepared)
            except WriteFailed as exc:
                raise fail(
                    f"document {exc.prepared.external_id or exc.prepared.where!r}: {exc.error} "
                    f"({exc.stored_before} documents before it were stored)"
                ) from None
            bar.update(1)
    return writer.report


def _consolidate(linker: Any) -> None:  # noqa: ANN401
    from index import StoreError
    from linking.linker import LinkingError

    try:
        merged = linker.consolidate()
    except (StoreError, LinkingError) as exc:
        raise fail(f"consolidate: {exc} (every document was stored)") from None
    print(json.dumps({"consolidated": {str(k): v for k, v in sorted(merged.items())}}), flush=True)


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
