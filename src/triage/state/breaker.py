"""What the gateway remembers between requests: latency, failures, cooldowns, in-flight counts.

It sits behind the small `Store` protocol so that a shared store (Redis) can replace the in-memory
default when several replicas must agree. All times come from the caller (an injected clock).

Circuit breaking per deployment: `allowed_fails` failures inside `window` seconds put the
deployment in cooldown for `cooldown_time`; when that ends it is half-open and exactly one request
(the probe) may go through; its success closes the circuit, its failure re-opens it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class DeploymentState(StrEnum):
    HEALTHY = "healthy"
    COOLING_DOWN = "cooling_down"
    PROBING = "probing"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class BreakerSettings:
    allowed_fails: int = 3
    window: float = 60.0
    cooldown_time: float = 30.0


@dataclass
class _Entry:
    failures: deque[float] = field(default_factory=deque)
    cooldown_until: float = 0.0
    probing: bool = False
    latency: float | None = None
    ttft: float | None = None
    in_flight: int = 0
    samples: int = 0
    unreachable: bool = False


class Store(Protocol):
    def acquire(self, deployment: str, now: float) -> bool: ...
    def release(self, deployment: str) -> None: ...
    def record_success(
        self, deployment: str, now: float, *, latency: float | None, ttft: float | None
    ) -> None: ...
    def record_failure(self, deployment: str, now: float, *, trips: bool = True) -> None: ...
    def cooldown_remaining(self, deployment: str, now: float) -> float: ...
    def state(self, deployment: str, now: float) -> DeploymentState: ...
    def latency(self, deployment: str, *, stream: bool) -> float | None: ...
    def in_flight(self, deployment: str) -> int: ...
    def set_reachable(self, deployment: str, reachable: bool) -> None: ...
    def samples(self, deployment: str) -> int: ...
    def tick(self, key: str) -> int: ...
    # A shared store refreshes the plan's deployments once per request (`prefetch` may send
    # that refresh early, for `sync` to take) and lets a request wait for its own writes; in
    # memory all do nothing.
    def prefetch(self, deployments: Sequence[str]) -> None: ...
    async def sync(self, deployments: Sequence[str], now: float) -> None: ...
    async def flush(self) -> None: ...


class MemoryStore:
    """The in-process store: one dict of entries, touched only from the event loop."""

    # Weight of a new latency sample: high enough that a recovered deployment is noticed
    # within a handful of requests, low enough that one outlier does not flip the ranking.
    ALPHA = 0.3

    def __init__(self, breaker: BreakerSettings | None = None) -> None:
        self.breaker = breaker or BreakerSettings()
        self._entries: dict[str, _Entry] = {}
        self._ticks: dict[str, int] = {}

    def _get(self, deployment: str) -> _Entry:
        entry = self._entries.get(deployment)
        if entry is None:
            entry = self._entries[deployment] = _Entry()
        return entry

    def acquire(self, deployment: str, now: float) -> bool:
        """Claim a slot on the deployment; False while it cools down or a probe is out."""
        entry = self._get(deployment)
        if entry.cooldown_until > now:
            return False
        if entry.cooldown_until > 0.0:  # cooldown over: half-open, one probe at a time
            if entry.probing:
                return False
            entry.probing = True
        entry.in_flight += 1
        return True

    def release(self, deployment: str) -> None:
        entry = self._get(deployment)
        entry.in_flight = max(0, entry.in_flight - 1)

    def record_success(
        self, deployment: str, now: float, *, latency: float | None, ttft: float | None
    ) -> None:
        entry = self._get(deployment)
        entry.failures.clear()
        entry.cooldown_until = 0.0
        entry.probing = False
        entry.unreachable = False
        entry.samples += 1
        # Plain mean over the first samples (the very first one pays for connection setup),
        # then an exponential average that follows change.
        alpha = max(self.ALPHA, 1.0 / entry.samples)
        if latency is not None:
            entry.latency = _ewma(entry.latency, latency, alpha)
        if ttft is not None:
            entry.ttft = _ewma(entry.ttft, ttft, alpha)

    def record_failure(self, deployment: str, now: float, *, trips: bool = True) -> None:
        """A failed attempt; `trips=False` for failures that say nothing of its health."""
        entry = self._get(deployment)
        if not trips:
            entry.probing = False
            return
        if entry.probing:  # the probe failed: straight back into cooldown
            entry.probing = False
            entry.cooldown_until = now + self.breaker.cooldown_time
            return
        failures = entry.failures
        failures.append(now)
        while failures and failures[0] <= now - self.breaker.window:
            failures.popleft()
        if len(failures) >= self.breaker.allowed_fails:
            failures.clear()
            entry.cooldown_until = now + self.breaker.cooldown_time

    def cooldown_remaining(self, deployment: str, now: float) -> float:
        return max(0.0, self._get(deployment).cooldown_until - now)

    def state(self, deployment: str, now: float) -> DeploymentState:
        entry = self._get(deployment)
        if entry.cooldown_until > now:
            return DeploymentState.COOLING_DOWN
        if entry.probing or entry.cooldown_until > 0.0:
            return DeploymentState.PROBING
        if entry.unreachable:
            return DeploymentState.UNREACHABLE
        return DeploymentState.HEALTHY

    def latency(self, deployment: str, *, stream: bool) -> float | None:
        entry = self._get(deployment)
        return entry.ttft if stream and entry.ttft is not None else entry.latency

    def in_flight(self, deployment: str) -> int:
        return self._get(deployment).in_flight

    def set_reachable(self, deployment: str, reachable: bool) -> None:
        self._get(deployment).unreachable = not reachable

    def samples(self, deployment: str) -> int:
        return self._get(deployment).samples

    def prefetch(self, deployments: Sequence[str]) -> None:
        return None

    async def sync(self, deployments: Sequence[str], now: float) -> None:
        return None

    async def flush(self) -> None:
        return None

    def tick(self, key: str) -> int:
        """A per-key request counter (drives deterministic exploration)."""
        value = self._ticks.get(key, 0) + 1
        self._ticks[key] = value
        return value


def _ewma(previous: float | None, sample: float, alpha: float) -> float:
    return sample if previous is None else previous + alpha * (sample - previous)
