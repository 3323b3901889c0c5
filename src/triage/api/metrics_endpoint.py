"""GET /metrics: Prometheus text, aggregated across workers in multiprocess mode.

Takes the admin key when one is configured (Prometheus sends it with `authorization:
credentials`); with client keys but no admin key it is refused (403). `server.metrics_public:
true` opens it for scrapers that cannot send a key (no label holds a secret or a client string).

Counts made on the request path wait in plain numbers until published (telemetry/tally.py):
collecting this worker's registry publishes them; with several workers this one publishes its
own, then waits (boundedly) until every live sibling has published since the scrape began.
"""

from __future__ import annotations

import os
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from triage.api.deps import state
from triage.metrics import Metrics
from triage.runtime import Runtime
from triage.state import DeploymentState
from triage.telemetry.tally import await_siblings

router = APIRouter()


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    app_state = state(request)
    if not app_state.config.server.metrics_public:
        app_state.runtime.guard.authenticate_admin(request.headers.get("authorization"))
    _refresh_gauges(app_state.runtime, app_state.shared.metrics)
    multiproc_dir = app_state.extras.get("multiproc_dir")
    if multiproc_dir and os.path.isdir(multiproc_dir):
        began = time.time_ns()
        app_state.shared.metrics.tally.publish()
        await await_siblings(multiproc_dir, began)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiproc_dir)  # type: ignore[no-untyped-call]
    else:
        registry = app_state.shared.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _refresh_gauges(runtime: Runtime, metrics: Metrics) -> None:
    engine = runtime.service.engine
    now = engine.clock()
    for deployment in runtime.config.model_list:
        current = engine.store.state(deployment.id, now)
        for candidate in DeploymentState:
            metrics.deployment_state.labels(deployment.id, candidate.value).set(
                1 if candidate is current else 0
            )
