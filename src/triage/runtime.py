"""Everything built from one config (service, engine, lanes, guard), and what outlives a config
reload (metrics, the store, the ledger, rate windows, the clocks).

A reload builds a complete new `Runtime` from the new config before swapping it in, so an
invalid config never replaces the one that is serving.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triage.accounting import Accountant
from triage.classify import Classifier
from triage.config.schema import Config
from triage.engine.lanes import Lanes
from triage.engine.runner import Engine
from triage.guard import Guard
from triage.ledger import Ledger
from triage.metering import PriceBook
from triage.metrics import Metrics
from triage.sensitive import Detector
from triage.service import Service
from triage.state import BreakerSettings, MemoryStore, Store


@dataclass
class Shared:
    metrics: Metrics
    store: Store
    prices: PriceBook
    ledger: Ledger | None
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    rng: random.Random | None = None
    key_usage: dict[str, Any] = field(default_factory=dict)


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


def default_store(config: Config) -> Store:
    rs = config.router_settings
    return MemoryStore(
        BreakerSettings(allowed_fails=rs.allowed_fails, cooldown_time=rs.cooldown_time)
    )


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
    )
    ledger = shared.ledger
    guard = Guard(
        config.auth,
        spend_since=ledger.spend if ledger is not None else None,
        wall_clock=shared.wall_clock,
        usage=shared.key_usage,
    )
    accountant = Accountant(config, prices, metrics, ledger, shared.wall_clock)
    sensitive = config.triage.sensitive
    detector = (
        Detector(enabled=sensitive.detectors, custom=sensitive.patterns)
        if sensitive.enabled
        else None
    )
    service = Service(
        config,
        engine,
        classifier or build_classifier(config),
        accountant,
        metrics,
        shared.clock,
        guard=guard,
        detector=detector,
    )
    return Runtime(config, service, lanes, guard)
