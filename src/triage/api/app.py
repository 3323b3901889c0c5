"""create_app(config) -> a FastAPI app with everything it needs built and attached to it.

Nothing is global: the classifier, engine, store, ledger, metrics registry and HTTP clients are
created here (or injected by tests) and live on `app.state.triage`.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from triage import __version__
from triage.accounting import Accountant
from triage.api import chat, embeddings, errors, health, insight, metrics_endpoint, models
from triage.api.deps import AppState
from triage.classify import Classifier
from triage.config.schema import Config
from triage.engine.lanes import Lanes
from triage.engine.runner import Engine
from triage.ledger import Ledger
from triage.metering import PriceBook
from triage.metrics import Metrics
from triage.service import Service
from triage.state import BreakerSettings, DeploymentState, MemoryStore, Store


def build_classifier(config: Config) -> Classifier:
    path = config.triage.classifier_path
    classifier = Classifier.load(Path(path) if path else None)
    if config.triage.examples:
        classifier = classifier.with_examples(config.triage.examples)
    return classifier


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
) -> FastAPI:
    clock = clock or time.monotonic
    metrics = Metrics(registry or CollectorRegistry(auto_describe=True))
    rs = config.router_settings
    store = store or MemoryStore(
        BreakerSettings(allowed_fails=rs.allowed_fails, cooldown_time=rs.cooldown_time)
    )
    prices = PriceBook()
    lane_set = lanes or Lanes(config)
    if engine is None:
        engine = Engine(
            config,
            lane_set.for_deployment,
            store,
            clock=clock,
            rng=rng,
            context_window=lambda d: prices.context_window(d.litellm_params.model),
            on_cooldown=lambda deployment_id: metrics.cooldowns.labels(deployment_id).inc(),
        )
    ledger = Ledger(config.triage.ledger.path) if config.triage.ledger.enabled else None
    accountant = Accountant(config, prices, metrics, ledger, wall_clock)
    service = Service(
        config, engine, classifier or build_classifier(config), accountant, metrics, clock
    )
    probe_client = httpx.AsyncClient()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await probe_client.aclose()
        await lane_set.close()
        if ledger is not None:
            ledger.close()

    app = FastAPI(
        title="Triage", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.triage = AppState(
        config=config,
        service=service,
        extras={
            "started_at": wall_clock(),
            "probe_client": probe_client,
            "multiproc_dir": multiproc_dir,
            "refresh_gauges": lambda: _refresh_gauges(config, engine, metrics),
            "ledger": ledger,
        },
    )
    metrics.config_info.labels(
        __version__, str(len(config.model_list)), str(len(config.groups))
    ).set(1)
    errors.install(app)
    for module in (chat, embeddings, models, health, metrics_endpoint, insight):
        app.include_router(module.router)
    return app


def _refresh_gauges(config: Config, engine: Engine, metrics: Metrics) -> None:
    now = engine.clock()
    for deployment in config.model_list:
        current = engine.store.state(deployment.id, now)
        for candidate in DeploymentState:
            metrics.deployment_state.labels(deployment.id, candidate.value).set(
                1 if candidate is current else 0
            )
