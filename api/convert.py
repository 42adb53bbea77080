"""Store records (``index.*Public`` dataclasses) to response schemas (``api.schemas``).

Kept apart from the routes because several routers render the same records, and apart from the
schemas so that ``api.schemas`` stays importable without the store.
"""

from __future__ import annotations

from collections.abc import Mapping

from api import schemas
from index import DocumentPublic, EntityPublic, MentionHit, MentionPublic
from index.browse import DocumentSummary, MentionContext

Groups = Mapping[str, str] | None
"""The serving model's label hierarchy (``Service.label_groups``) to fill the ``group`` fields;
None leaves them null (no model loaded)."""


def group_of(label: str, groups: Groups) -> str | None:
    """A stored label's group under ``groups`` (the label itself outside the hierarchy)."""
    return None if groups is None else groups.get(label, label)


def mention_public(mention: MentionPublic, groups: Groups = None) -> schemas.MentionPublic:
    """A stored mention."""
    return schemas.MentionPublic(
        id=mention.id,
        start=mention.start,
        end=mention.end,
        text=mention.text,
        label=mention.label,
        group=group_of(mention.label, groups),
        score=mention.score,
        entity_id=mention.entity_id,
    )


def document_public(document: DocumentPublic, groups: Groups = None) -> schemas.DocumentPublic:
    """A stored document, addressed by its external id."""
    return schemas.DocumentPublic(
        id=document.external_id,
        text=document.text,
        metadata=document.metadata,
        language=document.language,
        created_at=document.created_at,
        mentions=[mention_public(m, groups) for m in document.mentions],
    )


def entity_public(entity: EntityPublic, groups: Groups = None) -> schemas.EntityPublic:
    """A stored entity with its aliases, most used first."""
    return schemas.EntityPublic(
        id=entity.id,
        name=entity.name,
        label=entity.label,
        group=group_of(entity.label, groups),
        mention_count=entity.mention_count,
        aliases=[schemas.AliasPublic(alias=a.norm, count=a.count, kb=a.kb) for a in entity.aliases],
        external_id=entity.external_id,
        description=entity.description,
        metadata=entity.metadata,
        created_at=entity.created_at,
        updated_at=entity.updated_at,
    )


def entity_detail(
    entity: EntityPublic, samples: list[MentionHit], groups: Groups = None
) -> schemas.EntityDetail:
    """An entity with sample mentions and the documents they are in."""
    return schemas.EntityDetail(
        **entity_public(entity, groups).model_dump(),
        mentions=[
            schemas.MentionSample(
                id=hit.mention.id,
                document_id=hit.document_external_id,
                start=hit.mention.start,
                end=hit.mention.end,
                text=hit.mention.text,
                label=hit.mention.label,
                group=group_of(hit.mention.label, groups),
            )
            for hit in samples
        ],
    )


def document_summary(document: DocumentSummary) -> schemas.DocumentSummaryPublic:
    """A document in a list (no full text)."""
    return schemas.DocumentSummaryPublic(
        id=document.external_id,
        language=document.language,
        metadata=document.metadata,
        created_at=document.created_at,
        length=document.length,
        preview=document.preview,
        mention_count=document.mention_count,
    )


def mention_context(context: MentionContext, groups: Groups = None) -> schemas.MentionContextPublic:
    """A mention with its sentence around it."""
    m = context.mention
    return schemas.MentionContextPublic(
        id=m.id,
        document_id=context.document_external_id,
        start=m.start,
        end=m.end,
        text=m.text,
        label=m.label,
        group=group_of(m.label, groups),
        score=m.score,
        before=context.before,
        after=context.after,
    )
