"""The web page (issue 17): server-rendered Jinja2 pages over the same service the JSON API uses.

Each handler gathers its data from :class:`api.service.Service` — the methods behind ``/v1`` — and
renders one template from ``api/web/templates`` (datasette's way: templates hold no queries). Writes
(ingest, corrections, deletes) are made by ``api/web/static/spanlink.js`` through the public JSON
endpoints, so what a person can do here a script can do too. Everything is paged: a page never
renders more than ``*_PER_PAGE`` rows or ``DOCUMENT_PAGE_CHARS`` characters of a document.
Jinja2 autoescapes every value; no template marks user text ``|safe``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from api import browsing
from api.deps import ServiceDep, SettingsDep
from api.errors import ServiceError
from api.schemas import ENTITY_SORTS, MAX_ID, Text
from api.service import Service
from index import InvalidInput, NotFound

WEB = Path(__file__).resolve().parent.parent / "web"
STATIC_PATH = "/-/static"

DOCUMENTS_PER_PAGE = 20
ENTITIES_PER_PAGE = 50
MENTIONS_PER_PAGE = 50
ENTITY_DOCUMENTS_PER_PAGE = 10
SIMILAR_ENTITIES = 10
DOCUMENT_PAGE_CHARS = 20_000
"""About this many characters of a document per page (a 50k-word text is ~15 pages)."""

LABEL_COLOURS = {"PER": "#f4b6c2", "ORG": "#a7d8f0", "LOC": "#b9e4a8", "MISC": "#f7dc8f"}
"""displaCy-like colours of the usual types; other types get one from their name."""

templates = Jinja2Templates(directory=WEB / "templates")  # autoescape is on for .html


def label_colour(label: str) -> str:
    """A light background colour for an entity type, the same on every page and in the script."""
    if label in LABEL_COLOURS:
        return LABEL_COLOURS[label]
    hue = int(hashlib.sha256(label.encode()).hexdigest()[:4], 16) % 360
    return f"hsl({hue} 70% 82%)"


templates.env.globals.update(label_colour=label_colour, static=STATIC_PATH, script_of=browsing.script_of)

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

Page = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number.")]


def _render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    # Writes ask for the API key only when the service has one (the script reads data-needs-key).
    context["needs_key"] = request.app.state.service.settings.api_key is not None
    return templates.TemplateResponse(request, name, context, status_code=status)


@contextlib.contextmanager
def one_faiss_thread() -> Iterator[None]:
    """Run this thread's FAISS searches on one OpenMP thread, then restore the setting (per thread).

    One query gains nothing from a team of threads and pays their wake-up: on the busy 2-core
    machine the entity page's similarity search took ~96 ms with the default team, ~17 ms with one
    (index/README.md recommends the same for single queries).
    """
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _pages(total: int, per_page: int, page: int) -> dict[str, int]:
    last = max(1, -(-total // per_page))
    return {"page": page, "last": last, "total": total, "per_page": per_page}


def _not_found(request: Request, what: str) -> HTMLResponse:
    return _render(request, "not_found.html", status=404, what=what)


def _labels(service: Service, *also: str) -> list[str]:
    return sorted(set(service.model.labels) | {label for label in also if label})


@router.get("/")
def try_page(request: Request, service: ServiceDep) -> HTMLResponse:
    """Paste text, see its entities highlighted and what they would link to; ingest it."""
    return _render(request, "try.html", labels=_labels(service))


@router.get("/documents")
def documents_page(
    request: Request,
    service: ServiceDep,
    page: Page = 1,
    source: Annotated[Text | None, Query(max_length=512)] = None,
    entity: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HTMLResponse:
    """Documents, newest first, filtered by metadata source and by an entity they mention."""
    source = source or None
    offset = (page - 1) * DOCUMENTS_PER_PAGE
    documents, total = service.list_documents(
        limit=DOCUMENTS_PER_PAGE, offset=offset, source=source, entity_id=entity
    )
    entity_record = None
    if entity is not None:
        try:
            entity_record = service.get_entity(entity)
        except NotFound:
            entity_record = None
    return _render(
        request,
        "documents.html",
        documents=documents,
        source=source or "",
        entity=entity,
        entity_record=entity_record,
        paging=_pages(total, DOCUMENTS_PER_PAGE, page),
    )


@router.get("/documents/{document_id:path}")
def document_page(
    request: Request,
    document_id: str,
    service: ServiceDep,
    page: Page = 1,
    at: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="Show the page holding this offset.")
    ] = None,
) -> HTMLResponse:
    """One document: its text a page at a time, mentions highlighted and linked to their entities.

    ``at`` (a character offset, as the entity page's mention links give) picks the page that holds it.
    """
    try:
        document = service.get_document(document_id)
    except NotFound:
        return _not_found(request, f"document {document_id!r}")
    mentions = sorted(document.mentions, key=lambda m: (m.start, m.end))
    bounds = browsing.page_bounds(document.text, [(m.start, m.end) for m in mentions], DOCUMENT_PAGE_CHARS)
    if at is not None:
        page = next((i for i, (_, end) in enumerate(bounds, 1) if at < end), len(bounds))
    page = min(page, len(bounds))
    start, end = bounds[page - 1]
    shown = [m for m in mentions if m.start < end and m.end > start]
    names = service.entity_names({m.entity_id for m in shown if m.entity_id is not None})
    return _render(
        request,
        "document.html",
        document=document,
        segments=browsing.segments(document.text, shown, start, end),
        names=names,
        labels=sorted({m.label for m in mentions}),
        mention_total=len(mentions),
        entity_total=len({m.entity_id for m in mentions if m.entity_id is not None}),
        window=(start, end),
        paging=_pages(len(bounds), 1, page),
    )


@router.get("/entities")
def entities_page(
    request: Request,
    service: ServiceDep,
    page: Page = 1,
    q: Annotated[Text | None, Query(max_length=512)] = None,
    label: Annotated[Text | None, Query(max_length=64)] = None,
    sort: Annotated[str, Query(max_length=16)] = "mentions",
) -> HTMLResponse:
    """Entities, sortable and filtered by type, or found by name or alias in any script."""
    q = q.strip() if q and q.strip() else None
    label = label or None
    if sort not in ENTITY_SORTS:
        sort = "mentions"
    offset = (page - 1) * ENTITIES_PER_PAGE
    labels = [label] if label else None
    if q is not None:
        entities, total = service.find_entities(q, labels=labels, limit=ENTITIES_PER_PAGE, offset=offset)
    else:
        entities, total = service.list_entities(
            sort=sort, labels=labels, limit=ENTITIES_PER_PAGE, offset=offset
        )
    return _render(
        request,
        "entities.html",
        entities=entities,
        q=q or "",
        label=label or "",
        sort=sort,
        sorts=ENTITY_SORTS,
        labels=_labels(service, label or "", *service.label_groups.values()),  # a group filters too
        paging=_pages(total, ENTITIES_PER_PAGE, page),
    )


@router.get("/entities/{entity_id:int}")
def entity_page(
    request: Request,
    entity_id: int,
    service: ServiceDep,
    settings: SettingsDep,
    page: Page = 1,
    docs: Page = 1,
) -> HTMLResponse:
    """An entity: aliases by script, mentions in context (paged), documents, similar entities, corrections."""
    try:
        entity = service.get_entity(entity_id)
    except NotFound:
        return _not_found(request, f"entity {entity_id}")
    mentions, mention_total = service.entity_mentions_page(
        entity.id, limit=MENTIONS_PER_PAGE, offset=(page - 1) * MENTIONS_PER_PAGE
    )
    documents, document_total = service.list_documents(
        limit=ENTITY_DOCUMENTS_PER_PAGE, offset=(docs - 1) * ENTITY_DOCUMENTS_PER_PAGE, entity_id=entity.id
    )
    try:
        with one_faiss_thread():
            similar = service.similar(entity_id=entity.id, k=min(SIMILAR_ENTITIES, settings.max_k))
    except (ServiceError, InvalidInput, NotFound):  # no vector to compare by, or gone meanwhile
        similar = []
    return _render(
        request,
        "entity.html",
        entity=entity,
        aliases=browsing.aliases_by_script((a.norm, a.count) for a in entity.aliases),
        mentions=mentions,
        paging=_pages(mention_total, MENTIONS_PER_PAGE, page),
        documents=documents,
        doc_paging=_pages(document_total, ENTITY_DOCUMENTS_PER_PAGE, docs),
        similar=similar,
        labels=_labels(service, entity.label),
    )


def install_pages(app: FastAPI) -> None:
    """Serve the pages at ``/`` and their stylesheet and script under ``/-/static``."""
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=WEB / "static"), name="static")
