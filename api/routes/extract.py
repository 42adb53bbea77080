"""``POST /v1/extract``: NER on texts, nothing stored."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import JsonBody, ServiceDep, SettingsDep
from api.routes.limits import check_items, check_texts
from api.schemas import ExtractedEntity, ExtractRequest, ExtractResponse, ExtractResult

router = APIRouter(prefix="/extract", tags=["extract"])


# A plain `def`: FastAPI runs it in its threadpool, so the model call never blocks the event loop.
@router.post("", response_model=ExtractResponse, response_model_exclude_none=True, dependencies=[JsonBody])
def extract(body: ExtractRequest, service: ServiceDep, settings: SettingsDep) -> ExtractResponse:
    """Find the entities in each text; nothing is stored."""
    check_items(len(body.texts), "texts", settings)
    check_texts(body.texts, "texts", settings)
    found = service.extract(
        body.texts, labels=body.labels, min_score=body.min_score, embeddings=body.embeddings
    )
    return ExtractResponse(
        results=[
            ExtractResult(
                entities=[
                    ExtractedEntity(
                        start=e.start,
                        end=e.end,
                        text=e.text,
                        label=e.label,
                        group=e.group,
                        score=float(e.score),
                        embedding=e.embedding.tolist()
                        if body.embeddings and e.embedding is not None
                        else None,
                    )
                    for e in entities
                ]
            )
            for entities in found
        ]
    )
