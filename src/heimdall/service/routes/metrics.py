"""`GET /metrics`: Prometheus text exposition of this API instance's metrics.

Behind the bearer token when one is configured (it tells request rates and model versions);
Prometheus sends it with `authorization: {credentials: ...}` in the scrape config.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from heimdall.service.dependencies import MetricsDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def metrics(service_metrics: MetricsDep) -> Response:
    """Request counts and latencies, job counts, queue depth, localisation and shadow histograms."""
    return Response(service_metrics.render(), media_type=CONTENT_TYPE_LATEST)
