"""Sticky conversations: an agent loop must not change model mid-task.

Once a conversation sent to an alias (`auto`) is routed, its later turns go to the same model
group, and to the same deployment while that deployment is healthy (RoutePlan.prefer), so the
backend's prefix cache is reused and the agent keeps one model; a conversation sent to a named
group keeps its deployment the same way. A later turn is recognised by its
`previous_response_id` chain (the stored response keeps the group and deployment that
answered), by its `prompt_cache_key`, or by a hash of its opening items (instructions and first
input item), which agents that resend the whole conversation each turn repeat unchanged.
Failover still moves a turn when its deployment or group fails (the runner's retries and
fallbacks apply as ever); the group and deployment it lands on are what later turns stick to.
The key -> pin map is per process and bounded, or shared by the replicas on the state store
(`state.backend: redis`); the chain's pin is stored with the response.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from triage.config.auth import KeySpec
from triage.config.schema import Config
from triage.metrics import Metrics
from triage.policy import is_alias
from triage.protocols.responses import ResponsesRequest, input_items

SEPARATOR = "\x1f"  # between group and deployment in a stored pin (neither name holds it)


@dataclass(frozen=True)
class Pin:
    """What a conversation sticks to: the group that answered its last turn and the deployment
    that served it. Kept as one string (`encode`) in the pins and with the stored response; a
    plain group name (written before deployments were pinned) decodes with no deployment."""

    group: str
    deployment: str | None = None

    def encode(self) -> str:
        return self.group if not self.deployment else self.group + SEPARATOR + self.deployment

    @classmethod
    def decode(cls, value: str | None) -> Pin | None:
        if not value:
            return None
        group, _, deployment = value.partition(SEPARATOR)
        return cls(group, deployment or None)


class Pins(Protocol):
    """Conversation key -> pin; the Responses API stores `Pin.encode` values, the Messages
    API plain group names."""

    async def find(self, keys: list[str]) -> str | None: ...
    async def remember(self, keys: list[str], group: str) -> None: ...


def sticky_routes(config: Config, metrics: Metrics | None = None) -> Pins:
    """Per process, or on the shared store (`state.backend: redis`) so that every replica
    continues a conversation on the group that answered it; pins live as long as stored
    responses (`responses.store_ttl`)."""
    state = config.state
    if state.backend != "redis" or state.url is None:
        return StickyRoutes()
    from triage.state.redis_responses import RedisPins
    from triage.state.redis_wire import Wire

    def failed(operation: str, policy: str) -> None:
        if metrics is not None:
            metrics.store_failures.labels(operation, policy).inc()

    client = Wire(state.url.get_secret_value(), state.timeout)
    return RedisPins(client, config.responses.store_ttl, on_failure=failed)


class StickyRoutes:
    """Conversation key -> pin (`Pin.encode`: group and deployment), least recently used
    first out."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._groups: OrderedDict[str, str] = OrderedDict()

    async def find(self, keys: list[str]) -> str | None:
        for key in keys:
            group = self._groups.get(key)
            if group is not None:
                self._groups.move_to_end(key)
                return group
        return None

    async def remember(self, keys: list[str], group: str) -> None:
        for key in keys:
            self._groups[key] = group
            self._groups.move_to_end(key)
        while len(self._groups) > self.capacity:
            self._groups.popitem(last=False)


def conversation_keys(request: ResponsesRequest, owner: str) -> list[str]:
    """What identifies the conversation across turns, scoped to the caller's key: its
    prompt_cache_key when it has one (the client's own name for it), else its opening items."""
    if request.prompt_cache_key:
        return [_digest(owner, "cache", request.prompt_cache_key)]
    items = input_items(request)
    if not items or request.previous_response_id is not None:
        return []  # a chain is found through its stored responses
    opening = json.dumps([request.instructions, items[0]], sort_keys=True, default=str)
    return [_digest(owner, "opening", opening)]


def _digest(owner: str, kind: str, value: str) -> str:
    return hashlib.sha256(f"{owner}\0{kind}\0{value}".encode()).hexdigest()


def usable(
    config: Config, request: ResponsesRequest, key: KeySpec | None, group: str | None
) -> bool:
    """Whether a turn for `request.model` may be sent to the remembered `group`: only turns
    for an alias stick, to a group that still exists and that the key may name."""
    if group is None or not is_alias(config, request.model) or group not in config.groups:
        return False
    return key is None or not key.models or group in key.models
