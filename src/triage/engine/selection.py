"""Choosing a deployment inside a model group, by the configured routing strategy.

`latency-based-routing` ranks by the running latency average (time to first token for streams),
tries each deployment `WARMUP` times first, and on every `EXPLORE_EVERY`-th request of a group
sends the request to the runner-up instead, so a deployment that has become fast again is noticed
within a bounded number of requests. Exploration is counted, not random, so it is predictable.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from triage.config.schema import Deployment
from triage.state import DeploymentState, Store

WARMUP = 3
EXPLORE_EVERY = 10


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
        return _by_latency(deployments, store, stream=stream)
    return _weighted_shuffle(deployments, rng)


def _by_latency(
    deployments: Sequence[Deployment], store: Store, *, stream: bool
) -> list[Deployment]:
    warming = [d for d in deployments if store.samples(d.id) < WARMUP]
    if warming:
        warming.sort(key=lambda d: store.samples(d.id))
        return warming + [d for d in deployments if d not in warming]
    ordered = sorted(deployments, key=lambda d: store.latency(d.id, stream=stream) or 0.0)
    key = "latency:" + ",".join(d.id for d in deployments)
    if store.tick(key) % EXPLORE_EVERY == 0:
        ordered[0], ordered[1] = ordered[1], ordered[0]
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
    prefer: str | None = None,
) -> Deployment | None:
    """The best deployment that can take a request now, preferring ones not in `avoid`;
    `prefer` first, whatever the strategy, while it is healthy and not in `avoid`."""
    fresh = [d for d in deployments if d.id not in avoid]
    preferred = next((d for d in fresh if d.id == prefer), None)
    if (
        preferred is not None
        and store.state(preferred.id, now) is DeploymentState.HEALTHY
        and store.acquire(preferred.id, now)
    ):
        return preferred
    for pool in (fresh, [d for d in deployments if d.id in avoid]):
        for deployment in rank(pool, store, strategy, rng, stream=stream):
            if store.acquire(deployment.id, now):
                return deployment
    return None
