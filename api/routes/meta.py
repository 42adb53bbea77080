"""Service endpoints outside ``/v1``: ``/health``, ``/metrics`` and datasette-style ``/-/`` introspection."""

from __future__ import annotations

import platform
import sqlite3
from importlib import metadata
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.deps import ServiceDep, SettingsDep
from api.schemas import HealthPublic, StoreCounts
from api.settings import describe_settings

router = APIRouter(tags=["meta"])


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@router.get("/health", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
def health(request: Request) -> Any:
    """Model loaded, store reachable, counts; 503 when the store cannot be read."""
    service = getattr(request.app.state, "service", None)
    counts = None
    try:
        if service is not None:
            stats = service.stats()
            counts = StoreCounts(documents=stats.documents, mentions=stats.mentions, entities=stats.entities)
    except Exception:  # noqa: BLE001 - health reports failure, it does not raise it
        counts = None
    body = HealthPublic(
        status="ok" if counts is not None else "unavailable",
        model_loaded=service is not None and service.model is not None,
        store_reachable=counts is not None,
        counts=counts,
    )
    if counts is None:
        return JSONResponse(body.model_dump(), status_code=503)
    return body


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    """Prometheus text exposition: requests, latencies, NER batch sizes, documents, entities."""
    return request.app.state.metrics.render(getattr(request.app.state, "service", None))


@router.get("/-/versions")
def versions(service: ServiceDep) -> dict[str, Any]:
    """Versions of the software, the model (id, labels, size) and the index (factory, sizes)."""
    model = service.model
    stats = service.stats()
    return {
        "python": platform.python_version(),
        "spanlink": _version("spanlink"),
        "packages": {
            name: _version(name) for name in ("fastapi", "torch", "transformers", "onnxruntime", "faiss-cpu")
        },
        "sqlite": sqlite3.sqlite_version,
        "model": {
            "name": getattr(model, "name", None) or service.settings.model or "default",
            "labels": list(model.labels),
            "label_groups": dict(service.label_groups),
            "hidden_size": int(model.hidden_size),
            "device": str(getattr(model, "device", "cpu")),
            "dtype": str(getattr(model, "dtype", "")),
            "backend": getattr(model, "backend", ""),
        },
        "vectors": service.settings.vectors,
        "index": {
            "factory": stats.factory,
            "effective_factories": stats.effective_factories,
            "dim": stats.dim,
            "entity_vectors": stats.entity_vectors,
            "mention_vectors": stats.mention_vectors,
        },
    }


@router.get("/-/settings")
def settings_view(settings: SettingsDep) -> dict[str, Any]:
    """The effective settings (the API key shown only as set or not) with their help text."""
    values = settings.model_dump(mode="json")
    values["api_key"] = "set" if settings.api_key is not None else None
    return {
        "settings": values,
        "help": {name: text for name, _default, text in describe_settings()},
    }
