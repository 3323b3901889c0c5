"""GET /health (the process is up) and GET /health/ready (each deployment's state).

Readiness never costs an upstream call per request: probe results are cached and refreshed at
most every PROBE_TTL seconds, by one round of probes at a time that every waiting caller shares.
Its detail (deployment ids and groups) is for the admin key; anyone else gets only the status.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from triage.api.callers import is_admin
from triage.api.deps import state
from triage.api.plain import json_object, ok_object
from triage.config.schema import Config
from triage.engine.probe import probe
from triage.state import DeploymentState, Store

if TYPE_CHECKING:
    import httpx  # the probe client is built on first use (api/app.py)

router = APIRouter()
PROBE_TIMEOUT = 2.0
PROBE_TTL = 10.0


class ProbeCache:
    """The last round of reachability probes, written into the store's deployment states."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        ttl: float = PROBE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self.rounds = 0
        self._probed: Config | None = None
        self._at = -math.inf
        self._round: tuple[Config, asyncio.Task[None]] | None = None

    async def refresh(self, config: Config, store: Store) -> None:
        """Make sure `config`'s deployments were probed within the last `ttl` seconds."""
        if self._probed is config and self.clock() - self._at < self.ttl:
            return
        if self._round is None or self._round[0] is not config or self._round[1].done():
            self._round = (config, asyncio.create_task(self._probe(config, store)))
        # Shielded: a caller that goes away does not cancel the round the others wait for.
        await asyncio.shield(self._round[1])

    async def _probe(self, config: Config, store: Store) -> None:
        self.rounds += 1
        deployments = config.model_list
        results = await asyncio.gather(*(probe(self.client, d, PROBE_TIMEOUT) for d in deployments))
        for deployment, reachable in zip(deployments, results, strict=True):
            store.set_reachable(deployment.id, reachable)
        self._probed, self._at = config, self.clock()


@router.get(
    "/health",
    response_model=None,
    responses=ok_object("Response Health Health Get", {"type": "string"}),
)
async def health() -> Response:
    return json_object({"status": "ok"})


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    app_state = state(request)
    drain = app_state.extras.get("drain")
    if drain is not None and drain.draining:  # SIGTERM: a load balancer should stop sending
        return JSONResponse({"status": "draining"}, status_code=503)
    config, engine = app_state.config, app_state.service.engine
    cache: ProbeCache = app_state.extras["probes"]
    await cache.refresh(config, engine.store)
    now = engine.clock()
    report: list[dict[str, Any]] = []
    usable_groups: set[str] = set()
    for deployment in config.model_list:
        current = engine.store.state(deployment.id, now)
        report.append({"id": deployment.id, "group": deployment.model_name, "state": current.value})
        if current in (DeploymentState.HEALTHY, DeploymentState.PROBING):
            usable_groups.add(deployment.model_name)
    missing = sorted(set(config.groups) - usable_groups)
    status = "ready" if not missing else "degraded" if usable_groups else "unavailable"
    body: dict[str, Any] = {"status": status}
    if is_admin(app_state.runtime, request.headers.get("authorization")):
        body.update(unavailable_groups=missing, deployments=report)
    return JSONResponse(body, status_code=200 if usable_groups else 503)
