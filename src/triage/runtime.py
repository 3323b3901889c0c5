"""Everything built from one config (service, engine, lanes, guard), and what outlives a config
reload (metrics, the store, the ledger, rate windows, the clocks).

A reload builds a complete new `Runtime` from the new config before swapping it in, so an
invalid config never replaces the one that is serving.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from triage.access.guard import Guard
from triage.access.sensitive import Detector
from triage.accounting import Accountant
from triage.cache import ResponseCache, build_backend
from triage.cache.backend import CacheBackend
from triage.classify import Classifier
from triage.config.schema import Config
from triage.engine.drain import Drain
from triage.engine.lanes import Lanes
from triage.engine.runner import Engine
from triage.ledger import LedgerStore
from triage.metering import PriceBook
from triage.metrics import Metrics
from triage.policy import alias_groups
from triage.service import Service
from triage.state import BreakerSettings, LimitStore, MemoryLimits, MemoryStore, Store
from triage.telemetry import Tracing, build_tracing


@dataclass
class Shared:
    metrics: Metrics
    store: Store
    prices: PriceBook
    ledger: LedgerStore | None
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    rng: random.Random | None = None
    drain: Drain | None = None  # graceful shutdown: ends streams at its deadline
    limits: LimitStore | None = None  # built from the first config's `state:`; kept on reload
    cache: CacheBackend | None = None  # the response cache's entries; kept on reload
    tracing: Tracing | None = None  # built from the first config's `telemetry:`


@dataclass
class Runtime:
    config: Config
    service: Service
    lanes: Lanes
    guard: Guard


def build_classifier(config: Config) -> Classifier:
    path = config.triage.classifier_path
    classifier = Classifier.load(Path(path) if path else None)
    if config.triage.examples:
        classifier = classifier.with_examples(config.triage.examples)
    return classifier


def default_store(config: Config, metrics: Metrics | None = None) -> Store:
    """Breaker state and latency statistics: in memory, or shared through Redis (a local copy
    refreshed once per request, see state/redis_breaker.py)."""
    rs = config.router_settings
    breaker = BreakerSettings(allowed_fails=rs.allowed_fails, cooldown_time=rs.cooldown_time)
    settings = config.state
    if settings.backend == "redis" and settings.url is not None:
        from triage.state.redis_breaker import RedisStore
        from triage.state.redis_wire import Wire

        def failed(operation: str) -> None:
            if metrics is not None:
                metrics.store_failures.labels(operation, "fail_open").inc()

        client = Wire(settings.url.get_secret_value(), settings.timeout)
        return RedisStore(client, breaker, on_failure=failed)
    return MemoryStore(breaker)


def limit_store(
    config: Config,
    ledger: LedgerStore | None,
    metrics: Metrics | None = None,
    store: Store | None = None,
) -> LimitStore:
    """Per-key counters; spend is seeded from the ledger so a restart does not reset a
    budget. On Redis they share the breaker store's connection (a request's reservation and
    breaker refresh leave in one write)."""
    spend_since = ledger.spend if ledger is not None else None
    settings = config.state
    if settings.backend == "sqlite":  # its module loads only for a config that uses it
        from triage.state.sqlite import SqliteLimits

        return SqliteLimits(settings.path, spend_since, ttl=settings.reservation_ttl)
    if settings.backend == "redis" and settings.url is not None:
        from triage.state.redis_breaker import RedisStore
        from triage.state.redis_limits import RedisLimits
        from triage.state.redis_wire import Wire

        def failed(operation: str) -> None:  # a settle written behind that did not land
            if metrics is not None:
                metrics.store_failures.labels(operation, "fail_open").inc()

        if isinstance(store, RedisStore):
            client = store.client
        else:
            client = Wire(settings.url.get_secret_value(), settings.timeout)
        return RedisLimits(client, spend_since, ttl=settings.reservation_ttl, on_failure=failed)
    return MemoryLimits(spend_since, ttl=settings.reservation_ttl)


def build_runtime(
    config: Config,
    shared: Shared,
    *,
    lanes: Lanes | None = None,
    classifier: Classifier | None = None,
    engine: Engine | None = None,
) -> Runtime:
    lanes = lanes or Lanes(config)
    metrics, prices = shared.metrics, shared.prices
    engine = engine or Engine(
        config,
        lanes.for_deployment,
        shared.store,
        clock=shared.clock,
        rng=shared.rng,
        context_window=lambda d: prices.context_window(d.litellm_params.model),
        on_cooldown=lambda deployment_id: metrics.cooldowns.labels(deployment_id).inc(),
        drain=shared.drain,
    )
    if shared.limits is None:
        shared.limits = limit_store(config, shared.ledger, metrics, shared.store)
    ledger = shared.ledger
    guard = Guard(
        config.auth,
        limits=shared.limits,
        wall_clock=shared.wall_clock,
        reachable=lambda name: alias_groups(config, name),
        on_store_failure=lambda op, policy: metrics.store_failures.labels(op, policy).inc(),
    )
    accountant = Accountant(config, prices, metrics, ledger, shared.wall_clock)
    sensitive = config.triage.sensitive
    detector = (
        Detector(enabled=sensitive.detectors, custom=sensitive.patterns)
        if sensitive.enabled
        else None
    )
    if shared.cache is None:
        url = config.state.url.get_secret_value() if config.state.url is not None else None
        shared.cache = build_backend(config.triage.cache, url, shared.clock)
    if shared.tracing is None:
        shared.tracing = build_tracing(config.telemetry)
    service = Service(
        config,
        engine,
        classifier or build_classifier(config),
        accountant,
        metrics,
        shared.clock,
        guard=guard,
        detector=detector,
        cache=ResponseCache(config.triage.cache, shared.cache, metrics),
        tracing=shared.tracing,
    )
    return Runtime(config, service, lanes, guard)
