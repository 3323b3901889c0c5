"""What the gateway remembers between requests, behind small store interfaces.

- `breaker`: per-deployment latency, failures, cooldowns and in-flight counts (`Store`).
- `limits`: per-key request and token windows, spend, and the reservations that hold a
  request's worst case until it is settled (`LimitStore`); in memory (one process) or
- `sqlite`: the same operations on a local SQLite file, shared by the worker processes of one
  machine (`serve --workers N`).
"""

from triage.state.breaker import BreakerSettings, DeploymentState, MemoryStore, Store
from triage.state.limits import (
    Ask,
    LimitStore,
    MemoryLimits,
    Refusal,
    Reservation,
    Snapshot,
)

__all__ = [
    "Ask",
    "BreakerSettings",
    "DeploymentState",
    "LimitStore",
    "MemoryLimits",
    "MemoryStore",
    "Refusal",
    "Reservation",
    "Snapshot",
    "Store",
]
