"""Choosing a deployment inside a model group, by the configured routing strategy.

`latency-based-routing` ranks by the running latency average (time to first token for streams),
tries unmeasured deployments first, and explores a random healthy one with probability
`EXPLORE` so that a deployment that has become fast again is noticed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from triage.config.schema import Deployment
from triage.state import Store

EXPLORE = 0.05


def rank(
    deployments: Sequence[Deployment],
    store: Store,
    strategy: str,
    rng: random.Random,
    *,
    stream: bool,
) -> list[Deployment]:
    if len(deployments) <= 1:
        return list(deployments)
    if strategy == "least-busy":
        return sorted(deployments, key=lambda d: store.in_flight(d.id))
    if strategy == "latency-based-routing":
        return _by_latency(deployments, store, rng, stream=stream)
    return _weighted_shuffle(deployments, rng)


def _by_latency(
    deployments: Sequence[Deployment], store: Store, rng: random.Random, *, stream: bool
) -> list[Deployment]:
    unmeasured = [d for d in deployments if store.latency(d.id, stream=stream) is None]
    if unmeasured:
        rng.shuffle(unmeasured)
        return unmeasured + [d for d in deployments if d not in unmeasured]
    ordered = sorted(deployments, key=lambda d: store.latency(d.id, stream=stream) or 0.0)
    if rng.random() < EXPLORE:
        explored = rng.choice(ordered[1:])
        ordered.remove(explored)
        ordered.insert(0, explored)
    return ordered


def _weighted_shuffle(deployments: Sequence[Deployment], rng: random.Random) -> list[Deployment]:
    pool = list(deployments)
    out: list[Deployment] = []
    while pool:
        weights = [d.litellm_params.weight or 1.0 for d in pool]
        pick = rng.choices(range(len(pool)), weights=weights)[0]
        out.append(pool.pop(pick))
    return out


def choose(
    deployments: Sequence[Deployment],
    store: Store,
    strategy: str,
    rng: random.Random,
    *,
    now: float,
    stream: bool,
    avoid: set[str],
) -> Deployment | None:
    """The best deployment that can take a request now, preferring ones not in `avoid`."""
    fresh = [d for d in deployments if d.id not in avoid]
    for pool in (fresh, [d for d in deployments if d.id in avoid]):
        for deployment in rank(pool, store, strategy, rng, stream=stream):
            if store.acquire(deployment.id, now):
                return deployment
    return None
