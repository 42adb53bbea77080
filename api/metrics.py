"""Prometheus metrics: requests, latencies, NER batch sizes, and store counts at scrape time.

Each app gets its own ``CollectorRegistry`` (not the process-global one), so several apps in one
process — tests, ``serve --get`` — never collide on metric names. Request metrics are labelled by
the route *template* (``/v1/documents/{document_id}``), never the raw path, so unknown URLs and
ids cannot blow up the label cardinality.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from api.service import Service

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """The service's metrics in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "spanlink_http_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "spanlink_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ingested = Counter(
            "spanlink_documents_ingested_total", "Documents stored (new or replaced).", registry=self.registry
        )
        self.batch_texts = Histogram(
            "spanlink_ner_batch_texts",
            "Texts per NER model call (micro-batching merges concurrent requests).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.documents = Gauge("spanlink_documents", "Documents in the store.", registry=self.registry)
        self.mentions = Gauge("spanlink_mentions", "Mentions in the store.", registry=self.registry)
        self.entities = Gauge("spanlink_entities", "Entities in the store.", registry=self.registry)
        self.vectors = Gauge(
            "spanlink_index_vectors", "Vectors in the FAISS indexes.", ["index"], registry=self.registry
        )

    def render(self, service: Service | None) -> Response:
        """The Prometheus text exposition, with the store gauges read now."""
        if service is not None:
            stats = service.stats()
            self.documents.set(stats.documents)
            self.mentions.set(stats.mentions)
            self.entities.set(stats.entities)
            self.vectors.labels("entities").set(stats.entity_vectors)
            self.vectors.labels("mentions").set(stats.mention_vectors)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def route_template(scope: dict) -> str:
    """The matched route's full path template, or ``"unmatched"`` (unknown URL: one label for all).

    FastAPI >= 0.16x resolves included routers lazily: ``scope["route"]`` is the inner route,
    whose ``path`` lacks the ``/v1`` prefix; the full template is on the effective route context.
    """
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    template = getattr(context, "path_format", None) or getattr(scope.get("route"), "path", None)
    return template or "unmatched"


def install_metrics(app: FastAPI) -> Metrics:
    """Create the app's metrics and the middleware that counts and times every request."""
    metrics = Metrics()
    app.state.metrics = metrics

    @app.middleware("http")
    async def _measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            template = route_template(request.scope)
            method = request.method if request.method in METHODS else "other"  # bounded labels
            metrics.requests.labels(method, template, str(status)).inc()
            metrics.latency.labels(method, template).observe(time.perf_counter() - started)

    return metrics
