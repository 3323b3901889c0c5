"""The exact-match response cache: whether a request may use it, its lookup, storing a fresh
answer, and serving a hit as the answer or stream the client asked for.

A hit makes no upstream call and costs $0: its ledger row names the model group that first
answered and the deployment `cache`, its savings are what the miss cost (or, with a savings
reference model, what the reference would have cost). The cache never fails a request: a
backend that cannot be reached is a miss, and an answer it cannot keep is simply not kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from triage.accounting import Record
from triage.cache.backend import CacheBackend, CacheUnavailable, MemoryCache, RedisCache
from triage.cache.key import SHARED, cache_key
from triage.cache.replay import Recorder, entry_of, replay
from triage.config.auth import KeySpec
from triage.config.routes import CacheSettings
from triage.engine.base import AttemptRecord, Relayed
from triage.metrics import Metrics
from triage.policy import RoutePlan

log = logging.getLogger("triage.cache")
CACHE_DEPLOYMENT = "cache"


@dataclass(frozen=True)
class Hit:
    group: str
    cost: Decimal
    counterfactual: Decimal
    usage: dict[str, int] | None
    body: dict[str, Any] | None
    chunks: list[dict[str, Any]] | None


@dataclass(frozen=True)
class Lookup:
    """What the cache said about one request; `key` is None when the cache is off for it."""

    key: str | None = None
    hit: Hit | None = None

    @property
    def headers(self) -> dict[str, str]:
        if self.key is None:
            return {}
        if self.hit is None:
            return {"x-triage-cache": "miss"}
        return {"x-triage-cache": "hit", "x-triage-route": self.hit.group}


OFF = Lookup()


class ResponseCache:
    def __init__(
        self, settings: CacheSettings, backend: CacheBackend | None, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.metrics = metrics

    def enabled(self, plan: RoutePlan, key: KeySpec | None) -> bool:
        settings = self.settings
        if key is not None and key.id in settings.keys:
            return settings.keys[key.id]
        return settings.routes.get(plan.route_name, settings.enabled)

    async def lookup(
        self,
        kind: str,
        plan: RoutePlan,
        key: KeySpec | None,
        body: dict[str, Any],
        stream: bool,
    ) -> Lookup:
        if self.backend is None or not self.enabled(plan, key):
            return OFF
        private = not self.settings.share_across_keys or plan.sensitive or plan.local_only
        scope = (key.id if key is not None else "") if private else SHARED
        lookup_key = cache_key(scope, kind, plan.groups, body, stream)
        try:
            raw = await self.backend.get(lookup_key)
        except CacheUnavailable:
            log.warning("cache unavailable: lookup treated as a miss")
            raw = None
        hit = _hit_of(raw, stream) if raw is not None else None
        result = "hit" if hit is not None else "miss"
        self.metrics.cache_lookups.labels(plan.route_name or "none", result).inc()
        return Lookup(lookup_key, hit)

    async def store(self, lookup: Lookup, body: dict[str, Any], record: Record) -> None:
        """Keep a fresh whole answer (a successful one: the caller stores nothing else)."""
        if lookup.key is None or lookup.hit is not None:
            return
        await self._put(lookup.key, entry_of(record, body=body))

    def recording(
        self, lookup: Lookup, chunks: AsyncIterator[Relayed], record: Record
    ) -> AsyncIterator[Relayed]:
        """The stream as the client gets it, kept once it ended well."""
        if lookup.key is None or lookup.hit is not None:
            return chunks
        key = lookup.key
        recorder = Recorder(self.settings.max_entry_bytes)

        async def keep(chunks: list[dict[str, Any]]) -> None:
            await self._put(key, entry_of(record, chunks=chunks))

        return recorder.wrap(chunks, keep)

    def serve(
        self, hit: Hit, record: Record, wants_usage: bool, finish: Callable[[], Awaitable[None]]
    ) -> AsyncIterator[Relayed] | dict[str, Any]:
        """Account `record` as a hit; the whole answer, or the stream that replays it (which
        calls `finish` before its last write)."""
        record.attempts.append(AttemptRecord(hit.group, CACHE_DEPLOYMENT, ok=True))
        record.counterfactual = hit.counterfactual or hit.cost
        self.metrics.cache_saved.labels(hit.group).inc(float(hit.cost))
        if hit.body is not None:
            return hit.body
        assert hit.chunks is not None
        return replay(hit.chunks, hit.usage if wants_usage else None, finish)

    async def _put(self, key: str, entry: dict[str, Any]) -> None:
        value = json.dumps(entry, separators=(",", ":")).encode()
        if self.backend is None or len(value) > self.settings.max_entry_bytes:
            return
        try:
            await self.backend.set(key, value, self.settings.ttl)
        except CacheUnavailable:
            log.warning("cache unavailable: answer not kept")

    async def close(self) -> None:
        if self.backend is not None:
            await self.backend.close()


def _hit_of(raw: bytes, stream: bool) -> Hit | None:
    try:
        entry = json.loads(raw)
        body, chunks = entry.get("body"), entry.get("chunks")
        if (chunks if stream else body) is None:
            return None
        return Hit(
            group=str(entry["group"]),
            cost=Decimal(entry["cost"]),
            counterfactual=Decimal(entry["counterfactual"]),
            usage=entry.get("usage"),
            body=body,
            chunks=chunks,
        )
    except (ValueError, KeyError, TypeError, ArithmeticError):
        log.warning("cache entry unreadable: treated as a miss")
        return None


def build_backend(
    settings: CacheSettings, state_url: str | None, clock: Callable[[], float]
) -> CacheBackend | None:
    """The backend `settings` ask for; None when no route or key can turn the cache on."""
    if not (settings.enabled or any(settings.routes.values()) or any(settings.keys.values())):
        return None
    if settings.backend == "redis":
        if state_url is None:
            raise ValueError("triage.cache.backend redis needs state.url (the shared store)")
        return RedisCache(state_url, timeout=2.0)
    return MemoryCache(settings.max_entries, clock)


__all__ = ["CACHE_DEPLOYMENT", "OFF", "CacheUnavailable", "Hit", "Lookup", "ResponseCache"]
