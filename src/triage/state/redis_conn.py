"""Connections to the shared state store (Redis or Valkey, `state: {backend: redis, url: ...}`).

A store that cannot be reached must fail fast, not stall requests: short connect and socket
timeouts and at most one quick retry. redis-py opens a new connection on the next command after
one breaks, so replicas recover when the store comes back without a restart of their own.
Every failure to reach the store is raised as `StoreDown`; the URL (which may hold a password)
never appears in it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # redis is imported only when the backend is redis
    import redis.asyncio

T = TypeVar("T")
PREFIX = "triage:"


def _down() -> tuple[type[BaseException], ...]:
    """What redis-py raises when the server is down, slow, restarting or loading its data."""
    import redis

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class StoreDown(Exception):
    """The shared store did not answer; the caller applies its policy."""


def _options(timeout: float) -> dict[str, Any]:
    from redis.backoff import ConstantBackoff
    from redis.retry import Retry

    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(ConstantBackoff(0.01), 1),
        "health_check_interval": 0,
        "decode_responses": True,
    }


def async_client(url: str, timeout: float) -> redis.asyncio.Redis:
    import redis.asyncio

    client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(url, **_options(timeout))
    return client


async def call(operation: Callable[[], Awaitable[T]]) -> T:
    """Run one store operation, turning every way of not reaching the store into StoreDown."""
    try:
        return await operation()
    except _down() as exc:
        raise StoreDown(type(exc).__name__) from None
