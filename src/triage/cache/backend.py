"""Where cached answers live: a small async interface and its in-process backend.

Entries are opaque bytes with a time to live, so every backend (this one, a Redis-protocol
server) stores the same thing and a caller never shares a mutable object with the cache.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol


class CacheUnavailable(Exception):
    """The backend did not answer; the request goes on as a miss."""


class CacheBackend(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl: float) -> None: ...
    async def close(self) -> None: ...


class MemoryCache:
    """One process's entries, least recently used evicted past `max_entries`."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self.clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        self._entries[key] = (self.clock() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()


class RedisCache:
    """Entries on the shared Redis-protocol store (`state.url`), so every replica sees them;
    each with the server's own expiry (PX), so a replica's clock does not matter."""

    def __init__(self, url: str, timeout: float) -> None:
        from triage.state.redis_conn import async_client  # the redis client: only when used

        self.client = async_client(url, timeout)

    async def get(self, key: str) -> bytes | None:
        from triage.state.redis_conn import StoreDown, call

        try:
            value = await call(lambda: self.client.get(key))
        except StoreDown:
            raise CacheUnavailable("get") from None
        return None if value is None else str(value).encode()

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        from triage.state.redis_conn import StoreDown, call

        try:
            await call(lambda: self.client.set(key, value, px=max(1, int(ttl * 1000))))
        except StoreDown:
            raise CacheUnavailable("set") from None

    async def close(self) -> None:
        await self.client.aclose()
