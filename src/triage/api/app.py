"""create_app(config) -> a FastAPI app with everything it needs built and attached to it.

Nothing is global: the classifier, engine, store, ledger, metrics registry and HTTP clients are
created here (or injected by tests) and live on `app.state.triage`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CollectorRegistry

from triage import __version__
from triage.api import (
    admin,
    chat,
    embeddings,
    errors,
    health,
    insight,
    messages,
    metrics_endpoint,
    models,
    responses,
)
from triage.api.deps import AppState
from triage.api.fastpath import TriageApp
from triage.api.gate import Gate, allowed_hosts
from triage.api.health import ProbeCache
from triage.api.openapi import install_openapi
from triage.api.reloading import show_config
from triage.classify import Classifier
from triage.config.schema import Config
from triage.engine.drain import Drain
from triage.engine.lanes import Lanes
from triage.engine.runner import Engine
from triage.ledger import open_ledger
from triage.metering import PriceBook
from triage.metrics import Metrics
from triage.runtime import Shared, build_runtime, default_store
from triage.state import Store
from triage.telemetry.tally import Publisher

if TYPE_CHECKING:
    import httpx


class LazyClient:
    """The readiness probes' httpx client, built on their first use: importing httpx and
    building its TLS context cost about 90 ms of CPU and 6 MB at every start-up, and most
    processes never probe (only GET /health/ready does)."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    async def get(self, url: str, **options: Any) -> httpx.Response:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient()
        return await self._client.get(url, **options)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def create_app(
    config: Config,
    *,
    engine: Engine | None = None,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] | None = None,
    wall_clock: Callable[[], float] = time.time,
    classifier: Classifier | None = None,
    lanes: Lanes | None = None,
    store: Store | None = None,
    rng: random.Random | None = None,
    multiproc_dir: str | None = None,
    config_source: Callable[[], Config] | None = None,
    bind_host: str | None = None,
) -> FastAPI:
    """The app for `config`. `config_source` re-reads the config for POST /admin/reload and
    SIGHUP; without it, reload answers that there is nothing to reload from. `bind_host` is
    the address the server listens on (default: server.host): it decides the default allowed
    Host names and whether a reload may drop client keys."""
    metrics = Metrics(registry or CollectorRegistry(auto_describe=True))
    ledger = open_ledger(config.triage.ledger) if config.triage.ledger.enabled else None
    drain = Drain(config.server.drain_timeout, config.server.drain_delay)
    shared = Shared(
        metrics=metrics,
        drain=drain,
        store=store or default_store(config, metrics),
        prices=PriceBook(),
        ledger=ledger,
        clock=clock or time.monotonic,
        wall_clock=wall_clock,
        rng=rng,
    )
    runtime = build_runtime(config, shared, lanes=lanes, classifier=classifier, engine=engine)
    probe_client = LazyClient()
    app_state = AppState(
        runtime=runtime,
        shared=shared,
        config_source=config_source,
        extras={
            "started_at": wall_clock(),
            "probe_client": probe_client,
            "multiproc_dir": multiproc_dir,
            "ledger": ledger,
            "drain": drain,
            "ledger_path": config.triage.ledger.path,
            "probes": ProbeCache(cast("httpx.AsyncClient", probe_client)),
            "usage_lock": asyncio.Lock(),
            responses.STORE: responses.responses_store(config, wall_clock, metrics),
        },
        bind_host=bind_host,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        app_state.watch_sighup()
        drain.watch_sigterm()
        publisher = Publisher(metrics.tally, multiproc_dir).start()  # with workers: every 0.5 s
        yield
        commits = app_state.runtime.service.accountant.commits
        if commits is not None:
            await commits.drain()  # the rows of requests that finished during the drain
        await probe_client.aclose()
        await app_state.close()
        if ledger is not None:
            ledger.close()
        app_state.extras[responses.STORE].close()
        await publisher.stop()  # the last counts, into the metric files

    # FastAPI's own OpenTelemetry bridge off: traces are ours (telemetry/), on a provider of
    # our own, and its per-request "is OTel configured?" check costs ~10 µs a request.
    off: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    app = TriageApp(
        title="Triage",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry=off,
    )
    # No trailing-slash redirects: Starlette builds their Location from the client's Host
    # header (an open redirect); a path with a stray slash is a plain 404 instead.
    app.router.redirect_slashes = False
    app.state.triage = app_state
    show_config(metrics, config)
    if config.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.server.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id", "x-triage-task"],
            expose_headers=["x-request-id", "x-triage-task", "x-triage-route"],
        )
    hosts = allowed_hosts(
        config.server.allowed_hosts,
        bind_host=app_state.bind_host,
        keyed=config.auth.enabled,
    )
    app.add_middleware(
        Gate, pins=app_state.retirement, hosts=hosts, cors_origins=config.server.cors_origins
    )
    errors.install(app)
    install_openapi(app)
    app.router.routes.extend(
        [*chat.routes, *embeddings.routes, *responses.routes, *messages.routes]
    )
    for module in (models, health, metrics_endpoint, insight, admin):
        app.include_router(module.router)
    return app
