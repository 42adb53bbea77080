"""``POST /v1/link``: link a text's mentions to known entities without storing anything."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import JsonBody, ServiceDep, SettingsDep
from api.routes.limits import check_mentions, check_text
from api.schemas import EntityRef, LinkedMention, LinkRequest, LinkResponse
from api.service import MentionSpec

router = APIRouter(prefix="/link", tags=["link"])


@router.post("", response_model=LinkResponse, dependencies=[JsonBody])
def link_text(body: LinkRequest, service: ServiceDep, settings: SettingsDep) -> LinkResponse:
    """For each mention (given, or found by NER), the best stored entity and its score, or none."""
    check_text(body.text, "text", settings)
    if body.mentions is not None:
        check_mentions(len(body.mentions), "text", settings)
    spans = service.link(
        body.text,
        None if body.mentions is None else [MentionSpec(m.start, m.end, m.label) for m in body.mentions],
        kb_only=body.kb_only,
    )
    return LinkResponse(
        mentions=[
            LinkedMention(
                start=s.start,
                end=s.end,
                text=s.text,
                label=s.label,
                score=float(s.score),
                label_group=s.label_group or s.label,
                group=s.group,
                entity=None
                if s.entity is None
                else EntityRef(
                    id=s.entity.id,
                    name=s.entity.name,
                    label=s.entity.label,
                    external_id=s.entity.external_id,
                    group=service.group_of(s.entity.label),
                ),
                link_score=None if s.link_score is None else float(s.link_score),
            )
            for s in spans
        ]
    )
