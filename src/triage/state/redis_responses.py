"""Stored Responses API responses and sticky-conversation pins on the shared Redis/Valkey
server (`state.backend: redis`), so a conversation started on one replica is continued on any.

Each call is one command on the lean pipelined client (`redis_wire`), awaited, with the
store's timeout (`state.timeout`, default 1 s), never a scan. A stored response's key names its
owner, so another key's response is as absent as one never stored, and the store's TTL expires
it.

When the store cannot be reached: a read of a stored response answers 503
(`state_store_unavailable`); storing one is skipped (the answer still reaches the client, a
later `previous_response_id` to it is then not found); a sticky lookup is a miss and a pin is
not kept. Each is counted and logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from triage.errors import StoreUnavailable
from triage.state.redis_conn import PREFIX, StoreDown, call
from triage.state.redis_wire import Wire
from triage.state.responses import StoredResponse

log = logging.getLogger("triage.state")
Failed = Callable[[str, str], None]  # (operation, policy)
UNAVAILABLE = "the shared state store is unreachable; retry shortly"


class _OnStore:
    """A client of the shared store whose keys expire after `ttl` seconds."""

    def __init__(
        self,
        client: Wire,
        ttl: float,
        *,
        prefix: str = PREFIX,
        on_failure: Failed = lambda operation, policy: None,
    ) -> None:
        self.client = client
        self.ttl = max(1, int(ttl))
        self.prefix = prefix
        self.on_failure = on_failure


class RedisResponses(_OnStore):
    def _key(self, response_id: str, owner: str) -> str:
        return f"{self.prefix}resp:{json.dumps([owner, response_id])}"

    async def put(self, stored: StoredResponse) -> None:
        value = json.dumps(
            [stored.previous, stored.response, stored.input_items, stored.route],
            separators=(",", ":"),
        )
        key = self._key(stored.id, stored.owner)
        try:
            await call(partial(self.client.execute, "SET", key, value, "EX", self.ttl))
        except StoreDown as exc:
            self._failed("responses_put", "fail_open", exc)

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        key = self._key(response_id, owner)
        try:
            raw: Any = await call(partial(self.client.execute, "GET", key))
        except StoreDown as exc:
            self._failed("responses_get", "fail_closed", exc)
            raise StoreUnavailable(UNAVAILABLE, retry_after=1.0) from None
        if raw is None:
            return None
        previous, response, items, route = json.loads(raw)
        return StoredResponse(response_id, owner, previous, response, items, route)

    async def delete(self, response_id: str, owner: str) -> bool:
        key = self._key(response_id, owner)
        try:
            return bool(await call(partial(self.client.execute, "DEL", key)))
        except StoreDown as exc:
            self._failed("responses_delete", "fail_closed", exc)
            raise StoreUnavailable(UNAVAILABLE, retry_after=1.0) from None

    def close(self) -> None:
        self.client.close()

    def _failed(self, operation: str, policy: str, exc: StoreDown) -> None:
        self.on_failure(operation, policy)
        log.warning("state store unreachable (%s) on %s", exc, operation)


class RedisPins(_OnStore):
    """Conversation key -> model group, shared by the replicas; pins expire after `ttl`."""

    async def find(self, keys: list[str]) -> str | None:
        if not keys:
            return None
        names = [f"{self.prefix}pin:{k}" for k in keys]
        try:
            found: list[Any] = await call(partial(self.client.execute, "MGET", *names))
        except StoreDown as exc:
            self._failed("sticky_find", "fail_open", exc)
            return None
        return next((str(group) for group in found if group is not None), None)

    async def remember(self, keys: list[str], group: str) -> None:
        try:
            for key in keys:
                pin = f"{self.prefix}pin:{key}"
                await call(partial(self.client.execute, "SET", pin, group, "EX", self.ttl))
        except StoreDown as exc:
            self._failed("sticky_remember", "fail_open", exc)

    def _failed(self, operation: str, policy: str, exc: StoreDown) -> None:
        self.on_failure(operation, policy)
        log.warning("state store unreachable (%s) on %s", exc, operation)
