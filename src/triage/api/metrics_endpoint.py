"""GET /metrics: Prometheus text, aggregated across workers in multiprocess mode."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from triage.api.deps import state

router = APIRouter()


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    app_state = state(request)
    app_state.extras["refresh_gauges"]()
    multiproc_dir = app_state.extras.get("multiproc_dir")
    if multiproc_dir and os.path.isdir(multiproc_dir):
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiproc_dir)  # type: ignore[no-untyped-call]
    else:
        registry = app_state.service.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
