"""GET /health (the process is up) and GET /health/ready (each deployment's state)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from triage.api.deps import state
from triage.engine.probe import probe
from triage.state import DeploymentState

router = APIRouter()
PROBE_TIMEOUT = 2.0


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    app_state = state(request)
    config, engine = app_state.config, app_state.service.engine
    client: httpx.AsyncClient = app_state.extras["probe_client"]
    results = await asyncio.gather(*(probe(client, d, PROBE_TIMEOUT) for d in config.model_list))
    now = engine.clock()
    report: list[dict[str, Any]] = []
    usable_groups: set[str] = set()
    for deployment, reachable in zip(config.model_list, results, strict=True):
        engine.store.set_reachable(deployment.id, reachable)
        current = engine.store.state(deployment.id, now)
        report.append({"id": deployment.id, "group": deployment.model_name, "state": current.value})
        if current in (DeploymentState.HEALTHY, DeploymentState.PROBING):
            usable_groups.add(deployment.model_name)
    missing = sorted(set(config.groups) - usable_groups)
    body = {
        "status": "ready" if not missing else "degraded" if usable_groups else "unavailable",
        "unavailable_groups": missing,
        "deployments": report,
    }
    return JSONResponse(body, status_code=200 if usable_groups else 503)
