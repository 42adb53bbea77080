"""``/v1/documents``: ingest (extract + link + store), fetch and delete documents by their id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.convert import document_public, document_summary, mention_public
from api.deps import JsonBody, ServiceDep, SettingsDep, WriteAccess
from api.routes.limits import check_items, check_mentions, check_texts
from api.schemas import (
    MAX_ID,
    DocumentDeleted,
    DocumentLinked,
    DocumentPublic,
    DocumentsCreate,
    DocumentsLinked,
    DocumentsPublic,
    Text,
)
from api.service import DocumentSpec, MentionSpec

router = APIRouter(prefix="/documents", tags=["documents"])

# `:path` so that ids holding slashes (file paths, URLs) address documents too.
DocumentIdPath = Annotated[str, Path(min_length=1, max_length=512, description="The document's id.")]


@router.post("", response_model=DocumentsLinked, dependencies=[WriteAccess, JsonBody])
def create_documents(body: DocumentsCreate, service: ServiceDep, settings: SettingsDep) -> DocumentsLinked:
    """Extract, link and store documents, all or none; a known id replaces that document.

    An invalid document (named in the error) leaves the store untouched. Given `mentions` skip NER.
    """
    # Every limit is checked before the model runs, and the model runs before the first write.
    docs = body.documents
    check_items(len(docs), "documents", settings)
    check_texts([d.text for d in docs], "documents", settings, [d.id for d in docs])
    for i, d in enumerate(docs):
        if d.mentions is not None:
            who = f"documents[{i}]" + (f" (id {d.id!r})" if d.id is not None else "")
            check_mentions(len(d.mentions), who, settings)
    specs = [
        DocumentSpec(
            d.id,
            d.text,
            d.metadata,
            d.language,
            None if d.mentions is None else [MentionSpec(m.start, m.end, m.label) for m in d.mentions],
        )
        for d in docs
    ]
    stored = service.ingest(specs, kb_only=body.kb_only)
    return DocumentsLinked(
        documents=[
            DocumentLinked(
                id=s.id,
                replaced=s.replaced,
                mentions=[mention_public(m, service.label_groups) for m in s.document.mentions],
            )
            for s in stored
        ]
    )


@router.get("", response_model=DocumentsPublic)
def list_documents(
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Documents to skip.")] = 0,
    source: Annotated[
        Text | None,
        Query(min_length=1, max_length=512, description='Only documents whose metadata "source" is this.'),
    ] = None,
    entity_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only documents that mention this entity.")
    ] = None,
) -> DocumentsPublic:
    """A page of documents, newest first, with a preview of each text; ``count`` is over all pages."""
    page, total = service.list_documents(limit=limit, offset=offset, source=source, entity_id=entity_id)
    return DocumentsPublic(data=[document_summary(d) for d in page], count=total)


@router.get("/{document_id:path}", response_model=DocumentPublic)
def read_document(document_id: DocumentIdPath, service: ServiceDep) -> DocumentPublic:
    """The stored document with its mentions and their entities."""
    return document_public(service.get_document(document_id), service.label_groups)


@router.delete("/{document_id:path}", response_model=DocumentDeleted, dependencies=[WriteAccess])
def delete_document(document_id: DocumentIdPath, service: ServiceDep) -> DocumentDeleted:
    """Delete a document; entities left without mentions go with it."""
    removed = service.delete_document(document_id)
    return DocumentDeleted(id=document_id, removed_entity_ids=removed)
